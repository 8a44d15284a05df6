import CDipvizKernels
import DipvizTensor
import Foundation
import Testing

/// bf16 products (AVX-512 BF16) of the Winograd convolutions of constant weights: within
/// bf16's rounding of the fp32 path, and refused with a typed error where they cannot run.
@Suite("bf16 convolution products")
struct BF16ConvolutionTests {
    static let unsupported = ConvPrecision.bf16.unsupportedReason()

    /// x rounded to the nearest bf16, ties to even (finite x).
    static func bf16(_ x: Float) -> Float {
        let bits = x.bitPattern
        return Float(bitPattern: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) & 0xFFFF_0000)
    }

    /// The product kernel against the literal sum of the rounded operands (the same up to fp32
    /// summation order) and against the fp32 product (bf16 rounding), in a narrow band (48
    /// columns, one 16-column tail) and a wide one (112), with an odd inner dimension (a zero
    /// pair half) and a partial block of rows.
    @Test(.enabled(if: unsupported == nil, "bf16 products need AVX-512 BF16 and the avx512 kernels"), arguments: [48, 112])
    func productsMatchTheLiteralSum(columns n: Int) throws {
        let m = 20, k = 17, block = Int(DIPVIZ_PACKED_ROWS), pairs = (k + 1) / 2
        let rowSlots = (m + block - 1) / block * block
        var rng = SeededGenerator(seed: 23)
        let a = Tensor.uniform([m, k], low: -1, high: 1, generator: &rng).scalars
        let b = Tensor.uniform([k, n], low: -1, high: 1, generator: &rng).scalars
        var packed = [Float](repeating: 0, count: rowSlots * k)
        for r in 0..<m { for p in 0..<k { packed[(r / block * k + p) * block + r % block] = a[r * k + p] } }
        var aPairs = [UInt32](repeating: 0, count: rowSlots * pairs), bPairs = [UInt32](repeating: 0, count: pairs * n)
        var c = [Float](repeating: .nan, count: m * n)
        let kernels = try #require(dipviz_bf16_kernels_table()).pointee
        kernels.pack_weights(packed, m, k, &aPairs)
        kernels.pack_columns(b, k, n, n, &bPairs, n)
        kernels.gemm(m, n, k, aPairs, bPairs, n, &c, n)
        var literal = [Float](), single = [Float]()
        for r in 0..<m {
            for j in 0..<n {
                var rounded = 0.0, exact = 0.0
                for p in 0..<k {
                    rounded += Double(Self.bf16(a[r * k + p])) * Double(Self.bf16(b[p * n + j]))
                    exact += Double(a[r * k + p]) * Double(b[p * n + j])
                }
                literal.append(Float(rounded)); single.append(Float(exact))
            }
        }
        #expect(KernelPathTests.relativeError(c, literal) < 1e-5)
        let rounding = KernelPathTests.relativeError(c, single)
        #expect(rounding < 1e-2 && rounding > 1e-5, "relative error \(rounding) against fp32")
    }

    /// Output and input gradient of one constant 3x3 convolution in `precision`.
    static func run(_ x: Tensor, _ w: Tensor, _ b: Tensor, seed: Tensor, precision: ConvPrecision) -> ([Float], [Float]) {
        x.grad = nil
        let y = x.conv2d(weight: w, bias: b, options: Conv2dOptions(padding: 1), precision: precision)
        y.backward(seed: seed)
        return (y.scalars, x.grad!.scalars)
    }

    /// ||a - b|| / ||b||.
    static func l2RelativeError(_ a: [Float], _ b: [Float]) -> Double {
        let d = zip(a, b).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
        return (d / Swift.max(b.reduce(0.0) { $0 + Double($1) * Double($1) }, 1e-30)).squareRoot()
    }

    /// The convolution in narrow bands (24x24: 36 tiles, the packed products in fp32) and wide
    /// ones (40x40: 100 tiles, OpenBLAS in fp32), with an odd channel count and outputs that
    /// leave a partial row block; forward and input gradient (the transposed kernel). Winograd
    /// F(4x4, 3x3) amplifies the rounding of its transformed operands about tenfold (the
    /// transforms' coefficients reach 5 and 8): a few percent of the output's norm, where a
    /// direct convolution with bf16 operands stays near 0.2%.
    @Test(.enabled(if: unsupported == nil, "bf16 products need AVX-512 BF16 and the avx512 kernels"),
          arguments: [24, 40])
    func convolutionsMatchFP32WithinBF16Rounding(size: Int) {
        var rng = SeededGenerator(seed: 21)
        let x = Tensor.uniform([1, 17, size, size], low: -1, high: 1, generator: &rng)
        x.requiresGrad = true
        let w = Tensor.uniform([20, 17, 3, 3], low: -0.2, high: 0.2, generator: &rng)  // a constant
        let b = Tensor.uniform([20], low: -0.2, high: 0.2, generator: &rng)
        let seed = Tensor.uniform([1, 20, size, size], low: -1, high: 1, generator: &rng)
        let (y32, g32) = Self.run(x, w, b, seed: seed, precision: .fp32)
        let (y16, g16) = Self.run(x, w, b, seed: seed, precision: .bf16)
        let forward = Self.l2RelativeError(y16, y32), gradient = Self.l2RelativeError(g16, g32)
        #expect(forward < 5e-2 && gradient < 5e-2, "relative error: forward \(forward), input gradient \(gradient)")
        // Above fp32's rounding: the bf16 kernel ran, not the fp32 one.
        #expect(forward > 1e-4 && gradient > 1e-4, "relative error: forward \(forward), input gradient \(gradient)")
    }

    /// A trainable weight is never rounded: the same values as fp32.
    @Test(.enabled(if: unsupported == nil, "bf16 products need AVX-512 BF16 and the avx512 kernels"))
    func trainableWeightsStayFP32() {
        var rng = SeededGenerator(seed: 22)
        let x = Tensor.uniform([1, 16, 32, 32], low: -1, high: 1, generator: &rng)
        let w = Tensor.uniform([16, 16, 3, 3], low: -0.2, high: 0.2, generator: &rng)
        w.requiresGrad = true
        let single = x.conv2d(weight: w, options: Conv2dOptions(padding: 1))
        let asked = x.conv2d(weight: w, options: Conv2dOptions(padding: 1), precision: .bf16)
        #expect(single.scalars == asked.scalars)
    }

    /// Without AVX-512 BF16, or with the kernels below avx512 (DIPVIZ_ISA), bf16 is refused with
    /// a one-line error naming what is missing and fp32 as the alternative; fp32 runs anywhere.
    @Test func unsupportedProcessorsGetATypedError() throws {
        var withBF16 = CPUFeatures()
        withBF16.isX86 = true
        withBF16.avx512bf16 = true
        var without = withBF16
        without.avx512bf16 = false
        for (cpu, path) in [(without, KernelPath.avx512), (withBF16, .avx2), (withBF16, .portable)] {
            do {
                try ConvPrecision.bf16.checkSupported(cpu: cpu, path: path)
                Issue.record("bf16 accepted at \(path) with avx512_bf16 \(cpu.avx512bf16)")
            } catch let e as ConvPrecisionError {
                #expect(e.description.contains("AVX-512 BF16") && e.description.contains("fp32") && !e.description.contains("\n"), "\(e)")
            }
        }
        #if arch(x86_64)
        #expect(ConvPrecision.bf16.unsupportedReason(cpu: withBF16, path: .avx512) == nil)
        #endif
        for path in KernelPath.allCases { try ConvPrecision.fp32.checkSupported(cpu: CPUFeatures(), path: path) }
    }
}
