import CDipvizKernels
import Foundation

/// Geometry of a 2-D convolution or pooling window.
public struct Conv2dOptions: Hashable, Sendable, Codable {
    public var strideH = 1, strideW = 1
    public var padTop = 0, padLeft = 0, padBottom = 0, padRight = 0
    public var dilationH = 1, dilationW = 1
    public var groups = 1

    public init(stride: Int = 1, padding: Int = 0, dilation: Int = 1, groups: Int = 1) {
        strideH = stride; strideW = stride
        padTop = padding; padLeft = padding; padBottom = padding; padRight = padding
        dilationH = dilation; dilationW = dilation
        self.groups = groups
    }

    public init(strides: (Int, Int), pads: (top: Int, left: Int, bottom: Int, right: Int),
                dilations: (Int, Int) = (1, 1), groups: Int = 1) {
        (strideH, strideW) = strides
        (padTop, padLeft, padBottom, padRight) = pads
        (dilationH, dilationW) = dilations
        self.groups = groups
    }

    public func outputSize(height h: Int, width w: Int, kernelH kh: Int, kernelW kw: Int) -> (Int, Int) {
        ((h + padTop + padBottom - dilationH * (kh - 1) - 1) / strideH + 1,
         (w + padLeft + padRight - dilationW * (kw - 1) - 1) / strideW + 1)
    }
}

/// The im2col/GEMM plan for one convolution: a column matrix of `k` rows (input channel x kernel
/// offset) is built for a band of output rows at a time, so the buffer stays a few megabytes
/// whatever the image size.
struct ConvGeometry {
    let n: Int, c: Int, h: Int, w: Int
    let m: Int, kh: Int, kw: Int
    let oh: Int, ow: Int
    let o: Conv2dOptions
    var cg: Int { c / o.groups }
    var mg: Int { m / o.groups }
    var k: Int { cg * kh * kw }
    var spatial: Int { oh * ow }
    /// A 1x1 kernel with unit stride and no padding reads the input itself as the column matrix.
    var isPointwise: Bool {
        kh == 1 && kw == 1 && o.strideH == 1 && o.strideW == 1 && o.padTop == 0 && o.padLeft == 0
            && o.padBottom == 0 && o.padRight == 0
    }
    /// For unit stride: the convolution that maps the output gradient to the input gradient
    /// (padding d*(k-1)-p on each side), or nil when that padding would be negative.
    var inputGradientGeometry: ConvGeometry? {
        guard o.strideH == 1, o.strideW == 1 else { return nil }
        let eh = o.dilationH * (kh - 1), ew = o.dilationW * (kw - 1)
        var t = o
        t.padTop = eh - o.padTop; t.padBottom = eh - o.padBottom
        t.padLeft = ew - o.padLeft; t.padRight = ew - o.padRight
        guard t.padTop >= 0, t.padBottom >= 0, t.padLeft >= 0, t.padRight >= 0 else { return nil }
        return ConvGeometry(n: n, c: m, h: oh, w: ow, m: c, kh: kh, kw: kw, oh: h, ow: w, o: t)
    }

    /// Few output channels make GEMM packing cost as much as the arithmetic; a direct kernel
    /// that reads the padded input in place is faster there.
    var prefersDirect: Bool {
        o.strideH == 1 && o.strideW == 1 && o.dilationH == 1 && o.dilationW == 1
            && mg <= 48 && !(kh == 1 && kw == 1)
    }

    /// Padded-input layout of the direct kernels: padded height, row stride, plane stride.
    /// Rows leave room for the kernels' reads past the last output; the odd plane padding keeps
    /// channel planes off the same cache sets (a row stride of wp+16 ran at half speed).
    var directLayout: (Int, Int, Int) {
        let hp = h + o.padTop + o.padBottom, wp = w + o.padLeft + o.padRight
        let rowStride = wp + Int(DIPVIZ_DIRECT_ROW_SLACK) + 8
        return (hp, rowStride, hp * rowStride + 40)
    }

    /// One group's input planes, zero-padded into the direct kernels' layout.
    func padForDirect(_ x: UnsafePointer<Float>, into xp: UnsafeMutablePointer<Float>) {
        let (hp, rowStride, planeStride) = directLayout
        DirectConvolution.pad(x, c: cg, h: h, w: w, top: o.padTop, left: o.padLeft, hp: hp, rowStride: rowStride,
                              planeStride: planeStride, into: xp)
        (xp + cg * planeStride).update(repeating: 0, count: 32)
    }

    /// Output rows per band.
    var bandRows: Int { Swift.max(1, Swift.min(oh, (1 << 20) / Swift.max(k * ow, 1))) }

    /// Fills `col` (k x rows*ow) for output rows [row0, row0+rows) from one group's input planes.
    func im2col(_ x: UnsafePointer<Float>, row0: Int, rows: Int, into col: UnsafeMutablePointer<Float>) {
        let ncol = rows * ow
        Parallel.forEach(k, itemCost: ncol) { r in
            let ch = r / (kh * kw), ki = (r / kw) % kh, kj = r % kw
            let plane = x + ch * h * w
            let dst = col + r * ncol
            let dx = kj * o.dilationW - o.padLeft
            // ox range where 0 <= ox*sw + dx < w
            let lo = dx >= 0 ? 0 : Swift.min(ow, (-dx + o.strideW - 1) / o.strideW)
            let hi = Swift.max(lo, Swift.min(ow, (w - dx + o.strideW - 1) / o.strideW))
            for t in 0..<rows {
                let iy = (row0 + t) * o.strideH - o.padTop + ki * o.dilationH
                let d = dst + t * ow
                if iy < 0 || iy >= h { d.update(repeating: 0, count: ow); continue }
                let src = plane + iy * w + dx
                if lo > 0 { d.update(repeating: 0, count: lo) }
                if o.strideW == 1 {
                    (d + lo).update(from: src + lo, count: hi - lo)
                } else {
                    for ox in lo..<hi { d[ox] = src[ox * o.strideW] }
                }
                if hi < ow { (d + hi).update(repeating: 0, count: ow - hi) }
            }
        }
    }

    /// Adds `col` (k x rows*ow) back into one group's input-gradient planes.
    func col2im(_ col: UnsafePointer<Float>, row0: Int, rows: Int, into gx: UnsafeMutablePointer<Float>) {
        let ncol = rows * ow
        // Each channel owns kh*kw rows of col, so channels can run in parallel without races.
        Parallel.forEach(cg, itemCost: kh * kw * ncol) { ch in
            let plane = gx + ch * h * w
            for ki in 0..<kh {
                for kj in 0..<kw {
                    let r = (ch * kh + ki) * kw + kj
                    let srcRow = col + r * ncol
                    let dx = kj * o.dilationW - o.padLeft
                    let lo = dx >= 0 ? 0 : Swift.min(ow, (-dx + o.strideW - 1) / o.strideW)
                    let hi = Swift.max(lo, Swift.min(ow, (w - dx + o.strideW - 1) / o.strideW))
                    for t in 0..<rows {
                        let iy = (row0 + t) * o.strideH - o.padTop + ki * o.dilationH
                        if iy < 0 || iy >= h { continue }
                        let d = plane + iy * w + dx, s = srcRow + t * ow
                        if o.strideW == 1 { for ox in lo..<hi { d[ox] += s[ox] } }
                        else { for ox in lo..<hi { d[ox * o.strideW] += s[ox] } }
                    }
                }
            }
        }
    }
}

extension Tensor {
    /// 2-D convolution (cross-correlation) of an NCHW input with an M x C/groups x kH x kW
    /// weight and an optional bias of M. The weight's gradient is computed only when the weight
    /// needs one, so a frozen classifier costs input gradients alone.
    ///
    /// With `relu`, max(0, conv + bias) in the convolution's epilogue: the same values as
    /// `conv2d(...).relu()`, without a second output tensor, a second pass over it, or the
    /// pre-activation kept for the backward pass (the output's sign is the ReLU's mask).
    ///
    /// With `precision: .bf16` and a constant weight, the Winograd products (forward and input
    /// gradient) run in bf16 with single-precision sums; the caller checks first that the
    /// processor runs them (`ConvPrecision.checkSupported`). A trainable weight stays fp32.
    public func conv2d(weight: Tensor, bias: Tensor? = nil, options o: Conv2dOptions = Conv2dOptions(), relu: Bool = false,
                       precision: ConvPrecision = .fp32) -> Tensor {
        let (n, c, h, w) = nchw
        precondition(weight.rank == 4, "conv weight must be rank 4, got \(weight.shape)")
        let m = weight.shape[0], kh = weight.shape[2], kw = weight.shape[3]
        precondition(c % o.groups == 0 && m % o.groups == 0 && weight.shape[1] == c / o.groups,
                     "conv of input \(shape) with weight \(weight.shape) in \(o.groups) groups")
        precondition(bias == nil || bias!.count == m, "conv bias \(bias!.shape) for \(m) outputs")
        let (oh, ow) = o.outputSize(height: h, width: w, kernelH: kh, kernelW: kw)
        precondition(oh > 0 && ow > 0, "conv output would be \(oh)x\(ow) for input \(shape), kernel \(kh)x\(kw)")
        let precision = weight.needsGrad ? .fp32 : precision
        if let y = stridedAsSpaceToDepth(weight: weight, bias: bias, options: o, outputSize: (oh, ow), relu: relu, precision: precision) {
            return y
        }
        // The four parts are summed after their convolutions, so the ReLU follows the sum.
        if let y = fiveByFiveAsWinograd(weight: weight, bias: bias, options: o, outputSize: (oh, ow), precision: precision) {
            return relu ? y.relu() : y
        }
        let geo = ConvGeometry(n: n, c: c, h: h, w: w, m: m, kh: kh, kw: kw, oh: oh, ow: ow, o: o)
        let out = Tensor(uninitializedShape: [n, m, oh, ow])
        if WinogradConvolution.applies(geo, weight: weight) {
            let plan = WinogradConvolution.Plan(geo, bf16: precision == .bf16)
            let u = WinogradConvolution.weights(geo, plan: plan, weight: weight, transposed: false)
            withExtendedLifetime(u) {
                WinogradConvolution.forward(geo, plan: plan, x: data, u: u.pointer, bias: bias?.data, y: out.data, accumulate: false,
                                            relu: relu)
            }
        } else {
            Tensor.convForward(geo, x: data, weight: weight.data, bias: bias?.data, y: out.data, relu: relu)
        }
        var inputs = [self, weight]
        if let b = bias { inputs.append(b) }
        return Tensor.record(out, inputs) { out, g in
            guard relu else { return Tensor.convBackward(geo, x: self, weight: weight, bias: bias, gy: g.data, precision: precision) }
            // The ReLU's backward: the gradient where the output is positive, zero elsewhere.
            let masked = Tensor(uninitializedShape: out.shape)
            let y = out.data, dy = g.data, d = masked.data
            Parallel.forEachRange(out.count, grain: 1 << 16) { r in for i in r { d[i] = y[i] > 0 ? dy[i] : 0 } }
            Tensor.convBackward(geo, x: self, weight: weight, bias: bias, gy: masked.data, precision: precision)
        }
    }

    /// A strided convolution with few output channels, rewritten as a unit-stride one over the
    /// s x s phases of the input (space-to-depth), so the direct kernel can run it; or one whose
    /// phase kernels are 3x3 with enough channels for Winograd (AlexNet's 11x11 stride-4 conv1:
    /// 48 phase channels, 64 outputs). Same values up to rounding; gradients flow through the rewrite.
    func stridedAsSpaceToDepth(weight: Tensor, bias: Tensor?, options o: Conv2dOptions, outputSize: (Int, Int), relu: Bool,
                               precision: ConvPrecision) -> Tensor? {
        let s = o.strideH
        let (n, c, h, w) = nchw
        let m = weight.shape[0], kh = weight.shape[2], kw = weight.shape[3]
        guard s > 1, o.strideW == s, o.dilationH == 1, o.dilationW == 1, o.groups == 1,
              kh >= s || kw >= s else { return nil }
        let (oh, ow) = outputSize
        let khs = (kh + s - 1) / s, kws = (kw + s - 1) / s
        if m > 48 {
            let phases = ConvGeometry(n: n, c: c * s * s, h: oh + khs - 1, w: ow + kws - 1, m: m, kh: khs, kw: kws,
                                      oh: oh, ow: ow, o: Conv2dOptions())
            guard WinogradConvolution.applies(phases, weight: weight) else { return nil }
        }
        // Rows and columns the phases must cover; extra ones are zeros, surplus ones are cut.
        let needH = s * (oh + khs - 1), needW = s * (ow + kws - 1)
        var xp = padded(top: o.padTop, bottom: Swift.max(0, needH - h - o.padTop),
                        left: o.padLeft, right: Swift.max(0, needW - w - o.padLeft))
        if xp.shape[2] > needH { xp = xp.slice(axis: 2, start: 0, end: needH) }
        if xp.shape[3] > needW { xp = xp.slice(axis: 3, start: 0, end: needW) }
        func phaseKernels() -> Tensor {
            weight.padded(top: 0, bottom: s * khs - kh, left: 0, right: s * kws - kw).spaceToDepth(blockSize: s)
        }
        let phaseWeight: Tensor
        if weight.needsGrad {
            phaseWeight = phaseKernels()
        } else {
            // A constant's phase kernels are kept with its buffer, and so are their Winograd transforms.
            let shape = [m, c * s * s, khs, kws]
            let storage = weight.storage.derivedBuffer("space-to-depth:\(s)", count: shape.reduce(1, *)) { dst in
                let made = GradMode.withoutGrad { phaseKernels() }
                dst.update(from: made.data, count: made.count)
            }
            phaseWeight = Tensor(shape: shape, storage: storage)
        }
        return xp.spaceToDepth(blockSize: s).conv2d(weight: phaseWeight, bias: bias, options: Conv2dOptions(), relu: relu,
                                                    precision: precision)
    }

    /// A unit-stride 5x5 convolution with a constant weight and enough channels (AlexNet's conv2),
    /// as the sum of four 3x3 ones that Winograd runs: kernel rows and columns {0, 1, 2} at offset
    /// 0 and {-, 3, 4} (a zero first) at offset 2. 4 x 36 multiplies per 4x4 tile and channel
    /// pair instead of 400; the input gradient flows through the same four. Same values up to
    /// rounding.
    func fiveByFiveAsWinograd(weight: Tensor, bias: Tensor?, options o: Conv2dOptions, outputSize: (Int, Int),
                              precision: ConvPrecision) -> Tensor? {
        let (n, c, h, w) = nchw
        let m = weight.shape[0]
        guard weight.shape[2] == 5, weight.shape[3] == 5, !weight.needsGrad, o.strideH == 1, o.strideW == 1,
              o.dilationH == 1, o.dilationW == 1, o.groups == 1 else { return nil }
        let (oh, ow) = outputSize
        let part = ConvGeometry(n: n, c: c, h: oh + 2, w: ow + 2, m: m, kh: 3, kw: 3, oh: oh, ow: ow, o: Conv2dOptions())
        guard WinogradConvolution.applies(part, weight: weight) else { return nil }
        // The four 3x3 kernels, kept with the weight's buffer (and so their transforms).
        func kernel(_ a: Int, _ b: Int) -> Tensor {
            let storage = weight.storage.derivedBuffer("five-by-five-as-3x3:\(a)\(b)", count: m * c * 9) { out in
                let src = weight.data
                for pair in 0..<(m * c) {
                    for i in 0..<3 { for j in 0..<3 {
                        let zero = (a == 1 && i == 0) || (b == 1 && j == 0)
                        out[pair * 9 + i * 3 + j] = zero ? 0 : src[pair * 25 + (2 * a + i) * 5 + 2 * b + j]
                    } }
                }
            }
            return Tensor(shape: [m, c, 3, 3], storage: storage)
        }
        var y: Tensor? = nil
        for a in 0..<2 { for b in 0..<2 {
            // The part at offset (2a, 2b) reads input rows oy - padTop + 2a + i: a 3x3 convolution
            // with the padding shifted, cropping the input where the shift passes the edge.
            var xs = self
            var top = o.padTop - 2 * a, left = o.padLeft - 2 * b
            if top < 0 { xs = xs.slice(axis: 2, start: -top, end: h); top = 0 }
            if left < 0 { xs = xs.slice(axis: 3, start: -left, end: w); left = 0 }
            var bottom = oh + 2 - xs.shape[2] - top, right = ow + 2 - xs.shape[3] - left
            if bottom < 0 { xs = xs.slice(axis: 2, start: 0, end: xs.shape[2] + bottom); bottom = 0 }
            if right < 0 { xs = xs.slice(axis: 3, start: 0, end: xs.shape[3] + right); right = 0 }
            let term = xs.conv2d(weight: kernel(a, b), bias: a == 0 && b == 0 ? bias : nil,
                                 options: Conv2dOptions(strides: (1, 1), pads: (top, left, bottom, right)), precision: precision)
            y = y.map { $0 + term } ?? term
        } }
        return y
    }

    /// 2x2 average pooling after a unit-stride convolution, computed as one stride-2
    /// convolution with a (k+1) x (k+1) kernel: a quarter of the arithmetic, same values.
    public func conv2dAveragePooled(weight: Tensor, bias: Tensor? = nil, options o: Conv2dOptions = Conv2dOptions()) -> Tensor {
        precondition(o.strideH == 1 && o.strideW == 1 && o.dilationH == 1 && o.dilationW == 1,
                     "pooled convolution needs unit stride and dilation")
        let merged = (weight.padded(top: 0, bottom: 1, left: 0, right: 1) + weight.padded(top: 1, bottom: 0, left: 0, right: 1)
                      + weight.padded(top: 0, bottom: 1, left: 1, right: 0) + weight.padded(top: 1, bottom: 0, left: 1, right: 0))
            .scaled(by: 0.25)
        var p = o
        p.strideH = 2; p.strideW = 2
        return conv2d(weight: merged, bias: bias, options: p)
    }

    static func convForward(_ geo: ConvGeometry, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                            bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>, accumulate: Bool = false, relu: Bool = false) {
        precondition(!(accumulate && relu), "a ReLU applies to the whole sum, not to an accumulated part")
        let beta: Float = accumulate ? 1 : 0
        if geo.prefersDirect {
            directForward(geo, x: x, weight: weight, y: y, accumulate: accumulate)
        } else {
            gemmForward(geo, x: x, weight: weight, y: y, beta: beta)
        }
        guard bias != nil || relu else { return }
        // Bias and ReLU in one pass over each output plane.
        let s = geo.spatial
        Parallel.forEach(geo.n * geo.m, itemCost: s) { p in
            let v = bias?[p % geo.m] ?? 0, d = y + p * s
            if relu { for i in 0..<s { let z = d[i] + v; d[i] = z > 0 ? z : 0 } }
            else { for i in 0..<s { d[i] += v } }
        }
    }

    static func directForward(_ geo: ConvGeometry, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                              y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let (_, rowStride, planeStride) = geo.directLayout
        let packedPerGroup = DirectConvolution.packedCount(m: geo.mg, c: geo.cg, kh: geo.kh, kw: geo.kw)
        withScratch(geo.cg * planeStride + 32) { xp in
            withScratch(packedPerGroup * geo.o.groups) { packed in
                for g in 0..<geo.o.groups {
                    DirectConvolution.packWeights(weight + g * geo.mg * geo.k, m: geo.mg, c: geo.cg, kh: geo.kh, kw: geo.kw,
                                                  into: packed + g * packedPerGroup)
                }
                for b in 0..<geo.n {
                    for g in 0..<geo.o.groups {
                        geo.padForDirect(x + (b * geo.c + g * geo.cg) * geo.h * geo.w, into: xp)
                        DirectConvolution.forward(xp: xp, c: geo.cg, rowStride: rowStride, planeStride: planeStride,
                                                  packed: packed + g * packedPerGroup, m: geo.mg, kh: geo.kh, kw: geo.kw,
                                                  y: y + (b * geo.m + g * geo.mg) * geo.spatial, oh: geo.oh, ow: geo.ow,
                                                  accumulate: accumulate)
                    }
                }
            }
        }
    }

    static func gemmForward(_ geo: ConvGeometry, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                            y: UnsafeMutablePointer<Float>, beta: Float) {
        let band = geo.bandRows
        let colCount = geo.isPointwise ? 1 : geo.k * band * geo.ow
        withScratch(colCount) { col in
            for b in 0..<geo.n {
                for g in 0..<geo.o.groups {
                    let xg = x + (b * geo.c + g * geo.cg) * geo.h * geo.w
                    let yg = y + (b * geo.m + g * geo.mg) * geo.spatial
                    let wg = weight + g * geo.mg * geo.k
                    if geo.isPointwise {
                        BLAS.sgemm(transposeA: false, transposeB: false, m: geo.mg, n: geo.spatial, k: geo.k,
                                   a: wg, lda: geo.k, b: xg, ldb: geo.spatial, beta: beta, c: yg, ldc: geo.spatial)
                        continue
                    }
                    var row0 = 0
                    while row0 < geo.oh {
                        let rows = Swift.min(band, geo.oh - row0)
                        geo.im2col(xg, row0: row0, rows: rows, into: col)
                        BLAS.sgemm(transposeA: false, transposeB: false, m: geo.mg, n: rows * geo.ow, k: geo.k,
                                   a: wg, lda: geo.k, b: col, ldb: rows * geo.ow, beta: beta,
                                   c: yg + row0 * geo.ow, ldc: geo.spatial)
                        row0 += rows
                    }
                }
            }
        }
    }

    static func directWeightGradient(_ geo: ConvGeometry, x: UnsafePointer<Float>, gy: UnsafePointer<Float>, gw: GradTarget) {
        let (_, rowStride, planeStride) = geo.directLayout
        let multiple = DirectConvolution.gradientRowMultiple
        let gyRow = (geo.ow + multiple - 1) / multiple * multiple
        let gyCount = (geo.mg + 3) / 4 * 4 * geo.oh * gyRow
        withScratch(geo.cg * planeStride + 32) { xp in
            withScratch(gyCount) { gyp in
                for b in 0..<geo.n {
                    for g in 0..<geo.o.groups {
                        geo.padForDirect(x + (b * geo.c + g * geo.cg) * geo.h * geo.w, into: xp)
                        DirectConvolution.padOutputGradient(gy + (b * geo.m + g * geo.mg) * geo.spatial, m: geo.mg,
                                                            oh: geo.oh, ow: geo.ow, rowStride: gyRow, into: gyp)
                        DirectConvolution.weightGradient(xp: xp, c: geo.cg, rowStride: rowStride, planeStride: planeStride,
                                                         gy: gyp, gyRowStride: gyRow, m: geo.mg, kh: geo.kh, kw: geo.kw,
                                                         oh: geo.oh, dw: gw.pointer + g * geo.mg * geo.k,
                                                         accumulate: gw.accumulate || b > 0)
                    }
                }
            }
        }
    }

    static func convBackward(_ geo: ConvGeometry, x: Tensor, weight: Tensor, bias: Tensor?, gy: UnsafePointer<Float>,
                             precision: ConvPrecision = .fp32) {
        let s = geo.spatial
        bias?.withGrad { gb in
            for mm in 0..<geo.m {
                var acc: Float = 0
                for b in 0..<geo.n { let p = gy + (b * geo.m + mm) * s; for i in 0..<s { acc += p[i] } }
                gb.put(mm, acc)
            }
        }
        let wantX = x.needsGrad, wantW = weight.needsGrad
        guard wantX || wantW else { return }
        var gwTarget: GradTarget? = nil
        if wantW { weight.withGrad { gwTarget = $0 } }
        var gxTarget: GradTarget? = nil
        if wantX { x.withGrad { gxTarget = $0 } }
        if let gx = gxTarget, let transposed = geo.inputGradientGeometry, WinogradConvolution.applies(transposed, weight: weight) {
            let plan = WinogradConvolution.Plan(transposed, bf16: precision == .bf16)
            let u = WinogradConvolution.weights(transposed, plan: plan, weight: weight, transposed: true)
            withExtendedLifetime(u) {
                WinogradConvolution.forward(transposed, plan: plan, x: gy, u: u.pointer, bias: nil, y: gx.pointer, accumulate: gx.accumulate)
            }
            gxTarget = nil
        }
        if let gx = gxTarget, let transposed = geo.inputGradientGeometry,
           transposed.prefersDirect || transposed.isPointwise || geo.mg <= geo.cg {
            // With unit stride the input gradient is itself a convolution of the output gradient
            // with the flipped, transposed kernel: one GEMM with a long inner dimension instead
            // of a tall column matrix scattered back by col2im, or the direct kernel. When the
            // convolution widens (more outputs than inputs, AlexNet's conv2) that GEMM's column
            // matrix is the larger one, and col2im's path below moves less memory.
            let kk = geo.kh * geo.kw
            withScratch(weight.count) { flipped in
                let w = weight.data
                for g in 0..<geo.o.groups {
                    for mm in 0..<geo.mg {
                        for ch in 0..<geo.cg {
                            let src = w + ((g * geo.mg + mm) * geo.cg + ch) * kk
                            let dst = flipped + ((g * geo.cg + ch) * geo.mg + mm) * kk
                            for t in 0..<kk { dst[t] = src[kk - 1 - t] }
                        }
                    }
                }
                convForward(transposed, x: gy, weight: flipped, bias: nil, y: gx.pointer, accumulate: gx.accumulate)
            }
            gxTarget = nil
        }
        if let gw = gwTarget, geo.prefersDirect {
            directWeightGradient(geo, x: x.data, gy: gy, gw: gw)
            gwTarget = nil
        }
        guard gwTarget != nil || gxTarget != nil else { return }
        let band = geo.bandRows
        let colCount = geo.isPointwise ? 1 : geo.k * band * geo.ow
        // Col2im adds into the input gradient, so a fresh buffer starts at zero.
        if let gx = gxTarget, !geo.isPointwise { gx.prepareForScatter(count: x.count) }
        withScratch(colCount) { col in
        withScratch(gxTarget != nil && !geo.isPointwise ? colCount : 1) { dcol in
            for b in 0..<geo.n {
                for g in 0..<geo.o.groups {
                    let xg = x.data + (b * geo.c + g * geo.cg) * geo.h * geo.w
                    let gyg = gy + (b * geo.m + g * geo.mg) * s
                    let wg = weight.data + g * geo.mg * geo.k
                    // The first contribution to a fresh weight gradient overwrites it.
                    let wBeta: Float = (gwTarget?.accumulate ?? true) || b > 0 ? 1 : 0
                    if geo.isPointwise {
                        if let gw = gwTarget {
                            BLAS.sgemm(transposeA: false, transposeB: true, m: geo.mg, n: geo.k, k: s,
                                       a: gyg, lda: s, b: xg, ldb: s, beta: wBeta,
                                       c: gw.pointer + g * geo.mg * geo.k, ldc: geo.k)
                        }
                        if let gx = gxTarget {
                            BLAS.sgemm(transposeA: true, transposeB: false, m: geo.k, n: s, k: geo.mg,
                                       a: wg, lda: geo.k, b: gyg, ldb: s, beta: gx.accumulate ? 1 : 0,
                                       c: gx.pointer + (b * geo.c + g * geo.cg) * geo.h * geo.w, ldc: s)
                        }
                        continue
                    }
                    var row0 = 0
                    while row0 < geo.oh {
                        let rows = Swift.min(band, geo.oh - row0)
                        let ncol = rows * geo.ow
                        if let gw = gwTarget {
                            geo.im2col(xg, row0: row0, rows: rows, into: col)
                            BLAS.sgemm(transposeA: false, transposeB: true, m: geo.mg, n: geo.k, k: ncol,
                                       a: gyg + row0 * geo.ow, lda: s, b: col, ldb: ncol,
                                       beta: (wBeta == 1 || row0 > 0) ? 1 : 0,
                                       c: gw.pointer + g * geo.mg * geo.k, ldc: geo.k)
                        }
                        if let gx = gxTarget {
                            BLAS.sgemm(transposeA: true, transposeB: false, m: geo.k, n: ncol, k: geo.mg,
                                       a: wg, lda: geo.k, b: gyg + row0 * geo.ow, ldb: s, beta: 0,
                                       c: dcol, ldc: ncol)
                            geo.col2im(dcol, row0: row0, rows: rows,
                                       into: gx.pointer + (b * geo.c + g * geo.cg) * geo.h * geo.w)
                        }
                        row0 += rows
                    }
                }
            }
        }
        }
    }
}
