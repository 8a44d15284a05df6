import DipvizONNX
import DipvizPrior
import DipvizTensor
import Foundation

/// The three ways to search for an image.
public enum PriorKind: String, Codable, Sendable, CaseIterable {
    /// Optimise the weights of an untrained generator (Deep Image Prior).
    case dip
    /// Optimise pixels with Mahendran & Vedaldi's alpha-norm and total-variation regularisers.
    case tv
    /// Optimise pixels with no regulariser (for reference).
    case pixel
}

/// What differs between priors, in one place: how the image is parametrised, how strongly
/// the data term counts, and the defaults. Runs never test `prior == .dip`; they ask this.
protocol PriorBehaviour: Sendable {
    /// The prior's settings for a request, every default resolved.
    func settings(for request: RunRequest, objective: Objective, size: Int, network: ONNXNetwork) throws -> PriorSpec
    func defaultIterations(_ spec: PriorSpec) -> Int
    /// Checks the prior's fields (finite, positive, present where needed).
    func validate(_ spec: PriorSpec) throws
    /// The command-line flags that set these settings, or nil when flags cannot express them.
    func commandArguments(_ spec: PriorSpec, standardPreset: String, size: Int) -> [String]?
    /// The optimised image (its state is what checkpoints hold).
    func parametrization(_ spec: PriorSpec, height: Int, width: Int, seed: UInt64, jitter: Int, iterations: Int) throws -> ImageParametrization
    /// The data term of an inversion for one layer, given the feature and its target.
    func inversionDataTerm(_ feature: Tensor, _ target: Tensor, _ spec: PriorSpec) -> Tensor
    /// Scale of a maximisation's activation term against the prior's regulariser.
    func activationWeight(_ spec: PriorSpec) -> Float
    /// Jitter of an inversion at a layer of `stride` input pixels.
    func inversionJitter(stride: Int) -> Int
}

extension PriorKind {
    var behaviour: any PriorBehaviour {
        switch self {
        case .dip: return DIPBehaviour()
        case .tv: return PixelBehaviour(regularized: true)
        case .pixel: return PixelBehaviour(regularized: false)
        }
    }
}

/// The generator is the only regulariser: MSE per layer as in the paper's code, no jitter.
struct DIPBehaviour: PriorBehaviour {
    func settings(for request: RunRequest, objective: Objective, size: Int, network: ONNXNetwork) throws -> PriorSpec {
        if request.dataWeight != nil {
            throw RunSpecError.invalid(field: "data-weight", message: "the data weight C applies to the tv and pixel priors only")
        }
        let presetName = request.preset ?? (objective.kindName == "inversion" ? "inversion" : "maximization")
        guard let preset = PriorConfiguration.presets[presetName] else {
            throw RunSpecError.invalid(field: "preset", message: "unknown preset \(presetName); valid: \(PriorConfiguration.presets.keys.sorted().joined(separator: ", "))")
        }
        return PriorSpec(kind: .dip, generator: preset.fitted(toImageSize: size),
                         learningRate: request.learningRate ?? RunSpec.defaultLearningRate(objective, network: network))
    }
    func defaultIterations(_ spec: PriorSpec) -> Int { 3100 }
    func validate(_ spec: PriorSpec) throws {
        guard let generator = spec.generator, let lr = spec.learningRate else {
            throw RunSpecError.invalid(field: "prior", message: "the dip prior needs a generator and a learning rate")
        }
        guard lr.isFinite, lr > 0 else { throw RunSpecError.invalid(field: "lr", message: "\(lr) is not valid; give a finite rate above 0") }
        do { try generator.validate() } catch { throw RunSpecError.invalid(field: "generator", message: "\(error)") }
        guard spec.tv == nil else { throw RunSpecError.invalid(field: "prior", message: "the dip prior takes no tv settings") }
    }
    func commandArguments(_ spec: PriorSpec, standardPreset: String, size: Int) -> [String]? {
        guard let generator = spec.generator, let lr = spec.learningRate else { return nil }
        var args: [String] = []
        if generator != PriorConfiguration.presets[standardPreset]?.fitted(toImageSize: size) {
            guard let name = PriorConfiguration.presets.keys.sorted().first(where: {
                PriorConfiguration.presets[$0]?.fitted(toImageSize: size) == generator
            }) else { return nil }
            args += ["--preset", name]
        }
        return args + ["--lr", "\(lr)"]
    }
    func parametrization(_ spec: PriorSpec, height: Int, width: Int, seed: UInt64, jitter: Int, iterations: Int) throws -> ImageParametrization {
        let dip = try DeepImagePrior(spec.generator ?? .inversion, height: height, width: width, seed: seed)
        return DIPParametrization(prior: dip, learningRate: spec.learningRate ?? 1e-3, seed: seed, jitter: jitter)
    }
    func inversionDataTerm(_ feature: Tensor, _ target: Tensor, _ spec: PriorSpec) -> Tensor { feature.mseLoss(target) }
    func activationWeight(_ spec: PriorSpec) -> Float { 1 }
    func inversionJitter(stride: Int) -> Int { 0 }
}

/// Pixels with Mahendran & Vedaldi's data term C / ||Phi0||^2 ||Phi - Phi0||^2, with (tv) or
/// without (pixel) their regularisers, jittered by a quarter of the layer's stride (tv).
struct PixelBehaviour: PriorBehaviour {
    let regularized: Bool
    func settings(for request: RunRequest, objective: Objective, size: Int, network: ONNXNetwork) throws -> PriorSpec {
        let name = regularized ? "tv" : "pixel"
        if request.preset != nil { throw RunSpecError.invalid(field: "preset", message: "generator presets apply to --prior dip only") }
        if request.learningRate != nil {
            throw RunSpecError.invalid(field: "lr", message: "--lr sets the dip prior's Adam rate; the \(name) prior's step follows its schedule")
        }
        var tv = TVSettings()
        tv.dataWeight = request.dataWeight ?? RunSpec.defaultDataWeight(objective)
        return PriorSpec(kind: regularized ? .tv : .pixel, tv: tv)
    }
    func defaultIterations(_ spec: PriorSpec) -> Int {
        let tv = spec.tv ?? TVSettings()
        return tv.jitterIterations + tv.settleIterations
    }
    func validate(_ spec: PriorSpec) throws {
        let name = regularized ? "tv" : "pixel"
        guard let tv = spec.tv else { throw RunSpecError.invalid(field: "prior", message: "the \(name) prior needs its tv settings") }
        guard spec.generator == nil, spec.learningRate == nil else {
            throw RunSpecError.invalid(field: "prior", message: "the \(name) prior takes no generator or learning rate")
        }
        for (field, v) in [("data-weight", tv.dataWeight), ("tv.range", tv.range), ("tv.alpha", tv.alpha), ("tv.beta", tv.beta), ("tv.step", tv.step)]
        where !(v.isFinite && v > 0) {
            throw RunSpecError.invalid(field: field, message: "\(v) is not valid; give a finite number above 0")
        }
        guard tv.momentum.isFinite, tv.momentum >= 0, tv.momentum < 1 else {
            throw RunSpecError.invalid(field: "tv.momentum", message: "\(tv.momentum); valid: 0 <= momentum < 1")
        }
        guard tv.jitterIterations >= 0, tv.settleIterations >= 0 else {
            throw RunSpecError.invalid(field: "tv", message: "iteration counts must not be negative")
        }
    }
    func commandArguments(_ spec: PriorSpec, standardPreset: String, size: Int) -> [String]? {
        guard var tv = spec.tv else { return nil }
        let weight = tv.dataWeight
        tv.dataWeight = TVSettings().dataWeight
        guard tv == TVSettings() else { return nil }
        return ["--data-weight", "\(weight)"]
    }
    func parametrization(_ spec: PriorSpec, height: Int, width: Int, seed: UInt64, jitter: Int, iterations: Int) throws -> ImageParametrization {
        PixelParametrization(height: height, width: width, settings: spec.tv ?? TVSettings(), regularized: regularized,
                             jitter: jitter, seed: seed, iterations: iterations)
    }
    func inversionDataTerm(_ feature: Tensor, _ target: Tensor, _ spec: PriorSpec) -> Tensor {
        let norm = Swift.max(target.scalars.reduce(Float(0)) { $0 + $1 * $1 }, 1e-12)
        return feature.mseLoss(target).scaled(by: Float(target.count) * (spec.tv ?? TVSettings()).dataWeight / norm)
    }
    func activationWeight(_ spec: PriorSpec) -> Float { (spec.tv ?? TVSettings()).dataWeight }
    func inversionJitter(stride: Int) -> Int { regularized ? stride / 4 : 0 }
}

/// Mahendran & Vedaldi (IJCV 2016) settings, in Caffe pixel units (0..255, mean subtracted).
public struct TVSettings: Codable, Equatable, Sendable {
    enum CodingKeys: String, CodingKey {
        case range, alpha, beta, dataWeight = "data_weight", momentum, step
        case jitterIterations = "jitter_iterations", settleIterations = "settle_iterations"
    }

    /// Pixel range B; the alpha-norm bound is 2B.
    public var range: Float = 80
    public var alpha: Float = 6
    public var beta: Float = 2
    /// Weight C of the data term.
    public var dataWeight: Float = 1
    public var momentum: Float = 0.9
    /// Step in pixel units of the RMS-normalised gradient (the adaptive step).
    public var step: Float = 0.8
    /// Iterations with jitter, then iterations without it at a tenth of the step.
    public var jitterIterations = 300
    public var settleIterations = 50
    public init() {}

    public var tvScale: Float { range / 6.5 }
}

/// The ImageNet mean in 0..255 RGB: pixel variables are stored relative to it.
let caffeMean: [Float] = [0.485 * 255, 0.456 * 255, 0.406 * 255]

/// What the optimiser changes, and how it becomes an RGB image in 0...1.
public protocol ImageParametrization: AnyObject {
    /// The (possibly perturbed, jittered) image the objective sees at iteration t.
    func image(iteration t: Int) -> Tensor
    /// The current result, without perturbation or jitter.
    func cleanImage() -> Tensor
    /// Regularisation added to the objective (nil for none).
    func regularizer(iteration t: Int) -> Tensor?
    func zeroGrad()
    func step(iteration t: Int)
    /// Everything needed to resume.
    var state: [Tensor] { get }
    var stepCount: Int { get }
    func restore(step: Int)
}

/// Random shifts of up to `amount` pixels (reflection at the border), differentiable.
func jittered(_ x: Tensor, amount: Int, generator: inout SeededGenerator) -> Tensor {
    guard amount > 0 else { return x }
    let h = x.shape[2], w = x.shape[3]
    let a = Swift.min(amount, h - 1, w - 1)
    guard a > 0 else { return x }
    let dy = Int(generator.next() % UInt64(2 * a + 1)), dx = Int(generator.next() % UInt64(2 * a + 1))
    return x.padded(top: a, bottom: a, left: a, right: a, mode: .reflect).cropped(top: dy, left: dx, height: h, width: w)
}

/// Per-iteration generators, so a resumed run draws the same noise as an uninterrupted one.
func iterationGenerator(seed: UInt64, iteration: Int, stream: UInt64) -> SeededGenerator {
    SeededGenerator(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(iteration) &* 0xBF58_476D_1CE4_E5B9 &+ stream)
}

final class DIPParametrization: AdamParametrization {
    let prior: DeepImagePrior
    let adam: Adam
    let seed: UInt64
    let jitter: Int

    init(prior: DeepImagePrior, learningRate: Float, seed: UInt64, jitter: Int = 0) {
        self.prior = prior
        self.seed = seed
        self.jitter = jitter
        adam = Adam(parameters: prior.parameters, learningRate: learningRate)
    }

    func image(iteration t: Int) -> Tensor {
        var noise = iterationGenerator(seed: seed, iteration: t, stream: 1)
        var x = prior.image(noiseGenerator: &noise)
        if jitter > 0 { var g = iterationGenerator(seed: seed, iteration: t, stream: 2); x = jittered(x, amount: jitter, generator: &g) }
        return x
    }

    func cleanImage() -> Tensor { GradMode.withoutGrad { prior.cleanImage() } }
    func regularizer(iteration t: Int) -> Tensor? { nil }
    func step(iteration t: Int) { adam.step() }
    var state: [Tensor] { prior.parameters + prior.network.buffers + adam.firstMoments + adam.secondMoments }
}

/// A parametrisation whose variables Adam moves: its gradients, step count and resume.
protocol AdamParametrization: ImageParametrization {
    var adam: Adam { get }
}

extension AdamParametrization {
    func zeroGrad() { adam.zeroGrad() }
    var stepCount: Int { adam.stepCount }
    func restore(step: Int) { adam.restore(step: step, first: adam.firstMoments, second: adam.secondMoments) }
}

/// Pixels in Caffe units (0..255 RGB minus the ImageNet mean), optimised with momentum and an
/// RMS-normalised step; with the TV prior, the alpha-norm and TV^beta regularisers of
/// Mahendran & Vedaldi and projection onto the 2B ball per pixel.
final class PixelParametrization: ImageParametrization {
    let u: Tensor
    let velocity: Tensor
    let settings: TVSettings
    let regularized: Bool
    let jitter: Int
    let seed: UInt64
    let totalIterations: Int
    private(set) var stepCount = 0

    init(height: Int, width: Int, settings: TVSettings, regularized: Bool, jitter: Int, seed: UInt64, iterations: Int) {
        var rng = SeededGenerator(seed: seed)
        // A small random start, as in the reference code.
        u = Tensor.normal([1, 3, height, width], std: settings.range / 20, generator: &rng)
        u.requiresGrad = true
        velocity = Tensor(zeros: u.shape)
        self.settings = settings
        self.regularized = regularized
        self.jitter = jitter
        self.seed = seed
        totalIterations = iterations
    }

    var jitterUntil: Int { Swift.max(0, totalIterations - settings.settleIterations) }

    func rgb(_ v: Tensor) -> Tensor {
        (v + Tensor(shape: [1, 3, 1, 1], scalars: caffeMean)).scaled(by: 1 / 255)
    }

    func image(iteration t: Int) -> Tensor {
        var x = rgb(u)
        if jitter > 0 && t < jitterUntil {
            var g = iterationGenerator(seed: seed, iteration: t, stream: 2)
            x = jittered(x, amount: jitter, generator: &g)
        }
        return x
    }

    func cleanImage() -> Tensor { GradMode.withoutGrad { rgb(u) } }

    func regularizer(iteration t: Int) -> Tensor? {
        guard regularized else { return nil }
        let hw = Float(u.shape[2] * u.shape[3])
        let lambdaAlpha = 1 / (hw * powf(settings.range, settings.alpha))
        let lambdaBeta = 1 / (hw * powf(settings.tvScale, settings.beta))
        return u.powerSum(p: settings.alpha).scaled(by: lambdaAlpha) + u.totalVariation(beta: settings.beta).scaled(by: lambdaBeta)
    }

    func zeroGrad() { u.grad = nil }

    func step(iteration t: Int) {
        guard let g = u.grad else { return }
        stepCount += 1
        var squares = 0.0
        for i in 0..<g.count { squares += Double(g.data[i]) * Double(g.data[i]) }
        let rms = Float((squares / Double(g.count)).squareRoot()) + 1e-12
        let eta = (t < jitterUntil ? settings.step : settings.step / 10) / rms
        let mu = settings.momentum
        let v = velocity.data, x = u.data, gd = g.data
        for i in 0..<u.count { v[i] = mu * v[i] - eta * gd[i]; x[i] += v[i] }
        // Projection onto the ball of radius 2B per pixel.
        let plane = u.shape[2] * u.shape[3], bound = 2 * settings.range
        for p in 0..<plane {
            let r = (x[p] * x[p] + x[plane + p] * x[plane + p] + x[2 * plane + p] * x[2 * plane + p]).squareRoot()
            if r > bound { let s = bound / r; x[p] *= s; x[plane + p] *= s; x[2 * plane + p] *= s }
        }
    }

    var state: [Tensor] { [u, velocity] }
    func restore(step: Int) { stepCount = step }
}
