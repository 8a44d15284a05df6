import ArgumentParser
import DipvizImage
import DipvizONNX
import Foundation

struct Classify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify a PNG image: preprocess as the model says and print the top classes.")

    @OptionGroup var options: ModelOptions

    @Argument(help: "A PNG image (8/16-bit, grey, RGB, RGBA or palette).")
    var image: String

    @Option(help: "Class names, one per line in output order (default: imagenet-synsets.txt, synset.txt or labels.txt beside the model).")
    var labels: String?

    @Option(help: "How many classes to print.")
    var top = 5

    @Option(help: "Resize filter: bicubic, area or bilinear.")
    var resize: ResizeFilter = .bicubic

    @Flag(help: "Print JSON: {\"top\": [{\"index\", \"label\", \"probability\"}]}.")
    var json = false

    func validate() throws {
        guard top >= 1 else { throw ValidationError("--top must be at least 1") }
    }

    func run() throws {
        let (net, preprocessing) = try options.load()
        let picture = try PNG.read(path: image)
        let names = try (labels ?? ClassLabels.besideModel(options.model)).map { try ClassLabels.load(path: $0) }
        let predictions = try net.classify(net.prepare(picture, preprocessing: preprocessing, filter: resize), top: top, labels: names)
        if json {
            struct Output: Encodable { let top: [Prediction] }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(Output(top: predictions)), as: UTF8.self))
        } else {
            for p in predictions { print(String(format: "%6.2f%%  %4d  %@", p.probability * 100, p.index, p.label)) }
        }
    }
}
