import Foundation

/// An optimiser updates the tensors it was given from their accumulated gradients.
public protocol Optimizer: AnyObject {
    var parameters: [Tensor] { get }
    var learningRate: Float { get set }
    var stepCount: Int { get }
    func step()
}

extension Optimizer {
    public func zeroGrad() { parameters.zeroGrad() }
}

/// Adam (Kingma & Ba) with PyTorch's options: L2 weight decay or decoupled (AdamW), AMSGrad.
public final class Adam: Optimizer {
    public let parameters: [Tensor]
    public var learningRate: Float
    public var beta1: Float, beta2: Float, epsilon: Float
    public var weightDecay: Float
    public var decoupledWeightDecay: Bool
    public var amsgrad: Bool
    public private(set) var stepCount = 0
    /// First and second moments (and AMSGrad's maxima), one buffer per parameter.
    public private(set) var firstMoments: [Tensor]
    public private(set) var secondMoments: [Tensor]
    public private(set) var maxSecondMoments: [Tensor]

    public init(parameters: [Tensor], learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999,
                epsilon: Float = 1e-8, weightDecay: Float = 0, decoupledWeightDecay: Bool = false, amsgrad: Bool = false) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.decoupledWeightDecay = decoupledWeightDecay
        self.amsgrad = amsgrad
        firstMoments = parameters.map { Tensor(zeros: $0.shape) }
        secondMoments = parameters.map { Tensor(zeros: $0.shape) }
        maxSecondMoments = amsgrad ? parameters.map { Tensor(zeros: $0.shape) } : []
    }

    /// Restores moments and step count saved from an earlier run.
    public func restore(step: Int, first: [Tensor], second: [Tensor]) {
        precondition(first.count == parameters.count && second.count == parameters.count, "optimiser state size")
        stepCount = step
        for (dst, src) in zip(firstMoments, first) { dst.copy(from: src) }
        for (dst, src) in zip(secondMoments, second) { dst.copy(from: src) }
    }

    public func step() {
        stepCount += 1
        let t = Float(stepCount)
        let bc1 = 1 - powf(beta1, t), bc2 = 1 - powf(beta2, t)
        let lr = learningRate, b1 = beta1, b2 = beta2, eps = epsilon, wd = weightDecay
        let decoupled = decoupledWeightDecay, ams = amsgrad
        for (i, p) in parameters.enumerated() {
            guard let g = p.grad else { continue }
            // The update writes the buffer in place: values derived from it are stale.
            p.storage.dropDerived()
            let w = p.data, gd = g.data, m = firstMoments[i].data, v = secondMoments[i].data
            let vmax = ams ? maxSecondMoments[i].data : v
            Parallel.forEachRange(p.count, grain: 1 << 15) { r in
                for j in r {
                    var grad = gd[j]
                    if wd != 0 {
                        if decoupled { w[j] -= lr * wd * w[j] } else { grad += wd * w[j] }
                    }
                    m[j] = b1 * m[j] + (1 - b1) * grad
                    v[j] = b2 * v[j] + (1 - b2) * grad * grad
                    var second = v[j]
                    if ams { vmax[j] = Swift.max(vmax[j], v[j]); second = vmax[j] }
                    let denom = (second / bc2).squareRoot() + eps
                    w[j] -= lr * (m[j] / bc1) / denom
                }
            }
        }
    }
}

/// Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay, as PyTorch.
public final class SGD: Optimizer {
    public let parameters: [Tensor]
    public var learningRate: Float
    public var momentum: Float, dampening: Float, weightDecay: Float
    public var nesterov: Bool
    public private(set) var stepCount = 0
    public private(set) var velocities: [Tensor]

    public init(parameters: [Tensor], learningRate: Float, momentum: Float = 0, dampening: Float = 0,
                weightDecay: Float = 0, nesterov: Bool = false) {
        precondition(!nesterov || (momentum > 0 && dampening == 0), "Nesterov momentum needs momentum > 0 and no dampening")
        self.parameters = parameters
        self.learningRate = learningRate
        self.momentum = momentum; self.dampening = dampening; self.weightDecay = weightDecay
        self.nesterov = nesterov
        velocities = parameters.map { Tensor(zeros: $0.shape) }
    }

    public func step() {
        let first = stepCount == 0
        stepCount += 1
        let lr = learningRate, mu = momentum, damp = dampening, wd = weightDecay, nest = nesterov
        for (i, p) in parameters.enumerated() {
            guard let g = p.grad else { continue }
            p.storage.dropDerived()
            let w = p.data, gd = g.data, buf = velocities[i].data
            Parallel.forEachRange(p.count, grain: 1 << 15) { r in
                for j in r {
                    var d = gd[j]
                    if wd != 0 { d += wd * w[j] }
                    if mu != 0 {
                        buf[j] = first ? d : mu * buf[j] + (1 - damp) * d
                        d = nest ? d + mu * buf[j] : buf[j]
                    }
                    w[j] -= lr * d
                }
            }
        }
    }
}

/// Learning rate as a function of the step about to be taken (0-based).
public enum LearningRateSchedule: Sendable, Codable, Equatable {
    case constant
    /// Multiplies by `factor` every `every` steps.
    case step(every: Int, factor: Float)
    /// Multiplies by `factor` at each listed step.
    case multiStep(milestones: [Int], factor: Float)
    case exponential(factor: Float)
    /// Cosine annealing from the base rate to `minimum` over `total` steps.
    case cosine(total: Int, minimum: Float)
    /// Linear warm-up over `steps`, then constant.
    case warmup(steps: Int)

    public func rate(base: Float, step t: Int) -> Float {
        switch self {
        case .constant: return base
        case let .step(every, factor): return base * powf(factor, Float(t / Swift.max(every, 1)))
        case let .multiStep(milestones, factor): return base * powf(factor, Float(milestones.filter { t >= $0 }.count))
        case let .exponential(factor): return base * powf(factor, Float(t))
        case let .cosine(total, minimum):
            let p = Float(Swift.min(t, total)) / Float(Swift.max(total, 1))
            return minimum + (base - minimum) * (1 + cosf(.pi * p)) / 2
        case let .warmup(steps): return base * Swift.min(1, Float(t + 1) / Float(Swift.max(steps, 1)))
        }
    }

    /// Sets the optimiser's rate for its next step.
    public func apply(to optimizer: Optimizer, base: Float) {
        optimizer.learningRate = rate(base: base, step: optimizer.stepCount)
    }
}
