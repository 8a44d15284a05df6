import Foundation

/// A dense float32 tensor in row-major (NCHW for images) contiguous storage, with an
/// optional place in the autodiff graph.
public final class Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let count: Int
    public let storage: TensorStorage
    /// Leaf tensors that the optimiser updates. Constants (inputs, frozen weights) leave it off,
    /// so no gradient work is spent on them.
    public var requiresGrad: Bool
    /// Keeps `grad` on a non-leaf tensor after `backward()`.
    public var retainsGrad = false
    public var grad: Tensor?
    var gradNode: GradNode?

    init(shape: [Int], storage: TensorStorage, requiresGrad: Bool = false) {
        let n = shape.reduce(1, *)
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        precondition(storage.count >= n, "storage of \(storage.count) for shape \(shape)")
        self.shape = shape
        self.count = n
        self.storage = storage
        self.requiresGrad = requiresGrad
    }

    /// Uninitialised contents: for op results that are written in full.
    convenience init(uninitializedShape shape: [Int]) {
        self.init(shape: shape, storage: TensorStorage(count: shape.reduce(1, *)))
    }

    public convenience init(zeros shape: [Int], requiresGrad: Bool = false) {
        self.init(shape: shape, repeating: 0, requiresGrad: requiresGrad)
    }

    public convenience init(shape: [Int], repeating value: Float, requiresGrad: Bool = false) {
        self.init(uninitializedShape: shape)
        data.update(repeating: value, count: count)
        self.requiresGrad = requiresGrad
    }

    public convenience init(shape: [Int], scalars: [Float], requiresGrad: Bool = false) {
        precondition(scalars.count == shape.reduce(1, *), "\(scalars.count) values for shape \(shape)")
        self.init(uninitializedShape: shape)
        scalars.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
        self.requiresGrad = requiresGrad
    }

    public convenience init(scalar: Float) {
        self.init(shape: [], scalars: [scalar])
    }

    public var data: UnsafeMutablePointer<Float> { storage.pointer }
    public var rank: Int { shape.count }
    public var scalars: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }
    public var item: Float {
        precondition(count == 1, "item of a tensor with \(count) elements")
        return data[0]
    }

    /// Row-major strides in elements (the storage is always contiguous).
    public var strides: [Int] { Tensor.contiguousStrides(shape) }

    static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) { s[i] = acc; acc *= shape[i] }
        return s
    }

    /// Whether gradient flows into this tensor (a trainable leaf or the result of one).
    public var needsGrad: Bool { requiresGrad || gradNode != nil }

    /// A copy outside the graph.
    public func detached() -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        t.data.update(from: data, count: count)
        return t
    }

    /// Same storage, new shape, no graph (for reading values under another shape).
    public func viewingAs(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, storage: storage)
    }

    public func copy(from other: Tensor) {
        precondition(other.count == count, "copy of \(other.shape) into \(shape)")
        storage.dropDerived()
        data.update(from: other.data, count: count)
    }

    public func fill(_ value: Float) {
        storage.dropDerived()
        data.update(repeating: value, count: count)
    }

    /// N, C, H, W of a rank-4 tensor.
    var nchw: (Int, Int, Int, Int) {
        precondition(rank == 4, "expected an NCHW tensor, got shape \(shape)")
        return (shape[0], shape[1], shape[2], shape[3])
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let shown = scalars.prefix(8).map { String(format: "%.4g", $0) }.joined(separator: ", ")
        return "Tensor(\(shape), [\(shown)\(count > 8 ? ", ..." : "")])"
    }
}
