import CBLAS
import Dispatch
import Foundation

/// The only place that touches OpenBLAS: single-precision GEMM in row-major layout and
/// the runtime facts a benchmark must report.
public enum BLAS {
    /// The kernel family OpenBLAS selected at start-up (e.g. "Haswell", "SkylakeX", "Zen").
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// "0.3.21", from `openblas_get_config`; empty when the build does not say.
    public static var version: String {
        let words = configuration.split(separator: " ")
        return words.count > 1 && words[0] == "OpenBLAS" ? String(words[1]) : ""
    }

    /// OpenBLAS's build line, e.g. "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Prescott MAX_THREADS=64".
    public static var configuration: String {
        guard let text = openblas_get_config() else { return "" }
        return String(cString: text)
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

    /// C = A B (row-major, no transposes) in one OpenBLAS call on the calling thread: for
    /// callers that spread independent products over the cores themselves.
    @inline(__always)
    static func sgemmSingleThread(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                                  b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
        _ = configured
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1,
                    a, Int32(lda), b, Int32(ldb), 0, c, Int32(ldc))
    }

    /// OpenBLAS runs single-threaded; `sgemm` spreads work over cores itself.
    static let configured: Void = { openblas_set_num_threads(1) }()
}

// MARK: - Choosing OpenBLAS's kernels

extension BLAS {
    /// What start-up found and did about OpenBLAS's core.
    public struct CoreReport: Sendable {
        public let cpu: CPUFeatures
        /// The core OpenBLAS chose when it loaded (or the simulated fallback).
        public let detected: String
        public let simulated: Bool
        public let decision: BLASCoreSelection.Decision
        public let outcome: BLASCoreSelection.Outcome
        /// The core running after the selection.
        public let active: String
        /// Wall time of the selection, probes included.
        public let seconds: Double

        public var warning: String? { outcome.warning }

        /// One phrase: how the running core came to be chosen.
        public var summary: String {
            let origin = simulated ? "simulated fallback to \(detected)" : "OpenBLAS detected \(detected)"
            switch decision {
            case .userChoice(let value):
                return value.lowercased() == active.lowercased()
                    ? "\(active), set by \(BLASCoreSelection.coreTypeVariable)"
                    : "\(active), OpenBLAS's answer to \(BLASCoreSelection.coreTypeVariable)=\(value)"
            case .keep:
                return simulated ? "\(active) (\(origin), kept)" : "\(active), detected by OpenBLAS"
            case .upgrade:
                return outcome.chosen != nil ? "\(active), selected by dipviz (\(origin))" : "\(active), no better core passed the check (\(origin))"
            case .stuck:
                return "\(active), no better core available (\(origin))"
            }
        }
    }

    private static let reportLock = NSLock()
    nonisolated(unsafe) private static var storedReport: CoreReport?

    /// The selection made at start-up, if `selectCore` ran.
    public static var coreReport: CoreReport? {
        reportLock.lock(); defer { reportLock.unlock() }
        return storedReport
    }

    /// Replaces a generic OpenBLAS core with the best one this processor and this OpenBLAS have,
    /// each candidate first checked in a forked child (a kernel that faults or miscomputes there
    /// costs nothing here). OpenBLAS reads OPENBLAS_CORETYPE only while loading, so the switch
    /// re-runs its loader's `gotoblas_dynamic_init` with the variable set for that moment; the
    /// environment is restored after, so that child processes decide for themselves. Call once,
    /// first thing in `main`, before any BLAS call and before other threads start; later calls
    /// return the first report.
    @discardableResult
    public static func selectCore(environment: [String: String] = ProcessInfo.processInfo.environment) -> CoreReport {
        reportLock.lock(); defer { reportLock.unlock() }
        if let storedReport { return storedReport }
        let start = DispatchTime.now().uptimeNanoseconds
        _ = configured
        let cpu = CPUFeatures.current
        var simulated = false
        if let fallback = BLASCoreSelection.simulatedFallback(environment: environment), canSwitchCore {
            // What OpenBLAS runs after this is the simulated detection, even for a name it lacks.
            _ = switchCore(to: fallback)
            simulated = true
        }
        let detected = coreName
        let decision = BLASCoreSelection.decide(cpu: cpu, detected: detected, environment: environment,
                                                available: Set(BLASCoreSelection.coreLevels.keys.filter(hasCore)),
                                                canSwitch: canSwitchCore)
        var outcome = BLASCoreSelection.resolve(decision, cpu: cpu, detected: detected, openBLASVersion: version,
                                                probe: probeCore)
        if let chosen = outcome.chosen {
            // The child agreed; the same switch here is checked once more before it is trusted.
            if !(switchCore(to: chosen) && selfCheckPasses()) {
                _ = switchCore(to: detected)
                outcome.chosen = nil
                outcome.warning = "dipviz: OpenBLAS's \(chosen) kernels passed a check in a child process but not in this one; running \(detected) (set \(BLASCoreSelection.coreTypeVariable) to choose)"
            }
        }
        let report = CoreReport(cpu: cpu, detected: detected, simulated: simulated, decision: decision, outcome: outcome,
                                active: coreName, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        storedReport = report
        return report
    }

    /// Runs the self-check of the running core in a forked child (a crash there is reported,
    /// not suffered).
    public static func checkActiveCore() -> BLASCoreSelection.ProbeResult {
        probe(core: nil)
    }

    // OpenBLAS's loader, exported by DYNAMIC_ARCH builds only: looked up at run time so that
    // dipviz also links against single-core builds.
    private typealias LoaderStep = @convention(c) () -> Void
    private static let dynamicInit: LoaderStep? = lookUp("gotoblas_dynamic_init")
    private static let dynamicQuit: LoaderStep? = lookUp("gotoblas_dynamic_quit")

    private static func lookUp(_ symbol: String) -> LoaderStep? {
        guard let address = dlsym(everyLoadedLibrary, symbol) else { return nil }
        return unsafeBitCast(address, to: LoaderStep.self)
    }

    /// RTLD_DEFAULT: glibc spells it as a null handle, Darwin as -2.
    private static var everyLoadedLibrary: UnsafeMutableRawPointer? {
        #if os(Linux)
        return nil
        #else
        return UnsafeMutableRawPointer(bitPattern: -2)
        #endif
    }

    static var canSwitchCore: Bool { dynamicInit != nil && dynamicQuit != nil }

    /// Whether this OpenBLAS build contains the core's kernels (its `gotoblas_<CORE>` table).
    static func hasCore(_ name: String) -> Bool {
        dlsym(everyLoadedLibrary, "gotoblas_" + name.uppercased()) != nil
    }

    /// Re-runs OpenBLAS's core selection with OPENBLAS_CORETYPE set to `core`; true when OpenBLAS
    /// then runs that core (it falls back to another for names it lacks or the processor cannot run).
    static func switchCore(to core: String) -> Bool {
        guard let dynamicInit, let dynamicQuit else { return false }
        let variable = BLASCoreSelection.coreTypeVariable
        let previous = getenv(variable).map { String(cString: $0) }
        setenv(variable, core, 1)
        dynamicQuit()
        dynamicInit()
        if let previous { setenv(variable, previous, 1) } else { unsetenv(variable) }
        return coreName.lowercased() == core.lowercased()
    }

    private static func probeCore(_ core: String) -> BLASCoreSelection.ProbeResult { probe(core: core) }

    /// Exit statuses of the probe child.
    private static let childAgrees: Int32 = 0, childDisagrees: Int32 = 1, childRefused: Int32 = 2

    private static func probe(core: String?) -> BLASCoreSelection.ProbeResult {
        let body: ChildProcess.Body = { context in
            if let context {
                let core = String(cString: context.assumingMemoryBound(to: CChar.self))
                guard BLAS.switchCore(to: core) else { return BLAS.childRefused }
            }
            return BLAS.selfCheckPasses() ? BLAS.childAgrees : BLAS.childDisagrees
        }
        // The check takes about a millisecond; a child that has not finished in two seconds is stuck.
        let result: ChildProcess.Result
        if let core {
            result = core.withCString { ChildProcess.run(body, context: UnsafeMutableRawPointer(mutating: $0), timeoutMilliseconds: 2000) }
        } else {
            result = ChildProcess.run(body, timeoutMilliseconds: 2000)
        }
        switch result {
        case .exited(childAgrees): return .agrees
        case .exited(childDisagrees): return .disagrees
        case .exited(childRefused): return .refused
        case .exited, .notStarted: return .notRun
        case .signalled(let signal): return .crashed(signal: signal)
        case .timedOut: return .timedOut
        }
    }

    /// The largest error of OpenBLAS's sgemm and sgemv against plain loops over a few shapes
    /// (full micro-kernel tiles, ragged edges, transposed operands), relative to the sum of the
    /// magnitudes of the products (the scale a float accumulation error has). `perturb` alters
    /// OpenBLAS's results before the comparison (tests use it to see the check fail).
    static func selfCheckError(perturb: (inout [Float]) -> Void = { _ in }) -> Double {
        var worst = 0.0
        var seed: UInt32 = 12345
        func next() -> Float {
            seed = seed &* 1664525 &+ 1013904223
            return Float(seed >> 8) / Float(1 << 24) * 2 - 1
        }
        for (m, n, k, ta, tb) in [(48, 32, 64, false, false), (37, 29, 41, true, false), (23, 35, 19, false, true),
                                  (1, 70, 33, false, false), (1, 45, 66, false, true)] {
            let a = (0..<m * k).map { _ in next() }, b = (0..<k * n).map { _ in next() }
            var c = [Float](repeating: .nan, count: m * n)
            if m == 1 {
                // The matrix-vector calls `sgemm` makes for single rows.
                if tb { cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), 1, b, Int32(k), a, 1, 0, &c, 1) }
                else { cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k), Int32(n), 1, b, Int32(n), a, 1, 0, &c, 1) }
            } else {
                cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                            Int32(m), Int32(n), Int32(k), 1, a, ta ? Int32(m) : Int32(k), b, tb ? Int32(k) : Int32(n),
                            0, &c, Int32(n))
            }
            perturb(&c)
            for i in 0..<m {
                for j in 0..<n {
                    var sum = 0.0, scale = 0.0
                    for p in 0..<k {
                        let x = Double(ta ? a[p * m + i] : a[i * k + p]) * Double(tb ? b[j * k + p] : b[p * n + j])
                        sum += x
                        scale += abs(x)
                    }
                    let error = abs(Double(c[i * n + j]) - sum) / max(scale, 1e-30)
                    worst = error.isNaN ? .infinity : max(worst, error)
                }
            }
        }
        return worst
    }

    /// Float accumulation over at most 66 terms stays far below this; wrong kernels land near 1.
    static let selfCheckTolerance = 1e-4

    static func selfCheckPasses() -> Bool { selfCheckError() <= selfCheckTolerance }
}
