import CDipvizKernels

/// Vectorised sums for the statistics of normalisation layers: float lanes over short blocks,
/// each block added into a double, so long planes neither lose precision nor run one scalar add
/// at a time (CDipvizKernels, at the level chosen at start-up).
enum Reductions {
    /// (sum of x, sum of x^2) over `count` floats.
    static func sumAndSquares(_ x: UnsafePointer<Float>, _ count: Int) -> (Double, Double) {
        var total = 0.0, squares = 0.0
        VectorKernels.current.pointee.sum_and_squares(x, count, &total, &squares)
        return (total, squares)
    }

    /// (sum of g, sum of g * (x - shift)) over `count` floats.
    static func sumAndCentredDot(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, shift: Float, _ count: Int) -> (Double, Double) {
        var total = 0.0, dot = 0.0
        VectorKernels.current.pointee.sum_and_centred_dot(g, x, shift, count, &total, &dot)
        return (total, dot)
    }
}
