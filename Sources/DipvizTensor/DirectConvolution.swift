import CDipvizKernels

/// A convolution kernel that reads the (padded) input in place: no column matrix and no GEMM
/// packing, which dominate the cost of im2col + GEMM when a layer has few output channels.
/// Unit stride and dilation; the caller pads the input.
enum DirectConvolution {
    /// Output channels per register tile of the forward kernel (6 channels x 2 vectors of pixels).
    static let channelBlock = Int(DIPVIZ_DIRECT_CHANNEL_BLOCK)

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
    /// hold the padding, with DIPVIZ_DIRECT_ROW_SLACK readable floats past each row's last output.
    static func forward(xp: UnsafePointer<Float>, c: Int, rowStride: Int, planeStride: Int,
                        packed: UnsafePointer<Float>, m: Int, kh: Int, kw: Int,
                        y: UnsafeMutablePointer<Float>, oh: Int, ow: Int, accumulate: Bool) {
        let kernels = VectorKernels.current.pointee
        let blocks = (m + channelBlock - 1) / channelBlock
        let itemCost = ow * c * kh * kw * channelBlock
        Parallel.forEachRange(oh * blocks, grain: Swift.max(1, (1 << 15) / itemCost)) { range in
            kernels.direct_forward(xp, c, rowStride, planeStride, packed, m, kh, kw, y, oh, ow, accumulate ? 1 : 0,
                                   range.lowerBound, range.upperBound)
        }
    }
}

extension DirectConvolution {
    /// Floats per row of the padded output gradient: a multiple of two vectors of the active kernels.
    static var gradientRowMultiple: Int { 2 * Int(VectorKernels.current.pointee.vector_floats) }

    /// dw[m, c, i, j] (+)= sum_{oy,ox} gy[m, oy, ox] * xp[c, oy+i, ox+j], with `gy` given as
    /// planes of `oh` rows of `gyRowStride` floats (a multiple of `gradientRowMultiple`, zero
    /// past `ow`), its plane count a multiple of 4 (zero planes past `m`).
    static func weightGradient(xp: UnsafePointer<Float>, c: Int, rowStride: Int, planeStride: Int,
                               gy: UnsafePointer<Float>, gyRowStride: Int, m: Int, kh: Int, kw: Int, oh: Int,
                               dw: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let kernels = VectorKernels.current.pointee
        let blocks = (m + 3) / 4
        let itemCost = oh * gyRowStride * kh * kw * 4
        Parallel.forEachRange(blocks * c, grain: Swift.max(1, (1 << 15) / itemCost)) { range in
            kernels.direct_weight_gradient(xp, c, rowStride, planeStride, gy, gyRowStride, m, kh, kw, oh, dw,
                                           accumulate ? 1 : 0, range.lowerBound, range.upperBound)
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
