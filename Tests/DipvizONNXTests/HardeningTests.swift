import DipvizONNX
import DipvizTensor
import Foundation
import Testing

/// Hostile and careless models: each is a typed error naming what is wrong, never a crash,
/// a hang or an unbounded allocation.
enum Hostile {
    static func path(_ name: String) -> String { Paths.corpus + "/Hostile/\(name).onnx" }

    /// A fresh folder holding a copy of the external-data model, without its weights file.
    static func externalModelFolder() throws -> (dir: URL, model: String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dipviz-hostile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let model = dir.appendingPathComponent("m.onnx").path
        try FileManager.default.copyItem(atPath: Paths.corpus + "/External/external.onnx", toPath: model)
        return (dir, model)
    }

    static let weights = Paths.corpus + "/External/external.weights"

    /// The error `body` throws, or nil.
    static func error(_ body: () throws -> Void) -> Error? {
        do { try body(); return nil } catch { return error }
    }

    /// Opens `fifo` for writing after `seconds`, so that a reader blocked on it is released
    /// (a test of code that blocks then fails instead of hanging).
    static func releaseLater(_ fifo: String, after seconds: Double) {
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: seconds)
            let fd = open(fifo, O_WRONLY | O_NONBLOCK)
            if fd >= 0 { close(fd) }
        }
    }

    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = Date()
        try body()
        return Date().timeIntervalSince(start)
    }

    /// A model of the given nodes on input x [1, 2, 4, 4].
    static func model(_ nodes: [ONNXNode], initializers: [String: ONNXValue] = [:], output: String = "y", opset: Int = 13,
                      input: [Int?] = [1, 2, 4, 4]) -> ONNXModel {
        ONNXModel(opsets: ["": opset], graph: ONNXGraph(name: "hostile", nodes: nodes, initializers: initializers,
                                                         inputs: [ONNXValueInfo(name: "x", shape: input)],
                                                         outputs: [ONNXValueInfo(name: output, shape: nil)]),
                  source: "hostile.onnx")
    }

    static func constant(_ name: String, ints: [Int]) -> ONNXNode {
        ONNXNode(name: name, opType: "Constant", inputs: [], outputs: [name], attributes: ["value": .tensor(.ints(ints, shape: [ints.count]))])
    }

    /// Builds (which folds constant nodes) and runs the model; the error, or nil.
    static func buildAndRun(_ model: ONNXModel) -> Error? {
        error {
            let net = try ONNXNetwork(model: model)
            _ = try GradMode.withoutGrad { try net.run(["x": Tensor(shape: [1, 2, 4, 4], repeating: 0.5)], outputs: [net.defaultOutput]) }
        }
    }
}

@Suite("External tensor data: regular files inside the model's folder only")
struct ExternalDataHardeningTests {
    @Test func linkLeadingOutsideTheFolderIsRefused() throws {
        let (dir, model) = try Hostile.externalModelFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        // The right bytes, outside the model's folder: only the link check can refuse them.
        let outside = dir.deletingLastPathComponent().appendingPathComponent("dipviz-outside-\(UUID().uuidString)")
        try FileManager.default.copyItem(atPath: Hostile.weights, toPath: outside.path)
        defer { try? FileManager.default.removeItem(at: outside) }
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("external.weights").path, withDestinationPath: outside.path)
        let error = Hostile.error { _ = try ONNXModel.load(path: model) }
        let e = try #require(error as? ONNXError, "loaded weights through a link leading outside: \(String(describing: error))")
        #expect(e.description.contains("outside the model's folder"), "\(e)")
        #expect(e.description.contains("'w'") || e.description.contains("'b'"), "\(e)")
    }

    @Test func linkToADeviceIsRefused() throws {
        // link.bin -> /dev/zero would give 24 bytes of zeros if followed.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dipviz-hostile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("m.onnx").path
        try FileManager.default.copyItem(atPath: Hostile.path("external_link"), toPath: model)
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("link.bin").path, withDestinationPath: "/dev/zero")
        #expect(throws: ONNXError.self) { _ = try ONNXModel.load(path: model) }
    }

    @Test func linkInsideTheFolderIsFollowed() throws {
        let (dir, model) = try Hostile.externalModelFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("data"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Hostile.weights, toPath: dir.appendingPathComponent("data/real.weights").path)
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("external.weights").path, withDestinationPath: "data/real.weights")
        let y = try ONNXNetwork(path: model)(Tensor(shape: [1, 2, 6, 6], repeating: 1))
        #expect(abs(y.data[0] - 1.1) < 1e-6 && abs(y.data[72] - 3.9) < 1e-6)
    }

    @Test func fifoIsRefusedWithoutBlocking() throws {
        let (dir, model) = try Hostile.externalModelFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fifo = dir.appendingPathComponent("external.weights").path
        #expect(mkfifo(fifo, 0o600) == 0)
        Hostile.releaseLater(fifo, after: 4)
        var error: Error? = nil
        let elapsed = Hostile.seconds { error = Hostile.error { _ = try ONNXModel.load(path: model) } }
        #expect(elapsed < 2, "blocked on a FIFO for \(elapsed) s")
        let e = try #require(error as? ONNXError)
        #expect(e.description.contains("FIFO") && e.description.contains("regular files"), "\(e)")
    }

    @Test func directoryIsRefused() throws {
        let (dir, model) = try Hostile.externalModelFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("external.weights"), withIntermediateDirectories: true)
        let error = Hostile.error { _ = try ONNXModel.load(path: model) }
        #expect((error as? ONNXError)?.description.contains("a directory") == true, "\(String(describing: error))")
    }

    /// Offsets and lengths are checked against the file and the tensor's declared size.
    @Test(arguments: [
        ("external_negative_offset", "offset '-8'"),
        ("external_offset_not_a_number", "offset 'eight'"),
        ("external_length_past_end", "which has 24 bytes"),
        ("external_offset_past_end", "which has 24 bytes"),
        ("external_length_disagrees", "need 16"),
        ("external_huge_shape", "bytes"),
    ])
    func offsetsAndLengthsAreChecked(_ name: String, _ wording: String) throws {
        let error = Hostile.error { _ = try ONNXModel.load(path: Hostile.path(name)) }
        let e = try #require(error as? ONNXError, "\(name): \(String(describing: error))")
        #expect(e.description.contains(wording), "\(name): \(e)")
        #expect(e.description.contains("\(name).onnx"), "the error names the model file: \(e)")
        #expect(!e.description.contains("\n"))
    }

    @Test func hugeExternalShapeSaysHowManyBytes() throws {
        let error = Hostile.error { _ = try ONNXModel.load(path: Hostile.path("external_huge_shape")) }
        guard case .tooLarge(let allocation)? = (error as? ONNXError)?.underlying else {
            Issue.record("expected a memory-limit error, got \(String(describing: error))"); return
        }
        #expect(allocation.bytes == (1 << 40) * (1 << 20) * 4)
    }
}

@Suite("Sizes from the file are checked before anything is allocated")
struct SizeHardeningTests {
    @Test func hugeDeclaredInputIsRefusedAtLoad() throws {
        let model = Hostile.model([ONNXNode(opType: "Relu", inputs: ["x"], outputs: ["y"])], input: [1, 3, 100_000_000, 100_000_000])
        let error = Hostile.error { _ = try ONNXNetwork(model: model) }
        guard case .tooLarge(let allocation)? = (error as? ONNXError)?.underlying else {
            Issue.record("a 1x3x1e8x1e8 input was accepted: \(String(describing: error))"); return
        }
        #expect(allocation.bytes == 3 * 100_000_000 * 100_000_000 * 4)
        #expect((error as? ONNXError)?.description.contains("120000000000000000 bytes") == true)
    }

    @Test func inputDimensionsNearIntMaxAreRefused() throws {
        let model = Hostile.model([ONNXNode(opType: "Relu", inputs: ["x"], outputs: ["y"])], input: [1, 3, Int.max / 2, 4])
        let error = Hostile.error { _ = try ONNXNetwork(model: model) }
        guard case .tooLarge(let allocation)? = (error as? ONNXError)?.underlying else {
            Issue.record("dims near Int.max were accepted: \(String(describing: error))"); return
        }
        #expect(allocation.bytes == nil)
    }

    @Test func initializerDimensionsAreChecked() throws {
        for name in ["initializer_dims_overflow", "initializer_negative_dims", "initializer_zero_then_overflow"] {
            let error = Hostile.error { _ = try ONNXNetwork(path: Hostile.path(name)) }
            #expect(error is ONNXError, "\(name): \(String(describing: error))")
        }
    }

    @Test func constantOfShapeSaysHowManyBytes() throws {
        let model = Hostile.model([Hostile.constant("s", ints: [100_000, 100_000, 100]),
                                   ONNXNode(name: "fill", opType: "ConstantOfShape", inputs: ["s"], outputs: ["y"])])
        let error = Hostile.buildAndRun(model)
        guard case .tooLarge(let allocation)? = (error as? ONNXError)?.underlying else {
            Issue.record("expected a memory-limit error, got \(String(describing: error))"); return
        }
        #expect(allocation.bytes == 100_000 * 100_000 * 100 * 4)
        #expect(allocation.what.contains("fill"))
    }

    @Test func constantOfShapeWithAnOverflowingShapeIsAnError() throws {
        // 2^76 elements: a wrapping product would see 0 and allocate with an overflowing shape.
        let model = Hostile.model([Hostile.constant("s", ints: [1 << 19, 1 << 19, 1 << 19, 1 << 19]),
                                   ONNXNode(name: "fill", opType: "ConstantOfShape", inputs: ["s"], outputs: ["y"])])
        #expect(Hostile.buildAndRun(model) is ONNXError)
    }

    @Test func reshapeToAnOverflowingShapeIsAnError() throws {
        let model = Hostile.model([Hostile.constant("s", ints: [-1, 1 << 32, 1 << 32]),
                                   ONNXNode(name: "r", opType: "Reshape", inputs: ["x", "s"], outputs: ["y"])])
        let error = Hostile.buildAndRun(model)
        #expect((error as? ONNXError)?.description.contains("Reshape node 'r'") == true, "\(String(describing: error))")
    }
}

@Suite("Numbers from the file never trap in a conversion")
struct IntegerTrapTests {
    @Test func integerArithmeticWrapsInsteadOfTrapping() throws {
        let model = Hostile.model([Hostile.constant("a", ints: [Int.max, Int.min]), Hostile.constant("b", ints: [2, -1]),
                                   ONNXNode(opType: "Mul", inputs: ["a", "b"], outputs: ["m"]),
                                   ONNXNode(opType: "Div", inputs: ["a", "b"], outputs: ["y"])], output: "y")
        let net = try ONNXNetwork(model: model)
        guard case .ints(let product, _)? = net.constants["m"], case .ints(let quotient, _)? = net.constants["y"] else {
            Issue.record("integer results were not folded"); return
        }
        #expect(product == [-2, Int.min])
        #expect(quotient == [Int.max / 2, Int.min])
    }

    @Test func castOfHugeFloatsToIntegersIsAnError() throws {
        let big = ONNXNode(opType: "Constant", inputs: [], outputs: ["f"],
                           attributes: ["value": .tensor(.float(Tensor(shape: [2], scalars: [1e30, .nan])))])
        let model = Hostile.model([big, ONNXNode(name: "toint", opType: "Cast", inputs: ["f"], outputs: ["y"], attributes: ["to": .int(7)])])
        let error = Hostile.buildAndRun(model)
        #expect((error as? ONNXError)?.description.contains("'toint'") == true, "\(String(describing: error))")
    }

    @Test func sumWithoutInputsIsAnError() throws {
        let model = Hostile.model([ONNXNode(name: "s", opType: "Sum", inputs: [], outputs: ["y"])])
        #expect(Hostile.buildAndRun(model) is ONNXError)
    }

    @Test func hugeLRNSizeIsAnError() throws {
        let model = Hostile.model([ONNXNode(name: "n", opType: "LRN", inputs: ["x"], outputs: ["y"], attributes: ["size": .int(Int.max)])])
        let error = Hostile.buildAndRun(model)
        #expect((error as? ONNXError)?.description.contains("LRN node 'n'") == true, "\(String(describing: error))")
    }

    @Test func padAxesOutOfRangeAreAnError() throws {
        let model = Hostile.model([Hostile.constant("p", ints: [1, 1]), Hostile.constant("axes", ints: [7]),
                                   ONNXNode(name: "pad", opType: "Pad", inputs: ["x", "p", "", "axes"], outputs: ["y"])], opset: 18)
        #expect(Hostile.buildAndRun(model) is ONNXError)
    }

    @Test func emptyClipBoundIsAnError() throws {
        let empty = ONNXNode(opType: "Constant", inputs: [], outputs: ["lo"], attributes: ["value": .tensor(.float(Tensor(zeros: [0])))])
        let model = Hostile.model([empty, ONNXNode(name: "clip", opType: "Clip", inputs: ["x", "lo"], outputs: ["y"])])
        #expect(Hostile.buildAndRun(model) is ONNXError)
    }

    @Test func hugeAndNegativeAttributesAreErrors() throws {
        let cases: [(String, [String: ONNXAttribute])] = [
            ("MaxPool", ["kernel_shape": .ints([Int.max, Int.max])]),
            ("MaxPool", ["kernel_shape": .ints([2, 2]), "strides": .ints([Int.max, 1])]),
            ("MaxPool", ["kernel_shape": .ints([2, 2]), "pads": .ints([Int.min, 0, 0, 0])]),
            ("MaxPool", ["kernel_shape": .ints([2, 2]), "dilations": .ints([Int.max, 1])]),
            ("Softmax", ["axis": .int(Int.min)]),
            ("Flatten", ["axis": .int(Int.max)]),
            ("Transpose", ["perm": .ints([Int.max, 0, 1, 2])]),
            ("Gather", ["axis": .int(Int.min)]),
        ]
        for (op, attributes) in cases {
            var inputs = ["x"]
            var nodes: [ONNXNode] = []
            if op == "Gather" { nodes.append(Hostile.constant("i", ints: [0])); inputs.append("i") }
            nodes.append(ONNXNode(name: "n", opType: op, inputs: inputs, outputs: ["y"], attributes: attributes))
            #expect(Hostile.buildAndRun(Hostile.model(nodes)) is ONNXError, "\(op) \(attributes)")
        }
    }

    @Test func tensorAttributeWithoutATensorIsAnError() throws {
        let error = Hostile.error { _ = try ONNXModel.load(path: Hostile.path("tensor_attribute_without_tensor")) }
        #expect(error is ONNXError, "\(String(describing: error))")
    }
}

@Suite("Models that disagree with themselves")
struct MisuseTests {
    @Test func kernelShapeThatDisagreesWithTheWeightsNamesTheNode() throws {
        var b = ONNXGraphBuilder(seed: 1)
        b.conv(3, kernel: 3, pad: 1)
        var model = b.model(name: "mismatch", inputShape: [1, 3, 8, 8])
        model.graph.nodes[0].name = "first_conv"
        model.graph.nodes[0].attributes["kernel_shape"] = .ints([5, 5])
        let error = Hostile.error { _ = try ONNXNetwork(model: model)(Tensor(zeros: [1, 3, 8, 8])) }
        let text = (error as? ONNXError)?.description ?? "no error"
        #expect(text.contains("first_conv") && text.contains("kernel_shape [5, 5]") && text.contains("3x3"), "\(text)")
    }

    @Test func featureExtractorIsNotAClassifier() throws {
        var b = ONNXGraphBuilder(seed: 2)
        b.conv(4, kernel: 3, pad: 1); b.relu()
        let net = try ONNXNetwork(model: b.model(name: "features.onnx", inputShape: [1, 3, 6, 6]))
        let error = Hostile.error { _ = try net.classify(Tensor(zeros: [1, 3, 6, 6]), top: 3) }
        guard case .notAClassifier(let model, let detail)? = error as? ONNXError else {
            Issue.record("classified a feature map: \(String(describing: error))"); return
        }
        #expect(model == "features.onnx")
        #expect(detail.contains("1x4x6x6"))
    }

    @Test func classVectorsAreStillClassified() throws {
        // [1, classes] and [1, classes, 1, 1] (a global pool's output) are class vectors.
        var b = ONNXGraphBuilder(seed: 2)
        b.conv(5, kernel: 3, pad: 1)
        var model = b.model(name: "pooled", inputShape: [1, 3, 6, 6])
        model.graph.nodes.append(ONNXNode(opType: "GlobalAveragePool", inputs: [b.current], outputs: ["pooled"]))
        model.graph.outputs = [ONNXValueInfo(name: "pooled", shape: nil)]
        let top = try ONNXNetwork(model: model).classify(Tensor.uniform([1, 3, 6, 6], seed: 1), top: 5)
        #expect(top.count == 5 && abs(top.map(\.probability).reduce(0, +) - 1) < 1e-5)
    }
}

@Suite("Loading and inspecting take time linear in the graph size")
struct ScaleTests {
    /// A chain of `count` nodes on a 1x3x4x4 input, listed in file order or reversed.
    static func chain(_ count: Int, reversed: Bool = false) -> ONNXModel {
        var nodes: [ONNXNode] = []
        nodes.reserveCapacity(count)
        var previous = "x"
        for i in 0..<count {
            let out = "t\(i)"
            nodes.append(i % 2 == 0 ? ONNXNode(name: "n\(i)", opType: "Relu", inputs: [previous], outputs: [out])
                                    : ONNXNode(name: "n\(i)", opType: "Add", inputs: [previous, "one"], outputs: [out]))
            previous = out
        }
        return ONNXModel(graph: ONNXGraph(name: "chain", nodes: reversed ? nodes.reversed() : nodes,
                                          initializers: ["one": .float(Tensor(shape: [1], scalars: [1]))],
                                          inputs: [ONNXValueInfo(name: "x", shape: [1, 3, 4, 4])],
                                          outputs: [ONNXValueInfo(name: previous, shape: nil)]))
    }

    /// Decoding, building and summarising, the work of `dipviz inspect` (best of two).
    static func inspectSeconds(_ count: Int, reversed: Bool) throws -> Double {
        let data = try chain(count, reversed: reversed).encode()
        var best = Double.infinity
        for _ in 0..<2 {
            best = min(best, try Hostile.seconds {
                let net = try ONNXNetwork(model: ONNXModel.decode(data))
                let rows = try net.summarize(height: 4, width: 4)
                #expect(rows.count == count)
            })
        }
        return best
    }

    @Test(arguments: [false, true])
    func inspectIsLinear(reversed: Bool) throws {
        let small = try ScaleTests.inspectSeconds(1_000, reversed: reversed)
        let large = try ScaleTests.inspectSeconds(8_000, reversed: reversed)
        // Eight times the nodes: about 8x when linear, 64x when quadratic; the margin absorbs
        // other tests running at the same time.
        #expect(large / small < 24, "1,000 nodes: \(small) s, 8,000 nodes: \(large) s")
        #expect(large < 20, "8,000 nodes took \(large) s")
    }

    /// The order repeated passes over the node list give (the order before the linear sort).
    static func passOrder(_ nodes: [ONNXNode], available: Set<String>) -> [String] {
        var produced = available, pending = nodes, order: [String] = []
        while !pending.isEmpty {
            var next: [ONNXNode] = []
            for node in pending {
                if node.inputs.allSatisfy({ produced.contains($0) }) {
                    order.append(node.name); node.outputs.forEach { produced.insert($0) }
                } else { next.append(node) }
            }
            if next.count == pending.count { return order }
            pending = next
        }
        return order
    }

    @Test func nodeOrderIsThatOfRepeatedPasses() throws {
        // Random DAGs of Add/Relu nodes in shuffled file order.
        var rng = SeededGenerator(seed: 11)
        for _ in 0..<30 {
            var nodes: [ONNXNode] = []
            var tensors = ["x"]
            for i in 0..<40 {
                let a = tensors[Int(rng.next() % UInt64(tensors.count))], b = tensors[Int(rng.next() % UInt64(tensors.count))]
                nodes.append(rng.next() % 2 == 0 ? ONNXNode(name: "n\(i)", opType: "Relu", inputs: [a], outputs: ["t\(i)"])
                                                 : ONNXNode(name: "n\(i)", opType: "Add", inputs: [a, b], outputs: ["t\(i)"]))
                tensors.append("t\(i)")
            }
            for i in stride(from: nodes.count - 1, to: 0, by: -1) { nodes.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            let model = ONNXModel(graph: ONNXGraph(name: "dag", nodes: nodes, inputs: [ONNXValueInfo(name: "x", shape: [1, 1, 2, 2])],
                                                   outputs: [ONNXValueInfo(name: "t39", shape: nil)]))
            let net = try ONNXNetwork(model: model)
            #expect(net.nodes.map(\.name) == ScaleTests.passOrder(nodes, available: ["x", ""]))
        }
    }

    @Test func missingInputIsNamed() throws {
        var model = ScaleTests.chain(10)
        model.graph.nodes[3].inputs[0] = "nowhere"
        let error = Hostile.error { _ = try ONNXNetwork(model: model) }
        #expect((error as? ONNXError)?.underlying == .missingInput(node: model.graph.nodes[3].name, input: "nowhere"))
    }
}

@Suite("User-caused errors are one or two lines saying what is valid")
struct ErrorWordingTests {
    @Test func badPreprocessingMetadataIsExplained() throws {
        var b = ONNXGraphBuilder(seed: 1)
        b.relu()
        let cases = [
            (#"{"channel_order": "RGB", "scale": 1, "std": [1, 1, 1]}"#, "lacks 'mean'"),
            (#"{"channel_order": "RGB", "scale": 1, "mean": "zero", "std": [1, 1, 1]}"#, "'mean'"),
            (#"{"channel_order": "RGB", "#, "not valid JSON"),
        ]
        for (json, wording) in cases {
            let model = b.model(name: "meta.onnx", inputShape: [1, 3, 4, 4], metadata: [Preprocessing.metadataKey: json])
            let error = Hostile.error { _ = try Preprocessing.forModel(model) }
            let text = (error as? ONNXError)?.description ?? "no error"
            #expect(text.contains(wording) && text.contains("valid:") && text.contains("meta.onnx"), "\(text)")
            #expect(!text.contains("DecodingError") && !text.contains("codingPath") && !text.contains("\n"), "\(text)")
        }
    }

    @Test func hugeInputSizeInMetadataIsRefused() throws {
        var b = ONNXGraphBuilder(seed: 1)
        b.relu()
        let json = #"{"channel_order": "RGB", "scale": 1, "mean": [0, 0, 0], "std": [1, 1, 1], "input_size": [4000000000, 4000000000]}"#
        let model = b.model(name: "meta.onnx", inputShape: [1, 3, nil, nil], metadata: [Preprocessing.metadataKey: json])
        let error = Hostile.error { _ = try Preprocessing.forModel(model) }
        guard case .tooLarge? = (error as? ONNXError)?.underlying else { Issue.record("\(String(describing: error))"); return }
    }

    @Test func modelThatIsADirectoryOrAFIFOIsRefusedAtOnce() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dipviz-wording-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("folder.onnx"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let folderError = Hostile.error { _ = try ONNXModel.load(path: dir.appendingPathComponent("folder.onnx").path) }
        #expect((folderError as? ONNXError)?.description.contains("a directory") == true, "\(String(describing: folderError))")
        let fifo = dir.appendingPathComponent("pipe.onnx").path
        #expect(mkfifo(fifo, 0o600) == 0)
        Hostile.releaseLater(fifo, after: 4)
        var error: Error? = nil
        let elapsed = Hostile.seconds { error = Hostile.error { _ = try ONNXModel.load(path: fifo) } }
        #expect(elapsed < 2, "blocked on a FIFO for \(elapsed) s")
        #expect((error as? ONNXError)?.description.contains("a FIFO") == true, "\(String(describing: error))")
    }

    @Test func nodeErrorsNameTheFileTheNodeAndTheOp() throws {
        let error = Hostile.error { _ = try ONNXNetwork(path: Hostile.path("initializer_zero_then_overflow")) }
        let text = (error as? ONNXError)?.description ?? "no error: \(String(describing: error))"
        #expect(text.contains("initializer_zero_then_overflow.onnx") && text.contains("'w'"), "\(text)")
        #expect(!text.contains("\n"))
    }
}
