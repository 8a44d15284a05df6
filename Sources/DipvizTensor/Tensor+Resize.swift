import Foundation

public enum UpsamplingMode: String, Sendable, Codable, CaseIterable {
    case nearest, bilinear
}

extension Tensor {
    /// Resizes H and W of an NCHW tensor. Nearest takes floor(dst * in / out) (PyTorch's
    /// "nearest"); bilinear uses half-pixel centres unless `alignCorners`.
    public func upsampled(height oh: Int, width ow: Int, mode: UpsamplingMode = .nearest, alignCorners: Bool = false) -> Tensor {
        let (n, c, h, w) = nchw
        precondition(oh > 0 && ow > 0, "resize to \(oh)x\(ow)")
        // Per output coordinate: two source indices and the weight of the second.
        func taps(_ out: Int, _ size: Int) -> [(Int, Int, Float)] {
            (0..<out).map { o in
                switch mode {
                case .nearest:
                    let i = Swift.min(Int(Float(o) * Float(size) / Float(out)), size - 1)
                    return (i, i, 0)
                case .bilinear:
                    var src: Float
                    if alignCorners { src = out > 1 ? Float(o) * Float(size - 1) / Float(out - 1) : 0 }
                    else { src = Swift.max((Float(o) + 0.5) * Float(size) / Float(out) - 0.5, 0) }
                    let i0 = Swift.min(Int(src), size - 1), i1 = Swift.min(i0 + 1, size - 1)
                    return (i0, i1, src - Float(i0))
                }
            }
        }
        let ty = taps(oh, h), tx = taps(ow, w)
        let out = Tensor(uninitializedShape: [n, c, oh, ow])
        let x = data, y = out.data
        Parallel.forEach(n * c, itemCost: oh * ow) { p in
            let src = x + p * h * w, dst = y + p * oh * ow
            for i in 0..<oh {
                let (y0, y1, fy) = ty[i]
                for j in 0..<ow {
                    let (x0, x1, fx) = tx[j]
                    if mode == .nearest { dst[i * ow + j] = src[y0 * w + x0]; continue }
                    let top = src[y0 * w + x0] * (1 - fx) + src[y0 * w + x1] * fx
                    let bottom = src[y1 * w + x0] * (1 - fx) + src[y1 * w + x1] * fx
                    dst[i * ow + j] = top * (1 - fy) + bottom * fy
                }
            }
        }
        return Tensor.record(out, [self]) { _, g in
            self.withGrad { gx in
                gx.prepareForScatter(count: self.count)
                Parallel.forEach(n * c, itemCost: oh * ow) { p in
                    let dst = gx.pointer + p * h * w, src = g.data + p * oh * ow
                    for i in 0..<oh {
                        let (y0, y1, fy) = ty[i]
                        for j in 0..<ow {
                            let (x0, x1, fx) = tx[j]
                            let v = src[i * ow + j]
                            if mode == .nearest { dst[y0 * w + x0] += v; continue }
                            dst[y0 * w + x0] += v * (1 - fy) * (1 - fx)
                            dst[y0 * w + x1] += v * (1 - fy) * fx
                            dst[y1 * w + x0] += v * fy * (1 - fx)
                            dst[y1 * w + x1] += v * fy * fx
                        }
                    }
                }
            }
        }
    }

    public func upsampled(scale: Int, mode: UpsamplingMode = .nearest, alignCorners: Bool = false) -> Tensor {
        upsampled(height: shape[2] * scale, width: shape[3] * scale, mode: mode, alignCorners: alignCorners)
    }
}
