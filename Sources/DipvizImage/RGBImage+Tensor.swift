import DipvizTensor

extension RGBImage {
    /// A [1, 3, H, W] tensor with values in 0...1.
    public func tensor() -> Tensor {
        let plane = width * height
        var values = [Float](repeating: 0, count: 3 * plane)
        for i in 0..<plane { for c in 0..<3 { values[c * plane + i] = Float(pixels[i * 3 + c]) / 255 } }
        return Tensor(shape: [1, 3, height, width], scalars: values)
    }

    /// The first image of an [N, 3, H, W] tensor, values clamped to 0...1 and rounded.
    public init(tensor t: Tensor) {
        precondition(t.rank == 4 && t.shape[1] == 3, "RGB image from a tensor of shape \(t.shape)")
        let h = t.shape[2], w = t.shape[3], plane = w * h
        var px = [UInt8](repeating: 0, count: 3 * plane)
        let d = t.data
        for i in 0..<plane {
            for c in 0..<3 { px[i * 3 + c] = UInt8((Swift.min(Swift.max(d[c * plane + i], 0), 1) * 255).rounded()) }
        }
        self.init(width: w, height: h, pixels: px)
    }
}
