import ArgumentParser
import DipvizONNX
import DipvizPrior
import DipvizTensor
import DipvizVisualize
import Foundation

/// Options shared by `invert` and `maximize`; every default is resolved in `RunSpec.resolve`.
struct RunOptions: ParsableArguments {
    @Option(help: "dip (Deep Image Prior), tv (Mahendran & Vedaldi), pixel (no regulariser) or fft (decorrelated Fourier, as Lucid). Default: dip.")
    var prior: PriorKind?

    @Option(help: "Generator preset for --prior dip: \(PriorConfiguration.presets.keys.sorted().joined(separator: ", ")).")
    var preset: String?

    @Option(help: "Iterations (default: 3100 for dip, 500 for tv and pixel, 512 for fft).")
    var iterations: Int?

    @Option(help: "Adam's learning rate: dip's generator (default 1e-3, 1e-2 for classes and fully connected layers) or fft's coefficients (default 0.05).")
    var lr: Float?

    @Option(help: "Working image size in pixels (square; default: the model's input size, else 224).")
    var size: Int?

    @Option(help: "Random seed: same seed, same result (default 0).")
    var seed: UInt64?

    @Option(help: "Data-term weight C of the tv and pixel priors (default: 100 for invert; for maximize 0.003 for class logits, 0.03 for channels and neurons, 1 for probabilities).")
    var dataWeight: Float?

    @Option(help: "Write a snapshot and a checkpoint every this many iterations (default 100).")
    var snapshotEvery: Int?

    @Option(help: "Arithmetic of the classifier's convolutions: fp32 (default) or bf16 (bf16 products with fp32 sums; AVX-512 BF16 only).")
    var precision: ConvPrecision?

    @Option(help: "Output folder.")
    var out: String?

    @Option(help: "Continue the run saved in this folder, as it was configured (give no other option).")
    var resume: String?

    /// Options that define a run, which --resume takes from the saved run instead.
    var definingOptionsGiven: [String] {
        var given: [String] = []
        if prior != nil { given.append("--prior") }
        if preset != nil { given.append("--preset") }
        if iterations != nil { given.append("--iterations") }
        if lr != nil { given.append("--lr") }
        if size != nil { given.append("--size") }
        if seed != nil { given.append("--seed") }
        if dataWeight != nil { given.append("--data-weight") }
        if snapshotEvery != nil { given.append("--snapshot-every") }
        if precision != nil { given.append("--precision") }
        if out != nil { given.append("--out") }
        return given
    }

    func validate() throws {
        if let iterations, !RunSpec.iterationCounts.contains(iterations) {
            throw ValidationError("--iterations \(iterations) is not valid; give \(RunSpec.iterationCounts.lowerBound)...\(RunSpec.iterationCounts.upperBound)")
        }
        if let size, !RunSpec.sizes.contains(size) {
            throw ValidationError("--size \(size) is not valid; give \(RunSpec.sizes.lowerBound)...\(RunSpec.sizes.upperBound) pixels")
        }
        if let lr, !(lr.isFinite && lr > 0) { throw ValidationError("--lr \(lr) is not valid; give a finite rate above 0") }
        if let dataWeight, !(dataWeight.isFinite && dataWeight > 0) {
            throw ValidationError("--data-weight \(dataWeight) is not valid; give a finite weight above 0")
        }
        if let snapshotEvery, snapshotEvery < 1 { throw ValidationError("--snapshot-every must be at least 1") }
        if let preset, PriorConfiguration.presets[preset] == nil {
            throw ValidationError("unknown preset \(preset); known: \(PriorConfiguration.presets.keys.sorted().joined(separator: ", "))")
        }
        if let out, out.isEmpty { throw ValidationError("--out must name a folder") }
        if let resume {
            if resume.isEmpty { throw ValidationError("--resume must name a run folder") }
        } else if out == nil {
            throw ValidationError("give --out FOLDER (or --resume FOLDER to continue a run)")
        }
    }

    /// Applies the options to a request.
    func fill(_ request: inout RunRequest) {
        request.preset = preset
        request.iterations = iterations
        request.learningRate = lr
        request.size = size
        request.seed = seed ?? 0
        request.dataWeight = dataWeight
        request.snapshotEvery = snapshotEvery
        request.precision = precision ?? .fp32
    }
}

/// The model argument of `invert` and `maximize` (absent with --resume).
struct RunModelOptions: ParsableArguments {
    @Argument(help: "An ONNX model file.")
    var model: String?

    @OptionGroup var preprocessing: PreprocessingOptions
}

extension PriorKind: ExpressibleByArgument {}
extension ConvPrecision: ExpressibleByArgument {}

/// Starts or resumes a run and reports how it ended: the one path of `invert`, `maximize`
/// and `run`.
enum RunCommand {
    static func start(_ request: RunRequest, preprocessing: PreprocessingOptions, out: String, label: String) throws {
        Interruption.install()
        let network = try ONNXNetwork(path: request.model)
        var request = request
        if !preprocessing.isEmpty { request.preprocessing = try preprocessing.applied(to: network) }
        let spec = try RunSpec.resolve(request, network: network)
        let folder = try ResultFolder(path: out)
        try report(try Runner.run(spec, network: network, folder: folder, control: control(label)))
    }

    static func resume(_ directory: String, options: RunOptions, extra: [String], label: String) throws {
        let given = options.definingOptionsGiven + extra
        guard given.isEmpty else {
            throw ValidationError("--resume continues the run as it was saved; drop \(given.joined(separator: ", "))")
        }
        Interruption.install()
        try report(try Runner.resume(directory: directory, control: control(label)) { path, _ in try ONNXNetwork(path: path) })
    }

    static func control(_ label: String) -> RunControl {
        var control = RunControl()
        control.progress = ProgressLine(label: label).update
        control.shouldStop = { Interruption.isRequested }
        return control
    }

    /// Prints the results; interrupted and diverged runs exit non-zero after saving.
    static func report(_ outcome: Runner.Outcome) throws {
        let folder = outcome.folder.path
        let m = outcome.metrics
        switch m.ending {
        case .finished, .pending:
            for r in m.results {
                var parts: [String] = []
                if let e = r.featureError { parts.append(String(format: "feature error %.4f (start %.4f)", e, r.featureErrorStart ?? .nan)) }
                if let p = r.psnr, let s = r.ssim { parts.append(String(format: "PSNR %.2f dB, SSIM %.3f", p, s)) }
                if let a = r.activation { parts.append(String(format: "activation %.4g (start %.4g)", a, r.activationStart ?? .nan)) }
                if let p = r.probability { parts.append(String(format: "probability %.4f", p)) }
                print("\(r.target ?? r.name): " + parts.joined(separator: ", "))
            }
            print("wrote \(folder)")
        case .interrupted:
            let command = outcome.record.spec.objective.kindName == "inversion" ? "invert" : "maximize"
            FileHandle.standardError.write(Data("interrupted: saved the latest result and a checkpoint in \(folder) (continue with: \(Shell.line("dipviz", [command, "--resume", folder])))\n".utf8))
            throw ExitCode(130)
        case .diverged:
            FileHandle.standardError.write(Data("stopped: \(m.message ?? "the loss diverged"); the last good result is in \(folder)\n".utf8))
            throw ExitCode(2)
        }
    }
}

/// A progress line on a terminal (iteration, loss, ETA); nothing when standard error is piped.
final class ProgressLine {
    let label: String
    let enabled = isatty(2) != 0
    var started = Date()
    var last = Date.distantPast
    var first: Int?

    init(label: String) { self.label = label }

    func update(_ t: Int, _ total: Int, _ loss: Double) {
        if first == nil || t <= (first ?? 0) { first = t - 1; started = Date() }
        guard enabled, t == total || Date().timeIntervalSince(last) > 0.2 else { return }
        last = Date()
        let elapsed = Date().timeIntervalSince(started)
        let done = t - (first ?? 0)
        let eta = done > 0 ? elapsed / Double(done) * Double(total - t) : 0
        let width = 24, filled = total > 0 ? width * t / total : 0
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let line = String(format: "\r%@ [%@] %d/%d loss %.4g ETA %@ ", label, bar, t, total, loss, ProgressLine.duration(eta))
        FileHandle.standardError.write(Data(line.utf8))
        if t == total { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    static func duration(_ s: Double) -> String {
        guard s.isFinite else { return "?" }
        let v = Int(s.rounded())
        return v >= 3600 ? String(format: "%dh%02dm", v / 3600, v % 3600 / 60) : String(format: "%dm%02ds", v / 60, v % 60)
    }
}

/// Ctrl-C, kill and a closed terminal ask the loop to stop; it saves what it has, then the
/// command exits.
enum Interruption {
    nonisolated(unsafe) static var requested: Int32 = 0

    static func install() {
        let signals = [SIGINT, SIGTERM, SIGHUP]
        for s in signals { signal(s) { _ in Interruption.requested = 1 } }
        // A parent may start us with these blocked (Foundation's Process does): unblock them,
        // or a stop request would wait until the run ends.
        var set = sigset_t()
        sigemptyset(&set)
        for s in signals { sigaddset(&set, s) }
        sigprocmask(SIG_UNBLOCK, &set, nil)
    }

    static var isRequested: Bool { requested != 0 }
}
