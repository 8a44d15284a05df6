// Reshape, permute, slice, concat and padding.

extension Tensor {
    /// Same elements under a new shape; one dimension may be -1.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var s = newShape
        if let i = s.firstIndex(of: -1) {
            let known = s.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0, "cannot reshape \(shape) to \(newShape)")
            s[i] = count / known
        }
        precondition(s.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        let out = Tensor(shape: s, storage: storage)
        return Tensor.record(out, [self]) { _, g in
            self.withGrad { gx in
                let d = g.data
                Parallel.forEachRange(self.count, grain: 1 << 16) { r in for i in r { gx.put(i, d[i]) } }
            }
        }
    }

    /// Collapses dimensions from `axis` on into one (ONNX Flatten gives 2-D: before x after).
    public func flattened(from axis: Int = 1) -> Tensor {
        let a = axis < 0 ? axis + rank : axis
        return reshaped([shape[..<a].reduce(1, *), shape[a...].reduce(1, *)])
    }

    /// Reorders dimensions: output dimension i is input dimension `order[i]`.
    public func permuted(_ order: [Int]) -> Tensor {
        precondition(order.sorted() == Array(0..<rank), "permutation \(order) for rank \(rank)")
        let newShape = order.map { shape[$0] }
        let inStrides = strides
        let gathered = order.map { inStrides[$0] }
        let out = Tensor(uninitializedShape: newShape)
        let x = data, y = out.data
        // Offsets of the permuted source are walked with the gathered strides.
        Tensor.walkStrided(newShape, gathered) { o, src, n, step in
            for j in 0..<n { y[o + j] = x[src + j * step] }
        }
        return Tensor.record(out, [self]) { _, g in
            self.withGrad { gx in
                gx.prepareForScatter(count: self.count)
                Tensor.walkStrided(newShape, gathered) { o, src, n, step in
                    for j in 0..<n { gx.pointer[src + j * step] += g.data[o + j] }
                }
            }
        }
    }

    /// body(outOffset, sourceOffset, run, sourceStep) for a contiguous output walked in runs.
    static func walkStrided(_ shape: [Int], _ srcStrides: [Int], _ body: (Int, Int, Int, Int) -> Void) {
        let r = shape.count
        let total = shape.reduce(1, *)
        guard total > 0 else { return }
        guard r > 0 else { body(0, 0, 1, 0); return }
        var index = [Int](repeating: 0, count: r)
        var out = 0, src = 0
        let run = shape[r - 1]
        while out < total {
            body(out, src, run, srcStrides[r - 1])
            out += run
            var d = r - 2
            while d >= 0 {
                index[d] += 1; src += srcStrides[d]
                if index[d] < shape[d] { break }
                src -= srcStrides[d] * index[d]; index[d] = 0; d -= 1
            }
            if d < 0 { break }
        }
    }

    /// Elements `start..<end` (by `step`) along `axis`.
    public func slice(axis: Int, start: Int, end: Int, step: Int = 1) -> Tensor {
        let a = axis < 0 ? axis + rank : axis
        precondition(step > 0, "slice step must be positive")
        precondition(start >= 0 && end <= shape[a] && start <= end, "slice \(start)..<\(end) of axis \(a) of \(shape)")
        var newShape = shape
        newShape[a] = (end - start + step - 1) / step
        var src = strides
        let offset = start * src[a]
        src[a] *= step
        let out = Tensor(uninitializedShape: newShape)
        let x = data, y = out.data
        Tensor.walkStrided(newShape, src) { o, s, n, st in for j in 0..<n { y[o + j] = x[offset + s + j * st] } }
        return Tensor.record(out, [self]) { _, g in
            self.withGrad { gx in
                gx.prepareForScatter(count: self.count)
                Tensor.walkStrided(newShape, src) { o, s, n, st in
                    for j in 0..<n { gx.pointer[offset + s + j * st] += g.data[o + j] }
                }
            }
        }
    }

    /// Crops an NCHW tensor to the window starting at (top, left).
    public func cropped(top: Int, left: Int, height: Int, width: Int) -> Tensor {
        slice(axis: 2, start: top, end: top + height).slice(axis: 3, start: left, end: left + width)
    }

    /// Joins tensors along `axis`; all other dimensions must agree.
    public static func concat(_ parts: [Tensor], axis: Int = 1) -> Tensor {
        precondition(!parts.isEmpty, "concat of nothing")
        let rank = parts[0].rank
        let a = axis < 0 ? axis + rank : axis
        for p in parts {
            precondition(p.rank == rank && p.shape.enumerated().allSatisfy { $0.offset == a || $0.element == parts[0].shape[$0.offset] },
                         "concat along \(a) of \(parts.map(\.shape))")
        }
        var newShape = parts[0].shape
        newShape[a] = parts.map { $0.shape[a] }.reduce(0, +)
        let outer = newShape[..<a].reduce(1, *), inner = newShape[(a + 1)...].reduce(1, *)
        let rowOut = newShape[a] * inner
        let out = Tensor(uninitializedShape: newShape)
        var offsets: [Int] = []
        var acc = 0
        for p in parts { offsets.append(acc); acc += p.shape[a] * inner }
        for (p, off) in zip(parts, offsets) {
            let row = p.shape[a] * inner, x = p.data, y = out.data
            Parallel.forEach(outer, itemCost: row) { o in (y + o * rowOut + off).update(from: x + o * row, count: row) }
        }
        return record(out, parts) { _, g in
            for (p, off) in zip(parts, offsets) {
                let row = p.shape[a] * inner
                p.withGrad { gp in
                    Parallel.forEach(outer, itemCost: row) { o in
                        let src = g.data + o * rowOut + off
                        for j in 0..<row { gp.put(o * row + j, src[j]) }
                    }
                }
            }
        }
    }
}

public enum PaddingMode: String, Sendable, Codable, CaseIterable {
    case zero, reflect, edge
}

extension Tensor {
    /// Pads H and W of an NCHW tensor. Reflection mirrors without repeating the edge (PyTorch's
    /// ReflectionPad2d, ONNX Pad mode "reflect").
    public func padded(top: Int, bottom: Int, left: Int, right: Int, mode: PaddingMode = .zero, value: Float = 0) -> Tensor {
        let (n, c, h, w) = nchw
        precondition(top >= 0 && bottom >= 0 && left >= 0 && right >= 0, "negative padding")
        if mode == .reflect {
            precondition(top < h && bottom < h && left < w && right < w, "reflection padding must be smaller than the input (\(h)x\(w))")
        }
        let oh = h + top + bottom, ow = w + left + right
        @inline(__always) func source(_ i: Int, _ size: Int) -> Int {
            if i >= 0 && i < size { return i }
            switch mode {
            case .zero: return -1
            case .edge: return Swift.min(Swift.max(i, 0), size - 1)
            case .reflect:
                var j = i
                while j < 0 || j >= size { j = j < 0 ? -j : 2 * (size - 1) - j }
                return j
            }
        }
        let rows = (0..<oh).map { source($0 - top, h) }
        let cols = (0..<ow).map { source($0 - left, w) }
        let out = Tensor(uninitializedShape: [n, c, oh, ow])
        let x = data, y = out.data
        Parallel.forEach(n * c, itemCost: oh * ow) { p in
            let src = x + p * h * w, dst = y + p * oh * ow
            for i in 0..<oh {
                let si = rows[i]
                for j in 0..<ow {
                    let sj = cols[j]
                    dst[i * ow + j] = (si < 0 || sj < 0) ? value : src[si * w + sj]
                }
            }
        }
        return Tensor.record(out, [self]) { _, g in
            self.withGrad { gx in
                gx.prepareForScatter(count: self.count)
                Parallel.forEach(n * c, itemCost: oh * ow) { p in
                    let dst = gx.pointer + p * h * w, src = g.data + p * oh * ow
                    for i in 0..<oh {
                        let si = rows[i]
                        if si < 0 { continue }
                        for j in 0..<ow where cols[j] >= 0 { dst[si * w + cols[j]] += src[i * ow + j] }
                    }
                }
            }
        }
    }
}

extension Tensor {
    /// Moves each s x s block of pixels into channels: out[n, (a*s+b)*C + c, i, j] =
    /// x[n, c, s*i+a, s*j+b]. H and W must be multiples of s.
    public func spaceToDepth(blockSize s: Int) -> Tensor {
        let (n, c, h, w) = nchw
        precondition(s > 0 && h % s == 0 && w % s == 0, "space-to-depth by \(s) of \(shape)")
        let oh = h / s, ow = w / s
        let out = Tensor(uninitializedShape: [n, c * s * s, oh, ow])
        let x = data, y = out.data
        Parallel.forEach(n * s * s * c, itemCost: oh * ow) { p in
            let b0 = p / (s * s * c), r = p % (s * s * c)
            let a = r / (s * c), b = (r / c) % s, ch = r % c
            let src = x + (b0 * c + ch) * h * w, dst = y + p * oh * ow
            for i in 0..<oh { for j in 0..<ow { dst[i * ow + j] = src[(s * i + a) * w + s * j + b] } }
        }
        return Tensor.record(out, [self]) { _, g in
            self.withGrad { gx in
                Parallel.forEach(n * s * s * c, itemCost: oh * ow) { p in
                    let b0 = p / (s * s * c), r = p % (s * s * c)
                    let a = r / (s * c), b = (r / c) % s, ch = r % c
                    let base = (b0 * c + ch) * h * w, src = g.data + p * oh * ow
                    for i in 0..<oh { for j in 0..<ow { gx.put(base + (s * i + a) * w + s * j + b, src[i * ow + j]) } }
                }
            }
        }
    }
}

extension Tensor {
    /// The inverse of `spaceToDepth`: out[n, c, s*i+a, s*j+b] = x[n, (a*s+b)*C + c, i, j].
    public func depthToSpace(blockSize s: Int) -> Tensor {
        let (n, cs, h, w) = nchw
        precondition(s > 0 && cs % (s * s) == 0, "depth-to-space by \(s) of \(shape)")
        let c = cs / (s * s), oh = h * s, ow = w * s
        let out = Tensor(uninitializedShape: [n, c, oh, ow])
        let x = data, y = out.data
        Parallel.forEach(n * cs, itemCost: h * w) { p in
            let b0 = p / cs, r = p % cs
            let a = r / (s * c), b = (r / c) % s, ch = r % c
            let src = x + p * h * w, dst = y + (b0 * c + ch) * oh * ow
            for i in 0..<h { for j in 0..<w { dst[(s * i + a) * ow + s * j + b] = src[i * w + j] } }
        }
        return Tensor.record(out, [self]) { _, g in
            self.withGrad { gx in
                Parallel.forEach(n * cs, itemCost: h * w) { p in
                    let b0 = p / cs, r = p % cs
                    let a = r / (s * c), b = (r / c) % s, ch = r % c
                    let src = g.data + (b0 * c + ch) * oh * ow
                    for i in 0..<h { for j in 0..<w { gx.put(p * h * w + i * w + j, src[(s * i + a) * ow + s * j + b]) } }
                }
            }
        }
    }
}
