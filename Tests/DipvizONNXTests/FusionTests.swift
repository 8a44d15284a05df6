@testable import DipvizONNX
import DipvizTensor
import Foundation
import Testing

@Suite("Conv nodes run with their ReLU in the epilogue")
struct FusionTests {
    /// conv1 -> relu1 -> conv2 -> relu2 -> pool: each Conv feeds only its Relu.
    static func network() throws -> ONNXNetwork {
        var b = ONNXGraphBuilder(seed: 5)
        b.conv(8, kernel: 3, pad: 1); b.relu(); b.conv(6, kernel: 3, pad: 1); b.relu(); b.maxPool(2, stride: 2)
        return try ONNXNetwork(model: b.model(name: "pair", inputShape: [1, 3, nil, nil]))
    }

    /// Both pairs are fused when only the end is asked for; a Conv whose output is asked for
    /// (a user inverting it) is not.
    @Test func fusionFollowsWhatIsAskedFor() throws {
        let net = try Self.network()
        let conv = net.nodes.indices.filter { net.nodes[$0].opType == "Conv" }
        #expect(conv.count == 2)
        let all = Array(net.nodes.indices)
        let last = try net.resolve(net.layers.last!.tensor)
        #expect(net.convolutionsWithReLU(all, targets: [last]).keys.sorted() == conv)
        let conv1 = try net.resolve("conv1")
        #expect(net.convolutionsWithReLU(all, targets: [last, conv1]).keys.sorted() == [conv[1]])
    }

    /// Fused and unfused runs give the same values and input gradients; the Conv outputs asked
    /// for keep their negative values.
    @Test func fusedRunsMatchUnfusedOnes() throws {
        let net = try Self.network()
        var rng = SeededGenerator(seed: 6)
        let x = Tensor.uniform([1, 3, 12, 10], low: -1, high: 1, generator: &rng)
        x.requiresGrad = true
        let input = net.imageInput!.name
        let names = net.layers.map(\.tensor)
        let fused = try net.run([input: x], outputs: [names.last!])[names.last!]!
        let seed = Tensor.uniform(fused.shape, low: -1, high: 1, generator: &rng)
        fused.backward(seed: seed)
        let fusedGradient = x.grad!.scalars
        x.grad = nil
        let every = try net.run([input: x], outputs: names)
        let conv1 = every[try net.resolve("conv1")]!, relu1 = every[try net.resolve("relu1")]!
        #expect(conv1.scalars.contains { $0 < 0 })
        #expect(relu1.scalars == conv1.scalars.map { max(0, $0) })
        let unfused = every[names.last!]!
        #expect(relativeError(fused, unfused) < 1e-6)
        unfused.backward(seed: seed)
        #expect(relativeError(Tensor(shape: x.shape, scalars: fusedGradient), x.grad!) < 1e-5)
    }
}
