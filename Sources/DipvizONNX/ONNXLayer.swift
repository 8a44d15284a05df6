import DipvizTensor

/// A node's output under the names a user may ask for it by.
public struct ONNXLayer: Sendable {
    /// Friendly names, the first being the main one (empty for nodes without a family).
    public let aliases: [String]
    public let tensor: String
    public let node: String
    public let op: String

    public var name: String { aliases.first ?? tensor }

    /// Numbers layers per family in graph order: conv1.., relu1.., pool1.., norm1.., bn1..,
    /// fc6.. (Caffe's numbering of fully connected layers), prob; VGG-style networks (only 3x3
    /// convolutions, in blocks ended by max pooling) also get conv1_1.., relu1_1...
    static func assignNames(_ nodes: [ONNXNode], constants: [String: ONNXValue]) -> [ONNXLayer] {
        let family: [String: String] = [
            "Conv": "conv", "QLinearConv": "conv", "Relu": "relu", "LeakyRelu": "relu", "Clip": "relu",
            "MaxPool": "pool", "AveragePool": "pool", "GlobalAveragePool": "pool", "GlobalMaxPool": "pool",
            "LRN": "norm", "BatchNormalization": "bn", "Gemm": "fc", "QLinearMatMul": "fc", "Softmax": "prob",
            "Concat": "concat", "Add": "add", "Sum": "add", "Dropout": "drop",
        ]
        let convs = nodes.filter { $0.opType == "Conv" }
        let isVGG = convs.count >= 8 && convs.allSatisfy { node in
            let w = node.inputs.count > 1 ? constants[node.inputs[1]]?.shape : nil
            return w?.count == 4 && w![2] == 3 && w![3] == 3 && (node.ints("strides") ?? [1, 1]) == [1, 1]
        }
        var counters: [String: Int] = ["fc": 5, "drop": 5]
        var block = 1, inBlock = [String: Int]()
        var layers: [ONNXLayer] = []
        for node in nodes {
            guard let out = node.outputs.first, !out.isEmpty else { continue }
            // MatMul followed by Add is a fully connected layer in many exports.
            var fam = family[node.opType]
            if node.opType == "MatMul", node.inputs.count > 1, constants[node.inputs[1]] != nil { fam = "fc" }
            if node.opType == "Concat" || node.opType == "Add", constants[out] != nil { fam = nil }
            var aliases: [String] = []
            if let fam {
                counters[fam, default: 0] += 1
                let n = counters[fam]!
                aliases.append(fam == "prob" ? (n == 1 ? "prob" : "prob\(n)") : "\(fam)\(n)")
                if isVGG && (fam == "conv" || fam == "relu") {
                    inBlock[fam, default: 0] += 1
                    aliases.append("\(fam)\(block)_\(inBlock[fam]!)")
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
