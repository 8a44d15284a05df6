import Foundation

/// xoshiro256** seeded through SplitMix64: fast, reproducible on every platform, and
/// independent of the system generator.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var z = seed
        func splitMix() -> UInt64 {
            z &+= 0x9E37_79B9_7F4A_7C15
            var x = z
            x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
            x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
            return x ^ (x >> 31)
        }
        s = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = (s.3 << 45) | (s.3 >> 19)
        return result
    }

    /// Uniform in [0, 1) with 24 bits of precision.
    @inline(__always)
    public mutating func nextUnitFloat() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// Standard normal by Box-Muller.
    @inline(__always)
    public mutating func nextNormal() -> Float {
        let u1 = Swift.max(Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0), Double.leastNonzeroMagnitude)
        let u2 = Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
        return Float((-2 * Foundation.log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
}

extension Tensor {
    public static func uniform(_ shape: [Int], low: Float = 0, high: Float = 1, generator: inout SeededGenerator,
                               requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        for i in 0..<t.count { t.data[i] = low + (high - low) * generator.nextUnitFloat() }
        t.requiresGrad = requiresGrad
        return t
    }

    public static func normal(_ shape: [Int], mean: Float = 0, std: Float = 1, generator: inout SeededGenerator,
                              requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        for i in 0..<t.count { t.data[i] = mean + std * generator.nextNormal() }
        t.requiresGrad = requiresGrad
        return t
    }

    public static func uniform(_ shape: [Int], low: Float = 0, high: Float = 1, seed: UInt64) -> Tensor {
        var g = SeededGenerator(seed: seed)
        return uniform(shape, low: low, high: high, generator: &g)
    }

    public static func normal(_ shape: [Int], mean: Float = 0, std: Float = 1, seed: UInt64) -> Tensor {
        var g = SeededGenerator(seed: seed)
        return normal(shape, mean: mean, std: std, generator: &g)
    }
}

/// PyTorch's default initialisation of Conv2d and Linear: kaiming_uniform with a = sqrt(5),
/// which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the weight, and the same bound for the bias.
public enum Initializer {
    public static func fanIn(of weightShape: [Int]) -> Int { weightShape.dropFirst().reduce(1, *) }

    public static func defaultBound(weightShape: [Int]) -> Float {
        1 / Float(Swift.max(fanIn(of: weightShape), 1)).squareRoot()
    }

    public static func weight(_ shape: [Int], generator: inout SeededGenerator) -> Tensor {
        let b = defaultBound(weightShape: shape)
        return Tensor.uniform(shape, low: -b, high: b, generator: &generator, requiresGrad: true)
    }

    public static func bias(count: Int, weightShape: [Int], generator: inout SeededGenerator) -> Tensor {
        let b = defaultBound(weightShape: weightShape)
        return Tensor.uniform([count], low: -b, high: b, generator: &generator, requiresGrad: true)
    }

    /// He et al.'s normal initialisation: N(0, 2 / fan_in) (PyTorch kaiming_normal_, ReLU gain).
    public static func kaimingNormal(_ shape: [Int], generator: inout SeededGenerator) -> Tensor {
        let std = (2 / Float(Swift.max(fanIn(of: shape), 1))).squareRoot()
        return Tensor.normal(shape, std: std, generator: &generator, requiresGrad: true)
    }
}
