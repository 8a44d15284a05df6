import DipvizImage
import DipvizONNX
import DipvizPrior
import DipvizTensor
import Foundation

/// Feature inversion: find x with Phi_L(x) close to Phi_L(x0) for one or several layers.
enum Inversion {
    /// ||Phi(x) - Phi0|| / ||Phi0|| over all target layers together.
    static func featureError(_ features: [Tensor], _ targets: [Tensor]) -> Double {
        var num = 0.0, den = 0.0
        for (f, t) in zip(features, targets) {
            for i in 0..<t.count { let d = Double(f.data[i] - t.data[i]); num += d * d; den += Double(t.data[i]) * Double(t.data[i]) }
        }
        return (num / Swift.max(den, 1e-30)).squareRoot()
    }

    /// The data term summed over layers, as the prior defines it.
    static func dataTerm(_ features: [Tensor], _ targets: [Tensor], prior: PriorSpec) -> Tensor {
        let behaviour = prior.behaviour
        let terms = zip(features, targets).map { behaviour.inversionDataTerm($0, $1, prior) }
        return terms.dropFirst().reduce(terms[0], +)
    }

    /// Inverts `x0` (an RGB tensor in 0...1 of the working size).
    static func run(probe: Probe, target x0: Tensor, spec: RunSpec, objective: InversionObjective, control: RunControl,
                    resume: Checkpoint?) throws -> (RunRecordOfLoop, ResultMetrics) {
        let h = x0.shape[2], w = x0.shape[3]
        let layers = objective.layers
        let targets = try GradMode.withoutGrad { try probe.features(x0, layers: layers) }
        let stride = try layers.map { try probe.stride(of: $0, height: h, width: w) }.max() ?? 1
        let p = try spec.prior.behaviour.parametrization(spec.prior, height: h, width: w, seed: spec.seed,
                                                         jitter: spec.prior.behaviour.inversionJitter(stride: stride), iterations: spec.iterations)
        let start = try resume?.restore(into: p) ?? 0
        let startError = try resume?.startValue
            ?? GradMode.withoutGrad { featureError(try probe.features(p.cleanImage(), layers: layers), targets) }
        let record = try optimize(p, iterations: spec.iterations, startIteration: start, curve: resume?.curve ?? [],
                                  secondsBefore: resume?.seconds ?? 0, startValue: startError, control: control) { x in
            let features = try probe.features(x, layers: layers)
            return (dataTerm(features, targets, prior: spec.prior), ["feature_error": featureError(features, targets)])
        }
        let final = try GradMode.withoutGrad { try probe.features(record.image, layers: layers) }
        var m = ResultMetrics(name: "image", ending: record.ending, message: record.message, iterations: record.iterations,
                              seconds: record.seconds)
        m.featureError = featureError(final, targets)
        m.featureErrorStart = startError
        m.psnr = ImageMetrics.psnr(record.image, x0)
        m.ssim = ImageMetrics.ssim(record.image, x0)
        if probe.hasClassifierHead(height: h, width: w) { m.top1Match = try probe.top1(record.image) == probe.top1(x0) }
        return (record, m)
    }
}

public enum VisualizeError: Error, CustomStringConvertible, Equatable {
    case invalid(String)
    case unknownClass(String)
    case unitOutOfRange(layer: String, unit: Int, channels: Int)
    case positionOutOfRange(layer: String, y: Int, x: Int, height: Int, width: Int)
    case checkpoint(String)
    case io(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalid(let s): return s
        case .unknownClass(let s): return "no class named '\(s)' in the labels"
        case let .unitOutOfRange(layer, unit, channels): return "unit \(unit) is out of range: layer \(layer) has \(channels) channels (0-\(channels - 1))"
        case let .positionOutOfRange(layer, y, x, h, w): return "position \(y),\(x) is outside layer \(layer)'s \(h)x\(w) map"
        case .checkpoint(let s): return "checkpoint: \(s)"
        case let .io(path, reason): return "cannot write \(path): \(reason)"
        }
    }
}
