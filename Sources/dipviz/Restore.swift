import ArgumentParser
import DipvizVisualize
import Foundation

extension RestorationTaskKind: ExpressibleByArgument {}
extension RestorationPriorKind: ExpressibleByArgument {}
extension StoppingRule.Kind: ExpressibleByArgument {}
extension SuperresDownsampler: ExpressibleByArgument {}

struct Restore: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restore a corrupted image with an untrained generator (Deep Image Prior, Deep Decoder) or TV.",
        discussion: """
            Tasks: denoise, superres --factor 4|8, inpaint --mask MASK.png | --drop FRACTION, jpeg, flash --no-flash IMAGE.
            With --degrade, INPUT is a clean photo: the corrupted image is made from it (seeded) and every result is
            measured against it. Writes image.png, input.png, metrics.json, curve.json and run.json to --out.
            """)

    @Argument(help: "denoise, superres, inpaint, jpeg or flash.")
    var task: RestorationTaskKind?

    @Argument(help: "The corrupted image (PNG or JPEG; the flash photo for flash), or a clean photo with --degrade.")
    var input: String?

    @Option(help: "Super-resolution factor: 4 or 8.") var factor: Int?
    @Option(help: "Super-resolution: the Lanczos kernel the result is downsampled with to compare it with INPUT: lanczos3 (default: PIL's LANCZOS resize, which --degrade uses) or lanczos2 (the paper's notebook).")
    var downsampler: SuperresDownsampler?
    @Option(help: "Inpainting mask (PNG of the image's size: white known, black missing).") var mask: String?
    @Option(help: "Inpainting: drop this fraction of pixels at random (0 < fraction < 1; the mask follows --seed).") var drop: Float?
    @Option(name: .customLong("no-flash"), help: "Flash/no-flash: the photo taken without flash.") var noFlash: String?
    @Flag(help: "Make the corrupted image from INPUT (a clean photo) and measure against it.") var degrade = false
    @Option(help: "With --degrade: noise standard deviation in 0...255 units (denoise; default 25).") var sigma: Float?
    @Option(help: "With --degrade: JPEG quality 1...100 (jpeg; default 10).") var quality: Int?
    @Option(help: "Crop the images first: X,Y,W,H or X,Y,SIZE.") var crop: String?
    @Option(help: "dip (the paper's network for the task), deep-decoder or tv. Default: dip.") var prior: RestorationPriorKind?
    @Option(help: "Iterations (default: the paper's for the task and prior).") var iterations: Int?
    @Option(help: "Adam's learning rate (default: the task's).") var lr: Float?
    @Option(help: "Weight of the exponential average of outputs, 0 for none (default: 0.99 for denoise, jpeg, superres and random-pixel inpainting).") var averaging: Float?
    @Option(name: .customLong("reg-noise"), help: "Standard deviation of the noise added to the code every step (default: the task's).") var regNoise: Float?
    @Option(name: .customLong("tv-weight"), help: "Weight of TV against the mean squared error (--prior tv).") var tvWeight: Float?
    @Option(help: "variance (stop where the outputs' moving variance bottoms out; no ground truth needed) or budget (run every iteration). Default: variance for denoise and jpeg with dip, else budget.")
    var stop: StoppingRule.Kind?
    @Option(help: "Iterations the variance rule waits past the minimum before stopping (default 500).") var patience: Int?
    @Option(help: "Random seed: same seed, same result (default 0).") var seed: UInt64?
    @Option(help: "Write a snapshot and a checkpoint every this many iterations (default 100).") var snapshotEvery: Int?
    @Option(help: "Output folder.") var out: String?
    @Option(help: "Continue the restoration saved in this folder (give no other option).") var resume: String?
    @Option(name: .customLong("lpips-models"), help: "Folder with alexnet-features.onnx and lpips-alexnet.npy (models/prepare writes them) for LPIPS beside PSNR and SSIM.")
    var lpipsModels = "models"
    @Option(name: .customLong("save-start"), help: "Write the generator's code and weights before the first step to this file (for another implementation to start from; bench/restore_torch.py --start).")
    var saveStart: String?

    func validate() throws {
        if resume != nil {
            guard task == nil, input == nil, out == nil, saveStart == nil else { throw ValidationError("--resume continues the run as it was saved; give only --resume DIR") }
            return
        }
        guard task != nil, input != nil else { throw ValidationError("give the task and the image, e.g. dipviz restore denoise noisy.png --out OUT") }
        guard let out, !out.isEmpty else { throw ValidationError("give --out FOLDER (or --resume FOLDER to continue a run)") }
        if let iterations, !RunSpec.iterationCounts.contains(iterations) {
            throw ValidationError("--iterations \(iterations) is not valid; give \(RunSpec.iterationCounts.lowerBound)...\(RunSpec.iterationCounts.upperBound)")
        }
        if let snapshotEvery, snapshotEvery < 1 { throw ValidationError("--snapshot-every must be at least 1") }
    }

    func request() throws -> RestorationRequest {
        let task = RestorationTask(kind: self.task!, factor: factor, downsampler: downsampler, drop: drop, sigma: sigma, quality: quality)
        var r = RestorationRequest(task: task, input: input!)
        r.degrade = degrade
        r.crop = try crop.map(CropBox.parse)
        r.prior = prior ?? .dip
        r.iterations = iterations; r.learningRate = lr; r.averaging = averaging; r.regNoise = regNoise; r.tvWeight = tvWeight
        r.stopping = stop; r.patience = patience; r.seed = seed ?? 0; r.snapshotEvery = snapshotEvery
        r.mask = mask; r.noFlash = noFlash
        return r
    }

    func run() throws {
        Interruption.install()
        var control = RunControl()
        control.shouldStop = { Interruption.isRequested }
        let outcome: Restoration.Outcome
        if let resume {
            control.progress = ProgressLine(label: "restore").update
            outcome = try Restoration.resume(directory: resume, control: control, lpipsModels: lpipsModels)
        } else {
            let spec = try RestorationSpec.resolve(try request())
            control.progress = ProgressLine(label: "restore \(spec.task.kind.rawValue) (\(spec.prior.kind.rawValue))").update
            outcome = try Restoration.run(spec, folder: try ResultFolder(path: out!), control: control, lpipsModels: lpipsModels,
                                         saveStart: saveStart)
        }
        if outcome.metrics.result != nil && outcome.metrics.result?.lpips == nil {
            FileHandle.standardError.write(Data("note: no LPIPS in metrics.json: \(lpipsModels) lacks alexnet-features.onnx or lpips-alexnet.npy (run models/prepare, or give --lpips-models), or the image is under 32 pixels\n".utf8))
        }
        try Restore.report(outcome)
    }

    static func report(_ outcome: Restoration.Outcome) throws {
        let m = outcome.metrics, folder = outcome.folder.path
        switch m.ending {
        case .finished, .pending:
            var parts = ["\(m.iterations) iterations", "image.png from iteration \(m.stopIteration) (\(m.stopRule.rawValue) rule)"]
            if let r = m.result {
                parts.append(String(format: "PSNR %.2f dB, SSIM %.3f", r.psnr, r.ssim) + (r.lpips.map { String(format: ", LPIPS %.3f", $0) } ?? ""))
            }
            if let i = m.input { parts.append(String(format: "input %.2f dB", i.psnr)) }
            for (name, b) in m.baselines.sorted(by: { $0.key < $1.key }) { parts.append(String(format: "%@ %.2f dB", name, b.psnr)) }
            if let b = m.bestPSNR, let i = m.bestIteration { parts.append(String(format: "best %.2f dB at %d", b, i)) }
            print("\(m.task.rawValue) (\(m.prior.rawValue)): " + parts.joined(separator: ", "))
            print("wrote \(folder)")
        case .interrupted:
            FileHandle.standardError.write(Data("interrupted: saved a checkpoint in \(folder) (continue with: \(Shell.line("dipviz", ["restore", "--resume", folder])))\n".utf8))
            throw ExitCode(130)
        case .diverged:
            FileHandle.standardError.write(Data("stopped: \(m.message ?? "the loss diverged"); the last good result is in \(folder)\n".utf8))
            throw ExitCode(2)
        }
    }
}
