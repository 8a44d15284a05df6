import DipvizImage
import DipvizONNX
import DipvizPrior
import DipvizTensor
import Foundation

/// What to excite.
public enum ActivationTarget: Codable, Equatable, Sendable {
    /// A class score: the logit, or the softmax probability.
    case classScore(index: Int, probability: Bool)
    /// A channel, averaged over the central `window` fraction of its map (1: the whole map).
    case channel(unit: Int, window: Float)
    /// One neuron; nil position means the centre of the map.
    case neuron(unit: Int, y: Int?, x: Int?)
}

public enum MaximizationObjective: Codable, Equatable, Sendable {
    case maximize
    /// Minimise |value - activation| (the DIP notebook drives a logit to 300).
    case reach(Float)
}

public struct MaximizationSettings: Codable, Equatable, Sendable {
    public var layer: String
    public var target: ActivationTarget
    public var objective: MaximizationObjective = .maximize
    public var prior: PriorKind
    public var generator: PriorConfiguration = .maximization
    public var iterations: Int
    /// Adam learning rate of the DIP prior (the paper: 1e-3, 1e-2 for fully connected layers).
    public var learningRate: Float = 1e-3
    public var size: Int = 224
    public var seed: UInt64 = 0
    /// Random shifts of up to this many pixels every iteration (robustness; 0: none).
    public var jitter: Int = 0
    public var tv = TVSettings()

    /// Data-term weight C for the pixel priors, so the activation term is of the order of the
    /// regularisers (which are of order one on natural images): class logits reach a few
    /// hundred, channel and neuron activations tens, probabilities at most one.
    public static func defaultDataWeight(for target: ActivationTarget) -> Float {
        switch target {
        case .classScore(_, let probability): return probability ? 1 : 0.003
        case .channel, .neuron: return 0.03
        }
    }

    public init(layer: String, target: ActivationTarget, prior: PriorKind, iterations: Int? = nil, size: Int = 224, seed: UInt64 = 0) {
        self.layer = layer; self.target = target; self.prior = prior; self.size = size; self.seed = seed
        self.iterations = iterations ?? (prior == .dip ? 3100 : tv.jitterIterations + tv.settleIterations)
        tv.dataWeight = MaximizationSettings.defaultDataWeight(for: target)
    }
}

public struct MaximizationMetrics: Codable, Sendable {
    public var activation: Double
    public var activationStart: Double
    /// The activation of the reference image, when one was given.
    public var activationX0: Double?
    /// Softmax probability of the class, for class targets.
    public var probability: Double?
    public var top1: Int?
    public var iterations: Int
    public var seconds: Double
    public var seed: UInt64
    public var ending: RunEnding
    public var message: String?
    public var settings: MaximizationSettings
    public var model: String

    enum CodingKeys: String, CodingKey {
        case activation, activationStart = "activation_start", activationX0 = "activation_x0", probability, top1
        case iterations, seconds, seed, ending, message, settings = "configuration", model
    }
}

public struct MaximizationResult {
    public var image: Tensor
    public var metrics: MaximizationMetrics
    public var curve: [CurvePoint]
}

public enum Maximization {
    /// The tensor a target reads, and a function from it to the scalar activation.
    public static func activation(probe: Probe, settings: MaximizationSettings, height: Int, width: Int) throws -> (String, (Tensor) throws -> Tensor) {
        switch settings.target {
        case let .classScore(index, probability):
            guard let logits = probe.logitsTensor else { throw VisualizeError.invalid("the model has no class scores") }
            let output = probability ? probe.network.defaultOutput : logits
            return (output, { y in
                let flat = y.reshaped([y.shape[0], -1])
                guard index >= 0 && index < flat.shape[1] else {
                    throw VisualizeError.unitOutOfRange(layer: "scores", unit: index, channels: flat.shape[1])
                }
                let scores = probability && !probe.network.isProbability(output) ? flat.softmax(axis: 1) : flat
                return scores.slice(axis: 1, start: index, end: index + 1).sum()
            })
        case let .channel(unit, window):
            return (settings.layer, { y in
                guard y.rank == 4 || y.rank == 2 else { throw VisualizeError.invalid("layer \(settings.layer) has shape \(y.shape)") }
                guard unit >= 0 && unit < y.shape[1] else {
                    throw VisualizeError.unitOutOfRange(layer: settings.layer, unit: unit, channels: y.shape[1])
                }
                var map = y.slice(axis: 1, start: unit, end: unit + 1)
                if y.rank == 4 && window < 1 {
                    let h = y.shape[2], w = y.shape[3]
                    let wh = Swift.max(1, Int((Float(h) * window).rounded())), ww = Swift.max(1, Int((Float(w) * window).rounded()))
                    map = map.cropped(top: (h - wh) / 2, left: (w - ww) / 2, height: wh, width: ww)
                }
                return map.mean()
            })
        case let .neuron(unit, yPos, xPos):
            return (settings.layer, { y in
                guard y.rank == 4 else { throw VisualizeError.invalid("a neuron position needs a 4-D layer, \(settings.layer) is \(y.shape)") }
                guard unit >= 0 && unit < y.shape[1] else {
                    throw VisualizeError.unitOutOfRange(layer: settings.layer, unit: unit, channels: y.shape[1])
                }
                let h = y.shape[2], w = y.shape[3]
                let py = yPos ?? h / 2, px = xPos ?? w / 2
                guard py >= 0 && py < h && px >= 0 && px < w else {
                    throw VisualizeError.positionOutOfRange(layer: settings.layer, y: py, x: px, height: h, width: w)
                }
                return y.slice(axis: 1, start: unit, end: unit + 1).cropped(top: py, left: px, height: 1, width: 1).sum()
            })
        }
    }

    public static func run(probe: Probe, settings: MaximizationSettings, reference x0: Tensor? = nil, control: RunControl = RunControl(),
                           resume: Checkpoint? = nil, modelName: String = "") throws -> MaximizationResult {
        let h = settings.size, w = settings.size
        let (tensor, measure) = try activation(probe: probe, settings: settings, height: h, width: w)
        func act(_ x: Tensor) throws -> Tensor { try measure(try probe.features(x, layers: [tensor])[0]) }
        let p = try Inversion.makeParametrization(settings.prior, generator: settings.generator, learningRate: settings.learningRate,
                                                  tv: settings.tv, iterations: settings.iterations, height: h, width: w,
                                                  seed: settings.seed, jitter: settings.jitter)
        let start = try resume?.restore(into: p) ?? 0
        let activationStart = try resume?.startError ?? GradMode.withoutGrad { Double(try act(p.cleanImage()).item) }
        let record = try optimize(p, iterations: settings.iterations, startIteration: start, curve: resume?.curve ?? [],
                                  secondsBefore: resume?.seconds ?? 0, startError: resume?.startError ?? activationStart, control: control) { x in
            let a = try act(x)
            var loss: Tensor
            switch settings.objective {
            case .maximize: loss = -a
            case .reach(let v): loss = (a - v).abs()
            }
            if settings.prior != .dip { loss = loss.scaled(by: settings.tv.dataWeight) }
            return (loss, ["activation": Double(a.item)])
        }
        let final = try GradMode.withoutGrad { Double(try act(record.image).item) }
        var probability: Double? = nil, top1: Int? = nil
        if case let .classScore(index, _) = settings.target {
            let y = try GradMode.withoutGrad { try probe.network(probe.preprocessing.apply(record.image)) }
            let flat = y.reshaped([1, -1])
            let probs = probe.network.isProbability(probe.network.defaultOutput) ? flat : GradMode.withoutGrad { flat.softmax(axis: 1) }
            probability = Double(probs.data[index])
            top1 = try probe.top1(record.image)
        }
        let reference = try x0.map { x in try GradMode.withoutGrad { Double(try act(x).item) } }
        let metrics = MaximizationMetrics(activation: final, activationStart: activationStart, activationX0: reference,
                                          probability: probability, top1: top1, iterations: record.iterations,
                                          seconds: (resume?.seconds ?? 0) + record.seconds, seed: settings.seed,
                                          ending: record.ending, message: record.message, settings: settings, model: modelName)
        return MaximizationResult(image: record.image, metrics: metrics, curve: record.curve)
    }
}
