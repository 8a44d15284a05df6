import Foundation
import DipvizTensor
import Testing

/// Builds the op a fixture case names, as a function of its inputs in a fixed order.
func operation(for c: OpCase) -> (names: [String], op: ([Tensor]) -> Tensor) {
    switch c.op {
    case "conv2d":
        let s = c.ints("stride"), p = c.ints("pads"), d = c.ints("dilation")
        let o = Conv2dOptions(strides: (s[0], s[1]), pads: (p[0], p[1], p[2], p[3]), dilations: (d[0], d[1]), groups: c.int("groups"))
        return (["x", "weight", "bias"], { $0[0].conv2d(weight: $0[1], bias: $0[2], options: o) })
    case "maxPool2d", "avgPool2d":
        let k = c.ints("kernel"), s = c.ints("stride"), p = c.ints("pads")
        let o = Pool2dOptions(kernel: (k[0], k[1]), window: Conv2dOptions(strides: (s[0], s[1]), pads: (p[0], p[1], p[2], p[3])),
                              ceilMode: c.bool("ceilMode"),
                              countIncludePad: c.params["countIncludePad"].map { if case .bool(let b) = $0 { return b }; return true } ?? true)
        return (["x"], c.op == "maxPool2d" ? { $0[0].maxPool2d(o) } : { $0[0].avgPool2d(o) })
    case "globalAvgPool2d": return (["x"], { $0[0].globalAvgPool2d() })
    case "localResponseNorm":
        return (["x"], { $0[0].localResponseNorm(size: c.int("size"), alpha: c.float("alpha"), beta: c.float("beta"), bias: c.float("bias")) })
    case "batchNormTrain":
        return (["x", "gamma", "beta"], {
            let ch = $0[0].shape[1]
            return $0[0].batchNorm(gamma: $0[1], beta: $0[2], runningMean: Tensor(zeros: [ch]),
                                   runningVar: Tensor(shape: [ch], repeating: 1), training: true, epsilon: c.float("epsilon"))
        })
    case "batchNormEval":
        return (["x", "gamma", "beta"], {
            $0[0].batchNorm(gamma: $0[1], beta: $0[2], runningMean: c.inputs["mean"]!.tensor(), runningVar: c.inputs["var"]!.tensor(),
                            training: false, epsilon: c.float("epsilon"))
        })
    case "relu": return (["x"], { $0[0].relu() })
    case "leakyRelu": return (["x"], { $0[0].leakyRelu(slope: c.float("slope")) })
    case "sigmoid": return (["x"], { $0[0].sigmoid() })
    case "tanh": return (["x"], { $0[0].tanh() })
    case "upsample":
        let mode = UpsamplingMode(rawValue: c.string("mode"))!
        return (["x"], { $0[0].upsampled(height: c.int("height"), width: c.int("width"), mode: mode, alignCorners: c.bool("alignCorners")) })
    case "pad":
        let p = c.ints("pads")
        return (["x"], { $0[0].padded(top: p[0], bottom: p[2], left: p[1], right: p[3], mode: PaddingMode(rawValue: c.string("mode"))!) })
    case "slice": return (["x"], { $0[0].slice(axis: c.int("axis"), start: c.int("start"), end: c.int("end"), step: c.int("step")) })
    case "crop": return (["x"], { $0[0].cropped(top: c.int("top"), left: c.int("left"), height: c.int("height"), width: c.int("width")) })
    case "concat":
        let names = c.inputs.keys.sorted()
        return (names, { Tensor.concat($0, axis: c.int("axis")) })
    case "flatten": return (["x"], { $0[0].flattened(from: c.int("axis")) })
    case "reshape": return (["x"], { $0[0].reshaped(c.ints("shape")) })
    case "permute": return (["x"], { $0[0].permuted(c.ints("order")) })
    case "spaceToDepth": return (["x"], { $0[0].spaceToDepth(blockSize: c.int("blockSize")) })
    case "depthToSpace": return (["x"], { $0[0].depthToSpace(blockSize: c.int("blockSize")) })
    case "matmul":
        return (["a", "b"], { $0[0].matmul($0[1], transposeSelf: c.bool("transposeA"), transposeOther: c.bool("transposeB")) })
    case "gemm":
        return (["a", "b", "c"], {
            $0[0].gemm($0[1], c: $0[2], alpha: c.float("alpha"), beta: c.float("beta"),
                       transposeA: c.bool("transposeA"), transposeB: c.bool("transposeB"))
        })
    case "softmax": return (["x"], { $0[0].softmax(axis: c.int("axis")) })
    case "add": return (["a", "b"], { $0[0] + $0[1] })
    case "sub": return (["a", "b"], { $0[0] - $0[1] })
    case "mul": return (["a", "b"], { $0[0] * $0[1] })
    case "div": return (["a", "b"], { $0[0] / $0[1] })
    case "sum": return (["x"], { $0[0].sum() })
    case "mean": return (["x"], { $0[0].mean() })
    case "sumAxes": return (["x"], { $0[0].sum(axes: c.ints("axes"), keepDims: c.bool("keepDims")) })
    case "meanAxes": return (["x"], { $0[0].mean(axes: c.ints("axes"), keepDims: c.bool("keepDims")) })
    case "mse": return (["a", "b"], { $0[0].mseLoss($0[1]) })
    case "powerSum": return (["x"], { $0[0].powerSum(p: c.float("p")) })
    case "norm": return (["x"], { $0[0].norm(p: c.float("p")) })
    case "totalVariation": return (["x"], { $0[0].totalVariation(beta: c.float("beta")) })
    default: fatalError("fixture op \(c.op) has no test mapping")
    }
}

@Suite("Ops against numpy references, with finite-difference gradients")
struct OpTests {
    @Test(arguments: Fixtures.opCases)
    func op(_ c: OpCase) {
        let (names, op) = operation(for: c)
        let inputs = names.map { c.inputs[$0]!.tensor() }
        // Kinks (max pooling, ReLU) and the sharp curvature of TV with beta < 2 need a smaller step.
        let eps: Float = ["maxPool2d", "relu", "leakyRelu", "totalVariation"].contains(c.op) ? 1e-3 : 1e-2
        checkOp(c.name, inputs: inputs, expected: c.output.tensor(), epsilon: eps, op)
    }

    /// The folded form must equal convolution followed by 2x2 average pooling, values and gradients.
    @Test(arguments: [(7, 3, 16), (5, 2, 11), (3, 0, 9)])
    func averagePooledConvolutionMatchesConvThenPool(kernel: Int, padding: Int, size: Int) {
        var rng = SeededGenerator(seed: 5)
        let x = Tensor.uniform([1, 3, size, size + 1], low: -1, high: 1, generator: &rng)
        let w = Tensor.uniform([4, 3, kernel, kernel], low: -0.3, high: 0.3, generator: &rng)
        let b = Tensor.uniform([4], generator: &rng)
        let o = Conv2dOptions(padding: padding)
        let reference = GradMode.withoutGrad { x.conv2d(weight: w, bias: b, options: o).avgPool2d(Pool2dOptions(kernel: 2)) }
        checkOp("pooled conv k\(kernel)", inputs: [x, w, b], expected: reference, probes: 10) {
            $0[0].conv2dAveragePooled(weight: $0[1], bias: $0[2], options: o)
        }
    }

    /// Convolving the nearest-upsampled image at low resolution must match upsample-then-convolve.
    @Test(arguments: [(7, 3, 3), (5, 2, 2), (4, 1, 2), (3, 1, 1)])
    func upsampledConvolutionMatchesUpsampleThenConv(kernel: Int, padTop: Int, padBottom: Int) {
        var rng = SeededGenerator(seed: 9)
        let x = Tensor.uniform([1, 3, 5, 4], low: -1, high: 1, generator: &rng)
        let w = Tensor.uniform([2, 3, kernel, kernel], low: -0.3, high: 0.3, generator: &rng)
        let b = Tensor.uniform([2], generator: &rng)
        let o = Conv2dOptions(strides: (1, 1), pads: (padTop, padTop, padBottom, padBottom))
        let reference = GradMode.withoutGrad { x.upsampled(scale: 2).conv2d(weight: w, bias: b, options: o) }
        checkOp("upsampled conv k\(kernel)", inputs: [x, w, b], expected: reference, probes: 10) {
            $0[0].conv2dAfterNearestUpsample(weight: $0[1], bias: $0[2], options: o)
        }
    }

    @Test func batchNormUpdatesRunningStatistics() throws {
        let c = try #require(Fixtures.opCases.first { $0.name == "batchnorm_train" })
        let x = c.inputs["x"]!.tensor()
        let mean = Tensor(zeros: [4]), variance = Tensor(shape: [4], repeating: 1)
        _ = x.batchNorm(gamma: nil, beta: nil, runningMean: mean, runningVar: variance, training: true, momentum: 0.1)
        for (a, b) in zip(mean.scalars, c.floats("runningMeanAfter")) { #expect(abs(a - b) < 1e-5) }
        for (a, b) in zip(variance.scalars, c.floats("runningVarAfter")) { #expect(abs(a - b) < 1e-5) }
    }

    @Test func gradientsAccumulateAcrossBackwardCallsUntilZeroed() {
        let w = Tensor(shape: [3], scalars: [1, 2, 3], requiresGrad: true)
        (w * w).sum().backward()
        (w * w).sum().backward()
        #expect(w.grad!.scalars == [4, 8, 12])
        w.zeroGrad()
        (w * 3).sum().backward()
        #expect(w.grad!.scalars == [3, 3, 3])
    }

    @Test func diamondGraphAddsBothPaths() {
        let x = Tensor(shape: [2], scalars: [0.5, -1], requiresGrad: true)
        let y = x.sigmoid()
        let z = (y * y + y.scaled(by: 3)).sum()
        z.backward()
        let s = x.scalars.map { 1 / (1 + expf(-$0)) }
        for i in 0..<2 { #expect(abs(x.grad!.scalars[i] - (2 * s[i] + 3) * s[i] * (1 - s[i])) < 1e-6) }
    }

    @Test func frozenWeightsGetNoGradientWork() {
        let x = Tensor.uniform([1, 2, 5, 5], seed: 1)
        x.requiresGrad = true
        let w = Tensor.uniform([3, 2, 3, 3], seed: 2)  // a constant, as in a frozen classifier
        let y = x.conv2d(weight: w, options: Conv2dOptions(padding: 1)).sum()
        y.backward()
        #expect(x.grad != nil)
        #expect(w.grad == nil)
    }

    @Test func constantsRecordNoGraph() {
        let a = Tensor.uniform([4], seed: 1), b = Tensor.uniform([4], seed: 2)
        let c = (a * b).relu()
        #expect(!c.needsGrad)
        let p = Tensor.uniform([4], seed: 3); p.requiresGrad = true
        #expect(GradMode.withoutGrad { (p * a).needsGrad } == false)
        #expect((p * a).needsGrad)
    }

    /// Both input-gradient paths (transposed kernel for unit stride, col2im otherwise), and
    /// images large enough to be split into several im2col bands (144 x 75 x 144 > 2^20).
    @Test(arguments: [(1, 0, 12), (1, 3, 12), (2, 1, 12), (1, 2, 144), (2, 2, 144)])
    func convolutionPathsAgree(stride: Int, padding: Int, size: Int) {
        var rng = SeededGenerator(seed: 3)
        let x = Tensor.uniform([1, 3, size, size - 1], low: -1, high: 1, generator: &rng)
        let w = Tensor.uniform([2, 3, 5, 5], low: -0.3, high: 0.3, generator: &rng)
        let b = Tensor.uniform([2], low: -0.3, high: 0.3, generator: &rng)
        let o = Conv2dOptions(stride: stride, padding: padding)
        let expected = directConvolution(x, w, b, o)
        checkOp("conv s\(stride) p\(padding) \(size)", inputs: [x, w, b], expected: expected, probes: 8) {
            $0[0].conv2d(weight: $0[1], bias: $0[2], options: o)
        }
    }
}

/// Convolution by its definition, for comparison on sizes the fixtures do not cover.
func directConvolution(_ x: Tensor, _ w: Tensor, _ b: Tensor, _ o: Conv2dOptions) -> Tensor {
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (m, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
    let (oh, ow) = o.outputSize(height: h, width: wd, kernelH: kh, kernelW: kw)
    var out = [Float](repeating: 0, count: n * m * oh * ow)
    let xs = x.scalars, ws = w.scalars, bs = b.scalars
    for b0 in 0..<n { for mm in 0..<m { for oy in 0..<oh { for ox in 0..<ow {
        var acc = Double(bs[mm])
        for ch in 0..<c { for i in 0..<kh { for j in 0..<kw {
            let iy = oy * o.strideH - o.padTop + i * o.dilationH, ix = ox * o.strideW - o.padLeft + j * o.dilationW
            if iy >= 0 && iy < h && ix >= 0 && ix < wd {
                acc += Double(xs[((b0 * c + ch) * h + iy) * wd + ix]) * Double(ws[((mm * c + ch) * kh + i) * kw + j])
            }
        } } }
        out[((b0 * m + mm) * oh + oy) * ow + ox] = Float(acc)
    } } } }
    return Tensor(shape: [n, m, oh, ow], scalars: out)
}


/// Unary maps whose reference is plain scalar math: values and finite-difference gradients.
@Suite("Elementwise maps")
struct MapTests {
    static let cases: [(String, (Tensor) -> Tensor, (Float) -> Float)] = [
        ("exp", { $0.exp() }, { expf($0) }),
        ("log", { $0.log() }, { logf($0) }),
        ("abs", { $0.abs() }, { abs($0) }),
        ("sqrt", { $0.sqrt() }, { $0.squareRoot() }),
        ("squared", { $0.squared() }, { $0 * $0 }),
        ("pow 1.5", { $0.pow(1.5) }, { powf($0, 1.5) }),
        ("clamped", { $0.clamped(min: 0.4, max: 1.2) }, { min(max($0, 0.4), 1.2) }),
        ("scaled", { $0 * 2.5 }, { $0 * 2.5 }),
        ("shifted", { $0 - 0.75 }, { $0 - 0.75 }),
        ("negated", { -$0 }, { -$0 }),
        ("divided", { $0 / 4 }, { $0 / 4 }),
    ]

    @Test(arguments: 0..<cases.count)
    func map(_ index: Int) {
        let (name, op, reference) = MapTests.cases[index]
        // Positive inputs away from the clamp bounds keep every map smooth where it is probed.
        let values: [Float] = [0.2, 0.33, 0.55, 0.7, 0.95, 1.35, 1.6, 2.1]
        let x = Tensor(shape: [2, 4], scalars: values)
        checkOp(name, inputs: [x], expected: Tensor(shape: [2, 4], scalars: values.map(reference)), epsilon: 1e-3) { op($0[0]) }
    }

    /// Single-row products take the matrix-vector path; every transpose combination must agree.
    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func singleRowMatmul(transposeA: Bool, transposeB: Bool) {
        var rng = SeededGenerator(seed: 4)
        let a = Tensor.uniform(transposeA ? [300, 1] : [1, 300], low: -1, high: 1, generator: &rng)
        let b = Tensor.uniform(transposeB ? [260, 300] : [300, 260], low: -1, high: 1, generator: &rng)
        let av = a.scalars, bv = b.scalars
        var expected = [Float](repeating: 0, count: 260)
        for j in 0..<260 {
            for k in 0..<300 {
                let bk: Float = transposeB ? bv[j * 300 + k] : bv[k * 260 + j]
                expected[j] += av[k] * bk
            }
        }
        checkOp("1-row matmul", inputs: [a, b], expected: Tensor(shape: [1, 260], scalars: expected), probes: 6) {
            $0[0].matmul($0[1], transposeSelf: transposeA, transposeOther: transposeB)
        }
    }

    @Test func linearIsGemmWithTransposedWeight() {
        var rng = SeededGenerator(seed: 2)
        let x = Tensor.uniform([3, 5], low: -1, high: 1, generator: &rng)
        let w = Tensor.uniform([4, 5], low: -1, high: 1, generator: &rng)
        let b = Tensor.uniform([4], low: -1, high: 1, generator: &rng)
        let expected = GradMode.withoutGrad { x.matmul(w, transposeOther: true) + b }
        checkOp("linear", inputs: [x, w, b], expected: expected) { $0[0].linear(weight: $0[1], bias: $0[2]) }
    }
}
