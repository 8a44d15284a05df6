import DipvizTensor
import Foundation

/// A loaded model ready to run on the engine: nodes in topological order, constant sub-graphs
/// (weights, dequantisation, shape arithmetic on constants) folded once at load, friendly layer
/// names, and runs that stop at the deepest tensor asked for.
public final class ONNXNetwork {
    public let model: ONNXModel
    /// Nodes left after folding, in an order where every input is produced first.
    public let nodes: [ONNXNode]
    /// Initializers and folded constants.
    public private(set) var constants: [String: ONNXValue]
    /// Friendly names in graph order (conv1, relu1, pool1, norm1, fc6, prob, ...).
    public private(set) var layers: [ONNXLayer] = []
    /// The arithmetic of the network's convolutions (Conv nodes with constant weights): fp32,
    /// or bf16 products where the processor has them (set it after `checkSupported`).
    public var convolutionPrecision: ConvPrecision = .fp32
    let producers: [String: Int]
    let opset: Int
    /// Tensor by layer alias and by node name, for `resolve` in constant time.
    private var aliasTensors: [String: String] = [:]
    private var nodeOutputs: [String: String] = [:]

    public init(model: ONNXModel) throws {
        self.model = model
        opset = model.defaultOpset
        var built: (constants: [String: ONNXValue], nodes: [ONNXNode])? = nil
        try ONNXError.located(model.source) { built = try ONNXNetwork.build(model) }
        constants = built!.constants
        nodes = built!.nodes
        var producers: [String: Int] = [:]
        producers.reserveCapacity(nodes.count)
        aliasTensors.reserveCapacity(nodes.count)
        nodeOutputs.reserveCapacity(nodes.count)
        for (i, node) in nodes.enumerated() { for o in node.outputs where !o.isEmpty { producers[o] = i } }
        self.producers = producers
        layers = ONNXLayer.assignNames(nodes, constants: constants)
        for layer in layers { for alias in layer.aliases where aliasTensors[alias] == nil { aliasTensors[alias] = layer.tensor } }
        for node in nodes where nodeOutputs[node.name] == nil { if let out = node.outputs.first { nodeOutputs[node.name] = out } }
    }

    /// Declared input sizes are what callers allocate for (inspect's zeros, resized images):
    /// each must fit the memory limit, and a dimension near Int.max must not overflow.
    static func checkInputs(_ model: ONNXModel) throws {
        for input in model.graph.dataInputs {
            guard let shape = input.shape else { continue }
            // Unknown, zero or negative dimensions are wildcards (run() accepts any size there).
            let known = shape.map { d -> Int in guard let d, d > 0 else { return 1 }; return d }
            let text = shape.map { $0.map(String.init) ?? "?" }.joined(separator: "x")
            try ONNXError.checkMemory(shape: known, what: "input '\(input.name)' declared \(text)")
        }
    }

    /// Validates, orders and folds the graph: the nodes left to run and the constants.
    private static func build(_ model: ONNXModel) throws -> (constants: [String: ONNXValue], nodes: [ONNXNode]) {
        try checkInputs(model)
        var constants = model.graph.initializers
        var known = Set(constants.keys).union(model.graph.inputs.map(\.name))
        known.insert("")
        for node in model.graph.nodes {
            guard node.domain.isEmpty || node.domain == "ai.onnx" else {
                throw ONNXError.unsupportedOperator(op: node.opType, node: node.name, domain: node.domain,
                                                    opset: model.opsets[node.domain] ?? 0)
            }
            guard ONNXNetwork.supportedOperators.contains(node.opType) else {
                throw ONNXError.unsupportedOperator(op: node.opType, node: node.name, domain: node.domain, opset: model.defaultOpset)
            }
        }
        let sorted = try ONNXNetwork.topologicalOrder(model.graph.nodes, available: known)
        // Fold nodes whose inputs are all constant (weights, Constant nodes, their arithmetic).
        var remaining: [ONNXNode] = []
        for node in sorted {
            let inputsConstant = node.inputs.allSatisfy { $0.isEmpty || constants[$0] != nil }
            if inputsConstant && !ONNXNetwork.neverFolded.contains(node.opType) {
                let inputs = node.inputs.map { $0.isEmpty ? nil : constants[$0] }
                let outputs = try GradMode.withoutGrad {
                    try ONNXNetwork.evaluate(node, inputs, opset: model.defaultOpset, types: model.graph.initializerTypes)
                }
                for (name, value) in zip(node.outputs, outputs) where !name.isEmpty { constants[name] = value }
            } else {
                remaining.append(node)
            }
        }
        return (constants, remaining)
    }

    public convenience init(path: String) throws {
        try self.init(model: ONNXModel.load(path: path))
    }

    /// Operators this runtime executes.
    public static let supportedOperators: Set<String> = [
        "Conv", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
        "LRN", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Flatten", "Reshape", "Transpose", "Dropout", "Softmax",
        "LogSoftmax", "Concat", "BatchNormalization", "Clip", "Pad", "Shape", "Gather", "Unsqueeze", "Squeeze", "Identity",
        "ConstantOfShape", "Constant", "Cast", "Slice", "QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul",
        "Sum", "ReduceMean", "ReduceSum", "ReduceMax", "Exp", "Log", "Neg",
    ]
    /// Nodes kept in the graph even with constant inputs (none today; Dropout in training would be one).
    static let neverFolded: Set<String> = []

    /// Kahn's algorithm in linear time. The order is the one repeated passes over the node list
    /// would give (each pass takes, in file order, every node whose inputs exist by then), so a
    /// file already in order keeps its order and the layer names do not depend on the algorithm.
    static func topologicalOrder(_ nodes: [ONNXNode], available: Set<String>) throws -> [ONNXNode] {
        // Consumers of each missing name, and how many distinct missing names each node waits for.
        var consumers: [String: [Int]] = [:]
        consumers.reserveCapacity(nodes.count)
        var waiting = [Int](repeating: 0, count: nodes.count)
        for (i, node) in nodes.enumerated() {
            for (k, name) in node.inputs.enumerated() where !available.contains(name) && !node.inputs[..<k].contains(name) {
                consumers[name, default: []].append(i)
                waiting[i] += 1
            }
        }
        // pass[i]: the pass that would take node i; a producer later in the file pushes its
        // consumer to the next pass, an earlier one keeps it in the same pass.
        var pass = [Int](repeating: 0, count: nodes.count)
        var ready = (0..<nodes.count).filter { waiting[$0] == 0 }
        var produced = Set<String>(minimumCapacity: nodes.count)
        var taken: [Int] = []
        taken.reserveCapacity(nodes.count)
        while let i = ready.popLast() {
            taken.append(i)
            for name in nodes[i].outputs where produced.insert(name).inserted {
                for c in consumers[name] ?? [] {
                    pass[c] = Swift.max(pass[c], pass[i] + (i > c ? 1 : 0))
                    waiting[c] -= 1
                    if waiting[c] == 0 { ready.append(c) }
                }
            }
        }
        guard taken.count == nodes.count else {
            let done = Set(taken)
            let i = (0..<nodes.count).first { !done.contains($0) }!
            let node = nodes[i]
            let missing = node.inputs.first { !available.contains($0) && !produced.contains($0) } ?? "?"
            throw ONNXError.missingInput(node: node.name.isEmpty ? node.opType : node.name, input: missing)
        }
        return taken.sorted { (pass[$0], $0) < (pass[$1], $1) }.map { nodes[$0] }
    }

    /// The graph's data input (the image).
    public var imageInput: ONNXValueInfo? { model.graph.dataInputs.first }

    /// Tensor name for a layer alias, node name or tensor name.
    public func resolve(_ name: String) throws -> String {
        if let tensor = aliasTensors[name] { return tensor }
        if producers[name] != nil || constants[name] != nil || model.graph.inputs.contains(where: { $0.name == name }) { return name }
        if let out = nodeOutputs[name] { return out }
        throw ONNXError.unknownTensor(name: name, valid: layers.flatMap { $0.aliases } + nodes.compactMap { $0.outputs.first })
    }

    /// The first graph output.
    public var defaultOutput: String { model.graph.outputs.first?.name ?? nodes.last?.outputs.first ?? "" }

    /// Runs only what the requested tensors need. Inputs are named graph inputs; a single
    /// tensor may be passed for the image input.
    /// `observe` sees every value computed, in order (for shape reports).
    public func run(_ inputs: [String: Tensor], outputs requested: [String],
                    observe: ((String, ONNXValue) -> Void)? = nil) throws -> [String: Tensor] {
        try execute(inputs, outputs: requested, keepOutputs: true, observe: observe)
    }

    /// `run`; without `keepOutputs` every value is released after its last use and nothing is
    /// returned, so that observing all layers (inspect) holds only the live values in memory.
    func execute(_ inputs: [String: Tensor], outputs requested: [String], keepOutputs: Bool,
                 observe: ((String, ONNXValue) -> Void)?) throws -> [String: Tensor] {
        var values: [String: ONNXValue] = [:]
        values.reserveCapacity(Swift.min(nodes.count, 1 << 20))
        for info in model.graph.dataInputs {
            guard let t = inputs[info.name] else { throw ONNXError.inputMismatch("missing input '\(info.name)'") }
            if let shape = info.shape {
                let ok = shape.count == t.rank && zip(shape, t.shape).allSatisfy { $0 == nil || $0! == $1 || $0! <= 0 }
                guard ok else {
                    let expected = shape.map { d in d.flatMap { $0 > 0 ? String($0) : nil } ?? "?" }.joined(separator: "x")
                    throw ONNXError.inputMismatch("input '\(info.name)' expects shape \(expected) (? is any size), got \(t.shape.map(String.init).joined(separator: "x"))")
                }
            }
            values[info.name] = .float(t)
        }
        let targets = try requested.map { try resolve($0) }
        // Mark the nodes the targets depend on.
        var needed = [Bool](repeating: false, count: nodes.count)
        var stack = targets.compactMap { producers[$0] }
        while let i = stack.popLast() {
            guard !needed[i] else { continue }
            needed[i] = true
            for input in nodes[i].inputs { if let p = producers[input] { stack.append(p) } }
        }
        let order = needed.indices.filter { needed[$0] }
        // Release intermediate values once their last consumer ran.
        var lastUse: [String: Int] = [:]
        lastUse.reserveCapacity(order.count)
        for i in order { for input in nodes[i].inputs { lastUse[input] = i } }
        let keep = keepOutputs ? Set(targets) : []
        let fused = observe == nil ? convolutionsWithReLU(order, targets: targets) : [:]
        let fusedReLUs = Set(fused.values)
        for i in order {
            let node = nodes[i]
            if fusedReLUs.contains(i) { continue }  // its ReLU ran in the convolution's epilogue
            var args: [ONNXValue?] = []
            for name in node.inputs {
                if name.isEmpty { args.append(nil); continue }
                guard let v = values[name] ?? constants[name] else {
                    throw ONNXError.missingInput(node: node.name.isEmpty ? node.opType : node.name, input: name)
                }
                args.append(v)
            }
            var outs: [ONNXValue], names = node.outputs
            if let relu = fused[i], args.count >= 2, let x = args[0], let w = args[1] {
                outs = [.float(try ONNXNetwork.convolution(node, x.tensor(node), w.tensor(node), args.count > 2 ? args[2]?.tensor(node) : nil,
                                                           relu: true, precision: convolutionPrecision))]
                names = nodes[relu].outputs
            } else {
                outs = try ONNXNetwork.evaluate(node, args, opset: opset, types: model.graph.initializerTypes,
                                                precision: convolutionPrecision)
            }
            for (name, v) in zip(names, outs) where !name.isEmpty {
                values[name] = v
                observe?(name, v)
            }
            for name in node.inputs where lastUse[name] == i && !keep.contains(name) { values[name] = nil }
        }
        var result: [String: Tensor] = [:]
        for (asked, name) in zip(requested, targets) where keepOutputs {
            guard let v = values[name] ?? constants[name] else { throw ONNXError.unknownTensor(name: asked, valid: []) }
            switch v {
            case .float(let t): result[asked] = t
            case .ints(let a, let shape): result[asked] = Tensor(shape: shape, scalars: a.map { Float($0) })
            }
        }
        return result
    }

    /// Conv nodes (index into `nodes`) whose only consumer among `order` is a Relu, and the
    /// Relu's index: they run as one convolution with the ReLU in its epilogue. A convolution
    /// whose output is asked for keeps its own output.
    func convolutionsWithReLU(_ order: [Int], targets: [String]) -> [Int: Int] {
        var uses: [String: Int] = [:], consumer: [String: Int] = [:]
        for i in order { for input in nodes[i].inputs where !input.isEmpty { uses[input, default: 0] += 1; consumer[input] = i } }
        let asked = Set(targets)
        var fused: [Int: Int] = [:]
        for i in order where nodes[i].opType == "Conv" && nodes[i].outputs.count == 1 {
            let out = nodes[i].outputs[0]
            guard !asked.contains(out), uses[out] == 1, let j = consumer[out], nodes[j].opType == "Relu",
                  nodes[j].inputs == [out], nodes[j].outputs.count == 1 else { continue }
            fused[i] = j
        }
        return fused
    }

    /// Runs with the image input and returns one tensor.
    public func callAsFunction(_ image: Tensor, output: String? = nil) throws -> Tensor {
        guard let input = imageInput else { throw ONNXError.inputMismatch("the model has no data input") }
        let name = output ?? defaultOutput
        return try run([input.name: image], outputs: [name])[name]!
    }
}
