import ArgumentParser
import DipvizImage
import DipvizONNX
import DipvizTensor
import DipvizVisualize
import Foundation

struct Invert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Natural pre-image: find an image whose features at the given layers match a photo's.")

    @OptionGroup var model: ModelOptions

    @Argument(help: "The photo whose features are inverted (PNG).")
    var image: String?

    @Option(help: "Layer(s) to invert, comma separated (aliases, node or tensor names).")
    var layer: String?

    @OptionGroup var runOptions: RunOptions

    func validate() throws {
        if runOptions.resume == nil {
            guard image != nil else { throw ValidationError("give the photo to invert") }
            guard let layer, !layer.isEmpty else { throw ValidationError("give --layer") }
        }
    }

    func run() throws {
        Interruption.install()
        let (net, preprocessing) = try model.load()
        var settings: InversionSettings
        var photo = image ?? ""
        var resume: Checkpoint? = nil
        if let dir = runOptions.resume {
            let record = try JSONDecoder().decode(RunRecordFile.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/run.json")))
            guard let saved = record.inversion, let savedImage = record.image else { throw ValidationError("\(dir) is not an inversion run") }
            settings = saved
            photo = savedImage
            resume = try Checkpoint.load(directory: dir)
        } else {
            settings = InversionSettings(layers: layer!.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) },
                                         prior: runOptions.prior, iterations: runOptions.iterations,
                                         size: try runOptions.workingSize(net, preprocessing), seed: runOptions.seed)
            settings.generator = runOptions.generator(default: .inversion).fitted(toImageSize: settings.size)
            if let lr = runOptions.lr { settings.learningRate = lr }
            settings.tv.dataWeight = runOptions.dataWeight ?? 1
        }
        let probe = Probe(network: net, preprocessing: preprocessing)
        for l in settings.layers { _ = try net.resolve(l) }
        let picture = try PNG.read(path: photo).centreCropped(aspect: 1).resized(width: settings.size, height: settings.size)
        let folder = try OutputFolder(path: runOptions.resume ?? runOptions.out)
        try folder.writeJSON(RunRecordFile(command: "invert", model: model.model, image: photo, inversion: settings), name: "run.json")
        try PNG.write(picture, path: folder.file("original.png"))
        var control = folder.control(snapshotEvery: runOptions.snapshotEvery)
        let progress = ProgressLine(label: "invert \(settings.layers.joined(separator: ",")) (\(settings.prior.rawValue))")
        control.progress = progress.update
        control.shouldStop = { Interruption.isRequested }
        let result = try Inversion.run(probe: probe, target: picture.tensor(), settings: settings, control: control,
                                       resume: resume, modelName: model.model)
        try folder.writeImage(result.image, name: "image.png")
        try folder.writeJSON(result.metrics, name: "metrics.json")
        try folder.writeJSON(result.curve, name: "curve.json")
        try finish(result.metrics.ending, message: result.metrics.message, folder: folder.path,
                   summary: String(format: "feature error %.4f (start %.4f), PSNR %.2f dB, SSIM %.3f", result.metrics.featureError,
                                   result.metrics.featureErrorStart, result.metrics.psnr, result.metrics.ssim))
    }
}

/// Reports how a run ended; interrupted and diverged runs exit non-zero after saving.
func finish(_ ending: RunEnding, message: String?, folder: String, summary: String) throws {
    switch ending {
    case .finished:
        print("\(summary); wrote \(folder)")
    case .interrupted:
        FileHandle.standardError.write(Data("interrupted: saved the latest result and a checkpoint in \(folder) (continue with --resume \(folder))\n".utf8))
        throw ExitCode(130)
    case .diverged:
        FileHandle.standardError.write(Data("stopped: \(message ?? "the loss diverged"); the last good result is in \(folder)\n".utf8))
        throw ExitCode(2)
    }
}
