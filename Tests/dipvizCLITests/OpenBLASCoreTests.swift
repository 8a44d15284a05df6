import DipvizTensor
import Foundation
import Testing

func doctor(_ environment: [String: String]) throws -> [String: String] {
    let r = try runDipviz(["doctor", "--json"], environment: environment)
    #expect(r.status == 0, "\(r.stderr)")
    return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: String] ?? [:]
}

/// Where the simulation can show a switch: an x86-64 processor with AVX2 and FMA, and an
/// OpenBLAS that can change its core (DYNAMIC_ARCH).
let canSimulateFallback: Bool = {
    let cpu = CPUFeatures.current
    return BLASCoreSelection.level(of: cpu) >= .avx2 && BLAS.configuration.contains("DYNAMIC_ARCH")
}()

@Suite("OpenBLAS core at start-up")
struct OpenBLASCoreTests {
    @Test func doctorNamesTheProcessorTheCoreAndTheKernels() throws {
        let object = try doctor([:])
        #expect(object["cpu"]?.isEmpty == false)
        #expect(object["openblas"]?.hasPrefix("OpenBLAS") == true)
        #expect(object["check"]?.contains("agrees with a plain loop") == true)
        #expect(object["kernels"]?.isEmpty == false)
        #expect(object["bf16"] == (ConvPrecision.bf16.unsupportedReason() == nil ? "available (--precision bf16)" : "unavailable: \(ConvPrecision.bf16.unsupportedReason()!)"))
        #expect(object["notes"] == "")
    }

    /// bf16 products held back by DIPVIZ_ISA: doctor says so, and a run asking for them stops
    /// with one line naming fp32.
    @Test(.enabled(if: VectorKernels.supported().contains(.avx2)))
    func bf16BelowAVX512IsRefused() throws {
        #expect(try doctor(["DIPVIZ_ISA": "avx2"])["bf16"]?.hasPrefix("unavailable: ") == true)
        let r = try runDipviz(["bench", "--cases", "sgemm_1024", "--repeats", "1", "--precision", "bf16"], environment: ["DIPVIZ_ISA": "avx2"])
        #expect(r.status != 0 && r.stdout.isEmpty)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].contains("AVX-512 BF16") && lines[0].contains("--precision fp32"), "\(r.stderr)")
    }

    @Test(.enabled(if: canSimulateFallback))
    func aSimulatedFallbackToPrescottIsReplaced() throws {
        let object = try doctor([BLASCoreSelection.simulationVariable: "Prescott"])
        let core = try #require(object["core"])
        #expect(!core.hasPrefix("Prescott"), "\(core)")
        #expect(core.contains("selected by dipviz (simulated fallback to Prescott)"))
        #expect(object["notes"] == "")
    }

    @Test(.enabled(if: canSimulateFallback))
    func theUsersCoreTypeIsNeverOverridden() throws {
        let object = try doctor(["OPENBLAS_CORETYPE": "Prescott", BLASCoreSelection.simulationVariable: "Core2"])
        #expect(object["core"] == "Prescott, set by OPENBLAS_CORETYPE")
        #expect(object["tried"] == "nothing (no switch needed)")
        // Respected, and pointed out.
        #expect(object["notes"]?.contains("OPENBLAS_CORETYPE=Prescott runs kernels older than this processor") == true)
    }

    @Test(.enabled(if: canSimulateFallback))
    func benchReportsTheSelectedCore() throws {
        let r = try runDipviz(["bench", "--cases", "sgemm_1024", "--repeats", "1"],
                              environment: [BLASCoreSelection.simulationVariable: "Prescott"])
        #expect(r.status == 0, "\(r.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let core = object?["openblas_core"] as? String ?? ""
        #expect(!core.isEmpty && core != "Prescott")
        #expect((object?["openblas_choice"] as? String)?.contains("selected by dipviz") == true)
        #expect(r.stderr.contains("dipviz bench: OpenBLAS"))
    }
}
