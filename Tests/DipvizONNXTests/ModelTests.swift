import DipvizImage
import DipvizONNX
import DipvizTensor
import Foundation
import Testing

enum Paths {
    /// The package root, found from this file's location.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func repo(_ path: String) -> String { root.appendingPathComponent(path).path }
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Corpus").path
    static let squeezenet = repo("models/squeezenet1.0-dc.onnx")
    static let synsets = repo("models/imagenet-synsets.txt")
}

func relativeError(_ a: Tensor, _ b: Tensor) -> Float {
    var worst: Float = 0
    let scale = max(b.scalars.map { abs($0) }.max() ?? 1, 1e-6)
    for i in 0..<min(a.count, b.count) { worst = max(worst, abs(a.data[i] - b.data[i]) / scale) }
    return worst
}

@Suite("Converted default models match their source weights")
struct ConvertedModelTests {
    static let names = ["alexnet-features", "vgg16-features", "vgg19-features"]
    static var prepared: Bool { names.allSatisfy { TestData.exists(Paths.repo("models/\($0).onnx")) } }

    @Test(.enabled(if: prepared, "models/prepare has not been run (the models are built, not committed)"), arguments: names)
    func matchesNumpyReference(_ name: String) throws {
        let model = Paths.repo("models/\(name).onnx")
        let net = try ONNXNetwork(path: model)
        let x = try Tensor.readNPY(path: Paths.repo("models/\(name).check-input.npy"))
        let expected = try Tensor.readNPY(path: Paths.repo("models/\(name).check-output.npy"))
        let y = try GradMode.withoutGrad { try net(x) }
        #expect(y.shape == expected.shape)
        #expect(relativeError(y, expected) < 1e-4)
        let preprocessing = try Preprocessing.forModel(net.model)
        #expect(preprocessing.origin == "metadata")
    }

    @Test(.enabled(if: prepared, "models/prepare has not been run"))
    func friendlyNames() throws {
        let alex = Paths.repo("models/alexnet-features.onnx"), vgg = Paths.repo("models/vgg16-features.onnx")
        let a = try ONNXNetwork(path: alex)
        #expect(a.layers.map(\.name).filter { $0.hasPrefix("pool") } == ["pool1", "pool2", "pool5"])
        #expect(try a.resolve("conv5") == "conv5")
        let v = try ONNXNetwork(path: vgg)
        #expect(try v.resolve("conv5_3") == v.resolve("conv13"))
        #expect(try v.resolve("relu4_2") == v.resolve("relu9"))
        #expect(throws: ONNXError.self) { try v.resolve("conv6_1") }
        do { _ = try v.resolve("nope") } catch let e as ONNXError { #expect(e.description.contains("conv1_1")) }
    }
}

@Suite("Classification with the reference SqueezeNet")
struct SqueezeNetTests {
    static var available: Bool { TestData.exists(Paths.squeezenet) && TestData.exists(Paths.repo("samples/chelsea.png")) }

    @Test(.enabled(if: SqueezeNetTests.available, "samples/ missing (run make prepare)"),
          arguments: [("chelsea", "Egyptian cat", 285), ("coffee", "espresso", 967)])
    func classifies(_ sample: String, _ label: String, _ index: Int) throws {
        let net = try ONNXNetwork(path: Paths.squeezenet)
        let p = try Preprocessing.forModel(net.model)
        #expect(p == .caffe)
        let image = try PNG.read(path: Paths.repo("samples/\(sample).png"))
        let labels = try ClassLabels.load(path: Paths.synsets)
        let top = try net.classify(net.prepare(image, preprocessing: p), top: 1, labels: labels)
        #expect(top.first?.index == index)
        #expect(top.first?.label == label)
    }
}

@Suite("Gradients through imported graphs")
struct ImportedGradientTests {
    /// The gradient of sum(output * r) with respect to the input, against central differences.
    @Test(arguments: ["test_conv_with_strides_padding", "test_maxpool_2d_pads", "test_averagepool_2d_pads", "test_lrn",
                      "test_gemm_all_attributes", "test_batchnorm_example", "test_softmax_axis_1", "test_concat_2d_axis_0",
                      "test_reflect_pad", "test_clip", "test_transpose_all_permutations_1", "test_flatten_axis1",
                      "test_reshape_reordered_all_dims", "test_leakyrelu", "test_globalaveragepool", "test_matmul_3d"])
    func finiteDifferences(_ name: String) throws {
        let dir = TestData.nodeDirectory + "/" + name
        try #require(TestData.exists(dir), "ONNX node tests not installed")
        let (model, inputs, _) = try TestData.load(dir)
        let net = try ONNXNetwork(model: model)
        let names = model.graph.dataInputs.map(\.name)
        var feed: [String: Tensor] = [:]
        for (i, (_, v)) in inputs.enumerated() { feed[names[i]] = v.asTensor.detached() }
        let x = feed[names[0]]!
        x.requiresGrad = true
        let output = model.graph.outputs[0].name
        let y = try net.run(feed, outputs: [output])[output]!
        let r = Tensor.uniform(y.shape, low: -1, high: 1, seed: 5)
        y.backward(seed: r)
        let grad = try #require(x.grad)
        func loss() throws -> Double {
            let o = try GradMode.withoutGrad { try net.run(feed, outputs: [output])[output]! }
            return zip(o.scalars, r.scalars).reduce(0) { $0 + Double($1.0) * Double($1.1) }
        }
        var worst: Float = 0, scale: Float = 1
        var g = SeededGenerator(seed: 1)
        for _ in 0..<min(16, x.count) {
            let j = Int(g.next() % UInt64(x.count))
            let saved = x.data[j], eps: Float = 1e-3
            x.data[j] = saved + eps; let up = try loss()
            x.data[j] = saved - eps; let down = try loss()
            x.data[j] = saved
            let numeric = Float((up - down) / Double(2 * eps))
            worst = max(worst, abs(numeric - grad.data[j])); scale = max(scale, abs(numeric))
        }
        #expect(worst < 1e-2 * scale, "\(name): gradient error \(worst)")
    }
}
