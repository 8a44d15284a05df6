import ArgumentParser
import DipvizVisualize
import Foundation

struct Invert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Natural pre-image: find an image whose features at the given layers match a photo's.")

    @OptionGroup var model: RunModelOptions

    @Argument(help: "The photo whose features are inverted (PNG).")
    var image: String?

    @Option(help: "Layer(s) to invert, comma separated (aliases, node or tensor names).")
    var layer: String?

    @OptionGroup var runOptions: RunOptions

    func validate() throws {
        guard runOptions.resume == nil else { return }
        guard model.model != nil else { throw ValidationError("give the model (an ONNX file)") }
        guard image != nil else { throw ValidationError("give the photo to invert") }
        guard let layer, !Invert.layers(layer).isEmpty else { throw ValidationError("give --layer (one or more layers, comma separated)") }
    }

    static func layers(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func run() throws {
        if let dir = runOptions.resume {
            var extra: [String] = []
            if model.model != nil { extra.append("the model") }
            if image != nil { extra.append("the photo") }
            if layer != nil { extra.append("--layer") }
            if !model.preprocessing.isEmpty { extra.append("the preprocessing options") }
            return try RunCommand.resume(dir, options: runOptions, extra: extra, label: "invert")
        }
        let layers = Invert.layers(layer!)
        var request = RunRequest(model: model.model!, task: .inversion(image: image!, layers: layers), prior: runOptions.prior ?? .dip)
        runOptions.fill(&request)
        try RunCommand.start(request, preprocessing: model.preprocessing, out: runOptions.out!,
                             label: "invert \(layers.joined(separator: ",")) (\(request.prior.rawValue))")
    }
}
