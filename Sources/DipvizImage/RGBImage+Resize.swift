import Foundation

/// Resampling filters; downscaling widens each filter by the scale factor (antialiasing),
/// as PIL does, so a large photo shrinks without aliasing.
public enum ResizeFilter: String, CaseIterable, Codable, Sendable {
    /// Keys' cubic with a = -0.5 (PIL's BICUBIC).
    case bicubic
    /// Box filter: each output pixel averages the input area it covers.
    case area
    case bilinear
    /// Lanczos with a = 3 (PIL's LANCZOS, formerly ANTIALIAS): the Deep Image Prior code makes
    /// its low-resolution inputs with it (`utils/sr_utils.py`).
    case lanczos

    var support: Double {
        switch self { case .bicubic: return 2; case .area: return 0.5; case .bilinear: return 1; case .lanczos: return 3 }
    }

    func weight(_ x: Double) -> Double {
        let t = Swift.abs(x)
        switch self {
        case .area: return (x >= -0.5 && x < 0.5) ? 1 : 0
        case .bilinear: return t < 1 ? 1 - t : 0
        case .lanczos:
            guard t < 3 else { return 0 }
            guard t > 0 else { return 1 }
            let px = Double.pi * t
            return 3 * sin(px) * sin(px / 3) / (px * px)
        case .bicubic:
            let a = -0.5
            if t < 1 { return ((a + 2) * t - (a + 3)) * t * t + 1 }
            if t < 2 { return (((t - 5) * t + 8) * t - 4) * a }
            return 0
        }
    }
}

extension RGBImage {
    public func resized(width ow: Int, height oh: Int, filter: ResizeFilter = .bicubic) -> RGBImage {
        precondition(ow > 0 && oh > 0, "resize to \(ow)x\(oh)")
        if ow == width && oh == height { return self }
        // Horizontal pass into floats, then vertical pass into bytes.
        let hx = RGBImage.taps(input: width, output: ow, filter: filter)
        let vy = RGBImage.taps(input: height, output: oh, filter: filter)
        var mid = [Float](repeating: 0, count: ow * height * 3)
        pixels.withUnsafeBufferPointer { src in
            for y in 0..<height {
                for x in 0..<ow {
                    let (start, weights) = hx[x]
                    var r: Float = 0, g: Float = 0, b: Float = 0
                    for (k, w) in weights.enumerated() {
                        let p = (y * width + start + k) * 3
                        r += w * Float(src[p]); g += w * Float(src[p + 1]); b += w * Float(src[p + 2])
                    }
                    let o = (y * ow + x) * 3
                    mid[o] = r; mid[o + 1] = g; mid[o + 2] = b
                }
            }
        }
        var out = [UInt8](repeating: 0, count: ow * oh * 3)
        for y in 0..<oh {
            let (start, weights) = vy[y]
            for x in 0..<ow {
                for c in 0..<3 {
                    var v: Float = 0
                    for (k, w) in weights.enumerated() { v += w * mid[((start + k) * ow + x) * 3 + c] }
                    out[(y * ow + x) * 3 + c] = UInt8(Swift.min(Swift.max(v.rounded(), 0), 255))
                }
            }
        }
        return RGBImage(width: ow, height: oh, pixels: out)
    }

    /// For each output index: the first input index and normalised weights.
    static func taps(input: Int, output: Int, filter: ResizeFilter) -> [(Int, [Float])] {
        let scale = Double(input) / Double(output)
        let stretch = Swift.max(scale, 1)
        let support = filter.support * stretch
        return (0..<output).map { i in
            let centre = (Double(i) + 0.5) * scale
            let lo = Swift.max(0, Int((centre - support).rounded(.down)))
            let hi = Swift.min(input, Int((centre + support).rounded(.up)))
            var weights = (lo..<hi).map { filter.weight((Double($0) + 0.5 - centre) / stretch) }
            let total = weights.reduce(0, +)
            if total != 0 { weights = weights.map { $0 / total } }
            // Trim zero weights at the ends.
            var first = 0, last = weights.count
            while first < last && weights[first] == 0 { first += 1 }
            while last > first && weights[last - 1] == 0 { last -= 1 }
            if first == last { return (Swift.min(Swift.max(Int(centre), 0), input - 1), [1]) }
            return (lo + first, weights[first..<last].map { Float($0) })
        }
    }

    /// The largest centred crop with the given aspect ratio (width / height).
    public func centreCropped(aspect: Double) -> RGBImage {
        var w = width, h = height
        if Double(w) / Double(h) > aspect { w = Swift.max(1, Int((Double(h) * aspect).rounded())) }
        else { h = Swift.max(1, Int((Double(w) / aspect).rounded())) }
        let x0 = (width - w) / 2, y0 = (height - h) / 2
        var out = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            let src = ((y0 + y) * width + x0) * 3
            out.replaceSubrange((y * w * 3)..<((y + 1) * w * 3), with: pixels[src..<(src + w * 3)])
        }
        return RGBImage(width: w, height: h, pixels: out)
    }
}
