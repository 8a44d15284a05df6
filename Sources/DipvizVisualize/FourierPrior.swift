import DipvizONNX
import DipvizTensor
import Foundation

/// The decorrelated Fourier parameterisation of Olah, Mordvintsev & Schubert, "Feature
/// Visualization" (Distill 2017, section "Preconditioning and parameterization"), as in Lucid
/// (lucid/optvis/param/spatial.py `fft_image`, color.py `to_valid_rgb`):
///
///   image = sigmoid(M · irfft2(S ⊙ (a + i b)) / 4),
///
/// where a, b are the learned real and imaginary coefficients (initialised N(0, 0.01²)),
/// S[ky, kx] = sqrt(H W) / max(f, 1 / max(H, W)) with f = sqrt(fy² + fx²) the frequency in
/// cycles per pixel (the 1/f spectrum of natural images, so each coefficient's step changes the
/// image by a similar amount: gradient descent in a whitened basis), irfft2 divides by H W, and
/// M is the square root of ImageNet's colour correlation (Lucid's `color_correlation_svd_sqrt`)
/// over its largest column norm, which decorrelates the colour channels. The sigmoid keeps
/// pixels in 0...1. Optimised by Adam at 0.05 (Lucid's `render_vis`).
final class FourierParametrization: ImageParametrization {
    /// Lucid's `color_correlation_svd_sqrt`: rows are output R, G, B.
    static let colourCorrelation: [[Float]] = [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]]
    static let initialDeviation: Float = 0.01
    static let defaultLearningRate: Float = 0.05

    let real: Tensor, imag: Tensor
    let scale: Tensor
    let adam: Adam
    let height: Int, width: Int
    let seed: UInt64
    let jitter: Int

    init(height: Int, width: Int, seed: UInt64, learningRate: Float, jitter: Int = 0) {
        self.height = height; self.width = width; self.seed = seed; self.jitter = jitter
        let wf = RealDFT2D.frequencyColumns(width: width)
        var rng = SeededGenerator(seed: seed)
        real = Tensor.normal([3, height, wf], std: Self.initialDeviation, generator: &rng)
        imag = Tensor.normal([3, height, wf], std: Self.initialDeviation, generator: &rng)
        real.requiresGrad = true
        imag.requiresGrad = true
        scale = Self.spectrumScale(height: height, width: width)
        adam = Adam(parameters: [real, imag], learningRate: learningRate)
    }

    /// S[ky, kx] (shape [1, H, W/2+1]): sqrt(H W) / max(f, 1 / max(H, W)), f in cycles per pixel.
    static func spectrumScale(height h: Int, width w: Int) -> Tensor {
        let wf = RealDFT2D.frequencyColumns(width: w)
        // numpy's fftfreq: k / n for k < n / 2, (k - n) / n above; only |f| matters.
        func frequency(_ k: Int, _ n: Int) -> Float { Float(k <= n / 2 ? k : k - n) / Float(n) }
        let floor = 1 / Float(Swift.max(h, w)), norm = Float(h * w).squareRoot()
        var values: [Float] = []
        for ky in 0..<h {
            for kx in 0..<wf {
                let fy = frequency(ky, h), fx = frequency(kx, w)
                values.append(norm / Swift.max((fy * fy + fx * fx).squareRoot(), floor))
            }
        }
        return Tensor(shape: [1, h, wf], scalars: values)
    }

    /// M: the colour correlation's square root over its largest column norm.
    static var colourMatrix: Tensor {
        let c = colourCorrelation
        let largest = (0..<3).map { j in (0..<3).map { c[$0][j] * c[$0][j] }.reduce(0, +).squareRoot() }.max()!
        return Tensor(shape: [3, 3], scalars: c.flatMap { $0 }.map { $0 / largest })
    }

    /// The image of coefficients (a, b), before jitter.
    static func rgb(real: Tensor, imag: Tensor, scale: Tensor, height h: Int, width w: Int) -> Tensor {
        let planes = RealDFT2D.inverse(real: real * scale, imag: imag * scale, width: w)
        let decorrelated = colourMatrix.matmul(planes.reshaped([3, h * w]).scaled(by: 0.25))
        return decorrelated.reshaped([1, 3, h, w]).sigmoid()
    }

    /// The coefficients whose image is `image` ([1, 3, H, W] in 0...1; values within 1e-4 of 0 or
    /// 1 are moved inside, where the sigmoid can reach them): the parameterisation's inverse,
    /// used to start from a picture and to test the forward map.
    static func coefficients(for image: Tensor) -> (real: Tensor, imag: Tensor) {
        let (_, _, h, w) = (image.shape[0], image.shape[1], image.shape[2], image.shape[3])
        let logits = Tensor(zeros: [3, h * w])
        for i in 0..<logits.count {
            let p = Swift.min(Swift.max(image.data[i], 1e-4), 1 - 1e-4)
            logits.data[i] = 4 * Foundation.log(p / (1 - p))
        }
        let planes = inverse3x3(colourMatrix).matmul(logits).reshaped([3, h, w])
        let (re, im) = RealDFT2D.forward(planes)
        let s = spectrumScale(height: h, width: w)
        return (GradMode.withoutGrad { re / s }, GradMode.withoutGrad { im / s })
    }

    static func inverse3x3(_ m: Tensor) -> Tensor {
        let a = (0..<9).map { Double(m.data[$0]) }
        func e(_ r: Int, _ c: Int) -> Double { a[r * 3 + c] }
        let det = e(0, 0) * (e(1, 1) * e(2, 2) - e(1, 2) * e(2, 1)) - e(0, 1) * (e(1, 0) * e(2, 2) - e(1, 2) * e(2, 0))
            + e(0, 2) * (e(1, 0) * e(2, 1) - e(1, 1) * e(2, 0))
        var inv = [Float](repeating: 0, count: 9)
        for r in 0..<3 {
            for c in 0..<3 {
                // Cofactor of (c, r) over the determinant (the adjugate's transpose).
                let r1 = (c + 1) % 3, r2 = (c + 2) % 3, c1 = (r + 1) % 3, c2 = (r + 2) % 3
                inv[r * 3 + c] = Float((e(r1, c1) * e(r2, c2) - e(r1, c2) * e(r2, c1)) / det)
            }
        }
        return Tensor(shape: [3, 3], scalars: inv)
    }

    func image(iteration t: Int) -> Tensor {
        var x = Self.rgb(real: real, imag: imag, scale: scale, height: height, width: width)
        if jitter > 0 { var g = iterationGenerator(seed: seed, iteration: t, stream: 2); x = jittered(x, amount: jitter, generator: &g) }
        return x
    }

    func cleanImage() -> Tensor { GradMode.withoutGrad { Self.rgb(real: real, imag: imag, scale: scale, height: height, width: width) } }
    func regularizer(iteration t: Int) -> Tensor? { nil }
    func zeroGrad() { adam.zeroGrad() }
    func step(iteration t: Int) { adam.step() }
    var state: [Tensor] { [real, imag] + adam.firstMoments + adam.secondMoments }
    var stepCount: Int { adam.stepCount }
    func restore(step: Int) { adam.restore(step: step, first: adam.firstMoments, second: adam.secondMoments) }
}

/// `--prior fft`: the Fourier parameterisation above, Adam's rate settable with --lr; no
/// regulariser besides the parameterisation (and, for maximisation, the transforms).
struct FourierBehaviour: PriorBehaviour {
    func settings(for request: RunRequest, objective: Objective, size: Int, network: ONNXNetwork) throws -> PriorSpec {
        if request.dataWeight != nil {
            throw RunSpecError.invalid(field: "data-weight", message: "the data weight C applies to the tv and pixel priors only")
        }
        if request.preset != nil { throw RunSpecError.invalid(field: "preset", message: "generator presets apply to --prior dip only") }
        return PriorSpec(kind: .fft, learningRate: request.learningRate ?? FourierParametrization.defaultLearningRate)
    }
    /// Lucid's default number of steps (render_vis thresholds=(512,)).
    func defaultIterations(_ spec: PriorSpec) -> Int { 512 }
    func validate(_ spec: PriorSpec) throws {
        guard let lr = spec.learningRate else { throw RunSpecError.invalid(field: "prior", message: "the fft prior needs a learning rate") }
        guard lr.isFinite, lr > 0 else { throw RunSpecError.invalid(field: "lr", message: "\(lr) is not valid; give a finite rate above 0") }
        guard spec.generator == nil, spec.tv == nil else {
            throw RunSpecError.invalid(field: "prior", message: "the fft prior takes no generator or tv settings")
        }
    }
    func commandArguments(_ spec: PriorSpec, standardPreset: String, size: Int) -> [String]? {
        spec.learningRate.map { ["--lr", "\($0)"] }
    }
    func parametrization(_ spec: PriorSpec, height: Int, width: Int, seed: UInt64, jitter: Int, iterations: Int) throws -> ImageParametrization {
        FourierParametrization(height: height, width: width, seed: seed,
                               learningRate: spec.learningRate ?? FourierParametrization.defaultLearningRate, jitter: jitter)
    }
    /// Mahendran & Vedaldi's normalised error ||Phi - Phi0||² / ||Phi0||², free of the layer's scale.
    func inversionDataTerm(_ feature: Tensor, _ target: Tensor, _ spec: PriorSpec) -> Tensor {
        let norm = Swift.max(target.scalars.reduce(Float(0)) { $0 + $1 * $1 }, 1e-12)
        return feature.mseLoss(target).scaled(by: Float(target.count) / norm)
    }
    func activationWeight(_ spec: PriorSpec) -> Float { 1 }
    func inversionJitter(stride: Int) -> Int { stride / 4 }
    /// Lucid's class objectives read the logits (its pre-softmax layer).
    var defaultClassScore: ClassScore { .logit }
    /// Like tv, a step is the classifier's passes.
    var offersBF16: Bool { true }
}
