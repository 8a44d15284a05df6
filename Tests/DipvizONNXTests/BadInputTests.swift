import DipvizImage
import DipvizONNX
import DipvizTensor
import Foundation
import Testing

@Suite("Bad models are typed errors, never crashes")
struct BadInputTests {
    static func corpus() throws -> [(String, Data)] {
        try FileManager.default.contentsOfDirectory(atPath: Paths.corpus).filter { $0.hasSuffix(".onnx") }.sorted().map {
            ($0, try Data(contentsOf: URL(fileURLWithPath: Paths.corpus + "/" + $0)))
        }
    }

    /// Loads, builds and runs whatever decodes; only ONNXError may come out.
    static func exercise(_ data: Data) -> Error? {
        do {
            let model = try ONNXModel.decode(data)
            let net = try ONNXNetwork(model: model)
            if let input = net.imageInput {
                let shape = (input.shape ?? [1, 2, 6, 6]).map { max(1, min($0 ?? 1, 16)) }
                _ = try GradMode.withoutGrad { try net(Tensor(shape: shape, repeating: 0.5)) }
            }
            return nil
        } catch { return error }
    }

    @Test func corpusModelsRun() throws {
        let models = try BadInputTests.corpus()
        #expect(models.count >= 3)
        for (name, data) in models { #expect(BadInputTests.exercise(data) == nil, "\(name)") }
    }

    @Test func garbageIsRejected() throws {
        var rng = SeededGenerator(seed: 3)
        let random = Data((0..<4096).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        #expect(throws: ONNXError.self) { try ONNXModel.decode(random) }
        #expect(throws: ONNXError.self) { try ONNXModel.decode(Data()) }
        let png = try PNG.encode(RGBImage(width: 2, height: 2, pixels: [UInt8](repeating: 7, count: 12)))
        #expect(throws: ONNXError.self) { try ONNXModel.decode(png) }
        for (_, data) in try BadInputTests.corpus() {
            for cut in [1, data.count / 3, data.count / 2, data.count - 1] {
                let error = BadInputTests.exercise(data.prefix(cut))
                #expect(error == nil || error is ONNXError, "truncated at \(cut): \(String(describing: error))")
            }
        }
        #expect(throws: ONNXError.self) { try ONNXModel.load(path: "/nonexistent/model.onnx") }
    }

    @Test func externalDataIsReadFromBesideTheModel() throws {
        let net = try ONNXNetwork(path: Paths.corpus + "/External/external.onnx")
        let y = try net(Tensor(shape: [1, 2, 6, 6], repeating: 1))
        // y[c] = w[c,0] + w[c,1] + b[c] with w = [0, .1, .2, .3, .4, .5], b = [1, 2, 3]
        #expect(abs(y.data[0] - 1.1) < 1e-6 && abs(y.data[36] - 2.5) < 1e-6 && abs(y.data[72] - 3.9) < 1e-6)
        // The same model without its weights file is a clear error.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dipviz-external-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(atPath: Paths.corpus + "/External/external.onnx", toPath: dir.appendingPathComponent("m.onnx").path)
        do { _ = try ONNXModel.load(path: dir.appendingPathComponent("m.onnx").path); Issue.record("loaded without weights") }
        catch let e as ONNXError { #expect(e.description.contains("external data")) }
    }

    @Test func encodeDecodeRoundTrip() throws {
        let model = try ONNXModel.decode(try Data(contentsOf: URL(fileURLWithPath: Paths.corpus + "/flatten_gemm_softmax.onnx")))
        let again = try ONNXModel.decode(try model.encode())
        let x = Tensor.uniform([1, 2, 6, 6], seed: 3)
        let a = try ONNXNetwork(model: model)(x), b = try ONNXNetwork(model: again)(x)
        #expect(a.scalars == b.scalars)
        #expect(again.graph.nodes.map(\.opType) == model.graph.nodes.map(\.opType))
    }

    @Test func missingInitializerNamesTheNode() throws {
        var model = try ONNXModel.decode(try Data(contentsOf: URL(fileURLWithPath: Paths.corpus + "/conv_relu_pool.onnx")))
        model.graph.initializers["w"] = nil
        do { _ = try ONNXNetwork(model: model); Issue.record("accepted a model without its weight") } catch let e as ONNXError {
            #expect(e.description.contains("'w'"))
        }
    }

    @Test func wrongInputShapeIsReported() throws {
        let net = try ONNXNetwork(path: Paths.corpus + "/conv_relu_pool.onnx")
        #expect(throws: ONNXError.self) { try net(Tensor(zeros: [1, 3, 6, 6])) }
    }

    @Test func unsupportedOperatorNamesOpNodeAndOpset() throws {
        var model = try ONNXModel.decode(try Data(contentsOf: URL(fileURLWithPath: Paths.corpus + "/conv_relu_pool.onnx")))
        model.graph.nodes[1].opType = "Erf"
        model.graph.nodes[1].name = "strange"
        do { _ = try ONNXNetwork(model: model); Issue.record("accepted Erf") } catch let e as ONNXError {
            #expect(e == .unsupportedOperator(op: "Erf", node: "strange", domain: "", opset: 13))
            #expect(e.description.contains("Erf") && e.description.contains("strange") && e.description.contains("opset 13"))
        }
    }

    /// Seeded mutations of the corpus: byte flips, insertions, deletions and truncation.
    @Test func mutationFuzz() throws {
        var rng = SeededGenerator(seed: 20261122)
        let corpus = try BadInputTests.corpus()
        var decoded = 0
        for round in 0..<600 {
            var bytes = [UInt8](corpus[round % corpus.count].1)
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let at = Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 4 {
                case 0: bytes[at] ^= UInt8(1 << (rng.next() % 8))
                case 1: bytes[at] = UInt8(truncatingIfNeeded: rng.next())
                case 2: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: at)
                default: bytes.removeSubrange(at..<min(bytes.count, at + 1 + Int(rng.next() % 8)))
                }
                if bytes.isEmpty { bytes = [0] }
            }
            let error = BadInputTests.exercise(Data(bytes))
            if error == nil { decoded += 1 }
            #expect(error == nil || error is ONNXError, "round \(round): \(String(describing: error))")
        }
        #expect(decoded > 0)
    }
}
