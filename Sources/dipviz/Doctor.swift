import ArgumentParser
import DipvizTensor
import Foundation

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the processor, the OpenBLAS kernels chosen for it and why, and dipviz's own kernel path.")

    @Flag(help: "Print one JSON object instead of lines.")
    var json = false

    func run() throws {
        // `main` selected the core before this command; a library caller may not have.
        let report = BLAS.coreReport ?? BLAS.selectCore()
        let cpu = report.cpu
        let level = BLASCoreSelection.level(of: cpu)
        let check = BLAS.checkActiveCore()
        var notes: [String] = []
        if let warning = report.warning { notes.append(warning) }
        if case .userChoice(let value) = report.decision,
           let chosen = BLASCoreSelection.level(ofCore: report.active), chosen < level {
            notes.append("\(BLASCoreSelection.coreTypeVariable)=\(value) runs kernels older than this processor (\(level)); unset it to let dipviz choose")
        }
        if check != .agrees {
            notes.append("the running core's sgemm \(check): set \(BLASCoreSelection.coreTypeVariable) to another core")
        }
        let attempts = report.outcome.attempts.map { "\($0.core) \($0.result)" }.joined(separator: "; ")
        let fields: [(String, String)] = [
            ("cpu", cpu.description),
            ("features", cpu.featureNames.isEmpty ? "none of AVX, AVX2, FMA, AVX-512" : cpu.featureNames.joined(separator: " ")),
            ("level", level.description),
            ("openblas", BLAS.configuration.isEmpty ? "version unknown" : BLAS.configuration),
            ("core", report.summary),
            ("tried", attempts.isEmpty ? "nothing (no switch needed)" : attempts),
            ("check", "\(report.active) sgemm \(check)"),
            ("threads", "dipviz splits work over \(Parallel.workerCount) cores; OpenBLAS runs \(BLAS.threadCount) thread per call"),
            ("kernels", VectorKernels.description),
            ("bf16", ConvPrecision.bf16.unsupportedReason().map { "unavailable: \($0)" } ?? "available (--precision bf16)"),
            ("selection", String(format: "%.1f ms at start-up", report.seconds * 1000)),
        ]
        if json {
            var object = Dictionary(uniqueKeysWithValues: fields)
            object["notes"] = notes.joined(separator: "\n")
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(object), as: UTF8.self))
        } else {
            for (key, value) in fields { print(key.padding(toLength: 10, withPad: " ", startingAt: 0) + value) }
            for note in notes { print("note      " + note) }
        }
    }
}
