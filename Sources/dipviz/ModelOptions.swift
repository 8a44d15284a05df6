import ArgumentParser
import DipvizImage
import DipvizONNX
import Foundation

/// The preprocessing overrides shared by commands that feed images.
struct PreprocessingOptions: ParsableArguments {
    @Option(help: "Channel order of the model input: RGB or BGR.")
    var channelOrder: Preprocessing.ChannelOrder?

    @Option(help: "Pixel range before mean subtraction: 1 or 255.")
    var pixelScale: Float?

    @Option(help: "Per-channel means in the model's channel order, e.g. 104,117,123.")
    var mean: FloatTriple?

    @Option(help: "Per-channel standard deviations, e.g. 0.229,0.224,0.225.")
    var std: FloatTriple?

    @Option(help: "Input size as HEIGHTxWIDTH when the graph does not fix it, e.g. 224x224.")
    var inputSize: ImageSize?

    var isEmpty: Bool { channelOrder == nil && pixelScale == nil && mean == nil && std == nil && inputSize == nil }

    /// The model's own preprocessing with these overrides applied.
    func applied(to net: ONNXNetwork) throws -> Preprocessing {
        var p = try Preprocessing.forModel(net.model)
        if let channelOrder { p.channelOrder = channelOrder }
        if let pixelScale { p.scale = pixelScale }
        if let mean { p.mean = mean.values }
        if let std { p.std = std.values }
        if let inputSize { p.inputSize = [inputSize.height, inputSize.width] }
        if !isEmpty { p.origin += " with overrides" }
        try p.validate()
        return p
    }
}

/// The model argument and the preprocessing overrides.
struct ModelOptions: ParsableArguments {
    @Argument(help: "An ONNX model file.")
    var model: String

    @OptionGroup var preprocessing: PreprocessingOptions

    func load() throws -> (ONNXNetwork, Preprocessing) {
        let net = try ONNXNetwork(path: model)
        return (net, try preprocessing.applied(to: net))
    }
}

extension Preprocessing.ChannelOrder: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument.uppercased()) }
}

extension ResizeFilter: ExpressibleByArgument {}

struct FloatTriple: ExpressibleByArgument {
    let values: [Float]
    init?(argument: String) {
        let parts = argument.split(separator: ",", omittingEmptySubsequences: false).map { Float($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 3, parts.allSatisfy({ $0?.isFinite == true }) else { return nil }
        values = parts.map { $0! }
    }
}

struct ImageSize: ExpressibleByArgument {
    let height: Int, width: Int
    init?(argument: String) {
        let parts = argument.lowercased().split(whereSeparator: { $0 == "x" || $0 == "," }).compactMap { Int($0) }
        guard parts.count == 2, parts.allSatisfy({ $0 > 0 && $0 <= 8192 }) else { return nil }
        height = parts[0]; width = parts[1]
    }
}
