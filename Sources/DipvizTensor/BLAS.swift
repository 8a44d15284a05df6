import CBLAS
import Dispatch

/// The only place that touches OpenBLAS: single-precision GEMM in row-major layout and
/// the runtime facts a benchmark must report.
public enum BLAS {
    /// The kernel family OpenBLAS selected at start-up (e.g. "Haswell", "SkylakeX", "Zen").
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    public static var threadCount: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }

    /// C = alpha * op(A) * op(B) + beta * C, all row-major. op(A) is m x k, op(B) is k x n.
    @inline(__always)
    public static func sgemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        _ = configured
        guard k > 0 else {
            if beta == 0 {
                for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) }
            } else if beta != 1 {
                for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } }
            }
            return
        }
        // Split the output into column (or row) blocks, one per core, each computed by a
        // single-threaded OpenBLAS call: OpenBLAS's own workers spin between calls and would
        // steal the cores from the element-wise kernels that run in between.
        let flops = 2 * m * n * k
        let parts = flops < 4_000_000 ? 1 : Parallel.workerCount
        func call(_ i0: Int, _ mi: Int, _ j0: Int, _ nj: Int) {
            let aBlock = transposeA ? a + i0 : a + i0 * lda
            let bBlock = transposeB ? b + j0 * ldb : b + j0
            cblas_sgemm(CblasRowMajor,
                        transposeA ? CblasTrans : CblasNoTrans,
                        transposeB ? CblasTrans : CblasNoTrans,
                        Int32(mi), Int32(nj), Int32(k), alpha,
                        aBlock, Int32(lda), bBlock, Int32(ldb), beta, c + i0 * ldc + j0, Int32(ldc))
        }
        if parts <= 1 { call(0, m, 0, n); return }
        if n >= m || m < 16 * parts {
            DispatchQueue.concurrentPerform(iterations: parts) { p in
                let j0 = (n * p / parts) & ~15, j1 = p == parts - 1 ? n : (n * (p + 1) / parts) & ~15
                if j1 > j0 { call(0, m, j0, j1 - j0) }
            }
        } else {
            DispatchQueue.concurrentPerform(iterations: parts) { p in
                let i0 = (m * p / parts) & ~15, i1 = p == parts - 1 ? m : (m * (p + 1) / parts) & ~15
                if i1 > i0 { call(i0, i1 - i0, 0, n) }
            }
        }
    }

    /// OpenBLAS runs single-threaded; `sgemm` spreads work over cores itself.
    static let configured: Void = { openblas_set_num_threads(1) }()
}
