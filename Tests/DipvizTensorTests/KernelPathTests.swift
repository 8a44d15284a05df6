import DipvizTensor
import Foundation
import Testing

/// Every vector-kernel level this processor runs must compute what the portable level does,
/// and the Winograd path what the definition of convolution says.
@Suite("Kernel levels and fast convolution paths")
struct KernelPathTests {
    /// Largest |a - b| relative to the largest |b| (at least 1).
    static func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        let scale = max(1, b.map { abs($0) }.max() ?? 1)
        return (zip(a, b).map { abs($0 - $1) }.max() ?? .infinity) / scale
    }

    /// Values and gradients of layers that reach every kernel of CDipvizKernels: the direct
    /// convolution (few output channels; forward, input and weight gradients), a strided one
    /// (space-to-depth), Winograd (constant 3x3 weights, forward and input gradient) and the
    /// statistics of batch normalisation.
    static func workload() -> [[Float]] {
        var rng = SeededGenerator(seed: 11)
        let x = Tensor.uniform([1, 16, 30, 27], low: -1, high: 1, generator: &rng)
        x.requiresGrad = true
        let wDirect = Tensor.uniform([8, 16, 5, 5], low: -0.2, high: 0.2, generator: &rng)
        wDirect.requiresGrad = true
        let wStrided = Tensor.uniform([6, 16, 4, 4], low: -0.2, high: 0.2, generator: &rng)
        wStrided.requiresGrad = true
        let wWinograd = Tensor.uniform([20, 16, 3, 3], low: -0.2, high: 0.2, generator: &rng)  // a constant
        let bias = Tensor.uniform([20], low: -0.2, high: 0.2, generator: &rng)
        let gamma = Tensor(shape: [16], repeating: 1.5, requiresGrad: true)
        let beta = Tensor(zeros: [16], requiresGrad: true)
        let normed = x.batchNorm(gamma: gamma, beta: beta, runningMean: Tensor(zeros: [16]),
                                 runningVar: Tensor(shape: [16], repeating: 1), training: true, momentum: 0.1)
        let a = normed.conv2d(weight: wDirect, options: Conv2dOptions(padding: 2))
        let b = x.conv2d(weight: wStrided, options: Conv2dOptions(stride: 2, padding: 1))
        let c = normed.conv2d(weight: wWinograd, bias: bias, options: Conv2dOptions(padding: 1))
        var projection = SeededGenerator(seed: 12)
        let loss = (a * Tensor.uniform(a.shape, low: -1, high: 1, generator: &projection)).sum()
            + (b * Tensor.uniform(b.shape, low: -1, high: 1, generator: &projection)).sum()
            + (c * Tensor.uniform(c.shape, low: -1, high: 1, generator: &projection)).sum()
        loss.backward()
        return [a.scalars, b.scalars, c.scalars, x.grad!.scalars, wDirect.grad!.scalars, wStrided.grad!.scalars,
                gamma.grad!.scalars]
    }

    @Test func everySupportedLevelMatchesThePortableOne() {
        let levels = VectorKernels.supported()
        #expect(levels.first == .portable)
        let reference = VectorKernels.withPath(.portable) { Self.workload() }
        for level in levels where level != .portable {
            let result = VectorKernels.withPath(level) { Self.workload() }
            for (i, (r, p)) in zip(result, reference).enumerated() {
                let error = Self.relativeError(r, p)
                #expect(error < 1e-4, "\(level) output \(i): relative error \(error) against portable")
            }
        }
    }

    /// The x86-64 levels the processor reports are the ones offered.
    @Test func levelsFollowTheProcessor() {
        let cpu = CPUFeatures.current
        let levels = VectorKernels.supported(on: cpu)
        #if arch(x86_64)
        #expect(levels.contains(.avx2) == (cpu.avx2 && cpu.fma))
        #expect(levels.contains(.avx512) == (cpu.avx512f && cpu.avx512bw && cpu.avx512dq && cpu.avx512vl && cpu.osSavesAVX512))
        #else
        #expect(levels == [.portable])
        #endif
        var bare = CPUFeatures()
        bare.isX86 = true
        #expect(VectorKernels.supported(on: bare) == [.portable])
    }

    @Test func environmentCanOnlyLowerTheLevel() {
        var cpu = CPUFeatures()
        cpu.isX86 = true
        cpu.avx2 = true; cpu.fma = true
        #if arch(x86_64)
        #expect(VectorKernels.choose(cpu: cpu, requested: nil) == (.avx2, nil))
        #expect(VectorKernels.choose(cpu: cpu, requested: "portable") == (.portable, nil))
        #expect(VectorKernels.choose(cpu: cpu, requested: "AVX2") == (.avx2, nil))
        let higher = VectorKernels.choose(cpu: cpu, requested: "avx512")
        #expect(higher.path == .avx2 && higher.warning?.contains("not supported") == true)
        #endif
        let unknown = VectorKernels.choose(cpu: cpu, requested: "sse9")
        #expect(unknown.warning?.contains("portable, avx2, avx512") == true)
    }

    /// Winograd F(4x4, 3x3) against the literal sum, on sizes with ragged tiles, several bands
    /// and asymmetric padding; then its input gradient, with a constant and with a trainable
    /// weight (transformed on every call from 32x32 outputs), and the trainable weight's gradient.
    /// Bands of up to 64 tiles use the packed products, wider ones OpenBLAS.
    @Test(arguments: [(26, 29, 1, 1, 1), (32, 32, 1, 1, 1), (41, 24, 0, 2, 1), (33, 33, 1, 0, 2)])
    func winogradMatchesTheDefinition(height: Int, width: Int, padTop: Int, padLeft: Int, groups: Int) {
        var rng = SeededGenerator(seed: 21)
        let x = Tensor.uniform([1, 32, height, width], low: -1, high: 1, generator: &rng)
        let w = Tensor.uniform([32, 32 / groups, 3, 3], low: -0.2, high: 0.2, generator: &rng)
        let b = Tensor.uniform([32], low: -0.5, high: 0.5, generator: &rng)
        let o = Conv2dOptions(strides: (1, 1), pads: (padTop, padLeft, 1, 1), groups: groups)
        let literal = groupedLiteral(x, w, b, o)
        let fast = GradMode.withoutGrad { x.conv2d(weight: w, bias: b, options: o) }
        #expect(fast.shape == literal.shape)
        let error = Self.relativeError(fast.scalars, literal.scalars)
        #expect(error < 2e-5, "forward relative error \(error)")

        x.requiresGrad = true
        let seed = Tensor.uniform(literal.shape, low: -1, high: 1, generator: &rng)
        let (literalGx, literalGw) = literalConvolutionGradients(x, w, seed, o)
        x.conv2d(weight: w, bias: b, options: o).backward(seed: seed)
        let gradientError = Self.relativeError(x.grad!.scalars, literalGx.scalars)
        #expect(gradientError < 2e-5, "input gradient relative error \(gradientError)")

        x.grad = nil
        let trainable = w.detached()
        trainable.requiresGrad = true
        let y = x.conv2d(weight: trainable, bias: b, options: o)
        #expect(Self.relativeError(y.scalars, literal.scalars) < 2e-5, "trainable forward")
        y.backward(seed: seed)
        let trainableError = Self.relativeError(x.grad!.scalars, literalGx.scalars)
        #expect(trainableError < 2e-5, "trainable weight: input gradient relative error \(trainableError)")
        let weightError = Self.relativeError(trainable.grad!.scalars, literalGw.scalars)
        #expect(weightError < 2e-5, "weight gradient relative error \(weightError)")
    }

    /// A widening unit-stride convolution (more outputs than inputs, neither direct nor
    /// Winograd) takes its input gradient through col2im: against the definition.
    @Test func wideningConvolutionGradientsMatchTheDefinition() {
        var rng = SeededGenerator(seed: 8)
        let x = Tensor.uniform([1, 56, 9, 7], low: -1, high: 1, generator: &rng)
        x.requiresGrad = true
        let w = Tensor.uniform([64, 56, 3, 3], low: -0.2, high: 0.2, generator: &rng)
        w.requiresGrad = true
        let o = Conv2dOptions(strides: (1, 1), pads: (1, 2, 1, 0))
        let y = x.conv2d(weight: w, options: o)
        let seed = Tensor.uniform(y.shape, low: -1, high: 1, generator: &rng)
        y.backward(seed: seed)
        let (gx, gw) = literalConvolutionGradients(x, w, seed, o)
        #expect(Self.relativeError(x.grad!.scalars, gx.scalars) < 2e-5)
        #expect(Self.relativeError(w.grad!.scalars, gw.scalars) < 2e-5)
    }

    /// Max pooling (four windows at a time inside the rows, one at a time at the borders) against
    /// the definition, values and gradient, with ties (the first element in window order wins).
    @Test(arguments: [(3, 2, 0, 1), (3, 2, 1, 1), (2, 1, 0, 2)])
    func maxPoolMatchesTheDefinition(kernel: Int, stride: Int, padding: Int, dilation: Int) {
        var rng = SeededGenerator(seed: 9)
        // Values on a coarse grid, so that windows hold ties.
        let values = Tensor.uniform([1, 3, 23, 27], low: -1, high: 1, generator: &rng).scalars.map { ($0 * 4).rounded() / 4 }
        let x = Tensor(shape: [1, 3, 23, 27], scalars: values)
        x.requiresGrad = true
        var o = Pool2dOptions(kernel: kernel, stride: stride, padding: padding)
        o.window.dilationH = dilation; o.window.dilationW = dilation
        let y = x.maxPool2d(o)
        let (oh, ow) = (y.shape[2], y.shape[3])
        let seed = Tensor.uniform(y.shape, low: -1, high: 1, generator: &rng)
        y.backward(seed: seed)
        var expected = [Float](), gradient = [Float](repeating: 0, count: x.count)
        let seeds = seed.scalars
        for p in 0..<3 { for oy in 0..<oh { for ox in 0..<ow {
            var best: Float = 0, at = -1
            for i in 0..<kernel { for j in 0..<kernel {
                let iy = oy * stride - padding + i * dilation, ix = ox * stride - padding + j * dilation
                guard iy >= 0, iy < 23, ix >= 0, ix < 27 else { continue }
                let k = (p * 23 + iy) * 27 + ix
                if at < 0 || values[k] > best { best = values[k]; at = k }
            } }
            expected.append(best)
            if at >= 0 { gradient[at] += seeds[(p * oh + oy) * ow + ox] }
        } } }
        #expect(y.scalars == expected)
        #expect(x.grad!.scalars == gradient)
    }

    /// AlexNet's conv1 geometry (11x11, stride 4, 64 outputs) runs as a 3x3 Winograd convolution
    /// over the input's 4x4 phases: values and input gradient against the definition, and the
    /// cached phase kernels follow a rewrite of the weight.
    @Test func stridedWinogradMatchesTheDefinition() {
        var rng = SeededGenerator(seed: 10)
        let x = Tensor.uniform([1, 3, 59, 61], low: -1, high: 1, generator: &rng)
        let w = Tensor.uniform([64, 3, 11, 11], low: -0.1, high: 0.1, generator: &rng)
        let b = Tensor.uniform([64], low: -0.5, high: 0.5, generator: &rng)
        let o = Conv2dOptions(stride: 4, padding: 2)
        Self.expectValuesAndInputGradientAsDefined(x, w, b, o, generator: &rng)
        w.copy(from: Tensor.uniform(w.shape, low: -0.1, high: 0.1, generator: &rng))
        let after = GradMode.withoutGrad { x.conv2d(weight: w, bias: b, options: o) }
        #expect(Self.relativeError(after.scalars, directConvolution(x, w, b, o).scalars) < 2e-5)
    }

    /// conv2d of x (made trainable here) against the literal sum: values, and the input gradient
    /// of a random upstream gradient.
    static func expectValuesAndInputGradientAsDefined(_ x: Tensor, _ w: Tensor, _ b: Tensor, _ o: Conv2dOptions,
                                                      generator rng: inout SeededGenerator) {
        x.requiresGrad = true
        let y = x.conv2d(weight: w, bias: b, options: o)
        #expect(relativeError(y.scalars, directConvolution(x, w, b, o).scalars) < 2e-5)
        let seed = Tensor.uniform(y.shape, low: -1, high: 1, generator: &rng)
        y.backward(seed: seed)
        let (gx, _) = literalConvolutionGradients(x, w, seed, o)
        #expect(relativeError(x.grad!.scalars, gx.scalars) < 2e-5)
    }

    /// A constant 5x5 kernel (AlexNet's conv2) runs as four 3x3 Winograd convolutions: values and
    /// input gradient against the definition, with paddings that crop the shifted inputs.
    @Test(arguments: [(2, 2, 2, 2), (0, 1, 2, 0), (3, 0, 1, 3)])
    func fiveByFiveMatchesTheDefinition(top: Int, left: Int, bottom: Int, right: Int) {
        var rng = SeededGenerator(seed: 12)
        let x = Tensor.uniform([1, 16, 17, 16], low: -1, high: 1, generator: &rng)
        let w = Tensor.uniform([20, 16, 5, 5], low: -0.1, high: 0.1, generator: &rng)
        let b = Tensor.uniform([20], low: -0.5, high: 0.5, generator: &rng)
        let o = Conv2dOptions(strides: (1, 1), pads: (top, left, bottom, right))
        Self.expectValuesAndInputGradientAsDefined(x, w, b, o, generator: &rng)
    }

    /// The ReLU in the convolution's epilogue against relu(the literal sum), on every path:
    /// Winograd (constant 3x3), direct (few outputs, trainable), im2col (widening), strided
    /// (space-to-depth Winograd, AlexNet's conv1) and 5x5 as four 3x3; values, input gradient,
    /// and the weight gradient where the weight is trainable.
    @Test(arguments: [("winograd", 32, 32, 3, 1, false), ("direct", 16, 8, 5, 1, true), ("im2col", 24, 40, 3, 1, true),
                      ("strided", 3, 64, 11, 4, false), ("five-by-five", 16, 20, 5, 1, false)])
    func fusedReLUMatchesTheDefinition(path: String, inputs: Int, outputs: Int, kernel: Int, stride: Int, trainable: Bool) {
        var rng = SeededGenerator(seed: 13)
        let x = Tensor.uniform([1, inputs, 31, 29], low: -1, high: 1, generator: &rng)
        let w = Tensor.uniform([outputs, inputs, kernel, kernel], low: -0.2, high: 0.2, generator: &rng)
        let b = Tensor.uniform([outputs], low: -0.3, high: 0.3, generator: &rng)
        let o = Conv2dOptions(stride: stride, padding: kernel / 2)
        let pre = directConvolution(x, w, b, o)
        let literal = pre.scalars.map { max(0, $0) }
        #expect(literal.contains(0) && literal.contains { $0 > 0 }, "\(path): the test needs both signs")
        x.requiresGrad = true
        w.requiresGrad = trainable
        let y = x.conv2d(weight: w, bias: b, options: o, relu: true)
        #expect(y.shape == pre.shape)
        #expect(Self.relativeError(y.scalars, literal) < 2e-5, "\(path): forward")
        let seed = Tensor.uniform(y.shape, low: -1, high: 1, generator: &rng)
        y.backward(seed: seed)
        let masked = Tensor(shape: seed.shape, scalars: zip(seed.scalars, pre.scalars).map { $1 > 0 ? $0 : 0 })
        let (gx, gw) = literalConvolutionGradients(x, w, masked, o)
        #expect(Self.relativeError(x.grad!.scalars, gx.scalars) < 2e-5, "\(path): input gradient")
        if trainable { #expect(Self.relativeError(w.grad!.scalars, gw.scalars) < 2e-5, "\(path): weight gradient") }
    }

    /// A trainable weight is transformed again after every optimiser step, and a transform cached
    /// while the weight was constant is not served once an optimiser has rewritten it.
    @Test func optimisedWeightsAreNotServedStaleTransforms() {
        var rng = SeededGenerator(seed: 6)
        let x = Tensor.uniform([1, 16, 32, 32], low: -1, high: 1, generator: &rng)
        let w = Tensor.uniform([16, 16, 3, 3], low: -0.2, high: 0.2, generator: &rng)
        let zero = Tensor(zeros: [16])
        let o = Conv2dOptions(padding: 1)
        w.requiresGrad = true
        let adam = Adam(parameters: [w], learningRate: 0.05)
        for _ in 0..<2 {
            let y = x.conv2d(weight: w, options: o)
            #expect(Self.relativeError(y.scalars, directConvolution(x, w, zero, o).scalars) < 2e-5)
            adam.zeroGrad()
            (y * y).sum().backward()
            adam.step()
        }
        // Constant: its transform is cached; then one optimiser step rewrites it in place.
        w.requiresGrad = false
        _ = GradMode.withoutGrad { x.conv2d(weight: w, options: o) }
        w.requiresGrad = true
        w.grad = Tensor.uniform(w.shape, low: -1, high: 1, generator: &rng)
        adam.step()
        w.requiresGrad = false
        let after = GradMode.withoutGrad { x.conv2d(weight: w, options: o) }
        #expect(Self.relativeError(after.scalars, directConvolution(x, w, zero, o).scalars) < 2e-5)
    }

    /// Writing a constant weight through `copy` must drop its cached transform.
    @Test func rewrittenWeightsAreNotServedFromTheCache() {
        var rng = SeededGenerator(seed: 5)
        let x = Tensor.uniform([1, 16, 24, 24], low: -1, high: 1, generator: &rng)
        let w = Tensor.uniform([16, 16, 3, 3], low: -0.2, high: 0.2, generator: &rng)
        let other = Tensor.uniform([16, 16, 3, 3], low: -0.2, high: 0.2, generator: &rng)
        let o = Conv2dOptions(padding: 1)
        _ = GradMode.withoutGrad { x.conv2d(weight: w, options: o) }
        w.copy(from: other)
        let after = GradMode.withoutGrad { x.conv2d(weight: w, options: o) }
        let expected = GradMode.withoutGrad { x.conv2d(weight: other, options: o) }
        #expect(after.scalars == expected.scalars)
        let literal = directConvolution(x, other, Tensor(zeros: [16]), o)
        #expect(Self.relativeError(after.scalars, literal.scalars) < 2e-5)
    }
}

/// Grouped convolution by its definition: each group's literal sum (`directConvolution`).
func groupedLiteral(_ x: Tensor, _ w: Tensor, _ b: Tensor, _ o: Conv2dOptions) -> Tensor {
    var single = o
    single.groups = 1
    let cg = x.shape[1] / o.groups, mg = w.shape[0] / o.groups
    var values: [Float] = []
    for g in 0..<o.groups {
        let part = directConvolution(x.slice(axis: 1, start: g * cg, end: (g + 1) * cg),
                                     w.slice(axis: 0, start: g * mg, end: (g + 1) * mg),
                                     b.slice(axis: 0, start: g * mg, end: (g + 1) * mg), single)
        values += part.scalars
    }
    let (oh, ow) = o.outputSize(height: x.shape[2], width: x.shape[3], kernelH: 3, kernelW: 3)
    return Tensor(shape: [x.shape[0], w.shape[0], oh, ow], scalars: values)
}

/// Gradients of sum(seed * conv(x, w)) with respect to x and w, by the definition (any groups,
/// stride and padding; no dilation).
func literalConvolutionGradients(_ x: Tensor, _ w: Tensor, _ seed: Tensor, _ o: Conv2dOptions) -> (Tensor, Tensor) {
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (m, cg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
    let mg = m / o.groups
    let (oh, ow) = (seed.shape[2], seed.shape[3])
    let xs = x.scalars, ws = w.scalars, gs = seed.scalars
    var gx = [Double](repeating: 0, count: x.count), gw = [Double](repeating: 0, count: w.count)
    for b in 0..<n { for mm in 0..<m { for oy in 0..<oh { for ox in 0..<ow {
        let g = Double(gs[((b * m + mm) * oh + oy) * ow + ox])
        for k in 0..<cg { for i in 0..<kh { for j in 0..<kw {
            let iy = oy * o.strideH - o.padTop + i, ix = ox * o.strideW - o.padLeft + j
            guard iy >= 0 && iy < h && ix >= 0 && ix < wd else { continue }
            let xi = ((b * c + (mm / mg) * cg + k) * h + iy) * wd + ix, wi = ((mm * cg + k) * kh + i) * kw + j
            gx[xi] += g * Double(ws[wi])
            gw[wi] += g * Double(xs[xi])
        } } }
    } } } }
    return (Tensor(shape: x.shape, scalars: gx.map { Float($0) }), Tensor(shape: w.shape, scalars: gw.map { Float($0) }))
}
