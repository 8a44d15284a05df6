import Foundation

// Sums, means, softmax and the scalar losses built on them.

extension Tensor {
    /// Sum of all elements, accumulated in double precision.
    public func sum() -> Tensor {
        let p = data
        let total = Parallel.sumOverRanges(count) { r in var s = 0.0; for i in r { s += Double(p[i]) }; return s }
        return Tensor.record(Tensor(scalar: Float(total)), [self]) { _, g in
            let d = g.data[0]
            self.withGrad { gx in
                Parallel.forEachRange(self.count, grain: 1 << 16) { r in for i in r { gx.put(i, d) } }
            }
        }
    }

    public func mean() -> Tensor { sum().scaled(by: 1 / Float(Swift.max(count, 1))) }

    /// Sum over `axes`, keeping them as size-1 dimensions when `keepDims`.
    public func sum(axes: [Int], keepDims: Bool = false) -> Tensor {
        let axes = Set(axes.map { $0 < 0 ? $0 + rank : $0 })
        precondition(axes.allSatisfy { $0 >= 0 && $0 < rank }, "axes \(axes) out of range for \(shape)")
        let kept = shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
        let out = Tensor(zeros: kept)
        let walk = BroadcastWalk(out: shape, a: shape, b: kept)
        let px = data, po = out.data
        walk.forEachRun { _, xo, oo, n, sx, so in
            for j in 0..<n { po[oo + j * so] += px[xo + j * sx] }
        }
        let result = keepDims ? out : out.viewingAs(shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element))
        return Tensor.record(result, [self]) { _, g in
            self.withGrad { gx in
                walk.forEachRun { _, xo, oo, n, sx, so in
                    for j in 0..<n { gx.put(xo + j * sx, g.data[oo + j * so]) }
                }
            }
        }
    }

    public func mean(axes: [Int], keepDims: Bool = false) -> Tensor {
        let n = axes.map { shape[$0 < 0 ? $0 + rank : $0] }.reduce(1, *)
        return sum(axes: axes, keepDims: keepDims).scaled(by: 1 / Float(Swift.max(n, 1)))
    }

    /// Softmax along `axis` (default: the last), numerically stabilised.
    public func softmax(axis: Int = -1) -> Tensor {
        let (outer, n, inner) = splitAround(axis)
        let out = Tensor(uninitializedShape: shape)
        let x = data, y = out.data
        Parallel.forEach(outer * inner, itemCost: n * 8) { oi in
            let o = oi / inner, i = oi % inner, base = o * n * inner + i
            var m = -Float.infinity
            for k in 0..<n { m = Swift.max(m, x[base + k * inner]) }
            var s: Float = 0
            for k in 0..<n { let e = expf(x[base + k * inner] - m); y[base + k * inner] = e; s += e }
            let inv = 1 / s
            for k in 0..<n { y[base + k * inner] *= inv }
        }
        return Tensor.record(out, [self]) { out, g in
            self.withGrad { gx in
                let y = out.data, dy = g.data
                Parallel.forEach(outer * inner, itemCost: n * 4) { oi in
                    let o = oi / inner, i = oi % inner, base = o * n * inner + i
                    var dot: Float = 0
                    for k in 0..<n { dot += y[base + k * inner] * dy[base + k * inner] }
                    for k in 0..<n { let j = base + k * inner; gx.put(j, y[j] * (dy[j] - dot)) }
                }
            }
        }
    }

    /// (product of dims before axis, dim at axis, product after).
    func splitAround(_ axis: Int) -> (Int, Int, Int) {
        let a = axis < 0 ? axis + rank : axis
        precondition(a >= 0 && a < rank, "axis \(axis) out of range for \(shape)")
        return (shape[..<a].reduce(1, *), shape[a], shape[(a + 1)...].reduce(1, *))
    }
}

// MARK: - Losses and regularisers

extension Tensor {
    /// Mean squared error between two tensors of the same shape.
    public func mseLoss(_ target: Tensor) -> Tensor {
        precondition(shape == target.shape, "MSE of \(shape) against \(target.shape)")
        let n = count
        let a = data, b = target.data
        let total = Parallel.sumOverRanges(n) { r in
            var s = 0.0; for i in r { let d = Double(a[i] - b[i]); s += d * d }; return s
        }
        let out = Tensor(scalar: Float(total / Double(Swift.max(n, 1))))
        return Tensor.record(out, [self, target]) { _, g in
            let k = 2 * g.data[0] / Float(Swift.max(n, 1))
            self.withGrad { ga in
                Parallel.forEachRange(n, grain: 1 << 16) { r in for i in r { ga.put(i, k * (a[i] - b[i])) } }
            }
            target.withGrad { gb in
                Parallel.forEachRange(n, grain: 1 << 16) { r in for i in r { gb.put(i, -k * (a[i] - b[i])) } }
            }
        }
    }

    /// sum |x|^p: the `||x||_p^p` regulariser of Mahendran & Vedaldi.
    public func powerSum(p: Float) -> Tensor {
        let x = data
        // Small whole powers (the alpha-norm of Mahendran & Vedaldi uses 6) by multiplication:
        // powf costs several times more and ran serially long enough to show in a step's profile.
        let whole = p == p.rounded() && p >= 1 && p <= 8 ? Int(p) : 0
        @inline(__always) func power(_ a: Float, _ n: Int) -> Float {
            var r: Float = 1
            for _ in 0..<n { r *= a }
            return r
        }
        @inline(__always) func wholePowers(_ r: Range<Int>, _ n: Int) -> Double {
            var s = 0.0, f: Float = 0, run = 0
            for i in r {
                f += power(Swift.abs(x[i]), n)
                run += 1
                if run == 256 { s += Double(f); f = 0; run = 0 }
            }
            return s + Double(f)
        }
        let total = Parallel.sumOverRanges(count) { r in
            var s = 0.0
            if whole > 0 {
                // The alpha-norm's 6 as a constant: the power unrolls.
                s = whole == 6 ? wholePowers(r, 6) : wholePowers(r, whole)
            } else {
                for i in r { s += Double(powf(Swift.abs(x[i]), p)) }
            }
            return s
        }
        return Tensor.record(Tensor(scalar: Float(total)), [self]) { _, g in
            let d = g.data[0]
            self.withGrad { gx in
                @inline(__always) func derivatives(_ r: Range<Int>, _ magnitude: (Float) -> Float) {
                    for i in r {
                        let v = x[i], a = Swift.abs(v)
                        let dv: Float = a == 0 ? 0 : p * magnitude(a) * (v > 0 ? 1 : -1)
                        gx.put(i, d * dv)
                    }
                }
                Parallel.forEachRange(self.count, grain: 1 << 15) { r in
                    if whole == 6 {
                        derivatives(r) { power($0, 5) }
                    } else if whole > 0 {
                        derivatives(r) { power($0, whole - 1) }
                    } else {
                        derivatives(r) { powf($0, p - 1) }
                    }
                }
            }
        }
    }

    /// The L-p norm (sum |x|^p)^(1/p).
    public func norm(p: Float = 2) -> Tensor { powerSum(p: p).pow(1 / p) }

    /// Total variation with exponent beta over each image plane:
    /// sum over pixels of ((x[i,j+1]-x[i,j])^2 + (x[i+1,j]-x[i,j])^2)^(beta/2), differences at the
    /// last row and column being zero (edge replication, as in Mahendran & Vedaldi's code).
    public func totalVariation(beta: Float = 2) -> Tensor {
        precondition(rank >= 2, "total variation needs at least H and W, got \(shape)")
        let h = shape[rank - 2], w = shape[rank - 1], planes = count / Swift.max(h * w, 1)
        let x = data
        let half = beta / 2
        @inline(__always) func diffs(_ base: Int, _ i: Int, _ j: Int) -> (Float, Float) {
            let c = x[base + i * w + j]
            let dx = j + 1 < w ? x[base + i * w + j + 1] - c : 0
            let dy = i + 1 < h ? x[base + (i + 1) * w + j] - c : 0
            return (dx, dy)
        }
        let total = Parallel.sumOverRanges(planes * h) { r in
            var s = 0.0
            for pi in r {
                let base = (pi / h) * h * w, i = pi % h
                for j in 0..<w {
                    let (dx, dy) = diffs(base, i, j)
                    let q = dx * dx + dy * dy
                    if q > 0 { s += Double(half == 1 ? q : powf(q, half)) }
                }
            }
            return s
        }
        return Tensor.record(Tensor(scalar: Float(total)), [self]) { _, g in
            let d = g.data[0]
            self.withGrad { gx in
                gx.prepareForScatter(count: self.count)
                // Planes are independent, so they can be split across threads.
                Parallel.forEach(planes, itemCost: h * w * 6) { p in
                    let base = p * h * w
                    for i in 0..<h {
                        for j in 0..<w {
                            let (dx, dy) = diffs(base, i, j)
                            let q = dx * dx + dy * dy
                            guard q > 0 else { continue }
                            let k = d * beta * (half == 1 ? 1 : powf(q, half - 1))
                            let c = base + i * w + j
                            if j + 1 < w { gx.pointer[c + 1] += k * dx; gx.pointer[c] -= k * dx }
                            if i + 1 < h { gx.pointer[c + w] += k * dy; gx.pointer[c] -= k * dy }
                        }
                    }
                }
            }
        }
    }
}

extension Parallel {
    /// Sums per-range partial results computed on separate cores.
    static func sumOverRanges(_ count: Int, grain: Int = 1 << 15, _ body: (Range<Int>) -> Double) -> Double {
        let chunks = Swift.min(workerCount, Swift.max(1, count / grain))
        if chunks <= 1 { return body(0..<count) }
        var partial = [Double](repeating: 0, count: chunks)
        partial.withUnsafeMutableBufferPointer { buf in
            let p = buf.baseAddress!
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                p[c] = body((count * c / chunks)..<(count * (c + 1) / chunks))
            }
        }
        return partial.reduce(0, +)
    }
}

extension Tensor {
    /// Maximum over `axes`; the gradient goes to the first maximal element of each group.
    public func max(axes: [Int], keepDims: Bool = false) -> Tensor {
        let axes = Set(axes.map { $0 < 0 ? $0 + rank : $0 })
        precondition(axes.allSatisfy { $0 >= 0 && $0 < rank }, "axes \(axes) out of range for \(shape)")
        let kept = shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
        let out = Tensor(shape: kept, repeating: -.infinity)
        let winner = TensorStorage(count: out.count)
        let at = UnsafeMutableRawPointer(winner.pointer).bindMemory(to: Int32.self, capacity: out.count)
        for i in 0..<out.count { at[i] = -1 }
        let walk = BroadcastWalk(out: shape, a: shape, b: kept)
        let px = data, po = out.data
        walk.forEachRun { _, xo, oo, n, sx, so in
            for j in 0..<n where px[xo + j * sx] > po[oo + j * so] || at[oo + j * so] < 0 {
                po[oo + j * so] = px[xo + j * sx]; at[oo + j * so] = Int32(xo + j * sx)
            }
        }
        let result = keepDims ? out : out.viewingAs(shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element))
        return Tensor.record(result, [self]) { _, g in
            withExtendedLifetime(winner) {
                self.withGrad { gx in
                    gx.prepareForScatter(count: self.count)
                    for i in 0..<out.count where at[i] >= 0 { gx.pointer[Int(at[i])] += g.data[i] }
                }
            }
        }
    }
}
