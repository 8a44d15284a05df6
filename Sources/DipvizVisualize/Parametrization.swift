import DipvizONNX
import DipvizPrior
import DipvizTensor
import Foundation

/// The ways to search for an image.
public enum PriorKind: String, Codable, Sendable, CaseIterable {
    /// Optimise the weights of an untrained generator (Deep Image Prior).
    case dip
    /// Optimise pixels with Mahendran & Vedaldi's alpha-norm and total-variation regularisers.
    case tv
    /// Optimise pixels with no regulariser (for reference).
    case pixel
    /// Optimise decorrelated Fourier coefficients (Olah et al., Distill 2017; FourierPrior.swift).
    case fft
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
    /// The class score a class target raises unless one is named.
    var defaultClassScore: ClassScore { get }
    /// Whether `--precision bf16` is offered: where the classifier's convolutions are most of a
    /// step, and the final feature error was measured within 2% of fp32's (README).
    var offersBF16: Bool { get }
}

extension PriorKind {
    /// The class score `--class` and gallery class lists raise under this prior unless one is named.
    public var defaultClassScore: ClassScore { behaviour.defaultClassScore }

    var behaviour: any PriorBehaviour {
        switch self {
        case .dip: return DIPBehaviour()
        case .tv: return PixelBehaviour(regularized: true)
        case .pixel: return PixelBehaviour(regularized: false)
        case .fft: return FourierBehaviour()
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
    /// A generator driven up a logit finds features that raise rival classes as much (SqueezeNet,
    /// 300 iterations: tree frog lost to tailed frog, lemon to tennis ball, black swan to
    /// spoonbill); the log-probability pushes the rivals down as well.
    var defaultClassScore: ClassScore { .logProbability }
    /// The generator's trainable convolutions dominate a step (bf16 measured 0.99 of fp32's
    /// time), and two seeds of an AlexNet conv5 inversion ended +25% and -6% from fp32.
    var offersBF16: Bool { false }
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
    func defaultIterations(_ spec: PriorSpec) -> Int { (spec.tv ?? TVSettings()).iterations }
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
        guard RunSpec.iterationCounts.contains(tv.iterations) else {
            throw RunSpecError.invalid(field: "tv.iterations", message: "\(tv.iterations); valid: \(RunSpec.iterationCounts.lowerBound)...\(RunSpec.iterationCounts.upperBound)")
        }
        guard tv.jitterFraction.isFinite, tv.jitterFraction >= 0, tv.jitterFraction <= 1 else {
            throw RunSpecError.invalid(field: "tv.jitter_fraction", message: "\(tv.jitterFraction); valid: 0...1")
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
    /// Mahendran & Vedaldi maximise the class score before the softmax.
    var defaultClassScore: ClassScore { .logit }
    var offersBF16: Bool { true }
}

/// Mahendran & Vedaldi, "Visualizing deep convolutional neural networks using natural
/// pre-images" (IJCV 2016), in Caffe pixel units (0..255 RGB, ImageNet mean subtracted). The energy
/// (their regularised reconstruction objective, data term normalised by ||Phi0||^2) is
///   C / ||Phi0||^2 ||Phi(x) - Phi0||^2 + 1/(HW B^alpha) sum ||x(v)||^alpha + 1/(HW V^beta) TV_beta(x),
/// with V = B / 6.5, minimised by gradient descent with momentum on a jittered image, as in the paper.
///
/// Constants from the paper: alpha = 6, beta = 2, B = 80, V = B / 6.5, momentum 0.9, jitter of a
/// quarter of the layer's stride. The paper's per-layer C values were set for Caffe's AlexNet; on
/// torchvision weights (the ones dipviz ships) we use one rule instead: C = 100 at every layer of
/// every network. Because the data term is normalised by ||Phi0||^2 and the regularisers by HW,
/// both are of order one at the start for any layer and size, and C = 100 makes the data term
/// dominate by two orders of magnitude. Measured on samples/chelsea.png, AlexNet, 128 px, 500
/// iterations, C in {1, 30, 100, 300}: C = 1 leaves conv1 at feature error 0.64 (grey blur),
/// C = 300 lowers it further but costs PSNR at conv4..pool5; C = 100 gives 0.25 to 0.7 times the error of a
/// tuned PyTorch TV baseline, layer by layer (README, "How faithful are the pre-images").
/// The step and its schedule were measured the same way (step 0.8, 2, 4; constant with a final tenth,
/// cosine): a step of 2 pixel units on the RMS-normalised gradient, decayed to zero along a
/// half cosine, jitter for the first half of the run and none in the second, so the run ends on
/// the clean image whose features are measured.
public struct TVSettings: Codable, Equatable, Sendable {
    enum CodingKeys: String, CodingKey {
        case range, alpha, beta, dataWeight = "data_weight", momentum, step, iterations
        case jitterFraction = "jitter_fraction"
    }

    /// Pixel range B; the alpha-norm bound is 2B.
    public var range: Float = 80
    public var alpha: Float = 6
    public var beta: Float = 2
    /// Weight C of the data term (inversion; maximisation sets its own, `RunSpec.defaultDataWeight`).
    public var dataWeight: Float = TVSettings.inversionDataWeight
    public var momentum: Float = 0.9
    /// Initial step in pixel units of the RMS-normalised gradient (the adaptive step).
    public var step: Float = 2
    /// The full schedule: the default iteration count.
    public var iterations = 500
    /// Share of the run (from the start) with jitter.
    public var jitterFraction: Float = 0.5
    public init() {}

    /// C of an inversion: the rule above, the same at every layer.
    public static let inversionDataWeight: Float = 100

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

    /// Jitter stops after this iteration: the rest of the run refines the clean image.
    var jitterUntil: Int { Int((Float(totalIterations) * settings.jitterFraction).rounded()) }

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

    /// The step at iteration t: `settings.step` decayed to zero along a half cosine over the run.
    func stepSize(iteration t: Int) -> Float {
        let progress = Float(t) / Float(Swift.max(totalIterations, 1))
        return settings.step * 0.5 * (1 + cosf(Float.pi * progress))
    }

    func step(iteration t: Int) {
        guard let g = u.grad else { return }
        stepCount += 1
        var squares = 0.0
        for i in 0..<g.count { squares += Double(g.data[i]) * Double(g.data[i]) }
        let rms = Float((squares / Double(g.count)).squareRoot()) + 1e-12
        let eta = stepSize(iteration: t) / rms
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
