import DipvizTensor
import Foundation

/// One row of `dipviz inspect`.
public struct LayerSummary: Codable, Equatable, Sendable {
    public var alias: String
    public var aliases: [String]
    public var tensor: String
    public var node: String
    public var op: String
    public var shape: [Int]
    public var parameters: Int
    public var macs: Int
    /// Receptive field and stride in input pixels; nil once a global operation covers everything.
    public var receptiveField: Int?
    public var stride: Int

    enum CodingKeys: String, CodingKey {
        case alias, aliases, tensor, node, op, shape, parameters, macs, receptiveField = "receptive_field", stride
    }
}

extension ONNXNetwork {
    /// Shapes come from running the graph once on zeros of the input size.
    public func summarize(height: Int, width: Int) throws -> [LayerSummary] {
        guard let input = imageInput else { throw ONNXError.inputMismatch("the model has no data input") }
        let declared = input.shape.flatMap { $0.count == 4 ? $0[1] : nil } ?? 3
        let channels = declared > 0 ? declared : 3
        try ONNXError.checkMemory(shape: [1, channels, height, width], what: "inspect's input of \(channels)x\(height)x\(width)")
        var shapes: [String: [Int]] = [:]
        shapes.reserveCapacity(nodes.count)
        let outputs = layers.map(\.tensor)
        _ = try GradMode.withoutGrad {
            try execute([input.name: Tensor(zeros: [1, channels, height, width])], outputs: outputs, keepOutputs: false) { name, value in
                shapes[name] = value.shape
            }
        }
        // Receptive field r and jump j per tensor, carried along the graph.
        var rows: [LayerSummary] = []
        var field: [String: (Int?, Int)] = [input.name: (1, 1)]
        field.reserveCapacity(nodes.count + 1)
        rows.reserveCapacity(nodes.count)
        let byTensor = Dictionary(layers.map { ($0.tensor, $0) }, uniquingKeysWith: { a, _ in a })
        for node in nodes {
            let incoming = node.inputs.compactMap { field[$0] }
            var r: Int? = incoming.isEmpty ? 1 : (incoming.contains { $0.0 == nil } ? nil : incoming.compactMap(\.0).max())
            var j = incoming.map(\.1).max() ?? 1
            var params = 0
            // Weights are the float constants a node reads (integer ones are shapes and pads).
            for name in node.inputs.dropFirst() { if case .float(let c)? = constants[name] { params += c.count } }
            var macs = 0
            let out = node.outputs.first ?? ""
            let outShape = shapes[out] ?? []
            switch node.opType {
            case "Conv", "QLinearConv", "MaxPool", "AveragePool":
                var k = node.ints("kernel_shape") ?? []
                let weightIndex = node.opType == "QLinearConv" ? 3 : 1
                if k.isEmpty, node.inputs.count > weightIndex, let w = constants[node.inputs[weightIndex]]?.shape, w.count == 4 {
                    k = [w[2], w[3]]
                }
                let s = node.ints("strides") ?? [1, 1], d = node.ints("dilations") ?? [1, 1]
                let kEff = saturatingSum(saturatingProduct(saturatingSum(k.first ?? 1, -1), d.first ?? 1), 1)
                if let rr = r { r = saturatingSum(rr, saturatingProduct(saturatingSum(kEff, -1), j)) }
                j = saturatingProduct(j, s.first ?? 1)
                if node.opType != "MaxPool" && node.opType != "AveragePool",
                   node.inputs.count > weightIndex, let w = constants[node.inputs[weightIndex]]?.shape, w.count == 4 {
                    macs = [w[1], w[2], w[3]].reduce(elements(outShape)) { saturatingProduct($0, $1) }
                }
            case "GlobalAveragePool", "GlobalMaxPool", "Gemm", "MatMul", "QLinearMatMul", "Flatten", "Reshape":
                if node.opType != "Flatten" && node.opType != "Reshape" { r = nil }
                if node.opType == "Gemm" || node.opType == "MatMul" || node.opType == "QLinearMatMul" {
                    r = nil
                    let a = node.inputs.first.flatMap { shapes[$0] } ?? []
                    let k = node.opType == "Gemm" && node.int("transA", 0) != 0 ? (a.first ?? 0) : (a.last ?? 0)
                    macs = saturatingProduct(elements(outShape), k)
                }
            default: break
            }
            for o in node.outputs where !o.isEmpty { field[o] = (r, j) }
            guard let shape = shapes[out] else { continue }
            let layer = byTensor[out]
            rows.append(LayerSummary(alias: layer?.aliases.first ?? "", aliases: layer?.aliases ?? [], tensor: out, node: node.name,
                                     op: node.opType, shape: shape, parameters: params, macs: macs,
                                     receptiveField: r, stride: j))
        }
        return rows
    }
}

/// Arithmetic that sticks at Int.max instead of trapping: receptive fields and MACs of a
/// hostile graph (thousands of stride-2 pools) must not crash the report.
func saturatingProduct(_ a: Int, _ b: Int) -> Int {
    let (v, overflow) = a.multipliedReportingOverflow(by: b)
    return overflow ? Int.max : v
}

func saturatingSum(_ a: Int, _ b: Int) -> Int {
    let (v, overflow) = a.addingReportingOverflow(b)
    return overflow ? Int.max : v
}

private func elements(_ shape: [Int]) -> Int { MemoryLimit.elements(shape) ?? Int.max }
