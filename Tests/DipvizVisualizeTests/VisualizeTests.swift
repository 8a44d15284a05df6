@testable import DipvizVisualize
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
        for prior in [PriorKind.dip, .tv] {
            let settings = InversionSettings(layers: ["relu1", "fc6"], prior: prior, iterations: 1, size: 8)
            try checkGradient("inversion \(prior)", Tensor.uniform([1, 3, 8, 8], seed: 2)) { x in
                Inversion.dataTerm(try probe.features(x, layers: ["relu1", "fc6"]), targets, settings: settings)
            }
        }
    }

    @Test(arguments: [ActivationTarget.classScore(index: 2, probability: false), .classScore(index: 3, probability: true),
                      .channel(unit: 1, window: 1), .channel(unit: 2, window: 0.5), .neuron(unit: 3, y: nil, x: nil),
                      .neuron(unit: 0, y: 1, x: 6)])
    func activations(_ target: ActivationTarget) throws {
        let probe = try tinyProbe()
        let settings = MaximizationSettings(layer: "conv1", target: target, prior: .dip, iterations: 1, size: 8)
        let (tensor, measure) = try Maximization.activation(probe: probe, settings: settings, height: 8, width: 8)
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

    @Test func badTargetsAreTypedErrors() throws {
        let probe = try tinyProbe()
        let x = Tensor.uniform([1, 3, 8, 8], seed: 1)
        for target in [ActivationTarget.channel(unit: 9, window: 1), .neuron(unit: 0, y: 20, x: 1), .classScore(index: 7, probability: false)] {
            let s = MaximizationSettings(layer: "conv1", target: target, prior: .dip, iterations: 1, size: 8)
            let (tensor, measure) = try Maximization.activation(probe: probe, settings: s, height: 8, width: 8)
            #expect(throws: VisualizeError.self) { _ = try measure(try probe.features(x, layers: [tensor])[0]) }
        }
    }
}

@Suite("Short runs")
struct RunTests {
    @Test(arguments: [PriorKind.dip, .tv, .pixel])
    func inversionLowersTheFeatureError(_ prior: PriorKind) throws {
        let probe = try tinyProbe(size: 16)
        var s = InversionSettings(layers: ["relu1"], prior: prior, iterations: prior == .dip ? 40 : 60, size: 16, seed: 3)
        s.generator = smallGenerator
        s.learningRate = 0.01
        s.tv.settleIterations = 10
        s.tv.dataWeight = 100  // one of the paper's values of C; the tiny network's features are weak
        var control = RunControl()
        control.snapshotEvery = 1000
        let x0 = Tensor.uniform([1, 3, 16, 16], seed: 9)
        let r = try Inversion.run(probe: probe, target: x0, settings: s, control: control)
        #expect(r.metrics.featureError < r.metrics.featureErrorStart * 0.7, "\(prior): \(r.metrics.featureErrorStart) -> \(r.metrics.featureError)")
        #expect(r.metrics.ending == .finished && r.metrics.iterations == s.iterations)
        #expect(r.metrics.top1Match != nil)
        #expect(r.image.shape == [1, 3, 16, 16])
        #expect(!r.curve.isEmpty)
    }

    @Test(arguments: [PriorKind.dip, .tv])
    func maximizationRaisesTheActivation(_ prior: PriorKind) throws {
        let probe = try tinyProbe(size: 16)
        var s = MaximizationSettings(layer: "conv1", target: .channel(unit: 1, window: 1), prior: prior, iterations: 30, size: 16, seed: 2)
        s.generator = smallGenerator
        s.learningRate = 0.01
        s.tv.settleIterations = 5
        var control = RunControl()
        control.snapshotEvery = 1000
        let r = try Maximization.run(probe: probe, settings: s, control: control)
        #expect(r.metrics.activation > r.metrics.activationStart, "\(prior)")
    }

    /// An interrupted run resumed from its checkpoint ends where an uninterrupted one does.
    @Test func resumeContinuesExactly() throws {
        let probe = try tinyProbe(size: 16)
        var s = InversionSettings(layers: ["relu1"], prior: .dip, iterations: 8, size: 16, seed: 5)
        s.generator = smallGenerator
        s.generator.regNoiseStd = 0.03
        let x0 = Tensor.uniform([1, 3, 16, 16], seed: 9)
        var plain = RunControl()
        plain.snapshotEvery = 1000
        let reference = try Inversion.run(probe: probe, target: x0, settings: s, control: plain)

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dipviz-resume-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var calls = 0
        var stopping = RunControl()
        stopping.snapshotEvery = 1000
        stopping.checkpointDirectory = dir
        stopping.shouldStop = { calls += 1; return calls > 5 }
        let first = try Inversion.run(probe: probe, target: x0, settings: s, control: stopping)
        #expect(first.metrics.ending == .interrupted && first.metrics.iterations == 5)
        let checkpoint = try Checkpoint.load(directory: dir)
        #expect(checkpoint.iteration == 5)
        let resumed = try Inversion.run(probe: probe, target: x0, settings: s, control: plain, resume: checkpoint)
        #expect(resumed.metrics.iterations == 8)
        #expect(resumed.image.scalars == reference.image.scalars)
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

    @Test func generatorsBuildAndRun() throws {
        for (name, preset) in PriorConfiguration.presets {
            var p = preset
            switch p.architecture {
            case .skip: p = name == "hourglass" ? p : p  // full presets: only shapes are checked below at 64 px
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
