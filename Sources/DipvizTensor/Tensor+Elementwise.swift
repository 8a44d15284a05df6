import Foundation

// Unary maps and binary arithmetic with numpy broadcasting.

/// An elementwise function with its derivative, as a type so that each map specialises into a
/// tight loop (closures would cost a call per element).
public protocol UnaryKernel {
    func value(_ x: Float) -> Float
    /// dL/dx from x, y = value(x) and dL/dy.
    func derivative(x: Float, y: Float, dy: Float) -> Float
}

struct ReLUKernel: UnaryKernel {
    @inline(__always) func value(_ x: Float) -> Float { x > 0 ? x : 0 }
    @inline(__always) func derivative(x: Float, y: Float, dy: Float) -> Float { x > 0 ? dy : 0 }
}
struct LeakyReLUKernel: UnaryKernel {
    let slope: Float
    @inline(__always) func value(_ x: Float) -> Float { x > 0 ? x : x * slope }
    @inline(__always) func derivative(x: Float, y: Float, dy: Float) -> Float { x > 0 ? dy : dy * slope }
}
struct SigmoidKernel: UnaryKernel {
    @inline(__always) func value(_ x: Float) -> Float { 1 / (1 + expf(-x)) }
    @inline(__always) func derivative(x: Float, y: Float, dy: Float) -> Float { dy * y * (1 - y) }
}
struct TanhKernel: UnaryKernel {
    @inline(__always) func value(_ x: Float) -> Float { tanhf(x) }
    @inline(__always) func derivative(x: Float, y: Float, dy: Float) -> Float { dy * (1 - y * y) }
}
struct ExpKernel: UnaryKernel {
    @inline(__always) func value(_ x: Float) -> Float { expf(x) }
    @inline(__always) func derivative(x: Float, y: Float, dy: Float) -> Float { dy * y }
}
struct LogKernel: UnaryKernel {
    @inline(__always) func value(_ x: Float) -> Float { logf(x) }
    @inline(__always) func derivative(x: Float, y: Float, dy: Float) -> Float { dy / x }
}
struct AbsKernel: UnaryKernel {
    @inline(__always) func value(_ x: Float) -> Float { Swift.abs(x) }
    @inline(__always) func derivative(x: Float, y: Float, dy: Float) -> Float { x > 0 ? dy : (x < 0 ? -dy : 0) }
}
struct SqrtKernel: UnaryKernel {
    @inline(__always) func value(_ x: Float) -> Float { x.squareRoot() }
    @inline(__always) func derivative(x: Float, y: Float, dy: Float) -> Float { dy / (2 * y) }
}
struct ClampKernel: UnaryKernel {
    let lo: Float, hi: Float
    @inline(__always) func value(_ x: Float) -> Float { Swift.min(Swift.max(x, lo), hi) }
    @inline(__always) func derivative(x: Float, y: Float, dy: Float) -> Float { (x >= lo && x <= hi) ? dy : 0 }
}
struct PowerKernel: UnaryKernel {
    let p: Float
    @inline(__always) func value(_ x: Float) -> Float { p == 2 ? x * x : powf(x, p) }
    @inline(__always) func derivative(x: Float, y: Float, dy: Float) -> Float { p == 2 ? 2 * x * dy : dy * p * powf(x, p - 1) }
}
struct AffineKernel: UnaryKernel {
    let scale: Float, shift: Float
    @inline(__always) func value(_ x: Float) -> Float { x * scale + shift }
    @inline(__always) func derivative(x: Float, y: Float, dy: Float) -> Float { dy * scale }
}

extension Tensor {
    /// y = k.value(x) elementwise, differentiable.
    public func map<K: UnaryKernel>(_ k: K) -> Tensor {
        let out = Tensor(uninitializedShape: shape)
        let x = data, y = out.data
        Parallel.forEachRange(count, grain: 1 << 16) { r in for i in r { y[i] = k.value(x[i]) } }
        return Tensor.record(out, [self]) { out, g in
            self.withGrad { gx in
                let x = self.data, y = out.data, dy = g.data, d = gx.pointer
                Parallel.forEachRange(self.count, grain: 1 << 16) { r in
                    if gx.accumulate { for i in r { d[i] += k.derivative(x: x[i], y: y[i], dy: dy[i]) } }
                    else { for i in r { d[i] = k.derivative(x: x[i], y: y[i], dy: dy[i]) } }
                }
            }
        }
    }

    public func relu() -> Tensor { map(ReLUKernel()) }
    public func leakyRelu(slope: Float = 0.01) -> Tensor { map(LeakyReLUKernel(slope: slope)) }
    public func sigmoid() -> Tensor { map(SigmoidKernel()) }
    public func tanh() -> Tensor { map(TanhKernel()) }
    public func exp() -> Tensor { map(ExpKernel()) }
    public func log() -> Tensor { map(LogKernel()) }
    public func abs() -> Tensor { map(AbsKernel()) }
    public func squared() -> Tensor { map(PowerKernel(p: 2)) }
    public func sqrt() -> Tensor { map(SqrtKernel()) }
    public func clamped(min lo: Float = -.infinity, max hi: Float = .infinity) -> Tensor { map(ClampKernel(lo: lo, hi: hi)) }
    public func pow(_ p: Float) -> Tensor { map(PowerKernel(p: p)) }
    public func scaled(by s: Float) -> Tensor { map(AffineKernel(scale: s, shift: 0)) }
    public func shifted(by s: Float) -> Tensor { map(AffineKernel(scale: 1, shift: s)) }

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

/// The arithmetic of one binary op and its partial derivatives, as a type for specialisation.
protocol BinaryKernel {
    static func value(_ a: Float, _ b: Float) -> Float
    static func gradA(_ a: Float, _ b: Float, _ d: Float) -> Float
    static func gradB(_ a: Float, _ b: Float, _ d: Float) -> Float
}
enum AddKernel: BinaryKernel {
    @inline(__always) static func value(_ a: Float, _ b: Float) -> Float { a + b }
    @inline(__always) static func gradA(_ a: Float, _ b: Float, _ d: Float) -> Float { d }
    @inline(__always) static func gradB(_ a: Float, _ b: Float, _ d: Float) -> Float { d }
}
enum SubKernel: BinaryKernel {
    @inline(__always) static func value(_ a: Float, _ b: Float) -> Float { a - b }
    @inline(__always) static func gradA(_ a: Float, _ b: Float, _ d: Float) -> Float { d }
    @inline(__always) static func gradB(_ a: Float, _ b: Float, _ d: Float) -> Float { -d }
}
enum MulKernel: BinaryKernel {
    @inline(__always) static func value(_ a: Float, _ b: Float) -> Float { a * b }
    @inline(__always) static func gradA(_ a: Float, _ b: Float, _ d: Float) -> Float { d * b }
    @inline(__always) static func gradB(_ a: Float, _ b: Float, _ d: Float) -> Float { d * a }
}
enum DivKernel: BinaryKernel {
    @inline(__always) static func value(_ a: Float, _ b: Float) -> Float { a / b }
    @inline(__always) static func gradA(_ a: Float, _ b: Float, _ d: Float) -> Float { d / b }
    @inline(__always) static func gradB(_ a: Float, _ b: Float, _ d: Float) -> Float { -d * a / (b * b) }
}

extension Tensor {
    static func binary<K: BinaryKernel>(_ a: Tensor, _ b: Tensor, _ kernel: K.Type) -> Tensor {
        guard let shape = broadcastShape(a.shape, b.shape) else {
            preconditionFailure("shapes \(a.shape) and \(b.shape) do not broadcast")
        }
        let out = Tensor(uninitializedShape: shape)
        let pa = a.data, pb = b.data, po = out.data
        let same = a.shape == b.shape
        if same {
            Parallel.forEachRange(out.count, grain: 1 << 16) { r in for i in r { po[i] = K.value(pa[i], pb[i]) } }
        } else {
            BroadcastWalk(out: shape, a: a.shape, b: b.shape).forEachRun { o, ao, bo, n, sa, sb in
                for j in 0..<n { po[o + j] = K.value(pa[ao + j * sa], pb[bo + j * sb]) }
            }
        }
        return record(out, [a, b]) { out, g in
            binaryGradient(K.self, first: true, a, b, out: out, dy: g.data)
            binaryGradient(K.self, first: false, a, b, out: out, dy: g.data)
        }
    }

    /// Adds dL/da (first) or dL/db into that operand's gradient, reducing over broadcast axes.
    static func binaryGradient<K: BinaryKernel>(_ kernel: K.Type, first: Bool, _ a: Tensor, _ b: Tensor,
                                                out: Tensor, dy: UnsafePointer<Float>) {
        let target = first ? a : b
        let pa = a.data, pb = b.data
        @inline(__always) func grad(_ x: Float, _ y: Float, _ d: Float) -> Float {
            first ? K.gradA(x, y, d) : K.gradB(x, y, d)
        }
        target.withGrad { gt in
            let d = gt.pointer
            if a.shape == b.shape {
                Parallel.forEachRange(out.count, grain: 1 << 16) { r in
                    if gt.accumulate { for i in r { d[i] += grad(pa[i], pb[i], dy[i]) } }
                    else { for i in r { d[i] = grad(pa[i], pb[i], dy[i]) } }
                }
            } else {
                gt.prepareForScatter(count: target.count)
                BroadcastWalk(out: out.shape, a: a.shape, b: b.shape).forEachRun { o, ao, bo, n, sa, sb in
                    Tensor.scatterRun(into: d + (first ? ao : bo), step: first ? sa : sb, count: n) { j in
                        grad(pa[ao + j * sa], pb[bo + j * sb], dy[o + j])
                    }
                }
            }
        }
    }

    /// Adds value(j) to dst[j * step] for j < count; a broadcast run (step 0) is summed first.
    @inline(__always)
    static func scatterRun(into dst: UnsafeMutablePointer<Float>, step: Int, count: Int, _ value: (Int) -> Float) {
        if step == 0 {
            var acc: Float = 0
            for j in 0..<count { acc += value(j) }
            dst[0] += acc
        } else {
            for j in 0..<count { dst[j * step] += value(j) }
        }
    }

    public static func + (a: Tensor, b: Tensor) -> Tensor { binary(a, b, AddKernel.self) }
    public static func - (a: Tensor, b: Tensor) -> Tensor { binary(a, b, SubKernel.self) }
    public static func * (a: Tensor, b: Tensor) -> Tensor { binary(a, b, MulKernel.self) }
    public static func / (a: Tensor, b: Tensor) -> Tensor { binary(a, b, DivKernel.self) }
}
