import CDipvizKernels

/// Vectorised sums for the statistics of normalisation layers: float lanes over short blocks,
/// each block added into a double, so long planes neither lose precision nor run one scalar add
/// at a time (CDipvizKernels). Callers read the kernel table on their own thread and pass it in:
/// worker threads do not see a level set with `VectorKernels.withPath`.
enum Reductions {
    /// (sum of x, sum of x^2) over `count` floats.
    static func sumAndSquares(_ x: UnsafePointer<Float>, _ count: Int, kernels: UnsafePointer<dipviz_kernels>) -> (Double, Double) {
        var total = 0.0, squares = 0.0
        kernels.pointee.sum_and_squares(x, count, &total, &squares)
        return (total, squares)
    }

    /// (sum of g, sum of g * (x - shift)) over `count` floats.
    static func sumAndCentredDot(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, shift: Float, _ count: Int, kernels: UnsafePointer<dipviz_kernels>) -> (Double, Double) {
        var total = 0.0, dot = 0.0
        kernels.pointee.sum_and_centred_dot(g, x, shift, count, &total, &dot)
        return (total, dot)
    }
}
