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
    /// and asymmetric padding; then its input gradient against the GEMM path's.
    @Test(arguments: [(26, 29, 1, 1, 1), (41, 24, 0, 2, 1), (33, 33, 1, 0, 2)])
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

        // The input gradient with the constant weight (Winograd) and with a trainable copy (GEMM).
        x.requiresGrad = true
        let seed = Tensor.uniform(literal.shape, low: -1, high: 1, generator: &rng)
        x.conv2d(weight: w, bias: b, options: o).backward(seed: seed)
        let winograd = x.grad!.scalars
        x.grad = nil
        let trainable = w.detached()
        trainable.requiresGrad = true
        x.conv2d(weight: trainable, bias: b, options: o).backward(seed: seed)
        let gradientError = Self.relativeError(winograd, x.grad!.scalars)
        #expect(gradientError < 2e-5, "input gradient relative error \(gradientError)")
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
