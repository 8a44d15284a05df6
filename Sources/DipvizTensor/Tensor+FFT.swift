import Foundation

/// The real two-dimensional discrete Fourier transform of H x W planes, with W/2 + 1
/// frequency columns (the others follow by Hermitian symmetry), in numpy's `rfft2`/`irfft2`
/// conventions: C[ky, kx] = sum x[y, x] e^(-2 pi i (ky y / H + kx x / W)), and the inverse
/// divides by H W. The transforms are dense matrix products (BLAS), which at image sizes of a
/// few hundred pixels cost less than the classifier they feed and differentiate through the
/// existing matrix product.
public enum RealDFT2D {
    /// Frequency columns of a width: W/2 + 1.
    public static func frequencyColumns(width: Int) -> Int { width / 2 + 1 }

    /// cos and sin of 2 pi k n / N for n in rows and k in columns (or the transpose), exact in
    /// the argument (k n taken modulo N).
    static func table(rows: Int, columns: Int, period: Int, transposed: Bool, weight: (Int) -> Double = { _ in 1 }) -> (Tensor, Tensor) {
        let cosT = Tensor(uninitializedShape: [rows, columns]), sinT = Tensor(uninitializedShape: [rows, columns])
        for r in 0..<rows {
            for c in 0..<columns {
                let (n, k) = transposed ? (c, r) : (r, c)
                let angle = 2 * Double.pi * Double((n * k) % period) / Double(period)
                cosT.data[r * columns + c] = Float(weight(k) * cos(angle))
                sinT.data[r * columns + c] = Float(weight(k) * sin(angle))
            }
        }
        return (cosT, sinT)
    }

    /// Weight of frequency column kx in the inverse: 1 for the constant column and, for even W,
    /// the Nyquist column; 2 for the others, which stand for their mirrored conjugates too.
    static func columnWeight(_ kx: Int, width: Int) -> Double {
        kx == 0 || (width % 2 == 0 && kx == width / 2) ? 1 : 2
    }

    /// The inverse transform of K planes of coefficients (`real`, `imag`: [K, H, W/2+1]) to
    /// [K, H, W] real planes; differentiable in both. Imaginary parts that a real signal cannot
    /// have (the constant and Nyquist columns) are ignored, as by numpy's `irfft2`.
    public static func inverse(real: Tensor, imag: Tensor, width: Int) -> Tensor {
        precondition(real.rank == 3 && real.shape == imag.shape, "coefficients \(real.shape) and \(imag.shape)")
        let k = real.shape[0], h = real.shape[1], wf = real.shape[2]
        precondition(wf == frequencyColumns(width: width), "\(wf) frequency columns for width \(width)")
        let (cosY, sinY) = table(rows: h, columns: h, period: h, transposed: false)
        let norm = 1 / Double(h * width)
        let (cosX, sinX) = table(rows: wf, columns: width, period: width, transposed: true) { columnWeight($0, width: width) * norm }
        // Along y (complex): A = E_y C with E_y[y, ky] = e^(2 pi i ky y / H), all planes at once.
        let cr = real.permuted([1, 0, 2]).reshaped([h, k * wf]), ci = imag.permuted([1, 0, 2]).reshaped([h, k * wf])
        let ar = cosY.matmul(cr) - sinY.matmul(ci), ai = sinY.matmul(cr) + cosY.matmul(ci)
        // Along x (to real): x = Re(A E_x) with the column weights and 1 / (H W).
        func planes(_ t: Tensor) -> Tensor { t.reshaped([h, k, wf]).permuted([1, 0, 2]).reshaped([k * h, wf]) }
        return (planes(ar).matmul(cosX) - planes(ai).matmul(sinX)).reshaped([k, h, width])
    }

    /// The forward transform of [K, H, W] planes (no gradient): (real, imag), each [K, H, W/2+1].
    public static func forward(_ x: Tensor) -> (real: Tensor, imag: Tensor) {
        precondition(x.rank == 3, "planes \(x.shape)")
        let k = x.shape[0], h = x.shape[1], w = x.shape[2], wf = frequencyColumns(width: w)
        let real = Tensor(zeros: [k, h, wf]), imag = Tensor(zeros: [k, h, wf])
        let cx = (0..<w).map { cos(2 * Double.pi * Double($0) / Double(w)) }, sx = (0..<w).map { sin(2 * Double.pi * Double($0) / Double(w)) }
        let cy = (0..<h).map { cos(2 * Double.pi * Double($0) / Double(h)) }, sy = (0..<h).map { sin(2 * Double.pi * Double($0) / Double(h)) }
        for p in 0..<k {
            // Along x: rows of B[y, kx] = sum_x x[y, x] e^(-2 pi i kx x / W).
            var br = [Double](repeating: 0, count: h * wf), bi = br
            for y in 0..<h {
                for kx in 0..<wf {
                    var re = 0.0, im = 0.0
                    for xx in 0..<w {
                        let v = Double(x.data[(p * h + y) * w + xx]), a = (kx * xx) % w
                        re += v * cx[a]; im -= v * sx[a]
                    }
                    br[y * wf + kx] = re; bi[y * wf + kx] = im
                }
            }
            // Along y: C[ky, kx] = sum_y B[y, kx] e^(-2 pi i ky y / H).
            for ky in 0..<h {
                for kx in 0..<wf {
                    var re = 0.0, im = 0.0
                    for y in 0..<h {
                        let a = (ky * y) % h, c = cy[a], s = sy[a]
                        re += br[y * wf + kx] * c + bi[y * wf + kx] * s
                        im += bi[y * wf + kx] * c - br[y * wf + kx] * s
                    }
                    real.data[(p * h + ky) * wf + kx] = Float(re); imag.data[(p * h + ky) * wf + kx] = Float(im)
                }
            }
        }
        return (real, imag)
    }
}
