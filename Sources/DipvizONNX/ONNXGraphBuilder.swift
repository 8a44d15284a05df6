import DipvizTensor

/// Builds plain ONNX classifier graphs in code, with PyTorch-default random weights: for
/// benchmarks and tests that need full-size structures without downloading weights.
public struct ONNXGraphBuilder {
    public private(set) var nodes: [ONNXNode] = []
    public private(set) var initializers: [String: ONNXValue] = [:]
    public private(set) var current = "input"
    private var channels: Int
    private var rng: SeededGenerator
    private var counter = 0

    public init(inputChannels: Int = 3, seed: UInt64) {
        channels = inputChannels
        rng = SeededGenerator(seed: seed)
    }

    private mutating func add(_ op: String, inputs: [String] = [], attributes: [String: ONNXAttribute] = [:]) {
        counter += 1
        let out = "\(op.lowercased())_\(counter)"
        nodes.append(ONNXNode(name: out, opType: op, domain: "", inputs: [current] + inputs, outputs: [out], attributes: attributes))
        current = out
    }

    private mutating func weights(_ shape: [Int], bias: Int) -> [String] {
        let name = "w\(counter + 1)"
        initializers[name] = .float(Initializer.weight(shape, generator: &rng))
        initializers[name + ".bias"] = .float(Initializer.bias(count: bias, weightShape: shape, generator: &rng))
        return [name, name + ".bias"]
    }

    public mutating func conv(_ out: Int, kernel: Int, stride: Int = 1, pad: Int = 0) {
        let w = weights([out, channels, kernel, kernel], bias: out)
        add("Conv", inputs: w, attributes: ["kernel_shape": .ints([kernel, kernel]), "strides": .ints([stride, stride]),
                                            "pads": .ints([pad, pad, pad, pad])])
        channels = out
    }

    public mutating func relu() { add("Relu") }

    public mutating func maxPool(_ kernel: Int, stride: Int) {
        add("MaxPool", attributes: ["kernel_shape": .ints([kernel, kernel]), "strides": .ints([stride, stride])])
    }

    /// Flattens C x H x W features into `features` inputs of the next layer.
    public mutating func flatten(features: Int) {
        add("Flatten", attributes: ["axis": .int(1)])
        channels = features
    }

    public mutating func linear(_ out: Int) {
        let w = weights([out, channels], bias: out)
        add("Gemm", inputs: w, attributes: ["transB": .int(1)])
        channels = out
    }

    public mutating func dropout() { add("Dropout") }
    public mutating func softmax() { add("Softmax", attributes: ["axis": .int(1)]) }

    public func model(name: String, inputShape: [Int?], metadata: [String: String] = [:]) -> ONNXModel {
        ONNXModel(irVersion: 8, opsets: ["": 13], producer: "dipviz", metadata: metadata,
                  graph: ONNXGraph(name: name, nodes: nodes, initializers: initializers, initializerTypes: [:],
                                   inputs: [ONNXValueInfo(name: "input", elementType: 1, shape: inputShape)],
                                   outputs: [ONNXValueInfo(name: current, elementType: 1, shape: nil)], valueInfo: []),
                  source: name)
    }
}

/// torchvision's classifier structures (the adaptive average pool before the classifier is
/// the identity at 224 x 224 and is left out).
public enum TorchvisionStructures {
    public static func alexnet(seed: UInt64 = 0) -> ONNXModel {
        var b = ONNXGraphBuilder(seed: seed)
        b.conv(64, kernel: 11, stride: 4, pad: 2); b.relu(); b.maxPool(3, stride: 2)
        b.conv(192, kernel: 5, pad: 2); b.relu(); b.maxPool(3, stride: 2)
        b.conv(384, kernel: 3, pad: 1); b.relu()
        b.conv(256, kernel: 3, pad: 1); b.relu()
        b.conv(256, kernel: 3, pad: 1); b.relu(); b.maxPool(3, stride: 2)
        b.flatten(features: 256 * 6 * 6)
        b.dropout(); b.linear(4096); b.relu()
        b.dropout(); b.linear(4096); b.relu()
        b.linear(1000)
        return b.model(name: "alexnet", inputShape: [1, 3, 224, 224])
    }

    public static func vgg16(seed: UInt64 = 0) -> ONNXModel {
        var b = ONNXGraphBuilder(seed: seed)
        for (channels, count) in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)] {
            for _ in 0..<count { b.conv(channels, kernel: 3, pad: 1); b.relu() }
            b.maxPool(2, stride: 2)
        }
        b.flatten(features: 512 * 7 * 7)
        b.linear(4096); b.relu(); b.dropout()
        b.linear(4096); b.relu(); b.dropout()
        b.linear(1000)
        return b.model(name: "vgg16", inputShape: [1, 3, 224, 224])
    }
}
