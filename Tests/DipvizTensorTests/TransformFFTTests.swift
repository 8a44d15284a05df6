import DipvizTensor
import Foundation
import Testing

@Suite("Affine resampling and the real 2-D DFT")
struct TransformFFTTests {
    /// Bilinear sampling written out for one point, as the definition reads.
    func literalSample(_ x: Tensor, plane: Int, _ sy: Float, _ sx: Float, fill: Float) -> Float {
        let h = x.shape[2], w = x.shape[3]
        func at(_ y: Int, _ xx: Int) -> Float { y >= 0 && y < h && xx >= 0 && xx < w ? x.data[plane * h * w + y * w + xx] : fill }
        let y0 = Int(floorf(sy)), x0 = Int(floorf(sx)), ty = sy - floorf(sy), tx = sx - floorf(sx)
        return (1 - ty) * ((1 - tx) * at(y0, x0) + tx * at(y0, x0 + 1)) + ty * ((1 - tx) * at(y0 + 1, x0) + tx * at(y0 + 1, x0 + 1))
    }

    let maps = [AffineMap.scaleRotation(scale: 1.1, angle: 0.2, cy: 3, cx: 3).after(.translation(dy: 0.3, dx: -1.6)),
                AffineMap.scaleRotation(scale: 0.9, angle: -0.17, cy: 2.5, cx: 3.5)]

    @Test func resamplingMatchesTheLiteralFormula() {
        let x = Tensor.uniform([2, 3, 6, 7], seed: 3)
        let y = x.affineResampled(height: 5, width: 8, maps: maps, fill: 0.5)
        var worst: Float = 0
        for b in 0..<2 {
            for c in 0..<3 {
                for i in 0..<5 {
                    for j in 0..<8 {
                        let m = maps[b]
                        let sy = m.yy * Float(i) + m.yx * Float(j) + m.y0, sx = m.xy * Float(i) + m.xx * Float(j) + m.x0
                        worst = max(worst, abs(y.data[((b * 3 + c) * 5 + i) * 8 + j] - literalSample(x, plane: b * 3 + c, sy, sx, fill: 0.5)))
                    }
                }
            }
        }
        #expect(worst < 1e-5)
    }

    @Test func identityAndWholeShiftsAreExact() {
        let x = Tensor.uniform([1, 2, 5, 5], seed: 4)
        #expect(x.affineResampled(height: 5, width: 5, maps: [.identity]).scalars == x.scalars)
        let shifted = x.affineResampled(height: 5, width: 5, maps: [.translation(dy: 2, dx: -1)], fill: 0.25)
        let literal = x.padded(top: 0, bottom: 2, left: 1, right: 0, value: 0.25).cropped(top: 2, left: 0, height: 5, width: 5)
        #expect(shifted.scalars == literal.scalars)
    }

    @Test func resamplingGradient() {
        checkOp("affineResampled", inputs: [Tensor.uniform([2, 2, 6, 7], seed: 5)]) {
            $0[0].affineResampled(height: 5, width: 8, maps: maps, fill: 0.5)
        }
    }

    /// x[y, x] = 1/(HW) Re sum_{ky < H, kx < W} C[ky, kx] e^(2 pi i (ky y / H + kx x / W)) with C
    /// extended to all kx by Hermitian symmetry (exact for the coefficients of a real signal).
    func literalInverse(_ re: Tensor, _ im: Tensor, width w: Int) -> [Double] {
        let k = re.shape[0], h = re.shape[1], wf = re.shape[2]
        var out = [Double](repeating: 0, count: k * h * w)
        for p in 0..<k {
            func coefficient(_ ky: Int, _ kx: Int) -> (Double, Double) {
                if kx < wf { return (Double(re.data[(p * h + ky) * wf + kx]), Double(im.data[(p * h + ky) * wf + kx])) }
                let (a, b) = coefficient((h - ky) % h, w - kx)
                return (a, -b)
            }
            for y in 0..<h {
                for x in 0..<w {
                    var s = 0.0
                    for ky in 0..<h {
                        for kx in 0..<w {
                            let (a, b) = coefficient(ky, kx)
                            let t = 2 * Double.pi * (Double(ky * y) / Double(h) + Double(kx * x) / Double(w))
                            s += a * cos(t) - b * sin(t)
                        }
                    }
                    out[(p * h + y) * w + x] = s / Double(h * w)
                }
            }
        }
        return out
    }

    @Test(arguments: [(5, 6), (4, 7)]) func inverseMatchesTheLiteralSum(size: (Int, Int)) {
        let (h, w) = size, wf = RealDFT2D.frequencyColumns(width: w)
        // Coefficients of a real signal: take them from one, so the Hermitian column constraints hold.
        let (re, im) = RealDFT2D.forward(Tensor.uniform([2, h, w], low: -1, high: 1, seed: 6))
        #expect(re.shape == [2, h, wf])
        let fast = RealDFT2D.inverse(real: re, imag: im, width: w).scalars
        let slow = literalInverse(re, im, width: w)
        #expect(zip(fast, slow).map { abs(Double($0) - $1) }.max()! < 1e-4)
    }

    @Test func forwardThenInverseRoundTrips() {
        for (h, w) in [(6, 6), (5, 9)] {
            let x = Tensor.uniform([3, h, w], low: -2, high: 2, seed: 8)
            let (re, im) = RealDFT2D.forward(x)
            let back = RealDFT2D.inverse(real: re, imag: im, width: w)
            #expect(zip(back.scalars, x.scalars).map { abs($0 - $1) }.max()! < 1e-4)
        }
    }

    @Test func inverseGradient() {
        checkOp("RealDFT2D.inverse", inputs: [Tensor.uniform([2, 5, 4], low: -1, high: 1, seed: 9),
                                              Tensor.uniform([2, 5, 4], low: -1, high: 1, seed: 10)]) {
            RealDFT2D.inverse(real: $0[0], imag: $0[1], width: 7)
        }
    }
}
