@testable import DipvizVisualize
import DipvizImage
import DipvizONNX
import DipvizPrior
import DipvizTensor
import Foundation
import Testing

/// A tiny classifier: conv 3->4, ReLU, 2x2 max-pool, flatten, linear -> 5, softmax.
func tinyProbe(size: Int = 8) throws -> Probe {
    var b = ONNXGraphBuilder(seed: 11)
    b.conv(4, kernel: 3, pad: 1); b.relu(); b.maxPool(2, stride: 2)
    b.flatten(features: 4 * (size / 2) * (size / 2)); b.linear(5); b.softmax()
    let net = try ONNXNetwork(model: b.model(name: "tiny", inputShape: [1, 3, nil, nil]))
    return Probe(network: net, preprocessing: .torchvision)
}

/// A small skip generator for tests.
var smallGenerator: PriorConfiguration {
    var c = SkipConfiguration()
    c.inputChannels = 4
    c.channelsDown = [4, 8]; c.channelsUp = [4, 8]; c.channelsSkip = [2, 2]; c.kernelsDown = [3, 3]; c.kernelsUp = [3, 3]
    return PriorConfiguration(architecture: .skip(c), inputDepth: 4, netSize: nil)
}

/// Central differences of a scalar function of `x` at a few coordinates.
func checkGradient(_ name: String, _ x: Tensor, tolerance: Float = 2e-2, _ f: (Tensor) throws -> Tensor) throws {
    x.requiresGrad = true
    x.grad = nil
    try f(x).backward()
    let grad = try #require(x.grad, "\(name): no gradient")
    var rng = SeededGenerator(seed: 2)
    var worst: Float = 0, scale: Float = 1e-3
    for _ in 0..<12 {
        let j = Int(rng.next() % UInt64(x.count))
        let saved = x.data[j], eps: Float = 1e-3
        x.data[j] = saved + eps
        let up = try GradMode.withoutGrad { try f(x).item }
        x.data[j] = saved - eps
        let down = try GradMode.withoutGrad { try f(x).item }
        x.data[j] = saved
        let numeric = (up - down) / (2 * eps)
        worst = max(worst, abs(numeric - grad.data[j])); scale = max(scale, abs(numeric))
    }
    #expect(worst <= tolerance * max(scale, 1e-2) + 1e-4, "\(name): gradient error \(worst), scale \(scale)")
}

@Suite("Objectives: finite-difference gradients")
struct ObjectiveGradientTests {
    @Test func inversionDataTerms() throws {
        let probe = try tinyProbe()
        let x0 = Tensor.uniform([1, 3, 8, 8], seed: 1)
        let targets = try GradMode.withoutGrad { try probe.features(x0, layers: ["relu1", "fc6"]) }
        for prior in [PriorSpec(kind: .dip, generator: smallGenerator, learningRate: 1e-3), PriorSpec(kind: .tv, tv: TVSettings())] {
            try checkGradient("inversion \(prior.kind)", Tensor.uniform([1, 3, 8, 8], seed: 2)) { x in
                Inversion.dataTerm(try probe.features(x, layers: ["relu1", "fc6"]), targets, prior: prior)
            }
        }
    }

    @Test(arguments: [ActivationTarget.classScore(index: 2, score: .logit), .classScore(index: 3, score: .probability),
                      .classScore(index: 1, score: .logProbability),
                      .channel(unit: 1, window: 1), .channel(unit: 2, window: 0.5), .neuron(unit: 3, y: nil, x: nil),
                      .neuron(unit: 0, y: 1, x: 6)])
    func activations(_ target: ActivationTarget) throws {
        let probe = try tinyProbe()
        let (tensor, measure) = try Maximization.activation(probe: probe, layer: "conv1", target: target)
        try checkGradient("\(target)", Tensor.uniform([1, 3, 8, 8], seed: 3)) { x in
            try measure(try probe.features(x, layers: [tensor])[0])
        }
    }

    @Test func pixelRegularizers() throws {
        var tv = TVSettings()
        tv.range = 2  // small units keep the alpha-norm term well scaled for differences
        let p = PixelParametrization(height: 6, width: 5, settings: tv, regularized: true, jitter: 0, seed: 1, iterations: 10)
        try checkGradient("alpha + TV", p.u) { _ in p.regularizer(iteration: 0)! }
    }

    /// The TV schedule: the step decays from `step` to zero along a half cosine, jitter stops halfway.
    @Test func pixelSchedule() {
        var tv = TVSettings()
        tv.step = 3
        let p = PixelParametrization(height: 6, width: 6, settings: tv, regularized: true, jitter: 1, seed: 1, iterations: 100)
        #expect(p.stepSize(iteration: 0) == 3)
        #expect(abs(p.stepSize(iteration: 50) - 1.5) < 1e-5)
        #expect(p.stepSize(iteration: 99) < 0.01 && p.stepSize(iteration: 75) < p.stepSize(iteration: 25))
        #expect(p.jitterUntil == 50)
        // After jitter stops, the image the objective sees is the clean one.
        #expect(p.image(iteration: 60).scalars == p.cleanImage().scalars)
    }

    @Test func badTargetsAreTypedErrors() throws {
        let probe = try tinyProbe()
        let x = Tensor.uniform([1, 3, 8, 8], seed: 1)
        for target in [ActivationTarget.channel(unit: 9, window: 1), .neuron(unit: 0, y: 20, x: 1), .classScore(index: 7, score: .logit)] {
            let (tensor, measure) = try Maximization.activation(probe: probe, layer: "conv1", target: target)
            #expect(throws: VisualizeError.self) { _ = try measure(try probe.features(x, layers: [tensor])[0]) }
        }
    }
}

/// A tiny classifier and photo written to a temporary folder, for runs (which pin files by hash).
struct RunFixture {
    let dir: String, model: String, photo: String

    init(size: Int = 16) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("dipviz-run-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var b = ONNXGraphBuilder(seed: 11)
        b.conv(4, kernel: 3, pad: 1); b.relu(); b.maxPool(2, stride: 2)
        b.flatten(features: 4 * (size / 2) * (size / 2)); b.linear(5); b.softmax()
        model = dir + "/tiny.onnx"
        try b.model(name: "tiny", inputShape: [1, 3, size, size]).encode().write(to: URL(fileURLWithPath: model))
        var px = [UInt8]()
        for y in 0..<size { for x in 0..<size { px += [UInt8(x * 13 % 256), UInt8(y * 11 % 256), UInt8((x * y) % 256)] } }
        photo = dir + "/photo.png"
        try PNG.write(RGBImage(width: size, height: size, pixels: px), path: photo)
    }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }

    func spec(_ prior: PriorKind, inversion: Bool = true, iterations: Int, configure: (inout RunRequest) -> Void = { _ in }) throws -> (RunSpec, ONNXNetwork) {
        let net = try ONNXNetwork(path: model)
        let task: RunRequest.Task = inversion ? .inversion(image: photo, layers: ["relu1"])
            : .maximization(layer: "conv1", targets: [.channel(unit: 1, window: 1)], goal: .maximize, jitter: 0, reference: nil)
        var r = RunRequest(model: model, task: task, prior: prior)
        r.iterations = iterations
        r.seed = 3
        configure(&r)
        var spec = try RunSpec.resolve(r, network: net)
        if prior == .dip { spec.prior.generator = smallGenerator; spec.prior.learningRate = 0.01 }
        return (spec, net)
    }
}

@Suite("Short runs")
struct RunTests {
    @Test(arguments: [PriorKind.dip, .tv, .pixel])
    func inversionLowersTheFeatureError(_ prior: PriorKind) throws {
        let f = try RunFixture()
        defer { f.remove() }
        let (spec, net) = try f.spec(prior, iterations: prior == .dip ? 40 : 60)
        let outcome = try Runner.run(spec, network: net, folder: try ResultFolder(path: f.dir + "/out"))
        let m = try #require(outcome.metrics.result("image"))
        let start = try #require(m.featureErrorStart), end = try #require(m.featureError)
        #expect(end < start * 0.7, "\(prior): \(start) -> \(end)")
        #expect(m.ending == .finished && m.iterations == spec.iterations)
        #expect(m.top1Match != nil)
        let curve = try ResultJSON.read(CurveFile.self, path: f.dir + "/out/curve.json", what: "curve")
        #expect(curve.curves["image"]?.isEmpty == false)
        #expect(try PNG.read(path: f.dir + "/out/image.png").width == 16)
    }

    @Test(arguments: [PriorKind.dip, .tv])
    func maximizationRaisesTheActivation(_ prior: PriorKind) throws {
        let f = try RunFixture()
        defer { f.remove() }
        let (spec, net) = try f.spec(prior, inversion: false, iterations: 30)
        let m = try #require(try Runner.run(spec, network: net, folder: try ResultFolder(path: f.dir + "/out")).metrics.result("image"))
        #expect(try #require(m.activation) > #require(m.activationStart), "\(prior)")
    }

    /// An interrupted run resumed from its checkpoint ends where an uninterrupted one does.
    @Test func resumeContinuesExactly() throws {
        let f = try RunFixture()
        defer { f.remove() }
        var (spec, net) = try f.spec(.dip, iterations: 8)
        spec.prior.generator?.regNoiseStd = 0.03
        spec.snapshotEvery = 2
        let reference = try Runner.run(spec, network: net, folder: try ResultFolder(path: f.dir + "/plain"))
        #expect(reference.metrics.ending == .finished)
        var calls = 0
        var stopping = RunControl()
        stopping.shouldStop = { calls += 1; return calls > 5 }
        // (The outcome holds the folder's lock: keep only its metrics.)
        let first = try Runner.run(spec, network: net, folder: try ResultFolder(path: f.dir + "/stopped"), control: stopping).metrics
        #expect(first.ending == .interrupted && first.results[0].iterations == 5)
        #expect(FileManager.default.fileExists(atPath: f.dir + "/stopped/checkpoints/image.ckpt"))
        let resumed = try Runner.resume(directory: f.dir + "/stopped") { path, _ in try ONNXNetwork(path: path) }
        #expect(resumed.metrics.ending == .finished && resumed.metrics.results[0].iterations == 8)
        #expect(try Data(contentsOf: URL(fileURLWithPath: f.dir + "/plain/image.png"))
                == Data(contentsOf: URL(fileURLWithPath: f.dir + "/stopped/image.png")))
        #expect(!FileManager.default.fileExists(atPath: f.dir + "/stopped/checkpoints/image.ckpt"), "a finished result keeps no checkpoint")
    }

    @Test func divergenceStopsAndKeepsTheLastGoodImage() throws {
        let p = PixelParametrization(height: 8, width: 8, settings: TVSettings(), regularized: false, jitter: 0, seed: 1, iterations: 20)
        var control = RunControl()
        control.snapshotEvery = 2
        var t = 0
        let r = try optimize(p, iterations: 20, control: control) { x in
            t += 1
            return (t > 6 ? x.sum().scaled(by: .nan) : x.sum(), [:])
        }
        #expect(r.ending == .diverged)
        #expect(r.message?.contains("nan") == true)
        #expect(r.image.scalars.allSatisfy { $0.isFinite })
    }

    /// A diverged run is recorded as such and refuses to continue.
    @Test func divergedRunsAreMarkedAndNotResumed() throws {
        let f = try RunFixture()
        defer { f.remove() }
        var (spec, net) = try f.spec(.dip, iterations: 6)
        spec.prior.learningRate = 1e30
        spec.snapshotEvery = 2
        let ending = try Runner.run(spec, network: net, folder: try ResultFolder(path: f.dir + "/out")).metrics.ending
        #expect(ending == .diverged)
        let saved = try ResultJSON.read(RunMetrics.self, path: f.dir + "/out/metrics.json", what: "metrics")
        #expect(saved.ending == .diverged && saved.message != nil)
        #expect(try PNG.read(path: f.dir + "/out/image.png").width == 16, "the last good image is kept")
        #expect(throws: RunSpecError.self) { _ = try Runner.resume(directory: f.dir + "/out") { path, _ in try ONNXNetwork(path: path) } }
    }

    /// Checkpoints of another configuration, damaged or hostile ones are errors, not crashes.
    @Test func checkpointsAreChecked() throws {
        let f = try RunFixture()
        defer { f.remove() }
        let (spec, net) = try f.spec(.tv, iterations: 30)
        var stopping = RunControl()
        var calls = 0
        stopping.shouldStop = { calls += 1; return calls > 4 }
        _ = try Runner.run(spec, network: net, folder: try ResultFolder(path: f.dir + "/out"), control: stopping)
        let path = f.dir + "/out/checkpoints/image.ckpt"
        let good = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(try Checkpoint.load(path: path, specKey: spec.key, iterations: 30).iteration == 4)
        #expect(throws: VisualizeError.self) { _ = try Checkpoint.load(path: path, specKey: "other", iterations: 30) }
        #expect(throws: VisualizeError.self) { _ = try Checkpoint.load(path: path, specKey: spec.key, iterations: 3) }
        var rng = SeededGenerator(seed: 7)
        for trial in 0..<40 {
            var bad = good
            switch trial % 4 {
            case 0: bad = bad.prefix(Int(rng.next() % UInt64(bad.count)))
            case 1: bad[Int(rng.next() % 200)] ^= UInt8(1 + rng.next() % 255)
            case 2:
                let text = String(decoding: bad, as: UTF8.self).replacingOccurrences(of: "\"iteration\" : 4", with: "\"iteration\" : -4")
                bad = Data(text.utf8)
            default: bad.append(contentsOf: [1, 2, 3])
            }
            try bad.write(to: URL(fileURLWithPath: path))
            do { _ = try Checkpoint.load(path: path, specKey: spec.key, iterations: 30) } catch is VisualizeError {} catch {
                Issue.record("trial \(trial): untyped error \(error)")
            }
        }
    }

    @Test func generatorsBuildAndRun() throws {
        for (name, preset) in PriorConfiguration.presets {
            var p = preset
            switch p.architecture {
            case .skip(var c):
                // The presets' wiring (scales, skips, kernels, sampling, padding) with an eighth of
                // the channels: the same graph, fast in a debug build.
                c.channelsDown = c.channelsDown.map { Swift.max(1, $0 / 8) }
                c.channelsUp = c.channelsUp.map { Swift.max(1, $0 / 8) }
                p.architecture = .skip(c)
                p.inputDepth = 4
            case .resnet(var r): r.blocks = 2; p.architecture = .resnet(r)
            case .unet(var u): u.channels = [4, 8, 8]; p.architecture = .unet(u)
            case .deepDecoder(var d): d.channels = 8; d.layers = 3; p.architecture = .deepDecoder(d); p.inputDepth = 8
            }
            let prior = try DeepImagePrior(p, height: 40, width: 48, seed: 1)
            let y = GradMode.withoutGrad { prior.cleanImage() }
            #expect(y.shape == [1, 3, 40, 48], "\(name)")
            #expect(y.scalars.allSatisfy { $0 >= 0 && $0 <= 1 }, "\(name)")
        }
    }

    struct MetricCase: Decodable { let name: String; let shape: [Int]; let a: [Int]; let b: [Int]; let ssim: Double; let psnr: Double? }
    struct MetricFixture: Decodable { let cases: [MetricCase] }

    /// Against scikit-image's numbers (Fixtures/make_fixtures.py).
    @Test func imageMetricsMatchScikitImage() throws {
        let url = try #require(Bundle.module.url(forResource: "ssim", withExtension: "json", subdirectory: "Fixtures"))
        let fixture = try JSONDecoder().decode(MetricFixture.self, from: Data(contentsOf: url))
        #expect(fixture.cases.count >= 12)
        for c in fixture.cases {
            let a = Tensor(shape: [1] + c.shape, scalars: c.a.map { Float($0) / 255 })
            let b = Tensor(shape: [1] + c.shape, scalars: c.b.map { Float($0) / 255 })
            #expect(abs(ImageMetrics.ssim(a, b) - c.ssim) < 1e-5, "\(c.name): \(ImageMetrics.ssim(a, b)) vs \(c.ssim)")
            if let psnr = c.psnr { #expect(abs(ImageMetrics.psnr(a, b) - psnr) < 1e-3, "\(c.name): \(ImageMetrics.psnr(a, b)) vs \(psnr)") }
        }
    }

    @Test func imageMetrics() {
        let a = Tensor.uniform([1, 3, 16, 16], seed: 1)
        #expect(ImageMetrics.psnr(a, a) == 100)
        #expect(abs(ImageMetrics.ssim(a, a) - 1) < 1e-9)
        let b = Tensor.uniform([1, 3, 16, 16], seed: 2)
        #expect(ImageMetrics.psnr(a, b) < 15)
        #expect(ImageMetrics.ssim(a, b) < 0.2)
        let c = (a * 0.95) + 0.02
        #expect(ImageMetrics.ssim(a, c) > 0.9)
    }
}
