/// How a result was computed: its inputs and the rule that turns the result's gradient into
/// gradients of the inputs. The rule receives the result itself rather than capturing it, so
/// the graph holds no cycles.
final class GradNode {
    let inputs: [Tensor]
    let backward: (_ output: Tensor, _ gradOutput: Tensor) -> Void

    init(inputs: [Tensor], backward: @escaping (Tensor, Tensor) -> Void) {
        self.inputs = inputs
        self.backward = backward
    }
}

/// Switches graph recording off for inference and optimiser updates.
/// The switch is per task (and per thread outside tasks), so concurrent work does not leak it.
public enum GradMode {
    @TaskLocal public static var isEnabled = true

    public static func withoutGrad<R>(_ body: () throws -> R) rethrows -> R {
        try $isEnabled.withValue(false) { try body() }
    }
}

/// Where a backward rule writes an input's gradient: overwrite a fresh buffer, or add to one
/// that already holds contributions from other paths.
public struct GradTarget {
    public let pointer: UnsafeMutablePointer<Float>
    public let accumulate: Bool

    @inline(__always) public func put(_ i: Int, _ v: Float) {
        if accumulate { pointer[i] += v } else { pointer[i] = v }
    }

    /// Zeroes a fresh buffer so scatter-style rules can add into it.
    public func prepareForScatter(count: Int) {
        if !accumulate { pointer.update(repeating: 0, count: count) }
    }
}

extension Tensor {
    /// Records `output` as computed from `inputs` when any of them needs a gradient.
    @discardableResult
    static func record(_ output: Tensor, _ inputs: [Tensor],
                       _ backward: @escaping (_ output: Tensor, _ gradOutput: Tensor) -> Void) -> Tensor {
        if GradMode.isEnabled, inputs.contains(where: { $0.needsGrad }) {
            output.gradNode = GradNode(inputs: inputs, backward: backward)
        }
        return output
    }

    /// Runs `body` with this tensor's gradient buffer when it needs one.
    @inline(__always)
    func withGrad(_ body: (GradTarget) -> Void) {
        guard needsGrad else { return }
        if let g = grad {
            body(GradTarget(pointer: g.data, accumulate: true))
        } else {
            let g = Tensor(uninitializedShape: shape)
            grad = g
            body(GradTarget(pointer: g.data, accumulate: false))
        }
    }

    /// Reverse-mode differentiation: topological order of the graph, then a reverse walk in
    /// which each node adds its inputs' gradients. Gradients of trainable leaves accumulate
    /// across calls until `zeroGrad`; intermediate gradients and, unless `retainGraph`, the
    /// graph are released.
    public func backward(seed: Tensor? = nil, retainGraph: Bool = false) {
        precondition(seed != nil || count == 1, "backward() without a seed needs a scalar, got \(shape)")
        let order = topologicalOrder()
        let start = seed?.detached() ?? Tensor(shape: shape, repeating: 1)
        if let g = grad { for i in 0..<count { g.data[i] += start.data[i] } } else { grad = start }
        for t in order.reversed() {
            guard let node = t.gradNode else { continue }
            if let g = t.grad { node.backward(t, g) }
            if !retainGraph { t.gradNode = nil }
            if !t.retainsGrad { t.grad = nil }
        }
    }

    func topologicalOrder() -> [Tensor] {
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Tensor, Bool)] = [(self, false)]
        while let (t, expanded) = stack.popLast() {
            if expanded { order.append(t); continue }
            guard visited.insert(ObjectIdentifier(t)).inserted else { continue }
            stack.append((t, true))
            if let node = t.gradNode {
                for input in node.inputs where input.needsGrad && !visited.contains(ObjectIdentifier(input)) {
                    stack.append((input, false))
                }
            }
        }
        return order
    }

    public func zeroGrad() { grad = nil }
}

extension Array where Element == Tensor {
    public func zeroGrad() { for t in self { t.grad = nil } }
}
