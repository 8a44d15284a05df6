import DipvizImage
import DipvizONNX
import DipvizPrior
import DipvizTensor
import Foundation

/// Activation maximisation: an image that excites a class, a channel or a neuron.
enum Maximization {
    /// The tensor a target reads, and a function from it to the scalar activation.
    static func activation(probe: Probe, layer: String?, target: ActivationTarget) throws -> (String, (Tensor) throws -> Tensor) {
        switch target {
        case let .classScore(index, score):
            guard let logits = probe.logitsTensor else { throw VisualizeError.invalid("the model has no class scores") }
            if score == .logProbability { return (logits, { y in try ObjectiveExpression.logProbability(y, index: index) }) }
            let probability = score == .probability
            let output = probability ? probe.network.defaultOutput : logits
            return (output, { y in
                let flat = y.reshaped([y.shape[0], -1])
                guard index >= 0 && index < flat.shape[1] else {
                    throw VisualizeError.unitOutOfRange(layer: "the class scores", unit: index, channels: flat.shape[1])
                }
                let scores = probability && !probe.network.isProbability(output) ? flat.softmax(axis: 1) : flat
                return scores.slice(axis: 1, start: index, end: index + 1).sum()
            })
        case let .channel(unit, window):
            guard let layer else { throw VisualizeError.invalid("a channel target needs a layer") }
            return (layer, { y in
                guard y.rank == 4 || y.rank == 2 else { throw VisualizeError.invalid("layer \(layer) has shape \(y.shape)") }
                guard unit >= 0 && unit < y.shape[1] else {
                    throw VisualizeError.unitOutOfRange(layer: layer, unit: unit, channels: y.shape[1])
                }
                var map = y.slice(axis: 1, start: unit, end: unit + 1)
                if y.rank == 4 && window < 1 {
                    let h = y.shape[2], w = y.shape[3]
                    let wh = Swift.max(1, Int((Float(h) * window).rounded())), ww = Swift.max(1, Int((Float(w) * window).rounded()))
                    map = map.cropped(top: (h - wh) / 2, left: (w - ww) / 2, height: wh, width: ww)
                }
                return map.mean()
            })
        case .expression:
            throw VisualizeError.invalid("an objective expression reads several tensors; use Maximization.evaluator")
        case let .neuron(unit, yPos, xPos):
            guard let layer else { throw VisualizeError.invalid("a neuron target needs a layer") }
            return (layer, { y in
                guard y.rank == 4 else { throw VisualizeError.invalid("a neuron position needs a 4-D layer, \(layer) is \(y.shape)") }
                guard unit >= 0 && unit < y.shape[1] else {
                    throw VisualizeError.unitOutOfRange(layer: layer, unit: unit, channels: y.shape[1])
                }
                let h = y.shape[2], w = y.shape[3]
                let py = yPos ?? h / 2, px = xPos ?? w / 2
                guard py >= 0 && py < h && px >= 0 && px < w else {
                    throw VisualizeError.positionOutOfRange(layer: layer, y: py, x: px, height: h, width: w)
                }
                return y.slice(axis: 1, start: unit, end: unit + 1).cropped(top: py, left: px, height: 1, width: 1).sum()
            })
        }
    }

    /// The tensors a target reads, and a function from them to the scalar activation.
    static func evaluator(probe: Probe, layer: String?, target: ActivationTarget) throws -> ([String], ([Tensor]) throws -> Tensor) {
        if case let .expression(e) = target { return try e.evaluator(probe: probe) }
        let (tensor, measure) = try activation(probe: probe, layer: layer, target: target)
        return ([tensor], { try measure($0[0]) })
    }

    /// The image the classifier sees at iteration t: under the run's random transforms, drawn
    /// from the seed and the iteration (a resumed run draws the same ones).
    static func transformed(_ x: Tensor, _ transforms: TransformSettings?, seed: UInt64, iteration: Int) -> Tensor {
        guard let transforms else { return x }
        var g = iterationGenerator(seed: seed, iteration: iteration, stream: 3)
        return transforms.apply(x, generator: &g)
    }

    /// Maximises one target of `objective`.
    static func run(probe: Probe, spec: RunSpec, objective m: MaximizationObjective, target: ActivationTarget, seed: UInt64, name: String,
                    reference x0: Tensor?, control: RunControl, resume: Checkpoint?) throws -> (RunRecordOfLoop, ResultMetrics) {
        let h = spec.size, w = spec.size
        let (tensors, measure) = try evaluator(probe: probe, layer: m.layer, target: target)
        func act(_ x: Tensor) throws -> Tensor { try measure(try probe.features(x, layers: tensors)) }
        let behaviour = spec.prior.behaviour
        let p = try behaviour.parametrization(spec.prior, height: h, width: w, seed: seed, jitter: m.jitter, iterations: spec.iterations)
        let start = try resume?.restore(into: p) ?? 0
        let activationStart = try resume?.startValue ?? GradMode.withoutGrad { Double(try act(p.cleanImage()).item) }
        let weight = behaviour.activationWeight(spec.prior)
        var iteration = start
        let record = try optimize(p, iterations: spec.iterations, startIteration: start, curve: resume?.curve ?? [],
                                  secondsBefore: resume?.seconds ?? 0, startValue: activationStart, control: control) { x in
            let a = try act(transformed(x, m.transforms, seed: seed, iteration: iteration))
            iteration += 1
            var loss: Tensor
            switch m.goal {
            case .maximize: loss = -a
            case .reach(let v): loss = (a - v).abs()
            }
            if weight != 1 { loss = loss.scaled(by: weight) }
            return (loss, ["activation": Double(a.item)])
        }
        var metrics = try resultMetrics(probe: probe, target: target, name: name, loop: record,
                                        activation: try GradMode.withoutGrad { Double(try act(record.image).item) },
                                        activationStart: activationStart, act: act)
        metrics.activationX0 = try x0.map { x in try GradMode.withoutGrad { Double(try act(x).item) } }
        return (record, metrics)
    }

    /// The metrics of a finished target: its activation, and for classes the probability and
    /// top class; the robust probability or activation (`RobustnessCheck`).
    static func resultMetrics(probe: Probe, target: ActivationTarget, name: String, loop record: RunRecordOfLoop, activation: Double,
                              activationStart: Double, act: (Tensor) throws -> Tensor) throws -> ResultMetrics {
        var metrics = ResultMetrics(name: name, ending: record.ending, message: record.message, iterations: record.iterations,
                                    seconds: record.seconds)
        metrics.target = target.label
        metrics.activation = activation
        metrics.activationStart = activationStart
        if case let .classScore(index, _) = target {
            let y = try GradMode.withoutGrad { try probe.network(probe.preprocessing.apply(record.image)) }
            let flat = y.reshaped([1, -1])
            let probs = probe.network.isProbability(probe.network.defaultOutput) ? flat : GradMode.withoutGrad { flat.softmax(axis: 1) }
            metrics.probability = Double(probs.data[index])
            metrics.top1 = try probe.top1(record.image)
            metrics.robustProbability = try RobustnessCheck.mean(record.image) { x in
                let y = try probe.network(probe.preprocessing.apply(x)).reshaped([1, -1])
                let p = probe.network.isProbability(probe.network.defaultOutput) ? y : y.softmax(axis: 1)
                return Double(p.data[index])
            }
        } else {
            metrics.robustActivation = try RobustnessCheck.mean(record.image) { Double(try act($0).item) }
        }
        return metrics
    }
}
