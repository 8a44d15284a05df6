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
/// Initialisation draws in a different order from the reference code (same distributions).
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
            let convolution = Conv2d(inChannels: cin, outChannels: cout, kernel: k,
                                     options: Conv2dOptions(stride: convStride, padding: cfg.padding == .zero ? pad : 0),
                                     bias: cfg.bias, generator: &rng)
            // Average pooling after the convolution is folded into it (same function, fewer FLOPs).
            if stride > 1 && cfg.downsampling == .avg { convolution.averagePooled = true }
            layers.append(convolution)
            if stride > 1 && cfg.downsampling == .max {
                layers.append(Lambda("maxpool") { $0.maxPool2d(Pool2dOptions(kernel: stride)) })
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
            var skip: Sequential? = nil
            if cfg.channelsSkip[i] != 0 {
                let branch = Sequential()
                for l in conv(inputDepth, cfg.channelsSkip[i], cfg.kernelSkip) { branch.append(l) }
                branch.append(BatchNorm2d(channels: cfg.channelsSkip[i]))
                branch.append(act())
                skip = branch
            }
            let deeper = Sequential()
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
            // concat -> BN -> conv of the reference code, in one layer (see SkipUpBlock).
            let pad = (cfg.kernelsUp[i] - 1) / 2
            let upConv = Conv2d(inChannels: cfg.channelsSkip[i] + k, outChannels: cfg.channelsUp[i], kernel: cfg.kernelsUp[i],
                                options: Conv2dOptions(padding: cfg.padding == .zero ? pad : 0), bias: cfg.bias, generator: &rng)
            current.append(SkipUpBlock(skip: skip, deeper: deeper, skipChannels: cfg.channelsSkip[i], deepChannels: k,
                                       conv: upConv, upsampling: cfg.upsampling, padding: cfg.padding, pad: pad))
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
