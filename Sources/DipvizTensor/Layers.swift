/// A trainable building block. Layers own their parameters; functional ops live on `Tensor`.
public protocol Layer: AnyObject {
    func callAsFunction(_ x: Tensor) -> Tensor
    /// Trainable tensors, in a stable order (for optimisers and checkpoints).
    var parameters: [Tensor] { get }
    /// Non-trainable state that a checkpoint must keep (e.g. batch-norm running statistics).
    var buffers: [Tensor] { get }
    var isTraining: Bool { get set }
    /// Directly contained layers (for walking a model).
    var children: [Layer] { get }
}

extension Layer {
    public var buffers: [Tensor] { [] }
    public var children: [Layer] { [] }

    /// This layer and everything below it, depth first.
    public var allLayers: [Layer] { [self] + children.flatMap(\.allLayers) }
    public var isTraining: Bool { get { true } set {} }
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }
}

public final class Conv2d: Layer {
    public let weight: Tensor
    public let bias: Tensor?
    public var options: Conv2dOptions
    /// Followed by 2x2 average pooling (computed as one stride-2 convolution).
    public var averagePooled = false

    public init(inChannels: Int, outChannels: Int, kernel: Int, options: Conv2dOptions = Conv2dOptions(),
                bias: Bool = true, generator: inout SeededGenerator) {
        precondition(inChannels % options.groups == 0, "\(inChannels) input channels in \(options.groups) groups")
        let shape = [outChannels, inChannels / options.groups, kernel, kernel]
        weight = Initializer.weight(shape, generator: &generator)
        self.bias = bias ? Initializer.bias(count: outChannels, weightShape: shape, generator: &generator) : nil
        self.options = options
    }

    public init(weight: Tensor, bias: Tensor?, options: Conv2dOptions) {
        self.weight = weight; self.bias = bias; self.options = options
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        averagePooled ? x.conv2dAveragePooled(weight: weight, bias: bias, options: options)
            : x.conv2d(weight: weight, bias: bias, options: options)
    }
    public var parameters: [Tensor] { bias.map { [weight, $0] } ?? [weight] }
}

public final class BatchNorm2d: Layer {
    public let gamma: Tensor, beta: Tensor
    public let runningMean: Tensor, runningVar: Tensor
    public var momentum: Float, epsilon: Float
    public var isTraining = true

    public init(channels: Int, momentum: Float = 0.1, epsilon: Float = 1e-5) {
        gamma = Tensor(shape: [channels], repeating: 1, requiresGrad: true)
        beta = Tensor(zeros: [channels], requiresGrad: true)
        runningMean = Tensor(zeros: [channels])
        runningVar = Tensor(shape: [channels], repeating: 1)
        self.momentum = momentum; self.epsilon = epsilon
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { normalize(x) }

    public func normalize(_ x: Tensor, replication: Int = 1) -> Tensor {
        x.batchNorm(gamma: gamma, beta: beta, runningMean: runningMean, runningVar: runningVar,
                    training: isTraining, momentum: momentum, epsilon: epsilon, replication: replication)
    }
    public var parameters: [Tensor] { [gamma, beta] }
    public var buffers: [Tensor] { [runningMean, runningVar] }
}

public final class Linear: Layer {
    public let weight: Tensor, bias: Tensor?

    public init(inFeatures: Int, outFeatures: Int, bias: Bool = true, generator: inout SeededGenerator) {
        let shape = [outFeatures, inFeatures]
        weight = Initializer.weight(shape, generator: &generator)
        self.bias = bias ? Initializer.bias(count: outFeatures, weightShape: shape, generator: &generator) : nil
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { x.linear(weight: weight, bias: bias) }
    public var parameters: [Tensor] { bias.map { [weight, $0] } ?? [weight] }
}

/// A stateless function as a layer (activations, pooling, padding, resizing).
public final class Lambda: Layer {
    public let name: String
    let body: (Tensor) -> Tensor
    public init(_ name: String, _ body: @escaping (Tensor) -> Tensor) { self.name = name; self.body = body }
    public func callAsFunction(_ x: Tensor) -> Tensor { body(x) }
    public var parameters: [Tensor] { [] }
}

public final class Sequential: Layer {
    public private(set) var layers: [Layer]
    public init(_ layers: [Layer] = []) { self.layers = layers }
    public func append(_ layer: Layer) { layers.append(layer) }
    public func callAsFunction(_ x: Tensor) -> Tensor { layers.reduce(x) { $1($0) } }
    public var parameters: [Tensor] { layers.flatMap(\.parameters) }
    public var buffers: [Tensor] { layers.flatMap(\.buffers) }
    public var children: [Layer] { layers }
    public var isTraining: Bool {
        get { layers.contains { $0.isTraining } }
        set { for l in layers { l.isTraining = newValue } }
    }
}
