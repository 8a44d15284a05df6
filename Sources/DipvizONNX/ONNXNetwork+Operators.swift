import DipvizTensor
import Foundation

extension ONNXNode {
    var label: String { name.isEmpty ? "\(opType)(\(outputs.first ?? ""))" : name }

    func int(_ key: String, _ fallback: Int) -> Int {
        if case .int(let v)? = attributes[key] { return v }
        return fallback
    }
    func float(_ key: String, _ fallback: Float) -> Float {
        if case .float(let v)? = attributes[key] { return v }
        if case .int(let v)? = attributes[key] { return Float(v) }
        return fallback
    }
    func ints(_ key: String) -> [Int]? {
        if case .ints(let v)? = attributes[key] { return v }
        if case .int(let v)? = attributes[key] { return [v] }
        return nil
    }
    func floats(_ key: String) -> [Float]? {
        if case .floats(let v)? = attributes[key] { return v }
        return nil
    }
    func string(_ key: String, _ fallback: String) -> String {
        if case .string(let v)? = attributes[key] { return v }
        return fallback
    }
    func unsupported(_ detail: String) -> ONNXError { .unsupportedAttribute(op: opType, node: label, detail: detail) }
    func mismatch(_ detail: String) -> ONNXError { .shapeMismatch(op: opType, node: label, detail: detail) }
}

extension ONNXValue {
    func tensor(_ node: ONNXNode) -> Tensor {
        switch self {
        case .float(let t): return t
        case .ints(let a, let shape): return Tensor(shape: shape, scalars: a.map { Float($0) })
        }
    }

    /// Integer contents; float values must be whole numbers an Int can hold (NaN, infinities and
    /// out-of-range values are an error naming the node, not a trap in the conversion).
    func integers(_ node: ONNXNode) throws -> [Int] {
        switch self {
        case .ints(let a, _): return a
        case .float(let t):
            return try t.scalars.map { f in
                guard let i = Int(exactly: f.rounded(.towardZero)) else {
                    throw node.mismatch("value \(f) cannot be used as an integer (valid: finite, within ±9.2e18)")
                }
                return i
            }
        }
    }

    /// The first element, for inputs that hold one number (a clip bound, a scale, a pad value).
    func scalar(_ node: ONNXNode, _ what: String) throws -> Float {
        let t = tensor(node)
        guard t.count >= 1 else { throw node.mismatch("\(what) is an empty tensor; one value is needed") }
        return t.data[0]
    }

    var isInts: Bool { if case .ints = self { return true }; return false }
}

extension ONNXNetwork {
    /// Computes one node's outputs from its inputs (nil for omitted optional inputs); Conv
    /// nodes with `precision`.
    static func evaluate(_ node: ONNXNode, _ inputs: [ONNXValue?], opset: Int, types: [String: Int],
                         precision: ConvPrecision = .fp32) throws -> [ONNXValue] {
        func input(_ i: Int) throws -> ONNXValue {
            guard i < inputs.count, let v = inputs[i] else {
                throw ONNXError.malformed("\(node.opType) node '\(node.label)' lacks input \(i)")
            }
            return v
        }
        func optional(_ i: Int) -> ONNXValue? { i < inputs.count ? inputs[i] : nil }
        func x(_ i: Int = 0) throws -> Tensor { try input(i).tensor(node) }
        func one(_ t: Tensor) -> [ONNXValue] { [.float(t)] }

        switch node.opType {
        case "Identity": return [try input(0)]
        case "Dropout":
            // Inference: identity, and a mask that keeps everything.
            let v = try input(0)
            if node.outputs.count > 1 && !node.outputs[1].isEmpty { return [v, .float(Tensor(shape: v.shape, repeating: 1))] }
            return [v]
        case "Relu": return one(try x().relu())
        case "LeakyRelu": return one(try x().leakyRelu(slope: node.float("alpha", 0.01)))
        case "Sigmoid": return one(try x().sigmoid())
        case "Tanh": return one(try x().tanh())
        case "Clip":
            var lo = -Float.greatestFiniteMagnitude, hi = Float.greatestFiniteMagnitude
            if opset < 11 {
                lo = node.float("min", lo); hi = node.float("max", hi)
            } else {
                if let v = optional(1) { lo = try v.scalar(node, "min") }
                if let v = optional(2) { hi = try v.scalar(node, "max") }
            }
            return one(try x().clamped(min: lo, max: hi))
        case "Conv": return one(try convolution(node, try x(0), try x(1), optional(2)?.tensor(node), precision: precision))
        case "MaxPool", "AveragePool":
            if node.outputs.count > 1 && !node.outputs[1].isEmpty { throw node.unsupported("the Indices output of MaxPool is not supported") }
            let t = try x()
            guard t.rank == 4 else { throw node.unsupported("only 2-D pooling (4-D tensors) is supported, got rank \(t.rank)") }
            guard let k = node.ints("kernel_shape"), k.count == 2, k.allSatisfy({ $0 > 0 && $0 <= 4096 }) else {
                throw node.unsupported("kernel_shape must be two positive numbers")
            }
            let window = try geometry(node, input: t, kernel: (k[0], k[1]))
            let p = Pool2dOptions(kernel: (k[0], k[1]), window: window, ceilMode: node.int("ceil_mode", 0) != 0,
                                  countIncludePad: node.int("count_include_pad", 0) != 0)
            let (oh, ow) = p.outputSize(height: t.shape[2], width: t.shape[3])
            guard oh > 0 && ow > 0 else { throw node.mismatch("pooling window larger than the input \(t.shape)") }
            return one(node.opType == "MaxPool" ? t.maxPool2d(p) : t.avgPool2d(p))
        case "GlobalAveragePool":
            let t = try x()
            guard t.rank == 4 else { throw node.unsupported("expects a 4-D tensor, got \(t.shape)") }
            return one(t.globalAvgPool2d())
        case "GlobalMaxPool":
            let t = try x()
            guard t.rank == 4 else { throw node.unsupported("expects a 4-D tensor, got \(t.shape)") }
            return one(t.maxPool2d(Pool2dOptions(kernel: (t.shape[2], t.shape[3]), window: Conv2dOptions(stride: 1))))
        case "LRN":
            guard let size = node.ints("size")?.first, size >= 1, size <= 1 << 16 else {
                throw node.unsupported("size must be a whole number from 1 to 65536, got \(node.ints("size") ?? [])")
            }
            guard (try x()).rank >= 2 else { throw node.mismatch("LRN needs N x C x ... input") }
            return one(try x().localResponseNorm(size: size, alpha: node.float("alpha", 1e-4), beta: node.float("beta", 0.75),
                                                 bias: node.float("bias", 1)))
        case "BatchNormalization":
            if node.int("training_mode", 0) != 0 { throw node.unsupported("training_mode=1 is not supported") }
            let t = try x()
            guard t.rank >= 2 else { throw node.mismatch("batch norm needs N x C x ... input, got \(t.shape)") }
            let c = t.shape[1]
            let scale = try x(1), bias = try x(2), mean = try x(3), variance = try x(4)
            guard [scale, bias, mean, variance].allSatisfy({ $0.count == c }) else {
                throw node.mismatch("batch-norm parameters do not match \(c) channels")
            }
            return one(t.batchNorm(gamma: scale, beta: bias, runningMean: mean, runningVar: variance, training: false,
                                   epsilon: node.float("epsilon", 1e-5)))
        case "Gemm":
            let a = try x(0), b = try x(1)
            guard a.rank == 2, b.rank == 2 else { throw node.mismatch("Gemm needs 2-D operands, got \(a.shape) and \(b.shape)") }
            let ta = node.int("transA", 0) != 0, tb = node.int("transB", 0) != 0
            let k1 = ta ? a.shape[0] : a.shape[1], k2 = tb ? b.shape[1] : b.shape[0]
            guard k1 == k2 else { throw node.mismatch("Gemm inner dimensions differ: \(a.shape) x \(b.shape)") }
            let c = optional(2)?.tensor(node)
            if let c, broadcastShape(c.shape, [ta ? a.shape[1] : a.shape[0], tb ? b.shape[0] : b.shape[1]]) == nil {
                throw node.mismatch("bias \(c.shape) does not broadcast to the product")
            }
            return one(a.gemm(b, c: c, alpha: node.float("alpha", 1), beta: node.float("beta", 1), transposeA: ta, transposeB: tb))
        case "MatMul": return one(try matmul(node, try x(0), try x(1)))
        case "Add", "Sub", "Mul", "Div":
            let a = try input(0), b = try input(1)
            if a.isInts && b.isInts { return [try integerArithmetic(node, a, b)] }
            let ta = a.tensor(node), tb = b.tensor(node)
            guard broadcastShape(ta.shape, tb.shape) != nil else { throw node.mismatch("shapes \(ta.shape) and \(tb.shape) do not broadcast") }
            switch node.opType {
            case "Add": return one(ta + tb)
            case "Sub": return one(ta - tb)
            case "Mul": return one(ta * tb)
            default: return one(ta / tb)
            }
        case "Sum":
            var acc = try x(0)
            for i in 1..<Swift.max(1, inputs.count) {
                let next = try x(i)
                guard broadcastShape(acc.shape, next.shape) != nil else { throw node.mismatch("shapes \(acc.shape) and \(next.shape) do not broadcast") }
                acc = acc + next
            }
            return one(acc)
        case "Flatten":
            let t = try x()
            var axis = node.int("axis", 1)
            if axis < 0 { axis += t.rank }
            guard axis >= 0 && axis <= t.rank else { throw node.mismatch("axis \(axis) for rank \(t.rank)") }
            return one(t.reshaped([t.shape[..<axis].reduce(1, *), t.shape[axis...].reduce(1, *)]))
        case "Reshape":
            let data = try input(0)
            let spec = opset < 5 ? (node.ints("shape") ?? []) : try input(1).integers(node)
            let shape = try reshapeTarget(node, from: data.shape, spec: spec, allowZero: node.int("allowzero", 0) != 0)
            switch data {
            case .ints(let a, _): return [.ints(a, shape: shape)]
            case .float(let t): return one(t.reshaped(shape))
            }
        case "Transpose":
            let t = try x()
            let perm = node.ints("perm") ?? Array((0..<t.rank).reversed())
            guard perm.sorted() == Array(0..<t.rank) else { throw node.mismatch("perm \(perm) for rank \(t.rank)") }
            return one(t.permuted(perm))
        case "Softmax", "LogSoftmax":
            let t = try x()
            var axis = node.int("axis", opset < 13 ? 1 : -1)
            if axis < 0 { axis += t.rank }
            guard axis >= 0 && axis < t.rank else { throw node.mismatch("axis \(axis) for rank \(t.rank)") }
            // Before opset 13 the input is coerced to 2-D around the axis.
            let y: Tensor
            if opset < 13 {
                let flat = t.reshaped([t.shape[..<axis].reduce(1, *), t.shape[axis...].reduce(1, *)])
                y = flat.softmax(axis: 1).reshaped(t.shape)
            } else {
                y = t.softmax(axis: axis)
            }
            return one(node.opType == "LogSoftmax" ? y.log() : y)
        case "Concat":
            let values = inputs.compactMap { $0 }
            guard let first = values.first else { throw node.mismatch("Concat of nothing") }
            var axis = node.int("axis", 1)
            if axis < 0 { axis += first.shape.count }
            guard axis >= 0 && axis < first.shape.count else { throw node.mismatch("axis \(axis) for rank \(first.shape.count)") }
            for v in values where v.shape.count != first.shape.count || v.shape.enumerated().contains(where: { $0.offset != axis && $0.element != first.shape[$0.offset] }) {
                throw node.mismatch("cannot concatenate \(values.map(\.shape)) along axis \(axis)")
            }
            if values.allSatisfy(\.isInts) {
                guard first.shape.count == 1 else { return one(Tensor.concat(values.map { $0.tensor(node) }, axis: axis)) }
                let all = try values.flatMap { try $0.integers(node) }
                return [.ints(all, shape: [all.count])]
            }
            return one(Tensor.concat(values.map { $0.tensor(node) }, axis: axis))
        case "Pad": return one(try pad(node, try x(), inputs, opset: opset))
        case "Shape":
            let shape = try input(0).shape
            var start = node.int("start", 0), end = node.int("end", shape.count)
            if start < 0 { start += shape.count }
            if end < 0 { end += shape.count }
            start = Swift.max(0, Swift.min(start, shape.count)); end = Swift.max(start, Swift.min(end, shape.count))
            let dims = Array(shape[start..<end])
            return [.ints(dims, shape: [dims.count])]
        case "Gather": return [try gather(node, try input(0), try input(1))]
        case "Unsqueeze", "Squeeze":
            let data = try input(0)
            let axesList = opset < 13 ? node.ints("axes") : try optional(1)?.integers(node)
            let shape = try squeezeShape(node, data.shape, axes: axesList, unsqueeze: node.opType == "Unsqueeze")
            switch data {
            case .ints(let a, _): return [.ints(a, shape: shape)]
            case .float(let t): return one(t.reshaped(shape))
            }
        case "Constant":
            if case .tensor(let v)? = node.attributes["value"] { return [v] }
            if case .float(let f)? = node.attributes["value_float"] { return one(Tensor(shape: [], scalars: [f])) }
            if let fs = node.floats("value_floats") { return one(Tensor(shape: [fs.count], scalars: fs)) }
            if case .int(let i)? = node.attributes["value_int"] { return [.ints([i], shape: [])] }
            if let ints = node.ints("value_ints") { return [.ints(ints, shape: [ints.count])] }
            throw node.unsupported("Constant without a supported value attribute")
        case "ConstantOfShape":
            // The output size comes from data: check it against the memory limit before allocating.
            let shape = try input(0).integers(node)
            guard shape.allSatisfy({ $0 >= 0 }) else { throw node.mismatch("shape \(shape) has negative dimensions; valid: 0 or more") }
            let what = "\(node.opType) node '\(node.label)' output of shape \(shape)"
            let integer: [Int]? = { if case .tensor(.ints(let a, _))? = node.attributes["value"] { return a }; return nil }()
            let count = try ONNXError.checkMemory(shape: shape, bytesPerElement: integer == nil ? 4 : 8, what: what) / (integer == nil ? 4 : 8)
            guard ONNXNetwork.dimensionsFit(shape) else { throw node.mismatch("shape \(shape): the product of its non-zero dimensions overflows") }
            if let integer { return [.ints([Int](repeating: integer.first ?? 0, count: count), shape: shape)] }
            if case .tensor(let v)? = node.attributes["value"] { return one(Tensor(shape: shape, repeating: try v.scalar(node, "value"))) }
            return one(Tensor(zeros: shape))
        case "Cast":
            let to = node.int("to", 1)
            let v = try input(0)
            switch to {
            case 1, 11: return [.float(v.tensor(node))]
            case 10: return one(Tensor(shape: v.shape, scalars: v.tensor(node).scalars.map { Float(Float16($0)) }))
            case 16:
                // Round to nearest even on the upper 16 bits.
                return one(Tensor(shape: v.shape, scalars: v.tensor(node).scalars.map { f in
                    if f.isNaN { return f }
                    let bits = f.bitPattern
                    let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
                    return Float(bitPattern: rounded & 0xFFFF_0000)
                }))
            case 6, 7, 12, 13: return [.ints(try v.integers(node), shape: v.shape)]
            case 2, 3, 4, 5, 9:
                return one(Tensor(shape: v.shape, scalars: v.tensor(node).scalars.map { $0.rounded(.towardZero) }))
            default: throw node.unsupported("Cast to \(ONNXError.typeName(to))")
            }
        case "Slice": return [try slice(node, try input(0), inputs, opset: opset)]
        case "ReduceMean", "ReduceSum", "ReduceMax":
            let t = try x()
            // Axes moved from an attribute to an input in opset 13 (ReduceSum) and 18 (the others).
            let axesAsInput = node.opType == "ReduceSum" ? opset >= 13 : opset >= 18
            var axes = (axesAsInput ? try optional(1)?.integers(node) : node.ints("axes")) ?? []
            if axes.isEmpty {
                if node.int("noop_with_empty_axes", 0) != 0 { return one(t) }
                axes = Array(0..<t.rank)
            }
            axes = axes.map { $0 < 0 ? $0 + t.rank : $0 }
            guard axes.allSatisfy({ $0 >= 0 && $0 < t.rank }), Set(axes).count == axes.count else {
                throw node.mismatch("axes \(axes) for rank \(t.rank); valid: distinct axes from \(-t.rank) to \(t.rank - 1)")
            }
            let keep = node.int("keepdims", 1) != 0
            switch node.opType {
            case "ReduceMean": return one(t.mean(axes: axes, keepDims: keep))
            case "ReduceSum": return one(t.sum(axes: axes, keepDims: keep))
            default: return one(t.max(axes: axes, keepDims: keep))
            }
        case "Exp": return one(try x().exp())
        case "Log": return one(try x().log())
        case "Neg": return one(-(try x()))
        case "QuantizeLinear":
            let zeroName = node.inputs.count > 2 ? node.inputs[2] : ""
            let signed = types[zeroName] == 3 || node.int("output_dtype", 2) == 3
            return one(try quantize(node, try x(0), scale: try x(1), zeroPoint: optional(2)?.tensor(node), signed: signed))
        case "DequantizeLinear":
            return one(try dequantize(node, try x(0), scale: try x(1), zeroPoint: optional(2)?.tensor(node)))
        case "QLinearConv":
            let xf = try dequantize(node, try x(0), scale: try x(1), zeroPoint: try x(2))
            let wf = try dequantize(node, try x(3), scale: try x(4), zeroPoint: try x(5), axis: 0)
            var bias: Tensor? = nil
            if let b = optional(8) {
                // int32 bias in units of x_scale * w_scale (per output channel when w_scale is).
                let scale = try input(1).scalar(node, "x_scale")
                let ws = try x(4)
                let bt = b.tensor(node)
                guard ws.count == 1 || ws.count == bt.count else { throw node.mismatch("bias of \(bt.count) for \(ws.count) weight scales") }
                bias = Tensor(shape: bt.shape, scalars: (0..<bt.count).map { bt.data[$0] * scale * ws.data[ws.count == 1 ? 0 : $0] })
            }
            let y = try convolution(node, xf, wf, bias)
            let signed = types[node.inputs.count > 7 ? node.inputs[7] : ""] == 3
            return one(try quantize(node, y, scale: try x(6), zeroPoint: try x(7), signed: signed))
        case "QLinearMatMul":
            let a = try dequantize(node, try x(0), scale: try x(1), zeroPoint: try x(2))
            let b = try dequantize(node, try x(3), scale: try x(4), zeroPoint: try x(5), axis: -1)
            let signed = types[node.inputs.count > 7 ? node.inputs[7] : ""] == 3
            return one(try quantize(node, try matmul(node, a, b), scale: try x(6), zeroPoint: try x(7), signed: signed))
        default:
            throw ONNXError.unsupportedOperator(op: node.opType, node: node.label, domain: node.domain, opset: opset)
        }
    }

    /// Whether the non-zero dimensions multiply without overflow: an empty tensor of shape
    /// [0, 2^40, 2^40] holds nothing, but any later product over its last axes would trap.
    static func dimensionsFit(_ shape: [Int]) -> Bool { MemoryLimit.elements(shape.filter { $0 != 0 }) != nil }

    /// Window geometry from kernel, strides, pads, dilations and auto_pad.
    static func geometry(_ node: ONNXNode, input t: Tensor, kernel: (Int, Int)) throws -> Conv2dOptions {
        let strides = node.ints("strides") ?? [1, 1]
        let dilations = node.ints("dilations") ?? [1, 1]
        guard strides.count == 2, dilations.count == 2, strides.allSatisfy({ $0 > 0 }), dilations.allSatisfy({ $0 > 0 }) else {
            throw node.unsupported("strides \(strides) and dilations \(dilations) must be two positive numbers")
        }
        var pads = node.ints("pads") ?? [0, 0, 0, 0]
        guard pads.count == 4, pads.allSatisfy({ $0 >= 0 && $0 <= 4096 }) else { throw node.unsupported("pads \(pads) must be four non-negative numbers") }
        guard strides.allSatisfy({ $0 <= 4096 }), dilations.allSatisfy({ $0 <= 4096 }) else { throw node.unsupported("implausible strides or dilations") }
        let autoPad = node.string("auto_pad", "NOTSET")
        switch autoPad {
        case "NOTSET": break
        case "VALID": pads = [0, 0, 0, 0]
        case "SAME_UPPER", "SAME_LOWER":
            for (axis, size) in [t.shape[2], t.shape[3]].enumerated() {
                let k = axis == 0 ? kernel.0 : kernel.1
                let out = (size + strides[axis] - 1) / strides[axis]
                let total = Swift.max(0, (out - 1) * strides[axis] + (k - 1) * dilations[axis] + 1 - size)
                let small = total / 2, big = total - small
                pads[axis] = autoPad == "SAME_UPPER" ? small : big
                pads[axis + 2] = autoPad == "SAME_UPPER" ? big : small
            }
        default: throw node.unsupported("auto_pad \(autoPad)")
        }
        return Conv2dOptions(strides: (strides[0], strides[1]), pads: (pads[0], pads[1], pads[2], pads[3]),
                             dilations: (dilations[0], dilations[1]), groups: node.int("group", 1))
    }

    static func convolution(_ node: ONNXNode, _ x: Tensor, _ w: Tensor, _ b: Tensor?, relu: Bool = false,
                            precision: ConvPrecision = .fp32) throws -> Tensor {
        guard x.rank == 4, w.rank == 4 else {
            throw node.unsupported("only 2-D convolution (4-D input and weight) is supported, got \(x.shape) and \(w.shape)")
        }
        if let k = node.ints("kernel_shape"), k != [w.shape[2], w.shape[3]] {
            throw node.mismatch("kernel_shape \(k) disagrees with the weight's \(w.shape[2])x\(w.shape[3]) kernel (weight \(w.shape))")
        }
        let o = try geometry(node, input: x, kernel: (w.shape[2], w.shape[3]))
        guard o.groups > 0, o.groups <= x.shape[1], x.shape[1] % o.groups == 0, w.shape[0] % o.groups == 0,
              w.shape[1] * o.groups == x.shape[1] else {
            throw node.mismatch("input \(x.shape) and weight \(w.shape) do not fit \(o.groups) groups")
        }
        if let b, b.count != w.shape[0] { throw node.mismatch("bias of \(b.count) for \(w.shape[0]) outputs") }
        let (oh, ow) = o.outputSize(height: x.shape[2], width: x.shape[3], kernelH: w.shape[2], kernelW: w.shape[3])
        guard oh > 0 && ow > 0 else { throw node.mismatch("kernel \(w.shape) larger than the padded input \(x.shape)") }
        return x.conv2d(weight: w, bias: b, options: o, relu: relu, precision: precision)
    }

    static func matmul(_ node: ONNXNode, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        var a2 = a, b2 = b
        if a.rank == 1 { a2 = a.reshaped([1, a.count]) }
        if b.rank == 1 { b2 = b.reshaped([b.count, 1]) }
        guard a2.rank >= 2, b2.rank >= 2, a2.shape[a2.rank - 1] == b2.shape[b2.rank - 2],
              b2.rank == 2 || Array(a2.shape.dropLast(2)) == Array(b2.shape.dropLast(2)) else {
            throw node.mismatch("cannot multiply \(a.shape) by \(b.shape)")
        }
        var y = a2.matmul(b2)
        if a.rank == 1 || b.rank == 1 {
            var shape = y.shape
            if b.rank == 1 { shape.removeLast() }
            if a.rank == 1 { shape.remove(at: shape.count - (b.rank == 1 ? 1 : 2)) }
            y = y.reshaped(shape)
        }
        return y
    }

    static func integerArithmetic(_ node: ONNXNode, _ a: ONNXValue, _ b: ONNXValue) throws -> ONNXValue {
        let x = try a.integers(node), y = try b.integers(node)
        guard let shape = broadcastShape(a.shape, b.shape) else { throw node.mismatch("shapes \(a.shape) and \(b.shape) do not broadcast") }
        let n = MemoryLimit.elements(shape) ?? 0
        guard x.count == n || x.count == 1, y.count == n || y.count == 1 else {
            throw node.unsupported("integer broadcasting beyond scalars")
        }
        let out: [Int] = (0..<n).map { i in
            let p = x[x.count == 1 ? 0 : i], q = y[y.count == 1 ? 0 : i]
            // Shape arithmetic wraps like int64 in other runtimes instead of trapping on overflow.
            switch node.opType {
            case "Add": return p &+ q
            case "Sub": return p &- q
            case "Mul": return p &* q
            default: return q == 0 ? 0 : p.dividedReportingOverflow(by: q).partialValue
            }
        }
        return .ints(out, shape: shape)
    }

    static func reshapeTarget(_ node: ONNXNode, from shape: [Int], spec: [Int], allowZero: Bool) throws -> [Int] {
        var out = spec.enumerated().map { i, d -> Int in (d == 0 && !allowZero && i < shape.count) ? shape[i] : d }
        let count = MemoryLimit.elements(shape) ?? 0
        let invalid = node.mismatch("cannot reshape \(shape) to \(spec); valid: dimensions 0 or more with one -1 at most, \(count) elements in all")
        guard out.filter({ $0 == -1 }).count <= 1 else { throw invalid }
        if let i = out.firstIndex(of: -1) {
            // Products from data are checked: a hostile spec must not overflow.
            guard let known = MemoryLimit.elements(out.enumerated().filter { $0.offset != i }.map(\.element)),
                  known > 0, count % known == 0 else { throw invalid }
            out[i] = count / known
        }
        guard out.allSatisfy({ $0 >= 0 }), MemoryLimit.elements(out) == count, ONNXNetwork.dimensionsFit(out) else { throw invalid }
        return out
    }

    static func squeezeShape(_ node: ONNXNode, _ shape: [Int], axes: [Int]?, unsqueeze: Bool) throws -> [Int] {
        if unsqueeze {
            guard let axes else { throw node.unsupported("Unsqueeze needs axes") }
            let rank = shape.count + axes.count
            let positions = Set(axes.map { $0 < 0 ? $0 + rank : $0 })
            guard positions.count == axes.count, positions.allSatisfy({ $0 >= 0 && $0 < rank }) else { throw node.mismatch("axes \(axes) for rank \(rank)") }
            var out: [Int] = []
            var it = shape.makeIterator()
            for i in 0..<rank { out.append(positions.contains(i) ? 1 : it.next()!) }
            return out
        }
        let positions = Set((axes ?? shape.enumerated().filter { $0.element == 1 }.map(\.offset)).map { $0 < 0 ? $0 + shape.count : $0 })
        guard positions.allSatisfy({ $0 >= 0 && $0 < shape.count && shape[$0] == 1 }) else {
            throw node.mismatch("cannot squeeze axes \(axes ?? []) of \(shape)")
        }
        return shape.enumerated().filter { !positions.contains($0.offset) }.map(\.element)
    }

    static func gather(_ node: ONNXNode, _ data: ONNXValue, _ indicesValue: ONNXValue) throws -> ONNXValue {
        let shape = data.shape
        var axis = node.int("axis", 0)
        if axis < 0 { axis += shape.count }
        guard axis >= 0 && axis < shape.count else { throw node.mismatch("axis \(axis) for rank \(shape.count)") }
        let n = shape[axis]
        let indices = try indicesValue.integers(node).map { i -> Int in
            let j = i < 0 ? i + n : i
            guard j >= 0 && j < n else { throw node.mismatch("index \(i) out of range for \(n)") }
            return j
        }
        let outShape = Array(shape[..<axis]) + indicesValue.shape + Array(shape[(axis + 1)...])
        switch data {
        case .ints(let a, _):
            let inner = shape[(axis + 1)...].reduce(1, *), outer = shape[..<axis].reduce(1, *)
            var out: [Int] = []
            for o in 0..<outer { for j in indices { out += a[(o * n + j) * inner..<(o * n + j + 1) * inner] } }
            return .ints(out, shape: outShape)
        case .float(let t):
            let parts = indices.map { t.slice(axis: axis, start: $0, end: $0 + 1) }
            let joined = parts.count == 1 ? parts[0] : Tensor.concat(parts, axis: axis)
            return .float(joined.reshaped(outShape))
        }
    }

    static func slice(_ node: ONNXNode, _ data: ONNXValue, _ inputs: [ONNXValue?], opset: Int) throws -> ONNXValue {
        let shape = data.shape
        let starts: [Int], ends: [Int], axes: [Int], steps: [Int]
        if opset < 10 {
            starts = node.ints("starts") ?? []; ends = node.ints("ends") ?? []
            axes = node.ints("axes") ?? Array(0..<starts.count); steps = [Int](repeating: 1, count: starts.count)
        } else {
            starts = try (inputs.count > 1 ? inputs[1]?.integers(node) : nil) ?? []
            ends = try (inputs.count > 2 ? inputs[2]?.integers(node) : nil) ?? []
            axes = try (inputs.count > 3 ? inputs[3]?.integers(node) : nil) ?? Array(0..<starts.count)
            steps = try (inputs.count > 4 ? inputs[4]?.integers(node) : nil) ?? [Int](repeating: 1, count: starts.count)
        }
        guard starts.count == ends.count, axes.count == starts.count, steps.count == starts.count else {
            throw node.mismatch("starts, ends, axes and steps differ in length")
        }
        var ranges = shape.map { (0, $0, 1) }
        for (k, a0) in axes.enumerated() {
            let a = a0 < 0 ? a0 + shape.count : a0
            guard a >= 0 && a < shape.count else { throw node.mismatch("axis \(a0) for rank \(shape.count)") }
            guard steps[k] > 0 else { throw node.unsupported("negative or zero slice steps") }
            let n = shape[a]
            func clampIndex(_ v: Int) -> Int { Swift.max(0, Swift.min(v < 0 ? v + n : v, n)) }
            let s = clampIndex(starts[k]), e = Swift.max(s, clampIndex(ends[k]))
            ranges[a] = (s, e, steps[k])
        }
        switch data {
        case .float(var t):
            for (a, r) in ranges.enumerated() where r != (0, shape[a], 1) { t = t.slice(axis: a, start: r.0, end: r.1, step: r.2) }
            return .float(t)
        case .ints(let values, _):
            guard shape.count == 1 else { throw node.unsupported("slicing integer tensors of rank > 1") }
            let r = ranges[0]
            let picked = Array(stride(from: r.0, to: r.1, by: r.2)).map { values[$0] }
            return .ints(picked, shape: [picked.count])
        }
    }

    static func pad(_ node: ONNXNode, _ t: Tensor, _ inputs: [ONNXValue?], opset: Int) throws -> Tensor {
        let mode = node.string("mode", "constant")
        var pads: [Int]
        var value: Float = 0
        if opset < 11 {
            pads = node.ints("pads") ?? node.ints("paddings") ?? []
            value = node.float("value", 0)
        } else {
            pads = try (inputs.count > 1 ? inputs[1]?.integers(node) : nil) ?? []
            if inputs.count > 2, let v = inputs[2] { value = try v.scalar(node, "constant_value") }
            if inputs.count > 3, let axesValue = inputs[3] {
                // Pads given for some axes only (opset 18): spread them over all axes.
                let axes = try axesValue.integers(node).map { $0 < 0 ? $0 + t.rank : $0 }
                guard pads.count == 2 * axes.count, axes.allSatisfy({ $0 >= 0 && $0 < t.rank }), Set(axes).count == axes.count else {
                    throw node.mismatch("pads \(pads) for axes \(axes) of rank \(t.rank); valid: two pads per distinct axis")
                }
                var full = [Int](repeating: 0, count: 2 * t.rank)
                for (k, a) in axes.enumerated() { full[a] = pads[k]; full[a + t.rank] = pads[k + axes.count] }
                pads = full
            }
        }
        guard t.rank == 4, pads.count == 8 else { throw node.unsupported("padding is supported for 4-D tensors (pads \(pads))") }
        guard pads[0] == 0, pads[1] == 0, pads[4] == 0, pads[5] == 0 else { throw node.unsupported("padding of batch or channel axes") }
        guard pads.allSatisfy({ $0 >= 0 }) else { throw node.unsupported("negative pads (cropping)") }
        guard pads.allSatisfy({ $0 <= 4096 }) else { throw node.mismatch("implausible pads \(pads)") }
        let m: PaddingMode
        switch mode {
        case "constant": m = .zero
        case "reflect": m = .reflect
        case "edge": m = .edge
        default: throw node.unsupported("pad mode \(mode)")
        }
        if m == .reflect && (pads[2] >= t.shape[2] || pads[6] >= t.shape[2] || pads[3] >= t.shape[3] || pads[7] >= t.shape[3]) {
            throw node.mismatch("reflection padding \(pads) needs an input larger than the pad")
        }
        return t.padded(top: pads[2], bottom: pads[6], left: pads[3], right: pads[7], mode: m, value: value)
    }

    /// Per-tensor or per-axis (q - zero) * scale.
    static func dequantize(_ node: ONNXNode, _ q: Tensor, scale: Tensor, zeroPoint: Tensor?, axis axisIn: Int? = nil) throws -> Tensor {
        guard scale.count >= 1 else { throw node.mismatch("the scale is an empty tensor") }
        if scale.count == 1 {
            guard zeroPoint.map({ $0.count >= 1 }) ?? true else { throw node.mismatch("the zero point is an empty tensor") }
            let z = zeroPoint?.data[0] ?? 0, s = scale.data[0]
            return q.shifted(by: -z).scaled(by: s)
        }
        var axis = axisIn ?? node.int("axis", 1)
        if axis < 0 { axis += q.rank }
        guard axis >= 0 && axis < q.rank, q.shape[axis] == scale.count else {
            throw node.mismatch("per-axis scale of \(scale.count) for \(q.shape) on axis \(axis)")
        }
        var shape = [Int](repeating: 1, count: q.rank)
        shape[axis] = scale.count
        let s = scale.reshaped(shape)
        if let zeroPoint {
            guard zeroPoint.count == scale.count else { throw node.mismatch("zero point of \(zeroPoint.count) for \(scale.count) scales") }
            return (q - zeroPoint.reshaped(shape)) * s
        }
        return q * s
    }

    /// Round half to even of x / scale + zero, saturated to uint8 or int8, kept as float values.
    static func quantize(_ node: ONNXNode, _ x: Tensor, scale: Tensor, zeroPoint: Tensor?, signed: Bool) throws -> Tensor {
        guard scale.count == 1 else { throw node.unsupported("per-axis output quantisation") }
        guard zeroPoint.map({ $0.count >= 1 }) ?? true else { throw node.mismatch("the zero point is an empty tensor") }
        let s = scale.data[0], z = zeroPoint?.data[0] ?? 0
        let lo: Float = signed ? -128 : 0, hi: Float = signed ? 127 : 255
        // The straight-through gradient passes d/dx of x / s inside the representable range.
        return x.map(QuantizeKernel(scale: s, zero: z, lo: lo, hi: hi))
    }
}

struct QuantizeKernel: UnaryKernel {
    let scale: Float, zero: Float, lo: Float, hi: Float
    func value(_ x: Float) -> Float { Swift.min(Swift.max((x / scale).rounded(.toNearestOrEven) + zero, lo), hi) }
    func derivative(x: Float, y: Float, dy: Float) -> Float { (y > lo && y < hi) ? dy / scale : 0 }
}
