import CDipvizKernels
import Foundation

/// Window geometry of max and average pooling.
public struct Pool2dOptions: Hashable, Sendable, Codable {
    public var kernelH: Int, kernelW: Int
    public var window: Conv2dOptions
    public var ceilMode = false
    /// Average pooling: whether padded positions count in the divisor.
    public var countIncludePad = true

    public init(kernel: Int, stride: Int? = nil, padding: Int = 0, ceilMode: Bool = false, countIncludePad: Bool = true) {
        kernelH = kernel; kernelW = kernel
        window = Conv2dOptions(stride: stride ?? kernel, padding: padding)
        self.ceilMode = ceilMode
        self.countIncludePad = countIncludePad
    }

    public init(kernel: (Int, Int), window: Conv2dOptions, ceilMode: Bool = false, countIncludePad: Bool = true) {
        (kernelH, kernelW) = kernel
        self.window = window
        self.ceilMode = ceilMode
        self.countIncludePad = countIncludePad
    }

    /// Output length along one axis; in ceil mode the last window must start inside the input
    /// or its leading padding (PyTorch's and ONNX's rule).
    static func outputLength(_ size: Int, kernel: Int, stride: Int, padBefore: Int, padAfter: Int,
                             dilation: Int, ceil: Bool) -> Int {
        let span = size + padBefore + padAfter - dilation * (kernel - 1) - 1
        var out = (ceil ? (span + stride - 1) / stride : span / stride) + 1
        if ceil && (out - 1) * stride >= size + padBefore { out -= 1 }
        return out
    }

    public func outputSize(height h: Int, width w: Int) -> (Int, Int) {
        (Pool2dOptions.outputLength(h, kernel: kernelH, stride: window.strideH, padBefore: window.padTop,
                                    padAfter: window.padBottom, dilation: window.dilationH, ceil: ceilMode),
         Pool2dOptions.outputLength(w, kernel: kernelW, stride: window.strideW, padBefore: window.padLeft,
                                    padAfter: window.padRight, dilation: window.dilationW, ceil: ceilMode))
    }
}

extension Tensor {
    public func maxPool2d(_ p: Pool2dOptions) -> Tensor {
        let (n, c, h, w) = nchw
        let (oh, ow) = p.outputSize(height: h, width: w)
        precondition(oh > 0 && ow > 0, "max-pool output would be \(oh)x\(ow) for input \(shape)")
        let out = Tensor(uninitializedShape: [n, c, oh, ow])
        // Flat in-plane index of each maximum, kept for the backward pass (-1: window all padding);
        // inference skips it.
        let recording = GradMode.isEnabled && needsGrad
        let argmax = TensorStorage(count: recording ? out.count : 1)
        let idx = UnsafeMutableRawPointer(argmax.pointer).bindMemory(to: Int32.self, capacity: out.count)
        let x = data, y = out.data
        let win = p.window
        Parallel.forEachRange(n * c, grain: Swift.max(1, (1 << 15) / Swift.max(1, oh * ow * p.kernelH * p.kernelW))) { planes in
            dipviz_max_pool(x, h, w, y, recording ? idx : nil, oh, ow, p.kernelH, p.kernelW, win.strideH, win.strideW,
                            win.padTop, win.padLeft, win.dilationH, win.dilationW, planes.lowerBound, planes.upperBound)
        }
        return Tensor.record(out, [self]) { _, g in
            withExtendedLifetime(argmax) {
                self.withGrad { gx in
                    gx.prepareForScatter(count: self.count)
                    Parallel.forEach(n * c, itemCost: oh * ow) { plane in
                        let dst = gx.pointer + plane * h * w
                        for o in (plane * oh * ow)..<((plane + 1) * oh * ow) where idx[o] >= 0 {
                            dst[Int(idx[o])] += g.data[o]
                        }
                    }
                }
            }
        }
    }

    public func avgPool2d(_ p: Pool2dOptions) -> Tensor {
        let (n, c, h, w) = nchw
        let (oh, ow) = p.outputSize(height: h, width: w)
        precondition(oh > 0 && ow > 0, "average-pool output would be \(oh)x\(ow) for input \(shape)")
        let win = p.window
        // For each output position: clipped window bounds and divisor (PyTorch's rules).
        func bounds(_ o: Int, stride: Int, pad: Int, padAfter: Int, k: Int, size: Int, dil: Int) -> (Int, Int, Int) {
            let start = o * stride - pad
            let end = Swift.min(start + (k - 1) * dil + 1, size + padAfter)
            let padded = (end - start + dil - 1) / dil
            let s = Swift.max(start, 0), e = Swift.min(end, size)
            return (s, e, padded)
        }
        let rowB = (0..<oh).map { bounds($0, stride: win.strideH, pad: win.padTop, padAfter: win.padBottom, k: p.kernelH, size: h, dil: win.dilationH) }
        let colB = (0..<ow).map { bounds($0, stride: win.strideW, pad: win.padLeft, padAfter: win.padRight, k: p.kernelW, size: w, dil: win.dilationW) }
        // Start offsets when windows begin in the padding, to stay on the dilation grid.
        func firstOnGrid(_ o: Int, stride: Int, pad: Int, dil: Int) -> Int {
            let start = o * stride - pad
            if start >= 0 { return start }
            return start + ((-start + dil - 1) / dil) * dil
        }
        let rowStart = (0..<oh).map { firstOnGrid($0, stride: win.strideH, pad: win.padTop, dil: win.dilationH) }
        let colStart = (0..<ow).map { firstOnGrid($0, stride: win.strideW, pad: win.padLeft, dil: win.dilationW) }
        var divisor = [Float](repeating: 1, count: oh * ow)
        for oy in 0..<oh {
            for ox in 0..<ow {
                let (_, ye, yp) = rowB[oy], (_, xe, xp) = colB[ox]
                let validY = ye > rowStart[oy] ? (ye - rowStart[oy] + win.dilationH - 1) / win.dilationH : 0
                let validX = xe > colStart[ox] ? (xe - colStart[ox] + win.dilationW - 1) / win.dilationW : 0
                let d = p.countIncludePad ? yp * xp : validY * validX
                divisor[oy * ow + ox] = d > 0 ? 1 / Float(d) : 0
            }
        }
        let out = Tensor(uninitializedShape: [n, c, oh, ow])
        let x = data, y = out.data
        let dh = win.dilationH, dw = win.dilationW
        Parallel.forEach(n * c, itemCost: oh * ow * p.kernelH * p.kernelW) { plane in
            let src = x + plane * h * w, dst = y + plane * oh * ow
            for oy in 0..<oh {
                let ye = rowB[oy].1
                for ox in 0..<ow {
                    let xe = colB[ox].1
                    var s: Float = 0
                    var iy = rowStart[oy]
                    while iy < ye {
                        var ix = colStart[ox]
                        while ix < xe { s += src[iy * w + ix]; ix += dw }
                        iy += dh
                    }
                    dst[oy * ow + ox] = s * divisor[oy * ow + ox]
                }
            }
        }
        return Tensor.record(out, [self]) { _, g in
            self.withGrad { gx in
                gx.prepareForScatter(count: self.count)
                Parallel.forEach(n * c, itemCost: oh * ow * p.kernelH * p.kernelW) { plane in
                    let dst = gx.pointer + plane * h * w, src = g.data + plane * oh * ow
                    for oy in 0..<oh {
                        let ye = rowB[oy].1
                        for ox in 0..<ow {
                            let xe = colB[ox].1
                            let v = src[oy * ow + ox] * divisor[oy * ow + ox]
                            var iy = rowStart[oy]
                            while iy < ye {
                                var ix = colStart[ox]
                                while ix < xe { dst[iy * w + ix] += v; ix += dw }
                                iy += dh
                            }
                        }
                    }
                }
            }
        }
    }

    /// Mean over each H x W plane, keeping 1x1 spatial dimensions.
    public func globalAvgPool2d() -> Tensor {
        let (n, c, h, w) = nchw
        return reshaped([n, c, h * w]).mean(axes: [2]).reshaped([n, c, 1, 1])
    }
}
