import ArgumentParser
import DipvizImage
import DipvizVisualize
import Foundation

extension LPIPS.Backbone: ExpressibleByArgument {}

struct Lpips: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lpips",
        abstract: "Perceptual distance LPIPS v0.1 (Zhang et al. 2018) between two PNG images of the same size.")

    @Argument(help: "The first PNG image.")
    var first: String

    @Argument(help: "The second PNG image, of the same size.")
    var second: String

    @Option(help: "Backbone: alex (AlexNet, LPIPS's default) or vgg (VGG16).")
    var net: LPIPS.Backbone = .alex

    @Option(help: "Folder holding the backbone and heads that models/prepare writes (alexnet-features.onnx and lpips-alexnet.npy, or vgg16-features.onnx and lpips-vgg16.npy).")
    var models = "models"

    @Flag(help: "Print JSON: {\"net\", \"lpips\"}.")
    var json = false

    func run() throws {
        let a = try PNG.read(path: first), b = try PNG.read(path: second)
        guard a.width == b.width, a.height == b.height else {
            throw ValidationError("\(first) is \(a.width)x\(a.height) but \(second) is \(b.width)x\(b.height); LPIPS compares images of the same size")
        }
        let d = try LPIPS(net, modelsDirectory: models).distance(a.tensor(), b.tensor())
        if json {
            print("{\"lpips\":\(d),\"net\":\"\(net.rawValue)\"}")
        } else {
            print(String(format: "%.6f", d))
        }
    }
}
