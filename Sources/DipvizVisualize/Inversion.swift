import DipvizImage
import DipvizONNX
import DipvizPrior
import DipvizTensor
import Foundation

/// Feature inversion: find x with Phi_L(x) close to Phi_L(x0) for one or several layers.
public struct InversionSettings: Codable, Equatable, Sendable {
    public var layers: [String]
    public var prior: PriorKind
    /// Generator for the DIP prior (the `inversion` preset by default).
    public var generator: PriorConfiguration = .inversion
    public var iterations: Int
    public var learningRate: Float = 1e-3
    public var size: Int = 224
    public var seed: UInt64 = 0
    public var tv = TVSettings()

    public init(layers: [String], prior: PriorKind, iterations: Int? = nil, size: Int = 224, seed: UInt64 = 0) {
        self.layers = layers
        self.prior = prior
        self.size = size
        self.seed = seed
        self.iterations = iterations ?? (prior == .dip ? 3100 : tv.jitterIterations + tv.settleIterations)
    }
}

public struct InversionMetrics: Codable, Sendable {
    public var featureError: Double
    public var featureErrorStart: Double
    public var psnr: Double
    public var ssim: Double
    public var top1Match: Bool?
    public var iterations: Int
    public var seconds: Double
    public var seed: UInt64
    public var ending: RunEnding
    public var message: String?
    public var settings: InversionSettings
    public var model: String

    enum CodingKeys: String, CodingKey {
        case featureError = "feature_error", featureErrorStart = "feature_error_start", psnr, ssim, top1Match = "top1_match"
        case iterations, seconds, seed, ending, message, settings = "configuration", model
    }
}

public struct InversionResult {
    public var image: Tensor
    public var metrics: InversionMetrics
    public var curve: [CurvePoint]
}

public enum Inversion {
    /// ||Phi(x) - Phi0|| / ||Phi0|| over all target layers together.
    static func featureError(_ features: [Tensor], _ targets: [Tensor]) -> Double {
        var num = 0.0, den = 0.0
        for (f, t) in zip(features, targets) {
            for i in 0..<t.count { let d = Double(f.data[i] - t.data[i]); num += d * d; den += Double(t.data[i]) * Double(t.data[i]) }
        }
        return (num / Swift.max(den, 1e-30)).squareRoot()
    }

    /// The data term: MSE per layer for DIP (as the paper's code), C / ||Phi0||^2 ||Phi - Phi0||^2
    /// for the pixel priors (Mahendran & Vedaldi).
    public static func dataTerm(_ features: [Tensor], _ targets: [Tensor], settings: InversionSettings) -> Tensor {
        var total: Tensor? = nil
        for (f, t) in zip(features, targets) {
            let term: Tensor
            if settings.prior == .dip {
                term = f.mseLoss(t)
            } else {
                let norm = Swift.max(t.scalars.reduce(Float(0)) { $0 + $1 * $1 }, 1e-12)
                term = f.mseLoss(t).scaled(by: Float(t.count) * settings.tv.dataWeight / norm)
            }
            total = total.map { $0 + term } ?? term
        }
        return total!
    }

    /// Runs an inversion of `target` (an RGB tensor in 0...1 of the working size).
    public static func run(probe: Probe, target x0: Tensor, settings: InversionSettings, control: RunControl = RunControl(),
                           resume: Checkpoint? = nil, modelName: String = "") throws -> InversionResult {
        let h = x0.shape[2], w = x0.shape[3]
        guard !settings.layers.isEmpty else { throw VisualizeError.invalid("no layer to invert") }
        let targets = try GradMode.withoutGrad { try probe.features(x0, layers: settings.layers) }
        let stride = try settings.layers.map { try probe.stride(of: $0, height: h, width: w) }.max() ?? 1
        let parametrization = try makeParametrization(settings.prior, generator: settings.generator, learningRate: settings.learningRate,
                                                      tv: settings.tv, iterations: settings.iterations, height: h, width: w,
                                                      seed: settings.seed, jitter: settings.prior == .dip ? 0 : stride / 4)
        let start = try resume?.restore(into: parametrization) ?? 0
        let startError = try GradMode.withoutGrad { featureError(try probe.features(parametrization.cleanImage(), layers: settings.layers), targets) }
        let record = try optimize(parametrization, iterations: settings.iterations, startIteration: start, curve: resume?.curve ?? [],
                                  secondsBefore: resume?.seconds ?? 0, startError: resume?.startError ?? startError,
                                  control: control) { x in
            let features = try probe.features(x, layers: settings.layers)
            let loss = dataTerm(features, targets, settings: settings)
            return (loss, ["feature_error": featureError(features, targets)])
        }
        let final = try GradMode.withoutGrad { try probe.features(record.image, layers: settings.layers) }
        var top1: Bool? = nil
        if probe.hasClassifierHead(height: h, width: w) { top1 = try probe.top1(record.image) == probe.top1(x0) }
        let metrics = InversionMetrics(featureError: featureError(final, targets), featureErrorStart: resume?.startError ?? startError,
                                       psnr: ImageMetrics.psnr(record.image, x0), ssim: ImageMetrics.ssim(record.image, x0),
                                       top1Match: top1, iterations: record.iterations,
                                       seconds: (resume?.seconds ?? 0) + record.seconds, seed: settings.seed,
                                       ending: record.ending, message: record.message, settings: settings, model: modelName)
        return InversionResult(image: record.image, metrics: metrics, curve: record.curve)
    }

    public static func makeParametrization(_ prior: PriorKind, generator: PriorConfiguration, learningRate: Float, tv: TVSettings,
                                    iterations: Int, height: Int, width: Int, seed: UInt64, jitter: Int) throws -> ImageParametrization {
        switch prior {
        case .dip:
            let dip = try DeepImagePrior(generator, height: height, width: width, seed: seed)
            return DIPParametrization(prior: dip, learningRate: learningRate, seed: seed, jitter: jitter)
        case .tv, .pixel:
            return PixelParametrization(height: height, width: width, settings: tv, regularized: prior == .tv,
                                        jitter: prior == .tv ? jitter : 0, seed: seed, iterations: iterations)
        }
    }
}

public enum VisualizeError: Error, CustomStringConvertible, Equatable {
    case invalid(String)
    case unknownClass(String)
    case unitOutOfRange(layer: String, unit: Int, channels: Int)
    case positionOutOfRange(layer: String, y: Int, x: Int, height: Int, width: Int)
    case checkpoint(String)

    public var description: String {
        switch self {
        case .invalid(let s): return s
        case .unknownClass(let s): return "no class named '\(s)' in the labels"
        case let .unitOutOfRange(layer, unit, channels): return "unit \(unit) is out of range: layer \(layer) has \(channels) channels (0-\(channels - 1))"
        case let .positionOutOfRange(layer, y, x, h, w): return "position \(y),\(x) is outside layer \(layer)'s \(h)x\(w) map"
        case .checkpoint(let s): return "checkpoint: \(s)"
        }
    }
}
