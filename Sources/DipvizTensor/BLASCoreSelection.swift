/// Which OpenBLAS kernel family ("core") suits a processor, and whether the one OpenBLAS picked
/// when it loaded must be replaced. OpenBLAS falls back to its generic SSE3 kernels (Prescott) on
/// processors newer than itself, which makes GEMM three to four times slower than it could be.
/// Everything here is a pure function of what it is given, so tests inject processors, reported
/// cores and environments; `BLAS.selectCore` gathers the real facts and applies the decision.
public enum BLASCoreSelection {
    /// OpenBLAS's own override, read by OpenBLAS when it loads: a value set by the user always wins.
    public static let coreTypeVariable = "OPENBLAS_CORETYPE"
    /// For testing on machines where OpenBLAS recognises the processor: dipviz first switches
    /// OpenBLAS to the named core, as if OpenBLAS had fallen back to it, then selects as usual.
    public static let simulationVariable = "DIPVIZ_SIMULATE_OPENBLAS_CORE"

    /// Instruction-set levels that matter for single-precision GEMM, oldest first.
    public enum Level: Int, Comparable, Sendable, CustomStringConvertible {
        case generic, avx, avx2, avx512, avx512bf16

        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }

        public var description: String {
            switch self {
            case .generic: return "SSE only"
            case .avx: return "AVX"
            case .avx2: return "AVX2+FMA"
            case .avx512: return "AVX-512"
            case .avx512bf16: return "AVX-512 with BF16"
            }
        }
    }

    /// The level each x86-64 core of OpenBLAS 0.3.x is written for (lower-case names, as
    /// `openblas_get_corename` spells them up to case). A name missing here is newer than this
    /// table, and is trusted.
    static let coreLevels: [String: Level] = [
        "katmai": .generic, "coppermine": .generic, "northwood": .generic, "prescott": .generic,
        "banias": .generic, "atom": .generic, "core2": .generic, "penryn": .generic, "dunnington": .generic,
        "nehalem": .generic, "athlon": .generic, "opteron": .generic, "opteron_sse3": .generic,
        "barcelona": .generic, "nano": .generic, "bobcat": .generic,
        "sandybridge": .avx, "bulldozer": .avx, "piledriver": .avx, "steamroller": .avx,
        "haswell": .avx2, "zen": .avx2, "excavator": .avx2,
        "skylakex": .avx512,
        "cooperlake": .avx512bf16, "sapphirerapids": .avx512bf16,
    ]

    public static func level(ofCore name: String) -> Level? { coreLevels[name.lowercased()] }

    public static func level(of cpu: CPUFeatures) -> Level {
        guard cpu.isX86 else { return .generic }
        // OpenBLAS's AVX-512 kernels use the F, BW and VL subsets; `CPUFeatures` counts them only
        // when the operating system saves the ZMM state.
        if cpu.avx512f && cpu.avx512bw && cpu.avx512vl { return cpu.avx512bf16 ? .avx512bf16 : .avx512 }
        if cpu.avx2 && cpu.fma { return .avx2 }
        if cpu.avx { return .avx }
        return .generic
    }

    /// The cores to try on this processor, best first. Cooperlake is SkylakeX's kernels with
    /// BF16 additions and larger sgemm blocks (measured faster on AVX-512 BF16 Xeons); Zen's
    /// blocking suits AMD processors better than Haswell's.
    public static func candidates(for cpu: CPUFeatures) -> [String] {
        let level = level(of: cpu)
        let amd = cpu.vendor == "AuthenticAMD" || cpu.vendor == "HygonGenuine"
        var list: [String] = []
        if level >= .avx512bf16 { list.append("Cooperlake") }
        if level >= .avx512 { list.append("SkylakeX") }
        if level >= .avx2 { list += amd ? ["Zen", "Haswell"] : ["Haswell"] }
        if level >= .avx { list.append("Sandybridge") }
        return list
    }

    public enum Decision: Equatable, Sendable {
        /// OPENBLAS_CORETYPE names the core: the user's choice stands, whatever it is.
        case userChoice(String)
        /// The core OpenBLAS picked uses what the processor has (or is newer than this table).
        case keep
        /// OpenBLAS picked an older core than the processor deserves: these are better, best first.
        case upgrade(candidates: [String])
        /// OpenBLAS picked an older core and none better can be switched to; the text says why and what to do.
        case stuck(String)
    }

    /// - Parameters:
    ///   - detected: the core OpenBLAS runs now (`openblas_get_corename`).
    ///   - available: lower-case names of the cores this OpenBLAS build contains.
    ///   - canSwitch: whether this OpenBLAS can change its core after loading (DYNAMIC_ARCH builds).
    public static func decide(cpu: CPUFeatures, detected: String, environment: [String: String],
                              available: Set<String>, canSwitch: Bool) -> Decision {
        // An empty value is no choice (OpenBLAS would only report "Core not found" and fall back).
        if let user = environment[coreTypeVariable], !user.isEmpty { return .userChoice(user) }
        let cpuLevel = level(of: cpu)
        guard cpu.isX86, let detectedLevel = level(ofCore: detected), detectedLevel < cpuLevel else { return .keep }
        guard canSwitch else {
            return .stuck("this OpenBLAS is built for one core only; install one built with DYNAMIC_ARCH (Debian's libopenblas0-pthread)")
        }
        let better = candidates(for: cpu).filter {
            (level(ofCore: $0) ?? .generic) > detectedLevel && available.contains($0.lowercased())
        }
        guard !better.isEmpty else {
            return .stuck("this OpenBLAS has no kernels for \(cpuLevel); install a newer OpenBLAS")
        }
        return .upgrade(candidates: better)
    }

    /// The core to switch to first when simulating a fallback, or nil. A user's OPENBLAS_CORETYPE
    /// disables the simulation: the user's core is what runs.
    public static func simulatedFallback(environment: [String: String]) -> String? {
        if let user = environment[coreTypeVariable], !user.isEmpty { return nil }
        guard let core = environment[simulationVariable], !core.isEmpty else { return nil }
        return core
    }

    /// What trying one core in a child process found.
    public enum ProbeResult: Equatable, Sendable, CustomStringConvertible {
        /// Its sgemm and sgemv agree with plain loops.
        case agrees
        /// It computes wrong numbers (some OpenBLAS builds do on processors newer than themselves).
        case disagrees
        /// OpenBLAS ran another core when asked for this one (it refuses cores the processor lacks).
        case refused
        case crashed(signal: Int32)
        case timedOut
        /// No child process could be started.
        case notRun

        public var description: String {
            switch self {
            case .agrees: return "agrees with a plain loop"
            case .disagrees: return "computes wrong sgemm results"
            case .refused: return "refused by OpenBLAS"
            case .crashed(let signal): return "crashed (signal \(signal)\(signal == 4 ? ", illegal instruction" : signal == 11 ? ", segmentation fault" : ""))"
            case .timedOut: return "did not finish in time"
            case .notRun: return "could not be checked (no child process)"
            }
        }
    }

    public struct Attempt: Equatable, Sendable {
        public let core: String
        public let result: ProbeResult
    }

    public struct Outcome: Equatable, Sendable {
        /// The core to switch to; nil keeps what OpenBLAS runs.
        public var chosen: String?
        public var attempts: [Attempt] = []
        /// One line for standard error when the best core could not be used.
        public var warning: String?
    }

    /// Tries the decision's candidates in order with `probe` and picks the first that agrees.
    public static func resolve(_ decision: Decision, cpu: CPUFeatures, detected: String, openBLASVersion: String,
                               probe: (String) -> ProbeResult) -> Outcome {
        let openBLAS = openBLASVersion.isEmpty ? "OpenBLAS" : "OpenBLAS \(openBLASVersion)"
        switch decision {
        case .userChoice, .keep:
            return Outcome()
        case .stuck(let why):
            return Outcome(warning: "dipviz: \(openBLAS) runs its \(detected) kernels, made for older processors than this one (\(level(of: cpu))), so GEMM runs several times slower: \(why)")
        case .upgrade(let candidates):
            var outcome = Outcome()
            for core in candidates {
                let result = probe(core)
                outcome.attempts.append(Attempt(core: core, result: result))
                if result == .agrees { outcome.chosen = core; break }
            }
            let failed = outcome.attempts.filter { $0.result != .agrees }
                .map { "\($0.core) \($0.result)" }.joined(separator: ", ")
            if let chosen = outcome.chosen, chosen != candidates[0] {
                outcome.warning = "dipviz: \(openBLAS) kernels failed a check on this processor (\(failed)); running \(chosen) instead (set \(coreTypeVariable)=\(chosen) to skip the check)"
            } else if outcome.chosen == nil {
                outcome.warning = "dipviz: \(openBLAS) chose its generic \(detected) kernels for this \(level(of: cpu)) processor and the better ones failed a check (\(failed)), so GEMM runs several times slower: set \(coreTypeVariable) to a core that works here, or install a newer OpenBLAS"
            }
            return outcome
        }
    }
}
