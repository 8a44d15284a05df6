import ArgumentParser
import DipvizONNX
import DipvizPrior
import DipvizVisualize
import Foundation

/// Options shared by `invert` and `maximize`.
struct RunOptions: ParsableArguments {
    @Option(help: "dip (Deep Image Prior), tv (Mahendran & Vedaldi) or pixel (no regulariser).")
    var prior: PriorKind = .dip

    @Option(help: "Generator preset for --prior dip: \(PriorConfiguration.presets.keys.sorted().joined(separator: ", ")).")
    var preset: String?

    @Option(help: "Iterations (default: 3100 for dip, 350 for tv and pixel).")
    var iterations: Int?

    @Option(help: "Learning rate of the generator's Adam (dip).")
    var lr: Float?

    @Option(help: "Working image size in pixels (square; default: the model's input size, else 224).")
    var size: Int?

    @Option(help: "Random seed: same seed, same result.")
    var seed: UInt64 = 0

    @Option(help: "Data-term weight C of the tv and pixel priors (default: 1 for invert; for maximize 0.003 for class logits, 0.03 for channels and neurons, 1 for probabilities).")
    var dataWeight: Float?

    @Option(help: "Write a snapshot and a checkpoint every this many iterations.")
    var snapshotEvery = 100

    @Option(help: "Output folder.")
    var out: String

    @Option(help: "Continue the run saved in this folder (its settings are reused).")
    var resume: String?

    func validate() throws {
        if let iterations, iterations < 1 { throw ValidationError("--iterations must be at least 1") }
        if let size, size < 16 || size > 2048 { throw ValidationError("--size must be between 16 and 2048") }
        if let preset, PriorConfiguration.presets[preset] == nil {
            throw ValidationError("unknown preset \(preset); known: \(PriorConfiguration.presets.keys.sorted().joined(separator: ", "))")
        }
        guard snapshotEvery >= 1 else { throw ValidationError("--snapshot-every must be at least 1") }
    }

    /// The working size: the graph's when it fixes one (which --size must then match).
    func workingSize(_ net: ONNXNetwork, _ preprocessing: Preprocessing) throws -> Int {
        let fixed = net.imageInput?.shape.flatMap { $0.count == 4 ? $0[2] : nil }
        let (h, w) = net.inputSize(preprocessing: preprocessing)
        if fixed != nil {
            guard h == w else { throw ValidationError("the model takes \(h)x\(w) input; only square inputs are supported") }
            if let size, size != h { throw ValidationError("the model takes \(h)x\(w) input; --size \(size) does not fit") }
            return h
        }
        return size ?? h
    }

    func generator(default fallback: PriorConfiguration) -> PriorConfiguration {
        preset.flatMap { PriorConfiguration.presets[$0] } ?? fallback
    }
}

extension PriorKind: ExpressibleByArgument {}

/// A progress line on a terminal (iteration, loss, ETA); nothing when standard error is piped.
final class ProgressLine {
    let label: String
    let enabled = isatty(2) != 0
    let started = Date()
    var last = Date.distantPast

    init(label: String) { self.label = label }

    func update(_ t: Int, _ total: Int, _ loss: Double) {
        guard enabled, t == total || Date().timeIntervalSince(last) > 0.2 else { return }
        last = Date()
        let elapsed = Date().timeIntervalSince(started)
        let eta = t > 0 ? elapsed / Double(t) * Double(total - t) : 0
        let width = 24, filled = total > 0 ? width * t / total : 0
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let line = String(format: "\r%@ [%@] %d/%d loss %.4g ETA %@ ", label, bar, t, total, loss, ProgressLine.duration(eta))
        FileHandle.standardError.write(Data(line.utf8))
        if t == total { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    static func duration(_ s: Double) -> String {
        let v = Int(s.rounded())
        return v >= 3600 ? String(format: "%dh%02dm", v / 3600, v % 3600 / 60) : String(format: "%dm%02ds", v / 60, v % 60)
    }
}

/// Ctrl-C and kill ask the loop to stop; it saves what it has, then the command exits.
enum Interruption {
    nonisolated(unsafe) static var requested: Int32 = 0

    static func install() {
        signal(SIGINT) { _ in Interruption.requested = 1 }
        signal(SIGTERM) { _ in Interruption.requested = 1 }
    }

    static var isRequested: Bool { requested != 0 }
}

struct RunRecordFile: Codable {
    var command: String
    var model: String
    var image: String?
    var inversion: InversionSettings?
    var maximization: [MaximizationSettings]?
    var labels: [String]?
}
