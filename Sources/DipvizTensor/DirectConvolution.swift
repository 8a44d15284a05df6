/// A convolution kernel that reads the (padded) input in place: no column matrix and no GEMM
/// packing, which dominate the cost of im2col + GEMM when a layer has few output channels.
/// Unit stride and dilation; the caller pads the input.
enum DirectConvolution {
    typealias V = SIMD8<Float>
    /// Output channels per register tile of the forward kernel (6 x 16 pixels: 12 accumulators).
    static let channelBlock = 6

    /// Weights reordered to [M/6][C][kh][kw][6] (output channels padded to a multiple of 6).
    static func packWeights(_ w: UnsafePointer<Float>, m: Int, c: Int, kh: Int, kw: Int,
                            into out: UnsafeMutablePointer<Float>) {
        let cb = channelBlock
        let blocks = (m + cb - 1) / cb, kk = kh * kw
        for b in 0..<blocks {
            for ch in 0..<c {
                for t in 0..<kk {
                    for j in 0..<cb {
                        let mm = b * cb + j
                        out[((b * c + ch) * kk + t) * cb + j] = mm < m ? w[(mm * c + ch) * kk + t] : 0
                    }
                }
            }
        }
    }

    static func packedCount(m: Int, c: Int, kh: Int, kw: Int) -> Int {
        (m + channelBlock - 1) / channelBlock * channelBlock * c * kh * kw
    }

    /// Whether this machine's build has fused multiply-add vectors (otherwise im2col + GEMM).
    static var isAvailable: Bool {
        #if DIPVIZ_SIMD_FMA || arch(arm64)
        return true
        #else
        return false
        #endif
    }

    /// Pads one image's planes into `xp` with rows of `rowStride` floats (zeros around).
    static func pad(_ x: UnsafePointer<Float>, c: Int, h: Int, w: Int, top: Int, left: Int,
                    hp: Int, rowStride: Int, planeStride: Int, into xp: UnsafeMutablePointer<Float>) {
        Parallel.forEach(c, itemCost: planeStride) { ch in
            let dst = xp + ch * planeStride
            dst.update(repeating: 0, count: planeStride)
            for i in 0..<h { (dst + (i + top) * rowStride + left).update(from: x + (ch * h + i) * w, count: w) }
        }
    }

    /// y[m, oy, ox] (+)= sum_{c,i,j} w[m,c,i,j] * xp[c, oy+i, ox+j] for input planes that already
    /// hold the padding, with at least 16 readable floats past each row's last output.
    static func forward(xp: UnsafePointer<Float>, c: Int, rowStride: Int, planeStride: Int,
                        packed: UnsafePointer<Float>, m: Int, kh: Int, kw: Int,
                        y: UnsafeMutablePointer<Float>, oh: Int, ow: Int, accumulate: Bool) {
        let cb = channelBlock
        let blocks = (m + cb - 1) / cb
        let kk = kh * kw
        Parallel.forEach(oh * blocks, itemCost: ow * c * kk * cb) { item in
            let oy = item / blocks, b = item % blocks
            let wb = packed + b * c * kk * cb
            var ox = 0
            var tile = (V.zero, V.zero, V.zero, V.zero, V.zero, V.zero, V.zero, V.zero, V.zero, V.zero, V.zero, V.zero)
            while ox < ow {
                var a00 = V.zero, a01 = V.zero, a10 = V.zero, a11 = V.zero, a20 = V.zero, a21 = V.zero
                var a30 = V.zero, a31 = V.zero, a40 = V.zero, a41 = V.zero, a50 = V.zero, a51 = V.zero
                for ch in 0..<c {
                    let plane = xp + ch * planeStride + oy * rowStride + ox
                    let wc = wb + ch * kk * cb
                    for i in 0..<kh {
                        let row = plane + i * rowStride
                        let wr = wc + i * kw * cb
                        for j in 0..<kw {
                            let x0 = UnsafeRawPointer(row + j).loadUnaligned(as: V.self)
                            let x1 = UnsafeRawPointer(row + j + 8).loadUnaligned(as: V.self)
                            let wq = wr + j * cb
                            var wv = V(repeating: wq[0])
                            a00 = a00.addingProduct(wv, x0); a01 = a01.addingProduct(wv, x1)
                            wv = V(repeating: wq[1])
                            a10 = a10.addingProduct(wv, x0); a11 = a11.addingProduct(wv, x1)
                            wv = V(repeating: wq[2])
                            a20 = a20.addingProduct(wv, x0); a21 = a21.addingProduct(wv, x1)
                            wv = V(repeating: wq[3])
                            a30 = a30.addingProduct(wv, x0); a31 = a31.addingProduct(wv, x1)
                            wv = V(repeating: wq[4])
                            a40 = a40.addingProduct(wv, x0); a41 = a41.addingProduct(wv, x1)
                            wv = V(repeating: wq[5])
                            a50 = a50.addingProduct(wv, x0); a51 = a51.addingProduct(wv, x1)
                        }
                    }
                }
                let n = Swift.min(16, ow - ox)
                tile = (a00, a01, a10, a11, a20, a21, a30, a31, a40, a41, a50, a51)
                withUnsafeBytes(of: &tile) { raw in
                    let acc = raw.baseAddress!.assumingMemoryBound(to: Float.self)
                    for j in 0..<cb {
                        let mm = b * cb + j
                        if mm >= m { break }
                        let dst = y + mm * oh * ow + oy * ow + ox
                        let src = acc + j * 16
                        if accumulate { for t in 0..<n { dst[t] += src[t] } } else { for t in 0..<n { dst[t] = src[t] } }
                    }
                }
                ox += 16
            }
        }
    }
}


extension DirectConvolution {
    /// dw[m, c, i, j] (+)= sum_{oy,ox} gy[m, oy, ox] * xp[c, oy+i, ox+j], with `gy` given as
    /// planes of `oh` rows of `gyRowStride` floats (a multiple of 16, zero past `ow`), its plane
    /// count a multiple of 4 (zero planes past `m`).
    static func weightGradient(xp: UnsafePointer<Float>, c: Int, rowStride: Int, planeStride: Int,
                               gy: UnsafePointer<Float>, gyRowStride: Int, m: Int, kh: Int, kw: Int, oh: Int,
                               dw: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let blocks = (m + 3) / 4, kk = kh * kw
        let gyPlane = oh * gyRowStride
        let band = Swift.max(1, Swift.min(oh, 1024 / gyRowStride))
        Parallel.forEach(blocks * c, itemCost: oh * gyRowStride * kk * 4) { item in
            let b = item / c, ch = item % c
            var sums = [Float](repeating: 0, count: kk * 4)
            let g0 = gy + (b * 4) * gyPlane, g1 = g0 + gyPlane, g2 = g1 + gyPlane, g3 = g2 + gyPlane
            let plane = xp + ch * planeStride
            var row0 = 0
            while row0 < oh {
                let rows = Swift.min(band, oh - row0)
                for i in 0..<kh {
                    for j in 0..<kw {
                        var a0 = V.zero, a1 = V.zero, a2 = V.zero, a3 = V.zero
                        var c0 = V.zero, c1 = V.zero, c2 = V.zero, c3 = V.zero
                        for oy in row0..<(row0 + rows) {
                            let xr = plane + (oy + i) * rowStride + j
                            let o = oy * gyRowStride
                            var ox = 0
                            while ox < gyRowStride {
                                let x0 = UnsafeRawPointer(xr + ox).loadUnaligned(as: V.self)
                                let x1 = UnsafeRawPointer(xr + ox + 8).loadUnaligned(as: V.self)
                                let p = o + ox
                                a0 = a0.addingProduct(UnsafeRawPointer(g0 + p).load(as: V.self), x0)
                                a1 = a1.addingProduct(UnsafeRawPointer(g1 + p).load(as: V.self), x0)
                                a2 = a2.addingProduct(UnsafeRawPointer(g2 + p).load(as: V.self), x0)
                                a3 = a3.addingProduct(UnsafeRawPointer(g3 + p).load(as: V.self), x0)
                                c0 = c0.addingProduct(UnsafeRawPointer(g0 + p + 8).load(as: V.self), x1)
                                c1 = c1.addingProduct(UnsafeRawPointer(g1 + p + 8).load(as: V.self), x1)
                                c2 = c2.addingProduct(UnsafeRawPointer(g2 + p + 8).load(as: V.self), x1)
                                c3 = c3.addingProduct(UnsafeRawPointer(g3 + p + 8).load(as: V.self), x1)
                                ox += 16
                            }
                        }
                        let t = (i * kw + j) * 4
                        sums[t] += (a0 + c0).sum(); sums[t + 1] += (a1 + c1).sum()
                        sums[t + 2] += (a2 + c2).sum(); sums[t + 3] += (a3 + c3).sum()
                    }
                }
                row0 += rows
            }
            for q in 0..<Swift.min(4, m - b * 4) {
                let dst = dw + ((b * 4 + q) * c + ch) * kk
                for t in 0..<kk {
                    if accumulate { dst[t] += sums[t * 4 + q] } else { dst[t] = sums[t * 4 + q] }
                }
            }
        }
    }

    /// Copies gy (m planes of oh x ow) into rows of a multiple of 16 floats, zero-filled, with
    /// the plane count rounded up to a multiple of 4.
    static func padOutputGradient(_ gy: UnsafePointer<Float>, m: Int, oh: Int, ow: Int, rowStride: Int,
                                  into out: UnsafeMutablePointer<Float>) {
        let planes = (m + 3) / 4 * 4
        Parallel.forEach(planes, itemCost: oh * rowStride) { p in
            let dst = out + p * oh * rowStride
            if p >= m { dst.update(repeating: 0, count: oh * rowStride); return }
            for r in 0..<oh {
                let d = dst + r * rowStride
                d.update(from: gy + (p * oh + r) * ow, count: ow)
                (d + ow).update(repeating: 0, count: rowStride - ow)
            }
        }
    }
}
