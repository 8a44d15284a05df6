/// Convolution of a 2x nearest-upsampled image, computed at the low resolution: every output
/// phase (a, b) of the upsampled grid sees each low-resolution pixel through a sum of kernel
/// taps, so the four phases are one convolution with 4M output channels and a kernel of about
/// half the size, followed by depth-to-space. Same values as upsample-then-convolve, about half
/// the arithmetic for 5x5 and 7x7 kernels.
struct UpsampledConvolutionPlan {
    let kh: Int, kw: Int
    let padTop: Int, padLeft: Int
    /// Low-resolution tap offsets: first offset and count along each axis.
    let firstH: Int, tapsH: Int, firstW: Int, tapsW: Int

    /// Nil unless the convolution keeps the upsampled size (pads summing to k-1, unit stride).
    init?(kernelH kh: Int, kernelW kw: Int, options o: Conv2dOptions) {
        guard o.strideH == 1, o.strideW == 1, o.dilationH == 1, o.dilationW == 1, o.groups == 1,
              o.padTop + o.padBottom == kh - 1, o.padLeft + o.padRight == kw - 1 else { return nil }
        self.kh = kh; self.kw = kw
        padTop = o.padTop; padLeft = o.padLeft
        func floorDiv2(_ v: Int) -> Int { v >= 0 ? v / 2 : -((-v + 1) / 2) }
        firstH = floorDiv2(-o.padTop); tapsH = floorDiv2(kh - o.padTop) - firstH + 1
        firstW = floorDiv2(-o.padLeft); tapsW = floorDiv2(kw - o.padLeft) - firstW + 1
    }

    /// Low-resolution tap index of kernel row u in output phase a.
    @inline(__always) func tapH(_ a: Int, _ u: Int) -> Int { ((a + u - padTop + 2 * kh) / 2 - kh) - firstH }
    @inline(__always) func tapW(_ b: Int, _ v: Int) -> Int { ((b + v - padLeft + 2 * kw) / 2 - kw) - firstW }

    var lowResolutionOptions: Conv2dOptions {
        Conv2dOptions(strides: (1, 1), pads: (-firstH, -firstW, tapsH - 1 + firstH, tapsW - 1 + firstW))
    }
}

extension Tensor {
    /// The phase kernels [4M, C, tapsH, tapsW] of an [M, C, kh, kw] kernel.
    func nearestUpsampledKernel(_ plan: UpsampledConvolutionPlan) -> Tensor {
        let m = shape[0], c = shape[1], kh = plan.kh, kw = plan.kw, th = plan.tapsH, tw = plan.tapsW
        let out = Tensor(zeros: [4 * m, c, th, tw])
        let w = data, y = out.data
        let rowTap = (0..<2).map { a in (0..<kh).map { plan.tapH(a, $0) } }
        let colTap = (0..<2).map { b in (0..<kw).map { plan.tapW(b, $0) } }
        Parallel.forEach(4 * m, itemCost: c * kh * kw) { pm in
            let a = pm / (2 * m), b = (pm / m) % 2, mm = pm % m
            for ch in 0..<c {
                let dst = y + (pm * c + ch) * th * tw, src = w + (mm * c + ch) * kh * kw
                for u in 0..<kh { for v in 0..<kw { dst[rowTap[a][u] * tw + colTap[b][v]] += src[u * kw + v] } }
            }
        }
        return Tensor.record(out, [self]) { _, g in
            self.withGrad { gw in
                gw.prepareForScatter(count: self.count)
                // Each output channel gathers from its four phases, so channels split across cores.
                Parallel.forEach(m, itemCost: 4 * c * kh * kw) { mm in
                    for a in 0..<2 { for b in 0..<2 {
                        let pm = (a * 2 + b) * m + mm
                        for ch in 0..<c {
                            let src = g.data + (pm * c + ch) * th * tw, dst = gw.pointer + (mm * c + ch) * kh * kw
                            for u in 0..<kh { for v in 0..<kw { dst[u * kw + v] += src[rowTap[a][u] * tw + colTap[b][v]] } }
                        }
                    } }
                }
            }
        }
    }

    /// conv2d(upsampled(scale: 2, mode: .nearest), weight, bias, options) with zero padding that
    /// keeps the upsampled size; other geometries take the direct route.
    public func conv2dAfterNearestUpsample(weight: Tensor, bias: Tensor? = nil, options o: Conv2dOptions) -> Tensor {
        let (_, _, h, w) = nchw
        guard let plan = UpsampledConvolutionPlan(kernelH: weight.shape[2], kernelW: weight.shape[3], options: o),
              plan.tapsH * plan.tapsW < plan.kh * plan.kw else {
            return upsampled(scale: 2).conv2d(weight: weight, bias: bias, options: o)
        }
        // Every phase gets the same bias.
        let phaseBias = bias.map { Tensor.concat([$0, $0, $0, $0], axis: 0) }
        let phases = conv2d(weight: weight.nearestUpsampledKernel(plan), bias: phaseBias, options: plan.lowResolutionOptions)
        precondition(phases.shape[2] == h && phases.shape[3] == w)
        return phases.depthToSpace(blockSize: 2)
    }
}
