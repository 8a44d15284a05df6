import DipvizImage
import DipvizONNX
import DipvizTensor
import Foundation

/// A classifier seen from an RGB image in 0...1: preprocessing, then the graph up to the
/// requested layers.
public struct Probe {
    public let network: ONNXNetwork
    public let preprocessing: Preprocessing

    public init(network: ONNXNetwork, preprocessing: Preprocessing) {
        self.network = network
        self.preprocessing = preprocessing
    }

    /// Feature tensors at `layers` (aliases, node or tensor names), differentiable in `rgb`.
    public func features(_ rgb: Tensor, layers: [String]) throws -> [Tensor] {
        guard let input = network.imageInput else { throw ONNXError.inputMismatch("the model has no data input") }
        let names = try layers.map { try network.resolve($0) }
        let out = try network.run([input.name: preprocessing.apply(rgb)], outputs: names)
        return names.map { out[$0]! }
    }

    /// The stride (in input pixels) of a layer, from the network's geometry.
    public func stride(of layer: String, height: Int, width: Int) throws -> Int {
        let tensor = try network.resolve(layer)
        // The stride does not depend on the size; layers past a small image's reach (a pooling
        // window larger than its input) make the summary fail there, so try a classifier's size.
        let summary = try (try? network.summarize(height: height, width: width)) ?? network.summarize(height: Swift.max(height, 224), width: Swift.max(width, 224))
        return summary.first { $0.tensor == tensor }?.stride ?? 1
    }

    /// The class scores before any softmax, when the model ends in a classifier.
    public var logitsTensor: String? {
        let out = network.defaultOutput
        if network.isProbability(out) {
            return network.nodes.first { $0.outputs.first == out }?.inputs.first
        }
        return out
    }

    /// Whether the graph ends in a classifier (a flat score vector).
    public func hasClassifierHead(height: Int, width: Int) -> Bool {
        guard let input = network.imageInput,
              let y = try? GradMode.withoutGrad({ try network.run([input.name: Tensor(zeros: [1, 3, height, width])], outputs: [network.defaultOutput]) })
        else { return false }
        let shape = y[network.defaultOutput]!.shape
        return shape.count >= 2 && shape.dropFirst(2).allSatisfy { $0 == 1 } && shape[1] > 1
    }

    public func top1(_ rgb: Tensor) throws -> Int {
        let y = try GradMode.withoutGrad { try network(preprocessing.apply(rgb)) }
        var best = 0
        for i in 0..<y.count where y.data[i] > y.data[best] { best = i }
        return best
    }
}
