import DipvizImage
import DipvizTensor
import Foundation

/// How each restoration task corrupts an image, in one place: the synthetic degradation that
/// `--degrade` applies to a clean photo, and the differentiable forward model A that the
/// restored image x is compared through (the data term is ||A(x) - y||^2, y the observation).
enum Degradation {
    /// The Deep Image Prior code's Lanczos downsampling kernel (`models/downsampler.py`,
    /// `KERNEL_TYPE='lanczos2'` or `'lanczos3'`, `phase=0.5`): a separable Lanczos kernel of
    /// support `support` stretched by the factor, 2·support·f taps a side, normalised to sum 1.
    static func lanczosKernel(factor f: Int, support a: Int) -> [Float] {
        let width = 2 * a * f + 1, taps = width - 1
        let centre = Double(width + 1) / 2
        func weight(_ i: Int) -> Double {
            let d = Swift.abs(Double(i) + 0.5 - centre) / Double(f)
            guard d != 0 else { return 1 }
            return Double(a) * sin(Double.pi * d) * sin(Double.pi * d / Double(a)) / (Double.pi * Double.pi * d * d)
        }
        let row = (1...taps).map(weight)
        var kernel = [Double](repeating: 0, count: taps * taps)
        for i in 0..<taps { for j in 0..<taps { kernel[i * taps + j] = row[i] * row[j] } }
        let total = kernel.reduce(0, +)
        return kernel.map { Float($0 / total) }
    }

    /// The downsampler as a differentiable op on [1, C, H, W] (H and W multiples of `factor`):
    /// the Lanczos kernel applied per channel with stride f after replicating (2·support - 1)·f/2
    /// pixels at each border, so that output pixel j is centred on input (j + 1/2)·f - 1/2, as
    /// in PIL's resize.
    static func downsampler(factor: Int, support: Int, channels: Int = 3) -> (Tensor) -> Tensor {
        let kernel = lanczosKernel(factor: factor, support: support)
        let taps = 2 * support * factor
        let weight = Tensor(shape: [channels, 1, taps, taps], scalars: Array((0..<channels).map { _ in kernel }.joined()))
        let pad = (taps - factor) / 2
        return { x in
            x.padded(top: pad, bottom: pad, left: pad, right: pad, mode: .edge)
                .conv2d(weight: weight, options: Conv2dOptions(stride: factor, groups: channels))
        }
    }

    /// Gaussian noise of standard deviation `sigma` (in 0...255 units), clipped to the valid
    /// range as the paper's code does (`get_noisy_image`).
    static func noisy(_ image: RGBImage, sigma: Float, seed: UInt64) -> RGBImage {
        var rng = SeededGenerator(seed: seed &+ 0x401_5E)
        var px = image.pixels
        for i in 0..<px.count {
            px[i] = UInt8(Swift.min(Swift.max((Float(px[i]) + sigma * rng.nextNormal()).rounded(), 0), 255))
        }
        return RGBImage(width: image.width, height: image.height, pixels: px)
    }

    /// A random mask keeping each pixel (all three channels) with probability 1 - `drop`:
    /// white where known, black where missing, as the paper's masks.
    static func randomMask(width: Int, height: Int, drop: Float, seed: UInt64) -> RGBImage {
        var rng = SeededGenerator(seed: seed &+ 0x3A5C)
        var px = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) where rng.nextUnitFloat() >= drop {
            px[3 * i] = 255; px[3 * i + 1] = 255; px[3 * i + 2] = 255
        }
        return RGBImage(width: width, height: height, pixels: px)
    }

    /// The mask as a [1, 3, H, W] tensor of 0 and 1 (a pixel is known when its grey level is
    /// at least half).
    static func maskTensor(_ mask: RGBImage) -> Tensor {
        let plane = mask.width * mask.height
        let t = Tensor(zeros: [1, 3, mask.height, mask.width])
        for i in 0..<plane {
            let grey = (Int(mask.pixels[3 * i]) + Int(mask.pixels[3 * i + 1]) + Int(mask.pixels[3 * i + 2])) / 3
            if grey >= 128 { for c in 0..<3 { t.data[c * plane + i] = 1 } }
        }
        return t
    }

    /// The masked photo as the paper shows it: missing pixels black.
    static func masked(_ image: RGBImage, mask: Tensor) -> RGBImage {
        let plane = image.width * image.height
        var px = image.pixels
        for i in 0..<plane where mask.data[i] == 0 { px[3 * i] = 0; px[3 * i + 1] = 0; px[3 * i + 2] = 0 }
        return RGBImage(width: image.width, height: image.height, pixels: px)
    }
}
