import CBLAS
import CDipvizKernels

/// 3x3 unit-stride convolutions by Winograd's minimal filtering F(4x4, 3x3) (Lavin & Gray,
/// CVPR 2016): each 4x4 output tile costs 36 multiplies per channel pair instead of 144. The
/// 36 products over channels are 36 GEMMs (transformed weights x transformed input tiles),
/// run single-threaded side by side; the transforms are vector kernels of CDipvizKernels.
///
/// The weights' transform is four times their size. A constant's (a frozen classifier's
/// kernels) is kept with the weights' buffer; a trainable weight's is made on every call, since
/// the optimiser rewrites the weights between any two uses (the weight gradient stays im2col +
/// GEMM).
///
/// With ConvPrecision.bf16 (constant weights only) the 36 products take bf16 operands and sum in
/// single precision (AVX-512 BF16): half the weight memory and twice the multiplies per
/// instruction. The transforms stay single precision, but their coefficients (up to 5 in B, 8
/// in A) amplify the operands' rounding about tenfold: outputs differ from fp32 by 1-3% of their
/// norm, against 0.2% for a direct convolution with bf16 operands.
enum WinogradConvolution {
    /// Output pixels below which im2col + GEMM is used: with few tiles the 36 GEMMs stream 4x
    /// the weights for little arithmetic. At 13x13 (AlexNet conv3-5) and 14x14 (VGG16 conv5)
    /// Winograd measured even in the forward pass and 5-10% faster in the TV inversion step
    /// (processor time, 2 cores); below that it is not tried.
    static let minimumOutputPixels = 12 * 12
    /// Output pixels below which a trainable weight, transformed on every call, takes im2col +
    /// GEMM: the transform writes 36 floats per channel pair (memory-bound), which pays only when
    /// the tiles are many (at 16x16 the DIP generator's 128 -> 512 phase convolution spent more
    /// on the transform than Winograd saved).
    static let minimumTrainableOutputPixels = 32 * 32
    /// Channels below which the transforms cost more than the multiplies they save.
    static let minimumChannels = 16

    /// Tiles per band up to which the products skip OpenBLAS (see packed_gemm).
    static let narrowColumns = 64

    static func applies(_ geo: ConvGeometry, weight: Tensor) -> Bool {
        geo.kh == 3 && geo.kw == 3 && geo.o.strideH == 1 && geo.o.strideW == 1 && geo.o.dilationH == 1
            && geo.o.dilationW == 1 && geo.cg >= minimumChannels && geo.mg >= minimumChannels
            && geo.spatial >= (weight.needsGrad ? minimumTrainableOutputPixels : minimumOutputPixels)
    }

    /// How one convolution is tiled: bands of tile rows, and the layout of the transformed weights.
    struct Plan {
        let th: Int, tw: Int
        let bandRows: Int
        /// Floats per row of the transformed tiles: a band's tiles padded to 16 (whole vectors).
        let ld: Int
        /// Bands narrow enough for packed_gemm, which reads the weights in its packed layout;
        /// wider ones go to OpenBLAS with row-major weights. bf16 products: always packed.
        let packed: Bool
        /// Floats of the transformed weights per position xi (one group); with bf16 products,
        /// words of two bf16 values.
        let position: Int
        /// The products in bf16 (ConvPrecision.bf16): every band, narrow or wide, runs the bf16
        /// kernel on the pairs of the transformed weights (packed rows, pairs of columns).
        let bf16: Bool

        init(_ geo: ConvGeometry, bf16: Bool = false) {
            th = (geo.oh + 3) / 4; tw = (geo.ow + 3) / 4
            // Bands of tile rows keep both transformed buffers within a few megabytes.
            let bytesPerTileRow = 36 * (geo.cg + geo.mg) * tw * 4
            bandRows = Swift.max(1, Swift.min(th, (6 << 20) / bytesPerTileRow))
            ld = (bandRows * tw + 15) / 16 * 16
            self.bf16 = bf16
            packed = bf16 || bandRows * tw <= narrowColumns
            position = bf16 ? Plan.packedRows(geo.mg) * (geo.cg + 1) / 2 : (packed ? Plan.packedRows(geo.mg) : geo.mg) * geo.cg
        }

        /// Rows of packed_gemm's layout: whole blocks of DIPVIZ_PACKED_ROWS.
        static func packedRows(_ rows: Int) -> Int {
            let block = Int(DIPVIZ_PACKED_ROWS)
            return (rows + block - 1) / block * block
        }
    }

    /// The transformed kernels of all groups, u[g][xi][mg x cg] (row-major or packed as the plan
    /// says): kept with the buffer of a constant weight, made afresh for a trainable one (whose
    /// buffer the optimiser rewrites in place). `transposed`: those of the input-gradient
    /// convolution (geo is then that convolution). With `plan.bf16` (constant weights only),
    /// the packed transform rounded to bf16 pairs, kept under its own key.
    static func weights(_ geo: ConvGeometry, plan: Plan, weight: Tensor, transposed: Bool) -> TensorStorage {
        let count = 36 * plan.position * geo.o.groups
        guard !weight.needsGrad else {
            precondition(!plan.bf16, "bf16 products are for constant weights only")
            // A transform cached while the weight was constant would be stale once it is trained.
            weight.storage.dropDerived()
            let u = TensorStorage(count: count)
            transform(geo, packed: plan.packed, position: plan.position, weight: weight, transposed: transposed, into: u.pointer)
            return u
        }
        if plan.bf16 {
            return weight.storage.derivedBuffer("winograd-f43-bf16:\(geo.o.groups):\(transposed)", count: count) { u in
                roundedToBF16(geo, weight: weight, transposed: transposed, into: u, position: plan.position)
            }
        }
        let key = "winograd-f43:\(geo.o.groups):\(transposed):\(plan.packed ? "packed" : "rows")"
        return weight.storage.derivedBuffer(key, count: count) { u in
            transform(geo, packed: plan.packed, position: plan.position, weight: weight, transposed: transposed, into: u)
        }
    }

    /// The packed single-precision transform, then each position's matrix as bf16 pairs
    /// (`position` words apart).
    static func roundedToBF16(_ geo: ConvGeometry, weight: Tensor, transposed: Bool, into u: UnsafeMutablePointer<Float>, position: Int) {
        let bf16 = ConvPrecision.bf16.bf16Kernels!.pointee
        let single = Plan.packedRows(geo.mg) * geo.cg
        withScratch(36 * single * geo.o.groups) { f in
            transform(geo, packed: true, position: single, weight: weight, transposed: transposed, into: f)
            let words = UnsafeMutablePointer<UInt32>(OpaquePointer(u))
            Parallel.forEach(36 * geo.o.groups, itemCost: single) { i in
                bf16.pack_weights(f + i * single, geo.mg, geo.cg, words + i * position)
            }
        }
    }

    static func transform(_ geo: ConvGeometry, packed: Bool, position: Int, weight: Tensor, transposed: Bool,
                          into u: UnsafeMutablePointer<Float>) {
        let perGroup = 36 * position
        // The original kernel is (groups x) rows x cols x 3 x 3 with rows/cols swapped when transposed.
        let rows = transposed ? geo.cg : geo.mg, cols = transposed ? geo.mg : geo.cg
        let w = weight.data
        let kernels = VectorKernels.current.pointee
        Parallel.forEachRange(geo.o.groups * rows, grain: Swift.max(1, 4096 / cols)) { r in
            var item = r.lowerBound
            while item < r.upperBound {
                let g = item / rows, begin = item % rows, end = Swift.min(rows, begin + r.upperBound - item)
                kernels.winograd_weights(w + g * rows * cols * 9, rows, cols, transposed ? 1 : 0, packed ? 1 : 0,
                                         u + g * perGroup, begin, end)
                item += end - begin
            }
        }
    }

    /// y (+)= conv(x, w) + bias for one batch of images, with `u` from `weights` (of the same
    /// plan); with `relu`, y = max(0, conv(x, w) + bias) in the output transform.
    static func forward(_ geo: ConvGeometry, plan: Plan, x: UnsafePointer<Float>, u: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                        y: UnsafeMutablePointer<Float>, accumulate: Bool, relu: Bool = false) {
        precondition(!(accumulate && relu), "a ReLU applies to the whole sum, not to an accumulated part")
        let kernels = VectorKernels.current.pointee
        let bf16 = plan.bf16 ? ConvPrecision.bf16.bf16Kernels!.pointee : nil
        let th = plan.th, tw = plan.tw, bandRows = plan.bandRows, ld = plan.ld
        let perGroup = 36 * plan.position
        // With bf16 products, the transformed tiles also as bf16 pairs (half the rows, words of
        // two values), after the single-precision ones in the same scratch.
        let pairRows = (geo.cg + 1) / 2
        let uWords = UnsafePointer<UInt32>(OpaquePointer(u))
        withScratch(36 * geo.cg * ld + (plan.bf16 ? 36 * pairRows * ld : 0)) { v in
            let vWords = UnsafeMutablePointer<UInt32>(OpaquePointer(v + 36 * geo.cg * ld))
            withScratch(36 * geo.mg * ld) { mm in
                for b in 0..<geo.n {
                    for g in 0..<geo.o.groups {
                        let xg = x + (b * geo.c + g * geo.cg) * geo.h * geo.w
                        let yg = y + (b * geo.m + g * geo.mg) * geo.spatial
                        let ug = u + g * perGroup
                        let bg = bias.map { $0 + g * geo.mg }
                        var ty0 = 0
                        while ty0 < th {
                            let rows = Swift.min(bandRows, th - ty0)
                            let n = rows * tw
                            Parallel.forEachRange(geo.cg, grain: Swift.max(1, 2048 / n)) { r in
                                kernels.winograd_input(xg, geo.h, geo.w, geo.o.padTop, geo.o.padLeft, ty0, rows, tw, v, ld, geo.cg,
                                                       r.lowerBound, r.upperBound)
                                // Zeros in the padding columns: the packed products read them.
                                let pad = (n + 15) / 16 * 16 - n
                                if pad > 0 {
                                    for xi in 0..<36 { for ch in r { (v + (xi * geo.cg + ch) * ld + n).update(repeating: 0, count: pad) } }
                                }
                            }
                            Parallel.forEachRange(36, grain: Swift.max(1, 36 * 2_000_000 / Swift.max(1, 2 * geo.mg * geo.cg * n * 36))) { r in
                                for xi in r {
                                    if let bf16 {
                                        // Rounded per position, while its tiles are in cache.
                                        let width = (n + 15) / 16 * 16, pairs = vWords + xi * pairRows * ld
                                        bf16.pack_columns(v + xi * geo.cg * ld, geo.cg, width, ld, pairs, ld)
                                        bf16.gemm(geo.mg, width, geo.cg, uWords + g * perGroup + xi * plan.position, pairs, ld,
                                                  mm + xi * geo.mg * ld, ld)
                                    } else if plan.packed {
                                        kernels.packed_gemm(geo.mg, (n + 15) / 16 * 16, geo.cg, ug + xi * plan.position,
                                                            v + xi * geo.cg * ld, ld, mm + xi * geo.mg * ld, ld)
                                    } else {
                                        BLAS.sgemmSingleThread(m: geo.mg, n: n, k: geo.cg, a: ug + xi * plan.position, lda: geo.cg,
                                                               b: v + xi * geo.cg * ld, ldb: ld, c: mm + xi * geo.mg * ld, ldc: ld)
                                    }
                                }
                            }
                            Parallel.forEachRange(geo.mg, grain: Swift.max(1, 2048 / n)) { r in
                                kernels.winograd_output(mm, ld, geo.mg, ty0, rows, tw, yg, geo.oh, geo.ow, bg, relu ? 1 : 0, accumulate ? 1 : 0,
                                                        r.lowerBound, r.upperBound)
                            }
                            ty0 += rows
                        }
                    }
                }
            }
        }
    }
}
