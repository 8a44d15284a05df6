import CBLAS
import CDipvizKernels

/// 3x3 unit-stride convolutions by Winograd's minimal filtering F(4x4, 3x3) (Lavin & Gray,
/// CVPR 2016): each 4x4 output tile costs 36 multiplies per channel pair instead of 144. The
/// 36 products over channels are 36 GEMMs (transformed weights x transformed input tiles),
/// run single-threaded side by side; the transforms are vector kernels of CDipvizKernels.
///
/// The weights' transform is four times their size, so it is kept with the weights and used
/// only for constants (a frozen classifier's kernels, forward and input gradient).
enum WinogradConvolution {
    /// Output pixels below which im2col + GEMM is used: with few tiles the 36 GEMMs stream 4x
    /// the weights for little arithmetic. At 13x13 (AlexNet conv3-5) and 14x14 (VGG16 conv5)
    /// Winograd measured even in the forward pass and 5-10% faster in the TV inversion step
    /// (processor time, 2 cores); below that it is not tried.
    static let minimumOutputPixels = 12 * 12
    /// Channels below which the transforms cost more than the multiplies they save.
    static let minimumChannels = 16

    /// Tiles per band up to which the products skip OpenBLAS (see narrow_gemm).
    static let narrowColumns = 64

    static func applies(_ geo: ConvGeometry, weight: Tensor) -> Bool {
        geo.kh == 3 && geo.kw == 3 && geo.o.strideH == 1 && geo.o.strideW == 1 && geo.o.dilationH == 1
            && geo.o.dilationW == 1 && geo.cg >= minimumChannels && geo.mg >= minimumChannels
            && geo.spatial >= minimumOutputPixels && !weight.needsGrad
    }

    /// The transformed kernels of all groups, u[g][xi][mg][cg], kept with the weight's buffer.
    /// `transposed`: those of the input-gradient convolution (geo is then that convolution).
    static func weights(_ geo: ConvGeometry, weight: Tensor, transposed: Bool) -> TensorStorage {
        let perGroup = 36 * geo.mg * geo.cg
        let key = "winograd-f43:\(geo.o.groups):\(transposed)"
        return weight.storage.derivedBuffer(key, count: perGroup * geo.o.groups) { u in
            // The original kernel is (groups x) rows x cols x 3 x 3 with rows/cols swapped when transposed.
            let rows = transposed ? geo.cg : geo.mg, cols = transposed ? geo.mg : geo.cg
            Parallel.forEach(geo.o.groups, itemCost: perGroup * 10) { g in
                dipviz_winograd_weights(weight.data + g * rows * cols * 9, rows, cols, transposed ? 1 : 0, u + g * perGroup)
            }
        }
    }

    /// y (+)= conv(x, w) + bias for one batch of images, with `u` from `weights`.
    static func forward(_ geo: ConvGeometry, x: UnsafePointer<Float>, u: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                        y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let kernels = VectorKernels.current.pointee
        let th = (geo.oh + 3) / 4, tw = (geo.ow + 3) / 4
        // Bands of tile rows keep both transformed buffers within a few megabytes.
        let bytesPerTileRow = 36 * (geo.cg + geo.mg) * tw * 4
        let bandRows = Swift.max(1, Swift.min(th, (6 << 20) / bytesPerTileRow))
        // Rows of the transformed tiles padded to 16 floats (whole vectors for narrow_gemm).
        let ld = (bandRows * tw + 15) / 16 * 16
        let perGroup = 36 * geo.mg * geo.cg
        withScratch(36 * geo.cg * ld) { v in
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
                                // Zeros in the padding columns: the narrow products read them.
                                let pad = (n + 15) / 16 * 16 - n
                                if pad > 0 {
                                    for xi in 0..<36 { for ch in r { (v + (xi * geo.cg + ch) * ld + n).update(repeating: 0, count: pad) } }
                                }
                            }
                            Parallel.forEachRange(36, grain: Swift.max(1, 36 * 2_000_000 / Swift.max(1, 2 * geo.mg * geo.cg * n * 36))) { r in
                                for xi in r where n <= narrowColumns {
                                    kernels.narrow_gemm(geo.mg, (n + 15) / 16 * 16, geo.cg, ug + xi * geo.mg * geo.cg, geo.cg,
                                                        v + xi * geo.cg * ld, ld, mm + xi * geo.mg * ld, ld)
                                }
                                for xi in r where n > narrowColumns {
                                    BLAS.sgemmSingleThread(m: geo.mg, n: n, k: geo.cg, a: ug + xi * geo.mg * geo.cg, lda: geo.cg,
                                                           b: v + xi * geo.cg * ld, ldb: ld, c: mm + xi * geo.mg * ld, ldc: ld)
                                }
                            }
                            Parallel.forEachRange(geo.mg, grain: Swift.max(1, 2048 / n)) { r in
                                kernels.winograd_output(mm, ld, geo.mg, ty0, rows, tw, yg, geo.oh, geo.ow, bg, 0, accumulate ? 1 : 0,
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
