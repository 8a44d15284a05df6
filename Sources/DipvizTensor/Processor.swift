import CCPUID

// The one Swift file that uses CCPUID.

/// What the processor can run, as CPUID reports it. A vector extension counts only when the
/// operating system also saves its registers (XCR0), since code using it would fault otherwise.
public struct CPUFeatures: Sendable, Equatable {
    public var isX86 = false
    public var vendor = ""
    public var brand = ""
    public var family = 0
    public var model = 0
    public var stepping = 0
    public var avx = false
    public var avx2 = false
    public var fma = false
    public var avx512f = false
    public var avx512dq = false
    public var avx512bw = false
    public var avx512vl = false
    public var avx512bf16 = false
    public var avx512fp16 = false
    public var avx512vnni = false
    /// The operating system saves the AVX-512 state (opmask and all 32 ZMM registers).
    public var osSavesAVX512 = false

    public init() {}

    /// Read once: the processor does not change while the process runs.
    public static let current: CPUFeatures = {
        var info = dipviz_cpu_info()
        dipviz_cpu_read(&info)
        var cpu = CPUFeatures()
        cpu.isX86 = info.is_x86 != 0
        cpu.vendor = withUnsafeBytes(of: info.vendor) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        cpu.brand = withUnsafeBytes(of: info.brand) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            .trimmingSpaces
        cpu.family = Int(info.family)
        cpu.model = Int(info.model)
        cpu.stepping = Int(info.stepping)
        cpu.avx = info.avx != 0
        cpu.avx2 = info.avx2 != 0
        cpu.fma = info.fma != 0
        cpu.avx512f = info.avx512f != 0
        cpu.avx512dq = info.avx512dq != 0
        cpu.avx512bw = info.avx512bw != 0
        cpu.avx512vl = info.avx512vl != 0
        cpu.avx512bf16 = info.avx512_bf16 != 0
        cpu.avx512fp16 = info.avx512_fp16 != 0
        cpu.avx512vnni = info.avx512_vnni != 0
        cpu.osSavesAVX512 = info.os_avx512 != 0
        return cpu
    }()

    /// The extensions present, in the spelling of /proc/cpuinfo.
    public var featureNames: [String] {
        [("avx", avx), ("avx2", avx2), ("fma", fma), ("avx512f", avx512f), ("avx512dq", avx512dq),
         ("avx512bw", avx512bw), ("avx512vl", avx512vl), ("avx512_vnni", avx512vnni),
         ("avx512_bf16", avx512bf16), ("avx512_fp16", avx512fp16)].filter(\.1).map(\.0)
    }

    /// "Intel(R) Xeon(R) Processor (GenuineIntel family 6 model 207 stepping 2)".
    public var description: String {
        guard isX86 else { return "not an x86-64 processor" }
        return "\(brand.isEmpty ? "unnamed processor" : brand) (\(vendor) family \(family) model \(model) stepping \(stepping))"
    }
}

/// Runs a function in a forked child process, so that a kernel which faults or hangs there
/// costs this process nothing.
public enum ChildProcess {
    /// What the child runs; its return value (0...255) is the child's exit status.
    public typealias Body = @convention(c) (UnsafeMutableRawPointer?) -> Int32

    public enum Result: Equatable, Sendable {
        case exited(Int32)
        case signalled(Int32)
        case timedOut
        case notStarted
    }

    /// Waits at most `timeoutMilliseconds`, then kills the child.
    public static func run(_ body: Body, context: UnsafeMutableRawPointer? = nil, timeoutMilliseconds: Int) -> Result {
        let status = dipviz_run_in_child(body, context, Int32(clamping: timeoutMilliseconds))
        switch status {
        case 0...255: return .exited(status)
        case -1000: return .timedOut
        case -999 ..< 0: return .signalled(-status)
        default: return .notStarted
        }
    }
}

/// Which of the engine's own kernels this build runs.
public enum VectorKernels {
    /// Whether the build uses AVX2 and FMA vectors (Package.swift sets DIPVIZ_SIMD_FMA unless
    /// DIPVIZ_PORTABLE is set) or NEON on arm64; otherwise convolutions go through GEMM only.
    public static var isVectorBuild: Bool {
        #if DIPVIZ_SIMD_FMA || arch(arm64)
        return true
        #else
        return false
        #endif
    }

    public static var description: String {
        #if DIPVIZ_SIMD_FMA
        return "AVX2+FMA direct convolutions, GEMM through OpenBLAS"
        #elseif arch(arm64)
        return "NEON direct convolutions, GEMM through OpenBLAS"
        #else
        return "portable build: convolutions through OpenBLAS GEMM only"
        #endif
    }

    /// Whether this processor can run what the build was compiled for.
    public static func runs(on cpu: CPUFeatures) -> Bool {
        #if DIPVIZ_SIMD_FMA
        return cpu.avx2 && cpu.fma
        #else
        return true
        #endif
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}

/// What the operating system lets this process use.
public enum Processor {
    /// Processors in this process's CPU affinity (a Slurm task's grant, `taskset`); nil when the
    /// system does not say.
    public static var allowedCores: Int? {
        let n = Int(dipviz_allowed_cpus())
        return n > 0 ? n : nil
    }
}
