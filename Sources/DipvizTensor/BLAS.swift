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
        // A single row or column is a matrix-vector product: stream the matrix once instead of
        // packing it (the fully connected layers of a batch-1 classifier).
        if m == 1 && (beta == 0 || beta == 1) {
            // c (1 x n) = op(A) (1 x k) * op(B) (k x n)  ->  c^T = op(B)^T a^T
            let parts = n * k < 1 << 16 ? 1 : Parallel.workerCount
            DispatchQueue.concurrentPerform(iterations: parts) { p in
                let j0 = n * p / parts, j1 = n * (p + 1) / parts
                guard j1 > j0 else { return }
                // Rows j0..<j1 of op(B)^T: with B stored k x n (no transpose) that is columns of B.
                if transposeB {
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(j1 - j0), Int32(k), alpha, b + j0 * ldb, Int32(ldb),
                                a, transposeA ? Int32(lda) : 1, beta, c + j0, 1)
                } else {
                    cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k), Int32(j1 - j0), alpha, b + j0, Int32(ldb),
                                a, transposeA ? Int32(lda) : 1, beta, c + j0, 1)
                }
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
