import Foundation

// Unary maps and binary arithmetic with numpy broadcasting.

extension Tensor {
    /// y = f(x) elementwise; the backward rule gets (x, y, dy) and returns dx.
    @inline(__always)
    func map(_ f: @escaping (Float) -> Float,
             derivative: @escaping (_ x: Float, _ y: Float, _ dy: Float) -> Float) -> Tensor {
        let out = Tensor(uninitializedShape: shape)
        let x = data, y = out.data
        Parallel.forEachRange(count, grain: 1 << 16) { r in for i in r { y[i] = f(x[i]) } }
        return Tensor.record(out, [self]) { out, g in
            self.withGrad { gx in
                let x = self.data, y = out.data, dy = g.data
                Parallel.forEachRange(self.count, grain: 1 << 16) { r in
                    if gx.accumulate { for i in r { gx.pointer[i] += derivative(x[i], y[i], dy[i]) } }
                    else { for i in r { gx.pointer[i] = derivative(x[i], y[i], dy[i]) } }
                }
            }
        }
    }

    public func relu() -> Tensor { map({ Swift.max($0, 0) }, derivative: { x, _, dy in x > 0 ? dy : 0 }) }

    public func leakyRelu(slope: Float = 0.01) -> Tensor {
        map({ $0 > 0 ? $0 : $0 * slope }, derivative: { x, _, dy in x > 0 ? dy : dy * slope })
    }

    public func sigmoid() -> Tensor {
        map({ 1 / (1 + expf(-$0)) }, derivative: { _, y, dy in dy * y * (1 - y) })
    }

    public func tanh() -> Tensor { map({ tanhf($0) }, derivative: { _, y, dy in dy * (1 - y * y) }) }
    public func exp() -> Tensor { map({ expf($0) }, derivative: { _, y, dy in dy * y }) }
    public func log() -> Tensor { map({ logf($0) }, derivative: { x, _, dy in dy / x }) }
    public func abs() -> Tensor { map({ Swift.abs($0) }, derivative: { x, _, dy in x > 0 ? dy : (x < 0 ? -dy : 0) }) }
    public func squared() -> Tensor { map({ $0 * $0 }, derivative: { x, _, dy in 2 * x * dy }) }
    public func sqrt() -> Tensor { map({ sqrtf($0) }, derivative: { _, y, dy in dy / (2 * y) }) }

    public func clamped(min lo: Float = -.infinity, max hi: Float = .infinity) -> Tensor {
        map({ Swift.min(Swift.max($0, lo), hi) }, derivative: { x, _, dy in (x >= lo && x <= hi) ? dy : 0 })
    }

    public func pow(_ p: Float) -> Tensor {
        map({ powf($0, p) }, derivative: { x, _, dy in dy * p * powf(x, p - 1) })
    }

    public func scaled(by s: Float) -> Tensor { map({ $0 * s }, derivative: { _, _, dy in dy * s }) }
    public func shifted(by s: Float) -> Tensor { map({ $0 + s }, derivative: { _, _, dy in dy }) }

    public static prefix func - (x: Tensor) -> Tensor { x.scaled(by: -1) }
    public static func * (x: Tensor, s: Float) -> Tensor { x.scaled(by: s) }
    public static func * (s: Float, x: Tensor) -> Tensor { x.scaled(by: s) }
    public static func + (x: Tensor, s: Float) -> Tensor { x.shifted(by: s) }
    public static func - (x: Tensor, s: Float) -> Tensor { x.shifted(by: -s) }
    public static func / (x: Tensor, s: Float) -> Tensor { x.scaled(by: 1 / s) }
}

/// The result shape of numpy broadcasting, or nil when the shapes do not broadcast.
public func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
    let r = max(a.count, b.count)
    var out = [Int](repeating: 1, count: r)
    for i in 0..<r {
        let da = i < r - a.count ? 1 : a[i - (r - a.count)]
        let db = i < r - b.count ? 1 : b[i - (r - b.count)]
        if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else { return nil }
    }
    return out
}

/// Walks an output shape in runs along its last axis, giving the matching offsets of two
/// broadcast operands (stride 0 along broadcast axes).
struct BroadcastWalk {
    let outShape: [Int]
    let aStrides: [Int], bStrides: [Int]

    init(out: [Int], a: [Int], b: [Int]) {
        outShape = out
        aStrides = BroadcastWalk.strides(of: a, in: out)
        bStrides = BroadcastWalk.strides(of: b, in: out)
    }

    static func strides(of s: [Int], in out: [Int]) -> [Int] {
        let pad = out.count - s.count
        let own = Tensor.contiguousStrides(s)
        return (0..<out.count).map { i in i < pad || s[i - pad] == 1 ? 0 : own[i - pad] }
    }

    /// body(outOffset, aOffset, bOffset, runLength, aStep, bStep)
    func forEachRun(_ body: (Int, Int, Int, Int, Int, Int) -> Void) {
        let r = outShape.count
        guard r > 0 else { body(0, 0, 0, 1, 0, 0); return }
        let run = outShape[r - 1]
        let total = outShape.reduce(1, *)
        guard total > 0 else { return }
        var index = [Int](repeating: 0, count: r)
        var out = 0, ao = 0, bo = 0
        while out < total {
            body(out, ao, bo, run, aStrides[r - 1], bStrides[r - 1])
            out += run
            var d = r - 2
            while d >= 0 {
                index[d] += 1; ao += aStrides[d]; bo += bStrides[d]
                if index[d] < outShape[d] { break }
                ao -= aStrides[d] * index[d]; bo -= bStrides[d] * index[d]; index[d] = 0
                d -= 1
            }
            if d < 0 { break }
        }
    }
}

enum BinaryKind { case add, sub, mul, div }

extension Tensor {
    static func binary(_ a: Tensor, _ b: Tensor, _ kind: BinaryKind) -> Tensor {
        guard let shape = broadcastShape(a.shape, b.shape) else {
            preconditionFailure("shapes \(a.shape) and \(b.shape) do not broadcast")
        }
        let out = Tensor(uninitializedShape: shape)
        let pa = a.data, pb = b.data, po = out.data
        @inline(__always) func apply(_ x: Float, _ y: Float) -> Float {
            switch kind { case .add: return x + y; case .sub: return x - y; case .mul: return x * y; case .div: return x / y }
        }
        if a.shape == b.shape {
            Parallel.forEachRange(out.count, grain: 1 << 16) { r in for i in r { po[i] = apply(pa[i], pb[i]) } }
        } else {
            BroadcastWalk(out: shape, a: a.shape, b: b.shape).forEachRun { o, ao, bo, n, sa, sb in
                for j in 0..<n { po[o + j] = apply(pa[ao + j * sa], pb[bo + j * sb]) }
            }
        }
        return record(out, [a, b]) { out, g in
            let dy = g.data
            let same = a.shape == b.shape
            // d(out)/da and d(out)/db given (a, b, dy)
            func dA(_ x: Float, _ y: Float, _ d: Float) -> Float {
                switch kind { case .add, .sub: return d; case .mul: return d * y; case .div: return d / y }
            }
            func dB(_ x: Float, _ y: Float, _ d: Float) -> Float {
                switch kind { case .add: return d; case .sub: return -d; case .mul: return d * x; case .div: return -d * x / (y * y) }
            }
            for (target, isA) in [(a, true), (b, false)] where target.needsGrad {
                target.withGrad { gt in
                    if same {
                        Parallel.forEachRange(out.count, grain: 1 << 16) { r in
                            for i in r {
                                let v = isA ? dA(pa[i], pb[i], dy[i]) : dB(pa[i], pb[i], dy[i])
                                gt.put(i, v)
                            }
                        }
                    } else {
                        gt.prepareForScatter(count: target.count)
                        BroadcastWalk(out: out.shape, a: a.shape, b: b.shape).forEachRun { o, ao, bo, n, sa, sb in
                            for j in 0..<n {
                                let x = pa[ao + j * sa], y = pb[bo + j * sb]
                                if isA { gt.pointer[ao + j * sa] += dA(x, y, dy[o + j]) }
                                else { gt.pointer[bo + j * sb] += dB(x, y, dy[o + j]) }
                            }
                        }
                    }
                }
            }
        }
    }

    public static func + (a: Tensor, b: Tensor) -> Tensor { binary(a, b, .add) }
    public static func - (a: Tensor, b: Tensor) -> Tensor { binary(a, b, .sub) }
    public static func * (a: Tensor, b: Tensor) -> Tensor { binary(a, b, .mul) }
    public static func / (a: Tensor, b: Tensor) -> Tensor { binary(a, b, .div) }
}
