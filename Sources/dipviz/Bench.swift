import ArgumentParser
import Foundation
import DipvizBench
import DipvizTensor

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time the engine's kernels and whole steps; prints one JSON object per line.")

    @Option(name: .long, parsing: .upToNextOption, help: "Cases to run (default: all).")
    var cases: [String] = []

    @Option(help: "Timed repetitions per case (the median is reported).")
    var repeats = 5

    @Option(help: "Arithmetic of the classifiers' convolutions: fp32 (default) or bf16 (AVX-512 BF16 only).")
    var precision: ConvPrecision = .fp32

    @Flag(help: "List the case names and exit.")
    var list = false

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        let known = Set(Benchmarks.all.map(\.name))
        let unknown = cases.filter { !known.contains($0) }
        guard unknown.isEmpty else {
            throw ValidationError("unknown case \(unknown.joined(separator: ", ")); known: \(known.sorted().joined(separator: ", "))")
        }
    }

    func run() throws {
        if list { Benchmarks.all.forEach { print($0.name) }; return }
        try precision.checkSupported()
        let selected = cases.isEmpty ? Benchmarks.all : Benchmarks.all.filter { cases.contains($0.name) }
        // Which kernels ran, once, where it does not mix with the JSON lines.
        if let warning = VectorKernels.selection.warning { FileHandle.standardError.write(Data((warning + "\n").utf8)) }
        let core = BLAS.coreReport?.summary ?? BLAS.coreName
        FileHandle.standardError.write(Data("dipviz bench: OpenBLAS \(BLAS.version), core \(core); kernels \(VectorKernels.description); convolutions in \(precision); \(CPUFeatures.current.description); \(Parallel.workerCount) threads\n".utf8))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        for c in selected {
            do {
                let result = try Benchmarks.run(c, repeats: repeats, precision: precision)
                print(String(decoding: try encoder.encode(result), as: UTF8.self))
            } catch let skip as BenchmarkSkip {
                print(String(decoding: try encoder.encode(["case": c.name, "skipped": skip.reason]), as: UTF8.self))
            }
            fflush(stdout)
        }
    }
}

