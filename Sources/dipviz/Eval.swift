import ArgumentParser
import DipvizONNX
import DipvizTensor
import Foundation

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a model on a .npy tensor and write one of its tensors as .npy.")

    @Argument(help: "An ONNX model file.")
    var model: String

    @Option(help: "Input tensor (.npy, float32, the model's input layout).")
    var input: String

    @Option(help: "Where to write the result (.npy).")
    var output: String

    @Option(help: "Layer alias, node name or tensor name to write (default: the first graph output).")
    var tensor: String?

    func run() throws {
        let net = try ONNXNetwork(path: model)
        let x = try Tensor.readNPY(path: input)
        let y = try GradMode.withoutGrad { try net(x, output: tensor.map { try net.resolve($0) }) }
        try y.writeNPY(path: output)
    }
}
