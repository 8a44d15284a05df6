import DipvizTensor

/// One decoder step of the skip network: concat(skip(x), upsample(deeper(x))) -> BN -> conv.
/// Batch norm is per channel, so it runs on the two parts separately; with nearest upsampling
/// and zero padding the deep part is normalised at low resolution (same statistics) and
/// convolved there with the phase kernels (`conv2dAfterNearestUpsample`). Other settings, or
/// `allowsLowResolutionPath = false`, take the literal route; both compute the same function.
public final class SkipUpBlock: Layer {
    public let skip: Layer?
    public let deeper: Layer
    public let normSkip: BatchNorm2d?
    public let normDeep: BatchNorm2d
    public let conv: Conv2d
    public let upsampling: UpsamplingMode
    public let padding: PaddingMode
    public let pad: Int
    public var allowsLowResolutionPath = true

    init(skip: Layer?, deeper: Layer, skipChannels: Int, deepChannels: Int, conv: Conv2d,
         upsampling: UpsamplingMode, padding: PaddingMode, pad: Int) {
        self.skip = skip
        self.deeper = deeper
        normSkip = skip == nil ? nil : BatchNorm2d(channels: skipChannels)
        normDeep = BatchNorm2d(channels: deepChannels)
        self.conv = conv
        self.upsampling = upsampling
        self.padding = padding
        self.pad = pad
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let low = deeper(x)
        let s = skip?(x)
        let cs = s?.shape[1] ?? 0
        let sameGrid = s.map { $0.shape[2] == 2 * low.shape[2] && $0.shape[3] == 2 * low.shape[3] } ?? true
        let weight = conv.weight
        if allowsLowResolutionPath && upsampling == .nearest && padding == .zero && sameGrid && !conv.averagePooled {
            let deepWeight = cs == 0 ? weight : weight.slice(axis: 1, start: cs, end: weight.shape[1])
            var y = normDeep.normalize(low, replication: 4)
                .conv2dAfterNearestUpsample(weight: deepWeight, bias: conv.bias, options: conv.options)
            if let s, let normSkip {
                y = y + normSkip(s).conv2d(weight: weight.slice(axis: 1, start: 0, end: cs), options: conv.options)
            }
            return y
        }
        var parts = [low.upsampled(scale: 2, mode: upsampling)]
        if let s { parts.insert(s, at: 0) }
        // Crop to the smallest grid, centred, as the reference implementation's Concat does.
        let h = parts.map { $0.shape[2] }.min()!, w = parts.map { $0.shape[3] }.min()!
        parts = parts.map { p in
            p.shape[2] == h && p.shape[3] == w ? p
                : p.cropped(top: (p.shape[2] - h) / 2, left: (p.shape[3] - w) / 2, height: h, width: w)
        }
        var normalized = [normDeep(parts.last!)]
        if let normSkip { normalized.insert(normSkip(parts[0]), at: 0) }
        var joined = normalized.count == 1 ? normalized[0] : Tensor.concat(normalized, axis: 1)
        if padding != .zero && pad > 0 {
            joined = joined.padded(top: pad, bottom: pad, left: pad, right: pad, mode: padding)
        }
        return conv(joined)
    }

    public var parameters: [Tensor] {
        (skip?.parameters ?? []) + deeper.parameters + (normSkip?.parameters ?? []) + normDeep.parameters + conv.parameters
    }
    public var buffers: [Tensor] {
        (skip?.buffers ?? []) + deeper.buffers + (normSkip?.buffers ?? []) + normDeep.buffers + conv.buffers
    }
    public var children: [Layer] { [skip, deeper, normSkip, normDeep, conv].compactMap { $0 } }
    public var isTraining: Bool {
        get { normDeep.isTraining }
        set {
            skip?.isTraining = newValue; deeper.isTraining = newValue
            normSkip?.isTraining = newValue; normDeep.isTraining = newValue
        }
    }
}
