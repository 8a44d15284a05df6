import CCPUID
import CDipvizKernels
import Foundation

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

/// An instruction-set level of the engine's vector kernels (CDipvizKernels), lowest first.
public enum KernelPath: Int, CaseIterable, Comparable, Sendable, CustomStringConvertible {
    case portable = 0, avx2 = 1, avx512 = 2

    public static func < (a: KernelPath, b: KernelPath) -> Bool { a.rawValue < b.rawValue }

    /// The spelling of DIPVIZ_ISA and of reports: "portable", "avx2", "avx512".
    public var description: String {
        switch self {
        case .portable: return "portable"
        case .avx2: return "avx2"
        case .avx512: return "avx512"
        }
    }

    public init?(name: String) {
        guard let path = KernelPath.allCases.first(where: { $0.description == name.lowercased() }) else { return nil }
        self = path
    }

    /// Whether the processor (and its operating system) runs this level's instructions.
    public func runs(on cpu: CPUFeatures) -> Bool {
        switch self {
        case .portable: return true
        case .avx2: return cpu.avx2 && cpu.fma
        case .avx512: return cpu.avx512f && cpu.avx512dq && cpu.avx512bw && cpu.avx512vl && cpu.osSavesAVX512
        }
    }

    /// This level's kernel table, or nil when the build has none (non-x86 builds: portable only).
    var table: UnsafePointer<dipviz_kernels>? { dipviz_kernels_for_level(Int32(rawValue)) }
}

/// Which of the engine's own kernels run: chosen once at start-up from CPUID, the best level
/// the processor supports unless `DIPVIZ_ISA` asks for a lower one.
public enum VectorKernels {
    public static let variable = "DIPVIZ_ISA"

    /// The levels this build has and this processor runs, lowest first.
    public static func supported(on cpu: CPUFeatures = .current) -> [KernelPath] {
        KernelPath.allCases.filter { $0.table != nil && $0.runs(on: cpu) }
    }

    /// The level chosen for this process, and a warning when DIPVIZ_ISA could not be followed.
    public static let selection: (path: KernelPath, warning: String?) = choose(
        cpu: .current, requested: ProcessInfo.processInfo.environment[variable])

    /// The best supported level, or the requested one when it is supported; an unknown or
    /// unsupported request falls back to the best level with a warning.
    public static func choose(cpu: CPUFeatures, requested: String?) -> (path: KernelPath, warning: String?) {
        let available = supported(on: cpu)
        let best = available.last ?? .portable
        guard let requested, !requested.isEmpty else { return (best, nil) }
        guard let path = KernelPath(name: requested) else {
            return (best, "dipviz: \(variable)=\(requested) is not a kernel level (portable, avx2, avx512); running \(best)")
        }
        guard available.contains(path) else {
            return (best, "dipviz: \(variable)=\(requested) is not supported by this processor; running \(best)")
        }
        return (path, nil)
    }

    @TaskLocal static var override: KernelPath?

    /// The level in force on this task: the start-up choice, or the one `withPath` set.
    public static var active: KernelPath { override ?? selection.path }

    /// Runs `body` with the kernels of `path` (tests compare every supported level with the
    /// portable one). The level must be supported here.
    public static func withPath<R>(_ path: KernelPath, _ body: () throws -> R) rethrows -> R {
        precondition(supported().contains(path), "kernel level \(path) is not supported on this processor")
        return try $override.withValue(path, operation: body)
    }

    /// The table in force, read on the calling thread (worker threads do not see `withPath`).
    static var current: UnsafePointer<dipviz_kernels> { active.table! }

    public static var description: String {
        let width = Int(current.pointee.vector_floats) * 32
        return "\(active) (\(width)-bit vectors; supported here: \(supported().map(\.description).joined(separator: ", "))), GEMM through OpenBLAS"
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
