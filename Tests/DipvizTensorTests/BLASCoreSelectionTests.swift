@testable import DipvizTensor
import Foundation
import Testing

/// Processors as CPUID describes them, for injecting into the selection.
enum Processors {
    static func intel(model: Int, avx2: Bool = true, avx512: Bool = false, bf16: Bool = false) -> CPUFeatures {
        var cpu = CPUFeatures()
        cpu.isX86 = true
        cpu.vendor = "GenuineIntel"
        cpu.family = 6
        cpu.model = model
        cpu.avx = true
        cpu.avx2 = avx2
        cpu.fma = avx2
        cpu.avx512f = avx512
        cpu.avx512dq = avx512
        cpu.avx512bw = avx512
        cpu.avx512vl = avx512
        cpu.avx512bf16 = bf16
        cpu.osSavesAVX512 = avx512
        return cpu
    }

    /// Emerald Rapids (family 6 model 207): AVX-512 with BF16 and FP16, unknown to OpenBLAS 0.3.21.
    static let emeraldRapids: CPUFeatures = {
        var cpu = intel(model: 207, avx512: true, bf16: true)
        cpu.avx512fp16 = true
        return cpu
    }()
    static let skylakeServer = intel(model: 85, avx512: true)
    static let haswell = intel(model: 60)
    static let sandyBridge = intel(model: 42, avx2: false)
    static let zen2: CPUFeatures = {
        var cpu = intel(model: 49)
        cpu.vendor = "AuthenticAMD"
        cpu.family = 23
        return cpu
    }()
    static let arm = CPUFeatures()
}

/// Every x86-64 core OpenBLAS 0.3.21's DYNAMIC_ARCH build has.
let debianCores: Set<String> = Set(BLASCoreSelection.coreLevels.keys).subtracting(["sapphirerapids"])

func decide(_ cpu: CPUFeatures, detected: String, environment: [String: String] = [:],
            available: Set<String> = debianCores, canSwitch: Bool = true) -> BLASCoreSelection.Decision {
    BLASCoreSelection.decide(cpu: cpu, detected: detected, environment: environment, available: available, canSwitch: canSwitch)
}

@Suite("Choosing OpenBLAS's core from the processor's features")
struct BLASCoreSelectionTests {
    @Test func levelsFollowTheFeatures() {
        #expect(BLASCoreSelection.level(of: Processors.emeraldRapids) == .avx512bf16)
        #expect(BLASCoreSelection.level(of: Processors.skylakeServer) == .avx512)
        #expect(BLASCoreSelection.level(of: Processors.haswell) == .avx2)
        #expect(BLASCoreSelection.level(of: Processors.zen2) == .avx2)
        #expect(BLASCoreSelection.level(of: Processors.sandyBridge) == .avx)
        #expect(BLASCoreSelection.level(of: Processors.arm) == .generic)
        // AVX-512 F without BW and VL (Knights Landing) is not what OpenBLAS's AVX-512 kernels need.
        var knightsLanding = Processors.haswell
        knightsLanding.avx512f = true
        #expect(BLASCoreSelection.level(of: knightsLanding) == .avx2)
    }

    @Test func candidatesAreBestFirst() {
        #expect(BLASCoreSelection.candidates(for: Processors.emeraldRapids) == ["Cooperlake", "SkylakeX", "Haswell", "Sandybridge"])
        #expect(BLASCoreSelection.candidates(for: Processors.skylakeServer) == ["SkylakeX", "Haswell", "Sandybridge"])
        #expect(BLASCoreSelection.candidates(for: Processors.zen2) == ["Zen", "Haswell", "Sandybridge"])
        #expect(BLASCoreSelection.candidates(for: Processors.arm).isEmpty)
    }

    @Test(arguments: ["Prescott", "Katmai", "Core2", "Nehalem", "PRESCOTT"])
    func genericCoresAreReplaced(detected: String) {
        #expect(decide(Processors.emeraldRapids, detected: detected)
                == .upgrade(candidates: ["Cooperlake", "SkylakeX", "Haswell", "Sandybridge"]))
        #expect(decide(Processors.haswell, detected: detected) == .upgrade(candidates: ["Haswell", "Sandybridge"]))
    }

    @Test func aCoreOlderThanTheFeaturesIsReplacedByNewerOnesOnly() {
        #expect(decide(Processors.emeraldRapids, detected: "Haswell") == .upgrade(candidates: ["Cooperlake", "SkylakeX"]))
        #expect(decide(Processors.skylakeServer, detected: "Sandybridge") == .upgrade(candidates: ["SkylakeX", "Haswell"]))
    }

    @Test func aCoreThatFitsIsKept() {
        #expect(decide(Processors.emeraldRapids, detected: "Cooperlake") == .keep)
        #expect(decide(Processors.skylakeServer, detected: "SkylakeX") == .keep)
        #expect(decide(Processors.haswell, detected: "Haswell") == .keep)
        #expect(decide(Processors.zen2, detected: "Zen") == .keep)
        #expect(decide(Processors.sandyBridge, detected: "Sandybridge") == .keep)
        // Newer cores than this table knows, and other architectures, are trusted.
        #expect(decide(Processors.emeraldRapids, detected: "SapphireRapids") == .keep)
        #expect(decide(Processors.emeraldRapids, detected: "Zen5") == .keep)
        #expect(decide(Processors.arm, detected: "NeoverseN1") == .keep)
        #expect(decide(Processors.arm, detected: "Prescott") == .keep)
    }

    @Test func theUsersCoreTypeWins() {
        #expect(decide(Processors.emeraldRapids, detected: "Prescott", environment: ["OPENBLAS_CORETYPE": "Prescott"])
                == .userChoice("Prescott"))
        #expect(decide(Processors.emeraldRapids, detected: "Haswell", environment: ["OPENBLAS_CORETYPE": "haswell"])
                == .userChoice("haswell"))
        // Even when it names a core OpenBLAS does not have (OpenBLAS then falls back on its own).
        #expect(decide(Processors.emeraldRapids, detected: "Prescott", environment: ["OPENBLAS_CORETYPE": "Nonesuch"])
                == .userChoice("Nonesuch"))
        // An empty value chooses nothing.
        #expect(decide(Processors.emeraldRapids, detected: "Prescott", environment: ["OPENBLAS_CORETYPE": ""])
                == .upgrade(candidates: ["Cooperlake", "SkylakeX", "Haswell", "Sandybridge"]))
    }

    @Test func onlyCoresThisOpenBLASHasAreCandidates() {
        // An OpenBLAS from before Cooperlake existed.
        let older = debianCores.subtracting(["cooperlake"])
        #expect(decide(Processors.emeraldRapids, detected: "Prescott", available: older)
                == .upgrade(candidates: ["SkylakeX", "Haswell", "Sandybridge"]))
    }

    @Test func noWayUpIsStuckWithAReason() {
        guard case .stuck(let why) = decide(Processors.emeraldRapids, detected: "Prescott", canSwitch: false) else {
            Issue.record("expected stuck"); return
        }
        #expect(why.contains("DYNAMIC_ARCH"))
        guard case .stuck(let why2) = decide(Processors.emeraldRapids, detected: "Prescott", available: ["prescott", "core2"]) else {
            Issue.record("expected stuck"); return
        }
        #expect(why2.contains("newer OpenBLAS"))
    }

    @Test func theFallbackSimulationGivesWayToTheUser() {
        #expect(BLASCoreSelection.simulatedFallback(environment: ["DIPVIZ_SIMULATE_OPENBLAS_CORE": "Prescott"]) == "Prescott")
        #expect(BLASCoreSelection.simulatedFallback(environment: ["DIPVIZ_SIMULATE_OPENBLAS_CORE": "Prescott",
                                                                  "OPENBLAS_CORETYPE": "SkylakeX"]) == nil)
        #expect(BLASCoreSelection.simulatedFallback(environment: [:]) == nil)
    }
}

@Suite("Trying candidate cores")
struct BLASCoreResolutionTests {
    typealias Probe = BLASCoreSelection.ProbeResult
    let upgrade = BLASCoreSelection.Decision.upgrade(candidates: ["Cooperlake", "SkylakeX", "Haswell"])

    func resolve(_ decision: BLASCoreSelection.Decision, _ results: [String: Probe]) -> (BLASCoreSelection.Outcome, [String]) {
        var asked: [String] = []
        let outcome = BLASCoreSelection.resolve(decision, cpu: Processors.emeraldRapids, detected: "Prescott",
                                                openBLASVersion: "0.3.21") { core in
            asked.append(core)
            return results[core] ?? .agrees
        }
        return (outcome, asked)
    }

    @Test func theFirstThatAgreesIsChosenQuietly() {
        let (outcome, asked) = resolve(upgrade, [:])
        #expect(outcome.chosen == "Cooperlake")
        #expect(asked == ["Cooperlake"])
        #expect(outcome.warning == nil)
        #expect(outcome.attempts == [.init(core: "Cooperlake", result: .agrees)])
    }

    @Test(arguments: [Probe.crashed(signal: 4), .disagrees, .refused, .timedOut, .notRun])
    func aFailingCoreFallsBackToTheNextWithAWarning(failure: Probe) throws {
        let (outcome, asked) = resolve(upgrade, ["Cooperlake": failure])
        #expect(outcome.chosen == "SkylakeX")
        #expect(asked == ["Cooperlake", "SkylakeX"])
        let warning = try #require(outcome.warning)
        #expect(warning.contains("Cooperlake \(failure)"))
        #expect(warning.contains("OPENBLAS_CORETYPE=SkylakeX"))
        #expect(!warning.contains("\n"))
    }

    @Test func whenEveryCandidateFailsTheDetectedCoreStaysWithAWarning() throws {
        let (outcome, asked) = resolve(upgrade, ["Cooperlake": .crashed(signal: 4), "SkylakeX": .crashed(signal: 11),
                                                 "Haswell": .disagrees])
        #expect(outcome.chosen == nil)
        #expect(asked == ["Cooperlake", "SkylakeX", "Haswell"])
        let warning = try #require(outcome.warning)
        #expect(warning.contains("OpenBLAS 0.3.21"))
        #expect(warning.contains("Prescott"))
        #expect(warning.contains("illegal instruction"))
        #expect(warning.contains("set OPENBLAS_CORETYPE"))
        #expect(!warning.contains("\n"))
    }

    @Test func nothingIsTriedWhenNothingIsToBeChanged() {
        for decision in [BLASCoreSelection.Decision.keep, .userChoice("Prescott")] {
            let (outcome, asked) = resolve(decision, [:])
            #expect(asked.isEmpty)
            #expect(outcome == BLASCoreSelection.Outcome())
        }
        let (stuck, asked) = resolve(.stuck("install a newer OpenBLAS"), [:])
        #expect(asked.isEmpty)
        #expect(stuck.chosen == nil)
        #expect(stuck.warning?.hasSuffix("install a newer OpenBLAS") == true)
    }
}

@Suite("OpenBLAS's running core")
struct BLASRunningCoreTests {
    /// The start-up check accepts the kernels running now (whatever this machine's core is)...
    @Test func selfCheckAcceptsTheRunningCore() {
        #expect(BLAS.selfCheckError() <= BLAS.selfCheckTolerance)
    }

    /// ...with a wide margin over rounding, and rejects a kernel that gets one element of one
    /// product wrong by 0.01 (its terms are of order 1), or leaves it unwritten.
    @Test func selfCheckSeesAWrongElement() {
        #expect(BLAS.selfCheckError() < BLAS.selfCheckTolerance / 10)
        #expect(BLAS.selfCheckError { c in if c.count == 23 * 35 { c[7] += 0.01 } } > BLAS.selfCheckTolerance)
        #expect(BLAS.selfCheckError { c in c[c.count - 1] = .nan } > BLAS.selfCheckTolerance)
    }

    @Test func theCoreIsNamed() {
        #expect(!BLAS.coreName.isEmpty)
        #expect(BLAS.coreName != "unknown")
    }
}

/// The forked child that candidate cores run in: a crash or a hang there is reported, not suffered.
@Suite("Running a check in a child process")
struct ChildProcessTests {
    @Test func theChildsExitStatusComesBack() {
        #expect(ChildProcess.run({ _ in 0 }, timeoutMilliseconds: 5000) == .exited(0))
        #expect(ChildProcess.run({ _ in 3 }, timeoutMilliseconds: 5000) == .exited(3))
    }

    @Test func aCrashIsReportedAsItsSignal() {
        #expect(ChildProcess.run({ _ in raise(SIGILL); return 0 }, timeoutMilliseconds: 5000) == .signalled(SIGILL))
        #expect(ChildProcess.run({ _ in raise(SIGSEGV); return 0 }, timeoutMilliseconds: 5000) == .signalled(SIGSEGV))
    }

    @Test func aChildThatHangsIsStopped() {
        #expect(ChildProcess.run({ _ in sleep(10); return 0 }, timeoutMilliseconds: 100) == .timedOut)
    }
}
