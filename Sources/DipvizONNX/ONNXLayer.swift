import DipvizTensor

/// A node's output under the names a user may ask for it by.
public struct ONNXLayer: Sendable {
    /// Friendly names, the first being the main one (empty for nodes without a family).
    public let aliases: [String]
    public let tensor: String
    public let node: String
    public let op: String

    public var name: String { aliases.first ?? tensor }

    /// Numbers layers per family in graph order: conv1.., relu1.., norm1.., bn1.., fc6.. (Caffe's
    /// numbering of fully connected layers), prob. In a plain chain (no merging ops) a pooling
    /// layer takes the number of the convolution before it, as Caffe names them (AlexNet: pool1,
    /// pool2, pool5); elsewhere pools count on their own. VGG-style networks (3x3 convolutions in
    /// blocks ended by max pooling) name convolutions and ReLUs conv1_1.., relu1_1.. first; a
    /// leading 1x1 colour-transform convolution there is called "preprocess".
    static func assignNames(_ nodes: [ONNXNode], constants: [String: ONNXValue]) -> [ONNXLayer] {
        let family: [String: String] = [
            "Conv": "conv", "QLinearConv": "conv", "Relu": "relu", "LeakyRelu": "relu", "Clip": "relu",
            "MaxPool": "pool", "AveragePool": "pool", "GlobalAveragePool": "pool", "GlobalMaxPool": "pool",
            "LRN": "norm", "BatchNormalization": "bn", "Gemm": "fc", "QLinearMatMul": "fc", "Softmax": "prob",
            "Concat": "concat", "Add": "add", "Sum": "add", "Dropout": "drop",
        ]
        func kernel(_ node: ONNXNode) -> [Int]? {
            guard node.inputs.count > 1, let w = constants[node.inputs[1]]?.shape, w.count == 4 else { return nil }
            return w
        }
        let convs = nodes.filter { $0.opType == "Conv" }
        var preprocess: String? = nil
        if let first = convs.first, let w = kernel(first), w[0] == 3, w[2] == 1, w[3] == 1 { preprocess = first.outputs.first }
        let mainConvs = convs.filter { $0.outputs.first != preprocess }
        let isVGG = mainConvs.count >= 8 && mainConvs.allSatisfy { node in
            let w = kernel(node)
            return w?[2] == 3 && w?[3] == 3 && (node.ints("strides") ?? [1, 1]) == [1, 1]
        }
        if !isVGG { preprocess = nil }
        let isPlain = !nodes.contains { ["Concat", "Add", "Sum", "Mul"].contains($0.opType) && constants[$0.outputs.first ?? ""] == nil }
        var counters: [String: Int] = ["fc": 5, "drop": 5]
        var block = 1, inBlock = [String: Int]()
        var usedPools = Set<Int>()
        var layers: [ONNXLayer] = []
        for node in nodes {
            guard let out = node.outputs.first, !out.isEmpty else { continue }
            var fam = family[node.opType]
            // MatMul with a constant right operand is a fully connected layer in many exports.
            if node.opType == "MatMul", node.inputs.count > 1, constants[node.inputs[1]] != nil { fam = "fc" }
            var aliases: [String] = []
            if out == preprocess {
                aliases = ["preprocess"]
            } else if let fam {
                counters[fam, default: 0] += 1
                var n = counters[fam]!
                if fam == "pool" && isPlain && !isVGG, let c = counters["conv"], c > 0, !usedPools.contains(c) { n = c }
                if fam == "pool" { usedPools.insert(n) }
                let plain = fam == "prob" ? (n == 1 ? "prob" : "prob\(n)") : "\(fam)\(n)"
                if isVGG && (fam == "conv" || fam == "relu") {
                    inBlock[fam, default: 0] += 1
                    aliases = ["\(fam)\(block)_\(inBlock[fam]!)", plain]
                } else {
                    aliases = [plain]
                }
                if isVGG && fam == "pool" {
                    block += 1
                    inBlock = [:]
                }
            }
            layers.append(ONNXLayer(aliases: aliases, tensor: out, node: node.name, op: node.opType))
        }
        return layers
    }
}
