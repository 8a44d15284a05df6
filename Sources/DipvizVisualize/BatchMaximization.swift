import DipvizImage
import DipvizTensor
import Foundation

/// Several parametrisations optimised as one batch: their images are stacked along the batch
/// axis, so each classifier pass and each GEMM serves every target at once. Each keeps its own
/// parameters and optimiser (a generator of its own for DIP), and the loss is the sum of the
/// targets' losses, so each target's gradient, and therefore its result, is the one it gets
/// alone (the classifiers here treat images independently: no batch statistics). Each part's
/// regulariser is added to its own target's loss by `runBatch` (so that target's curve
/// records the loss it records alone); the batch itself adds none.
final class BatchParametrization: ImageParametrization {
    let parts: [ImageParametrization]

    init(_ parts: [ImageParametrization]) { self.parts = parts }

    func image(iteration t: Int) -> Tensor { Tensor.concat(parts.map { $0.image(iteration: t) }, axis: 0) }
    func cleanImage() -> Tensor { GradMode.withoutGrad { Tensor.concat(parts.map { $0.cleanImage() }, axis: 0) } }
    func regularizer(iteration t: Int) -> Tensor? { nil }
    func zeroGrad() { for p in parts { p.zeroGrad() } }
    func step(iteration t: Int) { for p in parts { p.step(iteration: t) } }
    var state: [Tensor] { parts.flatMap(\.state) }
    var stepCount: Int { parts.first?.stepCount ?? 0 }
    func restore(step: Int) { for p in parts { p.restore(step: step) } }
}

extension Maximization {
    /// Name of the checkpoint of a batched run (one for all its targets).
    static let batchCheckpointName = "batch"

    /// Maximises `targets` of `objective` together (see `BatchParametrization`): every target
    /// starts from the seed it would have alone and sees the random transforms it would see
    /// alone. Returns one loop record (image [1, 3, H, W], curve) and metrics per target.
    /// `targets` pairs each result's target with the seed it starts from (its images and random
    /// transforms). The expression's diversity terms, if any, are added over the whole batch.
    static func runBatch(probe: Probe, spec: RunSpec, objective m: MaximizationObjective, targets seeded: [(target: ActivationTarget, seed: UInt64)],
                         names: [String], reference x0: Tensor?, control: RunControl, resume: Checkpoint?) throws -> [(RunRecordOfLoop, ResultMetrics)] {
        let h = spec.size, w = spec.size, n = seeded.count
        let targets = seeded.map(\.target)
        let evaluators = try targets.map { try evaluator(probe: probe, layer: m.layer, target: $0) }
        let diversity = m.expression?.batchEvaluator()
        let tensors = (evaluators.map(\.0) + [diversity?.0 ?? []]).reduce(into: [String]()) { all, e in for t in e where !all.contains(t) { all.append(t) } }
        /// Per target: its activation on its own image (item i of the batch); and the batch's
        /// diversity terms.
        func activations(_ x: Tensor) throws -> ([Tensor], Tensor?) {
            let features = try probe.features(x, layers: tensors)
            let each = try evaluators.enumerated().map { i, e in
                try e.1(e.0.map { name in features[tensors.firstIndex(of: name)!].slice(axis: 0, start: i, end: i + 1) })
            }
            return (each, diversity.map { d in d.1(d.0.map { features[tensors.firstIndex(of: $0)!] }) })
        }
        /// Target i's activation on one image alone: how a run of that target alone measures its
        /// start and end values (a batched pass may round differently in the last bit).
        func single(_ i: Int, _ x: Tensor) throws -> Tensor { try evaluators[i].1(try probe.features(x, layers: evaluators[i].0)) }
        let behaviour = spec.prior.behaviour
        let parts = try seeded.map { s in
            try behaviour.parametrization(spec.prior, height: h, width: w, seed: s.seed, jitter: m.jitter, iterations: spec.iterations)
        }
        let p = BatchParametrization(parts)
        let start = try resume?.restore(into: p) ?? 0
        // A resumed batch reports the start values of the images it started from, as a resumed
        // single run does.
        let startValues: [Double]
        if let saved = resume?.startValues, saved.count == n { startValues = saved } else {
            startValues = try GradMode.withoutGrad { try parts.indices.map { Double(try single($0, parts[$0].cleanImage()).item) } }
        }
        let weight = behaviour.activationWeight(spec.prior)
        var iteration = start
        var batchControl = control
        let snapshot = control.snapshot
        batchControl.snapshot = { t, image in try snapshot?(t, image) }
        let record = try optimize(p, iterations: spec.iterations, startIteration: start, curve: resume?.curve ?? [],
                                  secondsBefore: resume?.seconds ?? 0, startValue: startValues.first, startValues: startValues,
                                  control: batchControl) { x in
            // Each image under the transforms it would draw alone.
            let seen = try m.transforms.map { settings -> Tensor in
                let maps = seeded.map { s -> AffineMap in
                    var g = iterationGenerator(seed: s.seed, iteration: iteration, stream: 3)
                    return settings.randomMap(height: h, width: w, generator: &g)
                }
                guard maps.count == x.shape[0] else { throw VisualizeError.invalid("batch of \(x.shape[0]) images for \(maps.count) targets") }
                return x.affineResampled(height: h, width: w, maps: maps, fill: settings.fill)
            } ?? x
            let t = iteration
            iteration += 1
            // The data terms and the regularisers are summed apart, regularisers last: the
            // backward pass then reaches each image's parameters through its image first and its
            // regulariser after, in the order a run alone does, so their gradients add up to the
            // same floats.
            var data: Tensor? = nil, regularizers: Tensor? = nil
            var values: [String: Double] = [:]
            let (each, batchTerms) = try activations(seen)
            for (i, a) in each.enumerated() {
                var l: Tensor
                switch m.goal {
                case .maximize: l = -a
                case .reach(let v): l = (a - v).abs()
                }
                if weight != 1 { l = l.scaled(by: weight) }
                values["activation/\(i)"] = Double(a.item)
                if let r = parts[i].regularizer(iteration: t) {
                    values["loss/\(i)"] = Double(GradMode.withoutGrad { l + r }.item)
                    regularizers = regularizers.map { $0 + r } ?? r
                } else {
                    values["loss/\(i)"] = Double(l.item)
                }
                data = data.map { $0 + l } ?? l
            }
            if let batchTerms {
                // Part of the maximised objective: subtracted from the data term, weighted like the activations.
                values["diversity"] = Double(batchTerms.item)
                data = data! - (weight == 1 ? batchTerms : batchTerms.scaled(by: weight))
            }
            return (regularizers.map { data! + $0 } ?? data!, values)
        }
        return try (0..<n).map { i in
            let image = record.image.slice(axis: 0, start: i, end: i + 1).detached()
            let curve = record.curve.map { point in
                CurvePoint(iteration: point.iteration, loss: point.values["loss/\(i)"] ?? point.loss,
                           values: (point.values["activation/\(i)"].map { ["activation": $0] } ?? [:])
                               .merging(point.values["diversity"].map { ["diversity": $0] } ?? [:]) { a, _ in a })
            }
            let loop = RunRecordOfLoop(image: image, curve: curve, iterations: record.iterations, seconds: record.seconds / Double(n),
                                       ending: record.ending, message: record.message)
            // One image alone: what the metrics measure.
            func act(_ x: Tensor) throws -> Tensor { try single(i, x) }
            var metrics = try resultMetrics(probe: probe, target: targets[i], name: names[i], loop: loop,
                                            activation: try GradMode.withoutGrad { Double(try act(image).item) },
                                            activationStart: startValues[i], act: act)
            metrics.activationX0 = try x0.map { x in try GradMode.withoutGrad { Double(try act(x).item) } }
            return (loop, metrics)
        }
    }
}
