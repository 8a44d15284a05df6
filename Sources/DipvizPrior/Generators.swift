import DipvizTensor
import Foundation

/// DIP's ResNet generator: conv-act, residual blocks (conv-BN-act-conv-BN plus the input),
/// conv-BN, conv, sigmoid.
public struct ResNetConfiguration: Codable, Equatable, Sendable {
    public var blocks = 10
    public var channels = 16
    public var padding = PaddingMode.reflect
    public var leakySlope: Float = 0.2
    public init() {}
}

/// DIP's U-Net: two conv-BN-ReLU per level, max-pool down, upsample + concat up.
public struct UNetConfiguration: Codable, Equatable, Sendable {
    public var channels = [16, 32, 64, 128, 256]
    public var upsampling = UpsamplingMode.bilinear
    public init() {}
}

/// Heckel & Hand's Deep Decoder: per layer a 1x1 conv, 2x upsampling, ReLU and channel
/// normalisation; an under-parameterised image model.
public struct DeepDecoderConfiguration: Codable, Equatable, Sendable {
    public var channels = 64
    public var layers = 5
    public var upsampling = UpsamplingMode.bilinear
    public init() {}
}

public enum GeneratorArchitecture: Codable, Equatable, Sendable {
    case skip(SkipConfiguration)
    case resnet(ResNetConfiguration)
    case unet(UNetConfiguration)
    case deepDecoder(DeepDecoderConfiguration)

    enum CodingKeys: String, CodingKey { case kind }

    /// JSON as `{"kind": "skip", ...the configuration's fields}`: no synthesised `_0` keys.
    public init(from decoder: Decoder) throws {
        let kind = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .kind)
        switch kind {
        case "skip": self = .skip(try SkipConfiguration(from: decoder))
        case "resnet": self = .resnet(try ResNetConfiguration(from: decoder))
        case "unet": self = .unet(try UNetConfiguration(from: decoder))
        case "deep-decoder": self = .deepDecoder(try DeepDecoderConfiguration(from: decoder))
        default:
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath + [CodingKeys.kind],
                                                    debugDescription: "unknown generator \(kind); known: skip, resnet, unet, deep-decoder"))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .skip(let s): try c.encode("skip", forKey: .kind); try s.encode(to: encoder)
        case .resnet(let r): try c.encode("resnet", forKey: .kind); try r.encode(to: encoder)
        case .unet(let u): try c.encode("unet", forKey: .kind); try u.encode(to: encoder)
        case .deepDecoder(let d): try c.encode("deep-decoder", forKey: .kind); try d.encode(to: encoder)
        }
    }

    public var name: String {
        switch self {
        case .skip(let c): return c.channelsSkip.allSatisfy { $0 == 0 } ? "hourglass" : "skip"
        case .resnet: return "resnet"
        case .unet: return "unet"
        case .deepDecoder: return "deep-decoder"
        }
    }
}

/// What the generator reads: fixed noise of some depth, or a coordinate grid.
public enum GeneratorInput: String, Codable, Sendable, CaseIterable {
    /// Uniform noise in [0, 0.1) (the DIP code's `noise` with `var = 1/10`).
    case uniform
    /// Gaussian noise with standard deviation 0.1.
    case normal
    /// Two channels of x and y coordinates in [0, 1].
    case meshgrid
}

/// A Deep Image Prior: the generator, its input code, and how the code is perturbed.
public struct PriorConfiguration: Codable, Equatable, Sendable {
    public var architecture: GeneratorArchitecture
    public var input: GeneratorInput = .uniform
    public var inputDepth = 32
    /// Standard deviation of the fresh noise added to the code every iteration (0: none).
    public var regNoiseStd: Float = 0
    /// The generator's output size; the image is its centre crop (the paper uses 256 for 224).
    public var netSize: Int? = nil

    public init(architecture: GeneratorArchitecture, input: GeneratorInput = .uniform, inputDepth: Int = 32,
                regNoiseStd: Float = 0, netSize: Int? = nil) {
        self.architecture = architecture; self.input = input; self.inputDepth = inputDepth
        self.regNoiseStd = regNoiseStd; self.netSize = netSize
    }

    /// The DIP paper's feature-inversion generator.
    public static var inversion: PriorConfiguration {
        var c = SkipConfiguration()
        c.inputChannels = 32
        c.channelsDown = [16, 32, 64, 128, 128, 128]; c.channelsUp = c.channelsDown; c.channelsSkip = [4, 4, 4, 4, 4, 4]
        c.kernelsDown = [7, 7, 5, 5, 3, 3]; c.kernelsUp = [7, 7, 5, 5, 3, 3]
        c.downsampling = .avg; c.upsampling = .nearest; c.padding = .zero
        return PriorConfiguration(architecture: .skip(c), input: .uniform, inputDepth: 32, netSize: 256)
    }

    /// The DIP paper's activation-maximisation generator.
    public static var maximization: PriorConfiguration {
        var c = SkipConfiguration()
        c.inputChannels = 32
        c.channelsDown = [16, 32, 64, 128, 128, 128]; c.channelsUp = c.channelsDown; c.channelsSkip = [0, 4, 4, 4, 4, 4]
        c.kernelsDown = [5, 3, 5, 5, 3, 5]; c.kernelsUp = [5, 3, 5, 3, 5, 3]
        c.downsampling = .stride; c.upsampling = .bilinear; c.padding = .reflect
        return PriorConfiguration(architecture: .skip(c), input: .uniform, inputDepth: 32, regNoiseStd: 0.03, netSize: nil)
    }

    public static var hourglass: PriorConfiguration {
        var p = inversion
        if case .skip(var c) = p.architecture { c.channelsSkip = [0, 0, 0, 0, 0, 0]; p.architecture = .skip(c) }
        return p
    }

    public static var resnet: PriorConfiguration { PriorConfiguration(architecture: .resnet(ResNetConfiguration()), netSize: nil) }
    public static var unet: PriorConfiguration { PriorConfiguration(architecture: .unet(UNetConfiguration()), netSize: nil) }
    public static var deepDecoder: PriorConfiguration {
        PriorConfiguration(architecture: .deepDecoder(DeepDecoderConfiguration()), inputDepth: 64, netSize: nil)
    }

    /// Checks every size a run spec may carry, so a hostile or mistyped spec gives an error
    /// instead of an enormous or impossible network.
    public func validate() throws {
        func within(_ v: Int, _ range: ClosedRange<Int>, _ what: String) throws {
            guard range.contains(v) else {
                throw GeneratorError.inconsistent("\(what) is \(v); valid: \(range.lowerBound)...\(range.upperBound)")
            }
        }
        try within(inputDepth, 1...1024, "input depth")
        if let netSize { try within(netSize, 8...16384, "generator size") }
        guard regNoiseStd.isFinite, regNoiseStd >= 0 else { throw GeneratorError.inconsistent("input noise must be finite and not negative") }
        switch architecture {
        case .skip(let s):
            try s.validate()
            try within(s.scales, 1...10, "number of scales")
            for c in s.channelsDown + s.channelsUp { try within(c, 1...2048, "channel count") }
            for c in s.channelsSkip { try within(c, 0...2048, "skip channel count") }
            for k in s.kernelsDown + s.kernelsUp + [s.kernelSkip] { try within(k, 1...15, "kernel size") }
            guard s.leakySlope.isFinite else { throw GeneratorError.inconsistent("leaky slope must be finite") }
        case .resnet(let r):
            try within(r.blocks, 0...64, "residual blocks"); try within(r.channels, 1...1024, "channel count")
            guard r.leakySlope.isFinite else { throw GeneratorError.inconsistent("leaky slope must be finite") }
        case .unet(let u):
            try within(u.channels.count, 2...8, "U-Net levels")
            for c in u.channels { try within(c, 1...2048, "channel count") }
        case .deepDecoder(let d):
            try within(d.layers, 1...10, "deep decoder layers"); try within(d.channels, 1...2048, "channel count")
        }
    }

    /// Bytes of activations one training step keeps for an image of `size` pixels (a rough
    /// upper estimate: each level's maps with their gradients and normalisation copies).
    public func estimatedStepBytes(size: Int) -> Double {
        let side = Double(Swift.max(netSize ?? size, size))
        var perPixelChannels = Double(inputDepth) * 2
        switch architecture {
        case .skip(let s):
            for i in 0..<s.scales {
                let scale = 1 / Double(1 << (2 * i))
                perPixelChannels += Double(s.channelsDown[i] * 2 + s.channelsUp[i] * 2 + s.channelsSkip[i] + s.channelsUp[i]) * scale
            }
        case .resnet(let r): perPixelChannels += Double(r.channels * (4 * r.blocks + 4))
        case .unet(let u):
            for (i, c) in u.channels.enumerated() { perPixelChannels += Double(c * 6) / Double(1 << (2 * i)) }
        case .deepDecoder(let d): perPixelChannels += Double(d.channels * 4)
        }
        // Forward values, gradients and scratch of the fused kernels: about six copies.
        return perPixelChannels * side * side * 4 * 6
    }

    /// The side of the generator's output for an image of `size` pixels (the configured size or
    /// the image's): it must divide into the levels, and with reflection padding the smallest
    /// maps must be larger than the padding.
    public func generatedSize(forImage size: Int) -> Int {
        let wanted = Swift.max(netSize ?? size, size)
        var divisor = 1, minimum = 1
        switch architecture {
        case .skip(let s):
            divisor = 1 << s.scales
            minimum = divisor
            if s.padding == .reflect, let widest = (s.kernelsDown + s.kernelsUp).map({ ($0 - 1) / 2 }).max() { minimum = divisor * (widest + 1) }
        case .unet(let u): divisor = 1 << (u.channels.count - 1); minimum = divisor
        case .deepDecoder(let d): divisor = 1 << d.layers; minimum = divisor
        case .resnet: break
        }
        return (Swift.max(wanted, minimum) + divisor - 1) / divisor * divisor
    }

    /// Multiply-accumulates of one forward pass of the generator for an image of `size` pixels,
    /// and the number of activation values it produces (the element-wise work: normalisation,
    /// activations, upsampling). Nominal counts: a training step costs about three times the
    /// MACs (forward, input and weight gradients); the engine's rewrites do somewhat less.
    public func estimatedForwardWork(size: Int) -> (macs: Double, elements: Double) {
        let side = generatedSize(forImage: size)
        func area(_ shift: Int) -> Double { let r = Double(Swift.max(side >> shift, 1)); return r * r }
        let depth = Double(input == .meshgrid ? 2 : inputDepth)
        var macs = 0.0, elements = 0.0
        switch architecture {
        case .skip(let s):
            var inDepth = depth
            for i in 0..<s.scales {
                let full = area(i), half = area(i + 1)
                let down = Double(s.channelsDown[i]), up = Double(s.channelsUp[i]), skip = Double(s.channelsSkip[i])
                let kd = Double(s.kernelsDown[i]), ku = Double(s.kernelsUp[i])
                macs += skip * inDepth * Double(s.kernelSkip * s.kernelSkip) * full
                switch s.downsampling {
                case .stride: macs += down * inDepth * kd * kd * half
                // Convolution then 2x2 average pooling runs as one stride-2 convolution with a (k+1)^2 kernel.
                case .avg: macs += down * inDepth * (kd + 1) * (kd + 1) * half
                case .max: macs += down * inDepth * kd * kd * full
                }
                macs += down * down * kd * kd * half
                let deeper = i == s.scales - 1 ? down : Double(s.channelsUp[i + 1])
                macs += up * (skip + deeper) * ku * ku * full
                if s.pointwiseUp { macs += up * up * full }
                elements += skip * full + 2 * down * half + (skip + deeper) * full + (s.pointwiseUp ? 2 : 1) * up * full
                inDepth = down
            }
            macs += Double(s.outputChannels) * Double(s.channelsUp[0]) * area(0)
            elements += Double(s.outputChannels) * area(0)
        case .resnet(let r):
            let c = Double(r.channels)
            macs = area(0) * 9 * (depth * c + Double(r.blocks) * 2 * c * c + c * c + c * 3)
            elements = area(0) * (c * Double(2 * r.blocks + 2) + 3)
        case .unet(let u):
            let f = u.channels.map(Double.init)
            var inDepth = depth
            for (l, c) in f.enumerated() {
                macs += 9 * (inDepth * c + c * c) * area(l)
                elements += 2 * c * area(l)
                inDepth = c
            }
            for l in stride(from: f.count - 1, to: 0, by: -1) {
                macs += 9 * ((f[l] + f[l - 1]) * f[l - 1] + f[l - 1] * f[l - 1]) * area(l - 1)
                elements += (f[l] + 3 * f[l - 1]) * area(l - 1)
            }
            macs += 3 * f[0] * area(0)
        case .deepDecoder(let d):
            let c = Double(d.channels)
            var inDepth = depth
            for j in 0..<d.layers {
                macs += inDepth * c * area(d.layers - j)
                elements += c * (area(d.layers - j) + 2 * area(d.layers - j - 1))
                inDepth = c
            }
            macs += 3 * c * area(0)
        }
        return (macs, elements)
    }

    /// The paper generates 256 pixels and crops 224; smaller images use a generator of their
    /// own size (rounded up to what its levels divide), which keeps quick runs cheap.
    public func fitted(toImageSize size: Int) -> PriorConfiguration {
        var c = self
        if size < 224 { c.netSize = nil }
        return c
    }

    public static let presets: [String: PriorConfiguration] = [
        "inversion": inversion, "maximization": maximization, "hourglass": hourglass,
        "resnet": resnet, "unet": unet, "deep-decoder": deepDecoder,
    ]
}

/// A built prior: network, fixed input code, and the per-step code with optional perturbation.
public final class DeepImagePrior {
    public let configuration: PriorConfiguration
    public let network: Sequential
    public let code: Tensor
    /// Output size of the generator and the crop that becomes the image.
    public let outputSize: Int
    public let imageHeight: Int, imageWidth: Int
    private var noise: SeededGenerator

    public init(_ configuration: PriorConfiguration, height: Int, width: Int, seed: UInt64) throws {
        self.configuration = configuration
        imageHeight = height; imageWidth = width
        let (network, codeShape) = try DeepImagePrior.build(configuration, seed: seed)
        outputSize = configuration.generatedSize(forImage: Swift.max(height, width))
        self.network = network
        var rng = SeededGenerator(seed: seed &+ 0x5EED)
        let h = outputSize / (codeShape.reduction), w = outputSize / (codeShape.reduction)
        switch configuration.input {
        case .uniform: code = Tensor.uniform([1, codeShape.depth, h, w], low: 0, high: 0.1, generator: &rng)
        case .normal: code = Tensor.normal([1, codeShape.depth, h, w], std: 0.1, generator: &rng)
        case .meshgrid:
            code = Tensor(zeros: [1, 2, h, w])
            for i in 0..<h { for j in 0..<w {
                code.data[i * w + j] = Float(j) / Float(Swift.max(w - 1, 1))
                code.data[h * w + i * w + j] = Float(i) / Float(Swift.max(h - 1, 1))
            } }
        }
        noise = SeededGenerator(seed: seed &+ 0xD1CE)
    }

    public var parameters: [Tensor] { network.parameters }

    /// One forward pass: the code (perturbed when configured) through the generator, cropped
    /// to the image. Values in 0...1.
    public func image() -> Tensor { image(noiseGenerator: &noise) }

    /// The same, drawing the perturbation from `noiseGenerator`.
    public func image(noiseGenerator: inout SeededGenerator) -> Tensor {
        var input = code
        if configuration.regNoiseStd > 0 {
            input = code + Tensor.normal(code.shape, std: configuration.regNoiseStd, generator: &noiseGenerator)
        }
        return crop(network(input))
    }

    /// The output without perturbation (for the reported result).
    public func cleanImage() -> Tensor { crop(network(code)) }

    func crop(_ y: Tensor) -> Tensor {
        let h = y.shape[2], w = y.shape[3]
        if h == imageHeight && w == imageWidth { return y }
        return y.cropped(top: (h - imageHeight) / 2, left: (w - imageWidth) / 2, height: imageHeight, width: imageWidth)
    }

    /// Network, and the code's depth and spatial reduction.
    static func build(_ c: PriorConfiguration, seed: UInt64) throws -> (Sequential, (depth: Int, reduction: Int)) {
        let depth = c.input == .meshgrid ? 2 : c.inputDepth
        switch c.architecture {
        case .skip(var s):
            s.inputChannels = depth
            return (try SkipNetwork.make(s, seed: seed), (depth, 1))
        case .resnet(let r):
            return (resnet(r, depth: depth, seed: seed), (depth, 1))
        case .unet(let u):
            return (unet(u, depth: depth, seed: seed), (depth, 1))
        case .deepDecoder(let d):
            return (deepDecoder(d, depth: depth, seed: seed), (depth, 1 << d.layers))
        }
    }

    static func resnet(_ r: ResNetConfiguration, depth: Int, seed: UInt64) -> Sequential {
        var rng = SeededGenerator(seed: seed)
        let slope = r.leakySlope, mode = r.padding
        func conv(_ i: Int, _ o: Int, bias: Bool = true) -> [Layer] {
            let pad: [Layer] = mode == .zero ? [] : [Lambda("pad") { $0.padded(top: 1, bottom: 1, left: 1, right: 1, mode: mode) }]
            return pad + [Conv2d(inChannels: i, outChannels: o, kernel: 3, options: Conv2dOptions(padding: mode == .zero ? 1 : 0),
                                 bias: bias, generator: &rng)]
        }
        let act = { Lambda("leakyrelu") { $0.leakyRelu(slope: slope) } }
        var layers: [Layer] = conv(depth, r.channels) + [act()]
        for _ in 0..<r.blocks {
            let body = Sequential(conv(r.channels, r.channels, bias: false) + [BatchNorm2d(channels: r.channels), act()]
                                  + conv(r.channels, r.channels, bias: false) + [BatchNorm2d(channels: r.channels)])
            layers.append(Residual(body))
        }
        layers += conv(r.channels, r.channels) + [BatchNorm2d(channels: r.channels)]
        layers += conv(r.channels, 3) + [Lambda("sigmoid") { $0.sigmoid() }]
        return Sequential(layers)
    }

    static func unet(_ u: UNetConfiguration, depth: Int, seed: UInt64) -> Sequential {
        var rng = SeededGenerator(seed: seed)
        func block(_ i: Int, _ o: Int) -> Sequential {
            Sequential([Conv2d(inChannels: i, outChannels: o, kernel: 3, options: Conv2dOptions(padding: 1), generator: &rng),
                        BatchNorm2d(channels: o), Lambda("relu") { $0.relu() },
                        Conv2d(inChannels: o, outChannels: o, kernel: 3, options: Conv2dOptions(padding: 1), generator: &rng),
                        BatchNorm2d(channels: o), Lambda("relu") { $0.relu() }])
        }
        let f = u.channels
        var encoders = [block(depth, f[0])]
        for l in 1..<f.count { encoders.append(block(f[l - 1], f[l])) }
        var decoders: [Sequential] = []
        for l in stride(from: f.count - 1, to: 0, by: -1) { decoders.append(block(f[l] + f[l - 1], f[l - 1])) }
        let head = Conv2d(inChannels: f[0], outChannels: 3, kernel: 1, generator: &rng)
        return Sequential([UNetBody(encoders: encoders, decoders: decoders, head: head, upsampling: u.upsampling)])
    }

    static func deepDecoder(_ d: DeepDecoderConfiguration, depth: Int, seed: UInt64) -> Sequential {
        var rng = SeededGenerator(seed: seed)
        var layers: [Layer] = []
        var channels = depth
        let mode = d.upsampling
        for _ in 0..<d.layers {
            layers += [Conv2d(inChannels: channels, outChannels: d.channels, kernel: 1, bias: false, generator: &rng),
                       Lambda("upsample") { $0.upsampled(scale: 2, mode: mode) }, Lambda("relu") { $0.relu() },
                       BatchNorm2d(channels: d.channels)]
            channels = d.channels
        }
        layers += [Conv2d(inChannels: channels, outChannels: 3, kernel: 1, bias: false, generator: &rng), Lambda("sigmoid") { $0.sigmoid() }]
        return Sequential(layers)
    }
}

/// x + body(x).
public final class Residual: Layer {
    public let body: Layer
    public init(_ body: Layer) { self.body = body }
    public func callAsFunction(_ x: Tensor) -> Tensor { x + body(x) }
    public var parameters: [Tensor] { body.parameters }
    public var buffers: [Tensor] { body.buffers }
    public var children: [Layer] { [body] }
    public var isTraining: Bool { get { body.isTraining } set { body.isTraining = newValue } }
}

/// The U-Net's wiring: encoder levels with max pooling between them, decoder levels that
/// upsample, concatenate the matching encoder output and convolve, then a 1x1 conv and sigmoid.
final class UNetBody: Layer {
    let encoders: [Sequential], decoders: [Sequential]
    let head: Conv2d
    let upsampling: UpsamplingMode

    init(encoders: [Sequential], decoders: [Sequential], head: Conv2d, upsampling: UpsamplingMode) {
        self.encoders = encoders; self.decoders = decoders; self.head = head; self.upsampling = upsampling
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var skips: [Tensor] = []
        var h = x
        for (i, e) in encoders.enumerated() {
            if i > 0 { h = h.maxPool2d(Pool2dOptions(kernel: 2)) }
            h = e(h)
            skips.append(h)
        }
        for (i, d) in decoders.enumerated() {
            let skip = skips[skips.count - 2 - i]
            h = d(Tensor.concat([h.upsampled(height: skip.shape[2], width: skip.shape[3], mode: upsampling), skip], axis: 1))
        }
        return head(h).sigmoid()
    }

    var parameters: [Tensor] { encoders.flatMap(\.parameters) + decoders.flatMap(\.parameters) + head.parameters }
    var buffers: [Tensor] { encoders.flatMap(\.buffers) + decoders.flatMap(\.buffers) }
    var children: [Layer] { encoders + decoders + [head] }
    var isTraining: Bool {
        get { encoders.first?.isTraining ?? true }
        set { for l in encoders + decoders { l.isTraining = newValue } }
    }
}
