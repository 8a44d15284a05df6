import DipvizTensor
import Testing

/// Compares an op's forward values with expected ones and its gradients with central finite
/// differences, in one call (the loss is a fixed random projection of the output).
func checkOp(_ name: String, inputs: [Tensor], expected: Tensor? = nil, tolerance: Float = 1e-4,
             gradTolerance: Float = 2e-3, epsilon: Float = 1e-2, probes: Int = 24,
             sourceLocation: SourceLocation = #_sourceLocation, _ op: ([Tensor]) -> Tensor) {
    for t in inputs { t.requiresGrad = true; t.grad = nil }
    let out = op(inputs)
    if let expected {
        #expect(out.shape == expected.shape, "\(name): shape \(out.shape) vs \(expected.shape)", sourceLocation: sourceLocation)
        if out.shape == expected.shape {
            let scale = max(1, expected.scalars.map { abs($0) }.max() ?? 1)
            let err = zip(out.scalars, expected.scalars).map { abs($0 - $1) }.max() ?? 0
            #expect(err <= tolerance * scale, "\(name): forward max error \(err)", sourceLocation: sourceLocation)
        }
    }
    var rng = SeededGenerator(seed: 7)
    let projection = Tensor.uniform(out.shape, low: -1, high: 1, generator: &rng)
    func loss(_ o: Tensor) -> Double {
        zip(o.scalars, projection.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }
    out.backward(seed: projection)
    for (i, t) in inputs.enumerated() {
        guard let grad = t.grad else {
            Issue.record("\(name): input \(i) got no gradient", sourceLocation: sourceLocation); continue
        }
        let analytic = grad.scalars
        // A deterministic sample of coordinates keeps debug-mode runs short.
        let picks = t.count <= probes ? Array(0..<t.count) : (0..<probes).map { _ in Int(rng.next() % UInt64(t.count)) }
        var worst: Float = 0, norm: Float = 1e-3
        for j in picks {
            let saved = t.data[j]
            t.data[j] = saved + epsilon
            let up = GradMode.withoutGrad { loss(op(inputs)) }
            t.data[j] = saved - epsilon
            let down = GradMode.withoutGrad { loss(op(inputs)) }
            t.data[j] = saved
            let numeric = Float((up - down) / Double(2 * epsilon))
            worst = max(worst, abs(numeric - analytic[j]))
            norm = max(norm, abs(numeric))
        }
        #expect(worst <= gradTolerance * max(norm, 1), "\(name): input \(i) gradient error \(worst) (scale \(norm))",
                sourceLocation: sourceLocation)
    }
}
