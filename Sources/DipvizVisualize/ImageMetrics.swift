import DipvizTensor
import Foundation

/// Image similarity of two [1, 3, H, W] tensors with values in 0...1.
public enum ImageMetrics {
    public static func psnr(_ a: Tensor, _ b: Tensor) -> Double {
        precondition(a.shape == b.shape, "PSNR of \(a.shape) and \(b.shape)")
        var mse = 0.0
        for i in 0..<a.count { let d = Double(clamp(a.data[i]) - clamp(b.data[i])); mse += d * d }
        mse /= Double(Swift.max(a.count, 1))
        return mse == 0 ? 100 : 10 * Foundation.log10(1 / mse)
    }

    /// Mean SSIM (Wang et al. 2004) as scikit-image computes it (`gaussian_weights=True`,
    /// `sigma=1.5`, `use_sample_covariance=False`): an 11x11 Gaussian window, the mean over the
    /// pixels whose window lies inside the image (all pixels for images under 11 px), per
    /// channel, averaged.
    public static func ssim(_ a: Tensor, _ b: Tensor) -> Double {
        precondition(a.shape == b.shape && a.rank == 4, "SSIM of \(a.shape) and \(b.shape)")
        let c = a.shape[1], h = a.shape[2], w = a.shape[3]
        let radius = 5
        let kernel = (-radius...radius).map { Foundation.exp(-Double($0 * $0) / (2 * 1.5 * 1.5)) }
        let norm = kernel.reduce(0, +)
        let k = kernel.map { $0 / norm }
        let c1 = 0.01 * 0.01, c2 = 0.03 * 0.03
        // Separable blur with edge clamping.
        func blur(_ f: [Double]) -> [Double] {
            var tmp = [Double](repeating: 0, count: h * w), out = tmp
            for y in 0..<h { for x in 0..<w {
                var s = 0.0
                for (t, wt) in k.enumerated() { s += wt * f[y * w + Swift.min(Swift.max(x + t - radius, 0), w - 1)] }
                tmp[y * w + x] = s
            } }
            for y in 0..<h { for x in 0..<w {
                var s = 0.0
                for (t, wt) in k.enumerated() { s += wt * tmp[Swift.min(Swift.max(y + t - radius, 0), h - 1) * w + x] }
                out[y * w + x] = s
            } }
            return out
        }
        var total = 0.0
        for ch in 0..<c {
            let x = (0..<(h * w)).map { Double(clamp(a.data[ch * h * w + $0])) }
            let y = (0..<(h * w)).map { Double(clamp(b.data[ch * h * w + $0])) }
            let mx = blur(x), my = blur(y)
            let sxx = blur(x.map { $0 * $0 }), syy = blur(y.map { $0 * $0 }), sxy = blur(zip(x, y).map { $0 * $1 })
            var s = 0.0
            let py = h > 2 * radius ? radius : 0, px = w > 2 * radius ? radius : 0
            for y in py..<(h - py) { for x in px..<(w - px) {
                let i = y * w + x
                let vx = sxx[i] - mx[i] * mx[i], vy = syy[i] - my[i] * my[i], cov = sxy[i] - mx[i] * my[i]
                s += ((2 * mx[i] * my[i] + c1) * (2 * cov + c2)) / ((mx[i] * mx[i] + my[i] * my[i] + c1) * (vx + vy + c2))
            } }
            total += s / Double((h - 2 * py) * (w - 2 * px))
        }
        return total / Double(c)
    }

    static func clamp(_ v: Float) -> Float { Swift.min(Swift.max(v, 0), 1) }
}
