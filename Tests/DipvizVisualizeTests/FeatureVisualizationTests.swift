@testable import DipvizVisualize
import DipvizONNX
import DipvizTensor
import Foundation
import Testing

@Suite("Feature visualisation: Fourier prior and transforms")
struct FeatureVisualizationTests {
    @Test func fourierParameterisationInverts() {
        // A smooth picture with values well inside 0...1, odd width.
        let h = 12, w = 13
        var values: [Float] = []
        for c in 0..<3 { for y in 0..<h { for x in 0..<w { values.append(0.5 + 0.3 * sinf(Float(x + 2 * c) * 0.4) * cosf(Float(y) * 0.3)) } } }
        let image = Tensor(shape: [1, 3, h, w], scalars: values)
        let (re, im) = FourierParametrization.coefficients(for: image)
        let back = GradMode.withoutGrad {
            FourierParametrization.rgb(real: re, imag: im, scale: FourierParametrization.spectrumScale(height: h, width: w), height: h, width: w)
        }
        #expect(back.shape == image.shape)
        #expect(zip(back.scalars, image.scalars).map { abs($0 - $1) }.max()! < 1e-4)
    }

    @Test func fourierSpectrumScaleIsOneOverFrequency() {
        let s = FourierParametrization.spectrumScale(height: 8, width: 8)
        // (ky, kx) = (0, 2): f = 2/8; (3, 1) and (5, 1) mirror each other: f = sqrt(9 + 1) / 8.
        #expect(abs(s.data[0 * 5 + 2] - 8 / 0.25) < 1e-3)
        #expect(abs(s.data[3 * 5 + 1] - s.data[5 * 5 + 1]) < 1e-4)
        #expect(abs(s.data[3 * 5 + 1] - 8 / (Float(10).squareRoot() / 8)) < 1e-3)
        // The constant term is floored at 1 / max(H, W).
        #expect(abs(s.data[0] - 8 * 8) < 1e-3)
    }

    @Test func fourierImageGradient() throws {
        let p = FourierParametrization(height: 6, width: 7, seed: 1, learningRate: 0.05)
        let weights = Tensor.uniform([1, 3, 6, 7], low: -1, high: 1, seed: 3)
        try checkGradient("fft image (real)", p.real) { re in
            (FourierParametrization.rgb(real: re, imag: p.imag, scale: p.scale, height: 6, width: 7) * weights).sum()
        }
        try checkGradient("fft image (imag)", p.imag) { im in
            (FourierParametrization.rgb(real: p.real, imag: im, scale: p.scale, height: 6, width: 7) * weights).sum()
        }
    }

    @Test func transformSettingsParse() throws {
        #expect(try TransformSettings.parse("none") == nil)
        #expect(try TransformSettings.parse("standard") == .standard)
        let custom = try #require(try TransformSettings.parse("rotate=5,scale=0.8:1.2,pad=16"))
        #expect(custom.rotation == 5 && custom.scaleMin == 0.8 && custom.scaleMax == 1.2 && custom.pad == 16 && custom.jitter == 8)
        #expect(try TransformSettings.parse(custom.argument) == custom)
        #expect(TransformSettings.standard.argument == "standard")
        for bad in ["rotate", "spin=3", "scale=0.9", "pad=x", ""] {
            #expect(throws: RunSpecError.self) { try TransformSettings.parse(bad) }
        }
        var s = TransformSettings.standard
        s.scaleMin = 2; s.scaleMax = 1
        #expect(throws: RunSpecError.self) { try s.validate(size: 64) }
    }

    @Test func transformsWithoutRandomnessAreTheIdentity() {
        var s = TransformSettings.standard
        s.pad = 0; s.jitter = 0; s.finalJitter = 0; s.rotation = 0; s.scaleMin = 1; s.scaleMax = 1
        var g = SeededGenerator(seed: 1)
        let m = s.randomMap(height: 9, width: 9, generator: &g)
        for (a, b) in [(m.yy, 1), (m.yx, 0), (m.y0, 0), (m.xy, 0), (m.xx, 1), (m.x0, 0)] as [(Float, Float)] { #expect(abs(a - b) < 1e-5) }
    }

    @Test func standardTransformsStayNearTheImage() {
        // Every standard map keeps the image centre within a few pixels and the scale within Lucid's range.
        var g = SeededGenerator(seed: 3)
        for _ in 0..<50 {
            let m = TransformSettings.standard.randomMap(height: 64, width: 64, generator: &g)
            let cy = m.yy * 31.5 + m.yx * 31.5 + m.y0, cx = m.xy * 31.5 + m.xx * 31.5 + m.x0
            #expect(abs(cy - 31.5) < 8 && abs(cx - 31.5) < 8)
            let det = m.yy * m.xx - m.yx * m.xy
            #expect(det > 1 && det < 1.8)
        }
    }
}

@Suite("Objective expressions")
struct ObjectiveExpressionTests {
    let labels = ["goldfish, Carassius auratus", "black swan, Cygnus atratus", "tree frog, tree-frog"]

    @Test func parsesEveryKindOfTerm() throws {
        let e = try ObjectiveExpression.parse("conv4:12 - 0.5*conv4:40 + conv-x:3@6,7 + class(black swan) - probability(tree-frog) + 2*class(0)", labels: labels)
        typealias T = ObjectiveExpression.Term
        #expect(e.terms == [
            T(weight: 1, kind: .channel, layer: "conv4", index: 12),
            T(weight: -0.5, kind: .channel, layer: "conv4", index: 40),
            T(weight: 1, kind: .neuron, layer: "conv-x", index: 3, y: 6, x: 7),
            T(weight: 1, kind: .classLogit, index: 1),
            T(weight: -1, kind: .classProbability, index: 2),
            T(weight: 2, kind: .classLogit, index: 0),
        ])
        let negated = try ObjectiveExpression.parse("-conv5:1", labels: [])
        #expect(negated.terms == [T(weight: -1, kind: .channel, layer: "conv5", index: 1)])
        let logprob = try ObjectiveExpression.parse("logprob(black swan)", labels: labels)
        #expect(logprob.terms == [T(weight: 1, kind: .classLogProbability, index: 1)])
        let diverse = try ObjectiveExpression.parse("conv4:12 - 100*diversity(conv4)", labels: [])
        #expect(diverse.terms == [T(weight: 1, kind: .channel, layer: "conv4", index: 12), T(weight: -100, kind: .diversity, layer: "conv4")])
        #expect(diverse.hasDiversity && !negated.hasDiversity)
    }

    @Test func refusesWhatIsNotAnExpression() {
        for bad in ["", "conv4", "conv4:x", "conv4:-1", "conv4:1 +", "conv4:1 + + conv4:2", "x*conv4:1", "class(zebra)", "spin(3)",
                    "conv4:1@3", "class(black swan", "direction(conv5)", "direction(conv5, /no/such/file.npy)", "diversity()", "diversity(a, b)"] {
            #expect(throws: RunSpecError.self, "\(bad)") { try ObjectiveExpression.parse(bad, labels: labels) }
        }
    }

    @Test func aDirectionEqualsTheWeightedChannels() throws {
        let probe = try tinyProbe()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dipviz-direction-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("v.npy").path
        try Tensor(shape: [4], scalars: [0, 1, 0, -0.5]).writeNPY(path: file)
        let x = Tensor.uniform([1, 3, 8, 8], seed: 4)
        func value(_ text: String) throws -> Float {
            let (tensors, measure) = try ObjectiveExpression.parse(text, labels: []).evaluator(probe: probe)
            return try GradMode.withoutGrad { try measure(try probe.features(x, layers: tensors)).item }
        }
        let direction = try value("direction(relu1, \(file))"), channels = try value("relu1:1 - 0.5*relu1:3")
        #expect(abs(direction - channels) < 1e-5 && abs(channels) > 1e-3)
        let sum = try value("relu1:1 + relu1:1"), one = try value("relu1:1")
        #expect(abs(sum - 2 * one) < 1e-5)
    }

    @Test func logProbabilityIsTheLogOfTheSoftmaxAndFallsWhenARivalRises() throws {
        // Logits far apart: a plain softmax would underflow to 0 for the last class.
        let logits: [Float] = [2, 150, -40, 149]
        let y = Tensor(shape: [1, 4], scalars: logits).detached()
        y.requiresGrad = true
        let value = try ObjectiveExpression.logProbability(y, index: 1)
        let top = Double(logits.max()!)
        let logSum = top + Foundation.log(logits.reduce(0.0) { $0 + Foundation.exp(Double($1) - top) })
        #expect(abs(Double(value.item) - (150 - logSum)) < 1e-4)
        #expect(abs(Double(try ObjectiveExpression.logProbability(y, index: 2).item) - (-40 - logSum)) < 1e-3)
        // d/dy: 1 - p for the class itself, -p for the others.
        value.backward()
        let p = logits.map { Foundation.exp(Double($0) - logSum) }
        for i in 0..<4 {
            #expect(abs(Double(y.grad!.scalars[i]) - ((i == 1 ? 1 : 0) - p[i])) < 1e-4, "gradient \(i)")
        }
    }

    @Test func expressionRoundTripsThroughTheSpec() throws {
        let e = try ObjectiveExpression.parse("conv4:12 - 0.5*conv4:40", labels: [])
        let target = ActivationTarget.expression(e)
        let data = try JSONEncoder().encode(target)
        #expect(try JSONDecoder().decode(ActivationTarget.self, from: data) == target)
    }
}

@Suite("Batched maximisation")
struct BatchMaximizationTests {
    @Test(arguments: [PriorSpec(kind: .fft, learningRate: 0.05), PriorSpec(kind: .tv, tv: TVSettings()), PriorSpec(kind: .dip, generator: smallGenerator, learningRate: 1e-2)])
    func aBatchGivesWhatEachTargetGetsAlone(prior: PriorSpec) throws {
        // The tiny classifier of the other tests, with a free batch size.
        var b = ONNXGraphBuilder(seed: 11)
        b.conv(4, kernel: 3, pad: 1); b.relu(); b.maxPool(2, stride: 2)
        let probe = Probe(network: try ONNXNetwork(model: b.model(name: "tiny", inputShape: [nil, 3, nil, nil])), preprocessing: .torchvision)
        let targets: [ActivationTarget] = [.channel(unit: 0, window: 1), .channel(unit: 2, window: 1), .neuron(unit: 3, y: nil, x: nil)]
        let objective = MaximizationObjective(layer: "relu1", targets: targets, transforms: .standard, batch: true)
        let spec = RunSpec(model: ModelSource(file: FileReference(path: "tiny.onnx", hash: "h64:0")), objective: .maximization(objective),
                           prior: prior, size: 16, iterations: 6, seed: 5, snapshotEvery: 100)
        let names = targets.map(\.label)
        let batch = try Maximization.runBatch(probe: probe, spec: spec, objective: objective, targets: targets.map { ($0, spec.seed) }, names: names,
                                              reference: nil, control: RunControl(), resume: nil)
        var improved = 0
        for (i, target) in targets.enumerated() {
            let (alone, metrics) = try Maximization.run(probe: probe, spec: spec, objective: objective, target: target, seed: spec.seed, name: names[i],
                                                        reference: nil, control: RunControl(), resume: nil)
            let difference = zip(alone.image.scalars, batch[i].0.image.scalars).map { abs($0 - $1) }.max() ?? 1
            #expect(batch[i].0.image.shape == [1, 3, 16, 16])
            // The same floats: each image's gradients add up in the order of a run alone.
            #expect(alone.image.scalars == batch[i].0.image.scalars, "\(prior.kind) target \(i): image differs by \(difference)")
            #expect(metrics.activation == batch[i].1.activation && metrics.activationStart == batch[i].1.activationStart)
            #expect(alone.curve == batch[i].0.curve, "\(prior.kind) target \(i): curve")
            if (metrics.activation ?? 0) > (metrics.activationStart ?? 0) { improved += 1 }
        }
        #expect(improved > 0, "the runs optimise something")
        // The targets differ from each other, so the comparison above can fail.
        #expect(batch[0].0.image.scalars != batch[1].0.image.scalars)
    }
}

@Suite("Diversity across a batch")
struct DiversityTests {
    /// Lucid's formula written out with loops over plain arrays.
    static func literal(_ y: Tensor) -> Double {
        let b = y.shape[0], c = y.shape[1], n = y.count / (b * c)
        let v = y.scalars
        let grams: [[Double]] = (0..<b).map { i in
            var g = [Double](repeating: 0, count: c * c)
            for p in 0..<c { for q in 0..<c { for k in 0..<n { g[p * c + q] += Double(v[(i * c + p) * n + k]) * Double(v[(i * c + q) * n + k]) } } }
            let norm = (g.reduce(0) { $0 + $1 * $1 } + 1e-10).squareRoot()
            return g.map { $0 / norm }
        }
        var total = 0.0
        for i in 0..<b { for j in 0..<b where j != i { total += zip(grams[i], grams[j]).reduce(0) { $0 + $1.0 * $1.1 } } }
        return total / Double(b)
    }

    @Test func matchesLucidsFormulaAndItsBounds() {
        let y = Tensor.uniform([3, 4, 5, 5], seed: 9)
        #expect(abs(Double(ObjectiveExpression.diversity(y).item) - DiversityTests.literal(y)) < 1e-4)
        // One image: no pairs. Identical images: each pair's cosine is 1, so B - 1.
        #expect(ObjectiveExpression.diversity(y.slice(axis: 0, start: 0, end: 1)).item == 0)
        let same = Tensor.concat([y.slice(axis: 0, start: 1, end: 2), y.slice(axis: 0, start: 1, end: 2)], axis: 0)
        #expect(abs(ObjectiveExpression.diversity(same).item - 1) < 1e-5)
    }

    @Test func gradientMatchesFiniteDifferences() {
        let y = Tensor.uniform([2, 3, 4, 4], seed: 3).shifted(by: -0.3).detached()
        y.requiresGrad = true
        ObjectiveExpression.diversity(y).backward()
        let analytic = y.grad!.scalars
        var worst: Float = 0
        for index in stride(from: 0, to: y.count, by: 7) {
            let plus = y.scalars, minus = y.scalars
            var p = plus, m = minus
            p[index] += 1e-2; m[index] -= 1e-2
            let numeric = (DiversityTests.literal(Tensor(shape: y.shape, scalars: p)) - DiversityTests.literal(Tensor(shape: y.shape, scalars: m))) / 2e-2
            worst = max(worst, abs(Float(numeric) - analytic[index]))
        }
        #expect(worst < 2e-3, "largest gradient error \(worst)")
        #expect(analytic.contains { abs($0) > 1e-3 })
    }

    @Test func imagesOfOneTargetStartFromTheirOwnSeedsAndDiversityPushesThemApart() throws {
        var b = ONNXGraphBuilder(seed: 11)
        b.conv(4, kernel: 3, pad: 1); b.relu(); b.maxPool(2, stride: 2)
        let probe = Probe(network: try ONNXNetwork(model: b.model(name: "tiny", inputShape: [nil, 3, nil, nil])), preprocessing: .torchvision)
        let prior = PriorSpec(kind: .fft, learningRate: 0.05)
        func spec(_ text: String, images: Int?) throws -> (RunSpec, MaximizationObjective) {
            var m = MaximizationObjective(layer: nil, targets: [.expression(try ObjectiveExpression.parse(text, labels: []))], transforms: .standard)
            m.images = images
            return (RunSpec(model: ModelSource(file: FileReference(path: "tiny.onnx", hash: "h64:0")), objective: .maximization(m),
                            prior: prior, size: 16, iterations: 8, seed: 5, snapshotEvery: 100), m)
        }
        // Without a diversity term, image k is the single run from seed + k.
        let (plain, pm) = try spec("relu1:2", images: 2)
        #expect(plain.resultNames == ["image-0", "image-1"])
        let batch = try Maximization.runBatch(probe: probe, spec: plain, objective: pm, targets: (0..<2).map { pm.result($0, seed: plain.seed) },
                                              names: plain.resultNames, reference: nil, control: RunControl(), resume: nil)
        for k in 0..<2 {
            let (alone, _) = try Maximization.run(probe: probe, spec: plain, objective: pm, target: pm.targets[0], seed: plain.seed + UInt64(k),
                                                  name: "image", reference: nil, control: RunControl(), resume: nil)
            let difference = zip(alone.image.scalars, batch[k].0.image.scalars).map { abs($0 - $1) }.max() ?? 1
            #expect(difference < 1e-4, "image \(k) differs by \(difference)")
        }
        // With it, the batch's diversity (similarity) ends lower than without.
        let (diverse, dm) = try spec("relu1:2 - 20*diversity(relu1)", images: 2)
        let pushed = try Maximization.runBatch(probe: probe, spec: diverse, objective: dm, targets: (0..<2).map { dm.result($0, seed: diverse.seed) },
                                               names: diverse.resultNames, reference: nil, control: RunControl(), resume: nil)
        func similarity(_ r: [(RunRecordOfLoop, ResultMetrics)]) throws -> Float {
            let x = Tensor.concat(r.map(\.0.image), axis: 0)
            return try GradMode.withoutGrad { ObjectiveExpression.diversity(try probe.features(x, layers: ["relu1"])[0]).item }
        }
        #expect(try similarity(pushed) < similarity(batch) - 1e-3)
        #expect(pushed[0].0.curve.last?.values["diversity"] != nil)
        // Validation: a diversity term needs several images.
        #expect(throws: RunSpecError.self) { try spec("relu1:2 - diversity(relu1)", images: nil).0.validate() }
    }
}
