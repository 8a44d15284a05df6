import Foundation

/// An affine map from output pixel coordinates to input pixel coordinates (pixel centres at
/// integers): source y = yy * y + yx * x + y0, source x = xy * y + xx * x + x0.
public struct AffineMap: Equatable, Sendable {
    public var yy: Float, yx: Float, y0: Float
    public var xy: Float, xx: Float, x0: Float

    public init(yy: Float, yx: Float, y0: Float, xy: Float, xx: Float, x0: Float) {
        self.yy = yy; self.yx = yx; self.y0 = y0; self.xy = xy; self.xx = xx; self.x0 = x0
    }

    public static let identity = AffineMap(yy: 1, yx: 0, y0: 0, xy: 0, xx: 1, x0: 0)

    /// A shift: output (y, x) reads input (y + dy, x + dx).
    public static func translation(dy: Float, dx: Float) -> AffineMap { AffineMap(yy: 1, yx: 0, y0: dy, xy: 0, xx: 1, x0: dx) }

    /// Scaling by `scale` (output larger for scale > 1) and rotation by `angle` radians
    /// (counter-clockwise on screen), both about (cy, cx) in input and output alike.
    public static func scaleRotation(scale: Float, angle: Float, cy: Float, cx: Float) -> AffineMap {
        // The output point p reads c + R (p - c) / scale, R the inverse rotation: the pixel right of
        // the centre reads the input below-right of it (y points down), so the content turns
        // counter-clockwise on screen.
        let c = cosf(angle) / scale, s = sinf(angle) / scale
        let yy = c, yx = s, xy = -s, xx = c
        return AffineMap(yy: yy, yx: yx, y0: cy - yy * cy - yx * cx, xy: xy, xx: xx, x0: cx - xy * cy - xx * cx)
    }

    /// The map that applies `inner` to output coordinates first, then `self`: self(inner(p)).
    public func after(_ inner: AffineMap) -> AffineMap {
        AffineMap(yy: yy * inner.yy + yx * inner.xy, yx: yy * inner.yx + yx * inner.xx, y0: yy * inner.y0 + yx * inner.x0 + y0,
                  xy: xy * inner.yy + xx * inner.xy, xx: xy * inner.yx + xx * inner.xx, x0: xy * inner.y0 + xx * inner.x0 + x0)
    }
}

extension Tensor {
    /// Bilinear resampling of an NCHW tensor through one affine map per image (`maps[n]`, or one
    /// map for all), to `height` x `width`. Neighbours outside the input read `fill`, so the map
    /// may look past the border (padding) without a separate pad. Differentiable in `self`:
    /// the gradient scatters each output's gradient to its four neighbours with the same weights.
    public func affineResampled(height oh: Int, width ow: Int, maps: [AffineMap], fill: Float = 0) -> Tensor {
        let (n, c, h, w) = nchw
        precondition(maps.count == 1 || maps.count == n, "\(maps.count) maps for a batch of \(n)")
        precondition(oh > 0 && ow > 0, "resampling to \(oh)x\(ow)")
        // Per image and output pixel: four source offsets (-1: outside) and four weights.
        let taps = n * oh * ow
        var index = [Int32](repeating: -1, count: taps * 4)
        var weight = [Float](repeating: 0, count: taps * 4)
        for b in 0..<n {
            let m = maps.count == 1 ? maps[0] : maps[b]
            for i in 0..<oh {
                for j in 0..<ow {
                    let sy = m.yy * Float(i) + m.yx * Float(j) + m.y0, sx = m.xy * Float(i) + m.xx * Float(j) + m.x0
                    let fy = sy.rounded(.down), fx = sx.rounded(.down)
                    let ty = sy - fy, tx = sx - fx
                    let y0 = Int(fy), x0 = Int(fx)
                    let base = ((b * oh + i) * ow + j) * 4
                    let corners = [(y0, x0, (1 - ty) * (1 - tx)), (y0, x0 + 1, (1 - ty) * tx), (y0 + 1, x0, ty * (1 - tx)), (y0 + 1, x0 + 1, ty * tx)]
                    for (k, (yy, xx, wt)) in corners.enumerated() {
                        weight[base + k] = wt
                        if yy >= 0 && yy < h && xx >= 0 && xx < w { index[base + k] = Int32(yy * w + xx) }
                    }
                }
            }
        }
        let out = Tensor(uninitializedShape: [n, c, oh, ow])
        let x = data, y = out.data, plane = oh * ow
        index.withUnsafeBufferPointer { idx in
            weight.withUnsafeBufferPointer { wts in
                Parallel.forEach(n * c, itemCost: plane * 4) { p in
                    let b = p / c, src = x + p * h * w, dst = y + p * plane
                    for q in 0..<plane {
                        let base = (b * plane + q) * 4
                        var v: Float = 0
                        for k in 0..<4 {
                            let s = idx[base + k]
                            v += wts[base + k] * (s >= 0 ? src[Int(s)] : fill)
                        }
                        dst[q] = v
                    }
                }
            }
        }
        return Tensor.record(out, [self]) { _, g in
            self.withGrad { gx in
                gx.prepareForScatter(count: self.count)
                index.withUnsafeBufferPointer { idx in
                    weight.withUnsafeBufferPointer { wts in
                        // Each (image, channel) plane scatters into its own input plane: no races.
                        Parallel.forEach(n * c, itemCost: plane * 4) { p in
                            let b = p / c, dst = gx.pointer + p * h * w, src = g.data + p * plane
                            for q in 0..<plane {
                                let base = (b * plane + q) * 4
                                for k in 0..<4 {
                                    let s = idx[base + k]
                                    if s >= 0 { dst[Int(s)] += wts[base + k] * src[q] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
