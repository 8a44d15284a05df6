import DipvizTensor

/// How an encoder level halves the resolution.
public enum Downsampling: String, Sendable, Codable, CaseIterable {
    /// The level's first convolution has stride 2.
    case stride
    /// Stride-1 convolution followed by 2x2 average pooling.
    case avg
    /// Stride-1 convolution followed by 2x2 max pooling.
    case max
}

/// The encoder-decoder with skip connections of Ulyanov et al.'s Deep Image Prior
/// (`models/skip.py` of their code): per scale a skip branch, a down branch of two conv-BN-act
/// blocks, and on the way back up a concat, BN, conv-BN-act and a 1x1 conv-BN-act.
public struct SkipConfiguration: Sendable, Codable, Equatable {
    public var inputChannels = 32
    public var outputChannels = 3
    public var channelsDown = [16, 32, 64, 128, 128, 128]
    public var channelsUp = [16, 32, 64, 128, 128, 128]
    public var channelsSkip = [4, 4, 4, 4, 4, 4]
    public var kernelsDown = [7, 7, 5, 5, 3, 3]
    public var kernelsUp = [7, 7, 5, 5, 3, 3]
    public var kernelSkip = 1
    public var downsampling = Downsampling.avg
    public var upsampling = UpsamplingMode.nearest
    public var padding = PaddingMode.zero
    public var leakySlope: Float = 0.2
    public var sigmoidOutput = true
    public var bias = true
    public var pointwiseUp = true

    public init() {}

    public var scales: Int { channelsDown.count }

    public func validate() throws {
        let n = channelsDown.count
        guard n > 0, [channelsUp.count, channelsSkip.count, kernelsDown.count, kernelsUp.count].allSatisfy({ $0 == n }) else {
            throw GeneratorError.inconsistent("per-scale lists must all have \(n) entries")
        }
        guard kernelsDown.allSatisfy({ $0 % 2 == 1 }), kernelsUp.allSatisfy({ $0 % 2 == 1 }), kernelSkip % 2 == 1 else {
            throw GeneratorError.inconsistent("kernel sizes must be odd")
        }
    }
}

public enum GeneratorError: Error, CustomStringConvertible, Equatable {
    case inconsistent(String)
    public var description: String {
        switch self { case .inconsistent(let s): return "generator configuration: \(s)" }
    }
}

public enum SkipNetwork {
    /// Builds the network with PyTorch-default initialisation from `seed`.
    public static func make(_ cfg: SkipConfiguration, seed: UInt64) throws -> Sequential {
        try cfg.validate()
        var rng = SeededGenerator(seed: seed)
        func conv(_ cin: Int, _ cout: Int, _ k: Int, stride: Int = 1) -> [Layer] {
            var layers: [Layer] = []
            let pad = (k - 1) / 2
            let convStride = cfg.downsampling == .stride ? stride : 1
            if cfg.padding != .zero && pad > 0 {
                let mode = cfg.padding
                layers.append(Lambda("pad") { $0.padded(top: pad, bottom: pad, left: pad, right: pad, mode: mode) })
            }
            layers.append(Conv2d(inChannels: cin, outChannels: cout, kernel: k,
                                 options: Conv2dOptions(stride: convStride, padding: cfg.padding == .zero ? pad : 0),
                                 bias: cfg.bias, generator: &rng))
            if stride > 1 {
                switch cfg.downsampling {
                case .stride: break
                case .avg: layers.append(Lambda("avgpool") { $0.avgPool2d(Pool2dOptions(kernel: stride)) })
                case .max: layers.append(Lambda("maxpool") { $0.maxPool2d(Pool2dOptions(kernel: stride)) })
                }
            }
            return layers
        }
        let slope = cfg.leakySlope
        func act() -> Layer { Lambda("leakyrelu") { $0.leakyRelu(slope: slope) } }

        let model = Sequential()
        var current = model
        var inputDepth = cfg.inputChannels
        let last = cfg.scales - 1
        for i in 0..<cfg.scales {
            let deeper = Sequential()
            let skip = Sequential()
            if cfg.channelsSkip[i] != 0 {
                current.append(ConcatBranches([skip, deeper]))
            } else {
                current.append(deeper)
            }
            current.append(BatchNorm2d(channels: cfg.channelsSkip[i] + (i < last ? cfg.channelsUp[i + 1] : cfg.channelsDown[i])))
            if cfg.channelsSkip[i] != 0 {
                for l in conv(inputDepth, cfg.channelsSkip[i], cfg.kernelSkip) { skip.append(l) }
                skip.append(BatchNorm2d(channels: cfg.channelsSkip[i]))
                skip.append(act())
            }
            for l in conv(inputDepth, cfg.channelsDown[i], cfg.kernelsDown[i], stride: 2) { deeper.append(l) }
            deeper.append(BatchNorm2d(channels: cfg.channelsDown[i]))
            deeper.append(act())
            for l in conv(cfg.channelsDown[i], cfg.channelsDown[i], cfg.kernelsDown[i]) { deeper.append(l) }
            deeper.append(BatchNorm2d(channels: cfg.channelsDown[i]))
            deeper.append(act())
            let deeperMain = Sequential()
            let k: Int
            if i == last {
                k = cfg.channelsDown[i]
            } else {
                deeper.append(deeperMain)
                k = cfg.channelsUp[i + 1]
            }
            let mode = cfg.upsampling
            deeper.append(Lambda("upsample") { $0.upsampled(scale: 2, mode: mode) })
            for l in conv(cfg.channelsSkip[i] + k, cfg.channelsUp[i], cfg.kernelsUp[i]) { current.append(l) }
            current.append(BatchNorm2d(channels: cfg.channelsUp[i]))
            current.append(act())
            if cfg.pointwiseUp {
                for l in conv(cfg.channelsUp[i], cfg.channelsUp[i], 1) { current.append(l) }
                current.append(BatchNorm2d(channels: cfg.channelsUp[i]))
                current.append(act())
            }
            inputDepth = cfg.channelsDown[i]
            current = deeperMain
        }
        for l in conv(cfg.channelsUp[0], cfg.outputChannels, 1) { model.append(l) }
        if cfg.sigmoidOutput { model.append(Lambda("sigmoid") { $0.sigmoid() }) }
        return model
    }
}
