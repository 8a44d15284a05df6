/// Vectorised sums for the statistics of normalisation layers: float lanes over short blocks,
/// each block added into a double, so long planes neither lose precision nor run one scalar add
/// at a time.
enum Reductions {
    typealias V = SIMD8<Float>
    static let block = 2048

    /// (sum of x, sum of x^2) over `count` floats.
    static func sumAndSquares(_ x: UnsafePointer<Float>, _ count: Int) -> (Double, Double) {
        var total = 0.0, squares = 0.0
        var start = 0
        while start < count {
            let n = Swift.min(block, count - start)
            var s0 = V.zero, s1 = V.zero, q0 = V.zero, q1 = V.zero
            var i = 0
            let p = x + start
            while i + 16 <= n {
                let a = UnsafeRawPointer(p + i).loadUnaligned(as: V.self)
                let b = UnsafeRawPointer(p + i + 8).loadUnaligned(as: V.self)
                s0 += a; s1 += b
                q0 = q0.addingProduct(a, a); q1 = q1.addingProduct(b, b)
                i += 16
            }
            var s = (s0 + s1).sum(), q = (q0 + q1).sum()
            while i < n { let v = p[i]; s += v; q += v * v; i += 1 }
            total += Double(s); squares += Double(q)
            start += n
        }
        return (total, squares)
    }

    /// (sum of g, sum of g * (x - shift)) over `count` floats.
    static func sumAndCentredDot(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, shift: Float, _ count: Int) -> (Double, Double) {
        var total = 0.0, dot = 0.0
        let c = V(repeating: shift)
        var start = 0
        while start < count {
            let n = Swift.min(block, count - start)
            var s0 = V.zero, s1 = V.zero, d0 = V.zero, d1 = V.zero
            var i = 0
            let pg = g + start, px = x + start
            while i + 16 <= n {
                let a = UnsafeRawPointer(pg + i).loadUnaligned(as: V.self)
                let b = UnsafeRawPointer(pg + i + 8).loadUnaligned(as: V.self)
                s0 += a; s1 += b
                d0 = d0.addingProduct(a, UnsafeRawPointer(px + i).loadUnaligned(as: V.self) - c)
                d1 = d1.addingProduct(b, UnsafeRawPointer(px + i + 8).loadUnaligned(as: V.self) - c)
                i += 16
            }
            var s = (s0 + s1).sum(), d = (d0 + d1).sum()
            while i < n { s += pg[i]; d += pg[i] * (px[i] - shift); i += 1 }
            total += Double(s); dot += Double(d)
            start += n
        }
        return (total, dot)
    }
}
