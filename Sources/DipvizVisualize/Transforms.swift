import DipvizTensor
import Foundation

/// Transformation robustness for activation maximisation, as Lucid's `standard_transforms`
/// (Olah, Mordvintsev & Schubert, "Feature Visualization", Distill 2017, section "Transformation
/// robustness"; lucid/optvis/transform.py): pad by 12 px of grey, jitter by up to 8 px, scale by
/// one of 11 factors in 0.9...1.1, rotate by -10...10 degrees (0 five extra times), jitter by up
/// to 4 px. Each step is random per iteration and per image, and the objective sees only the
/// transformed image, so a result must excite the unit wherever and however it is placed.
///
/// The chain is one affine map per image, applied by a single bilinear resampling inside the
/// graph (`Tensor.affineResampled`), which looks past the border into the grey padding. Lucid's
/// result changes size (about 0.9 to 1.1 times the image plus the padding); here it is
/// resampled to the working size, so graphs with a fixed input size take it too: the field of
/// view is Lucid's, only the pixel pitch differs.
public struct TransformSettings: Codable, Equatable, Sendable {
    enum CodingKeys: String, CodingKey {
        case pad, jitter, scaleMin = "scale_min", scaleMax = "scale_max", rotation, finalJitter = "final_jitter", fill
    }

    /// Grey margin (pixels) the transforms may reveal around the image.
    public var pad = 12
    /// The first jitter: a random crop of `jitter` pixels less, at an offset of 0...jitter.
    public var jitter = 8
    /// Scale factors: 11 evenly spaced values from `scaleMin` to `scaleMax`.
    public var scaleMin: Float = 0.9
    public var scaleMax: Float = 1.1
    /// Rotation in whole degrees from -rotation to rotation, 0 drawn five times more often.
    public var rotation = 10
    /// The final jitter (a crop of 0...finalJitter pixels).
    public var finalJitter = 4
    /// Grey level of the padding in 0...1.
    public var fill: Float = 0.5

    public init() {}

    /// Lucid's standard transforms.
    public static let standard = TransformSettings()
    static let scaleSteps = 11

    var scales: [Float] {
        (0..<Self.scaleSteps).map { scaleMin + (scaleMax - scaleMin) * Float($0) / Float(Self.scaleSteps - 1) }
    }

    var anglesInDegrees: [Int] { Array(-rotation...rotation) + (rotation > 0 ? [0, 0, 0, 0, 0] : []) }

    /// One random map of an `h` x `w` image onto itself (see the type's comment): from the output,
    /// back through the final jitter, the rotation, the scale, the first jitter and the padding.
    public func randomMap(height h: Int, width w: Int, generator g: inout SeededGenerator) -> AffineMap {
        let o1y = Float(g.next() % UInt64(jitter + 1)), o1x = Float(g.next() % UInt64(jitter + 1))
        let scale = scales[Int(g.next() % UInt64(Self.scaleSteps))]
        let angles = anglesInDegrees
        let degrees = Float(angles[Int(g.next() % UInt64(angles.count))])
        let o2y = Float(g.next() % UInt64(finalJitter + 1)), o2x = Float(g.next() % UInt64(finalJitter + 1))
        // Lucid's sizes: padded and cropped (J), scaled (S), cropped again (L).
        let jh = Float(h + 2 * pad - jitter), jw = Float(w + 2 * pad - jitter)
        let sh = (scale * jh).rounded(.down), sw = (scale * jw).rounded(.down)
        let lh = sh - Float(finalJitter), lw = sw - Float(finalJitter)
        // Pixel centres: a pixel p of an n-pixel image covers [p, p + 1) of a length-n line.
        func stretch(_ fy: Float, _ fx: Float) -> AffineMap {
            AffineMap(yy: fy, yx: 0, y0: 0.5 * fy - 0.5, xy: 0, xx: fx, x0: 0.5 * fx - 0.5)
        }
        let toLucidOutput = stretch(lh / Float(h), lw / Float(w))
        let finalCrop = AffineMap.translation(dy: o2y, dx: o2x)
        let rotate = AffineMap.scaleRotation(scale: 1, angle: degrees * .pi / 180, cy: (sh - 1) / 2, cx: (sw - 1) / 2)
        let unscale = stretch(jh / sh, jw / sw)
        let firstCrop = AffineMap.translation(dy: o1y - Float(pad), dx: o1x - Float(pad))
        return firstCrop.after(unscale.after(rotate.after(finalCrop.after(toLucidOutput))))
    }

    /// `x` (NCHW in 0...1) under one random transform per image; differentiable.
    public func apply(_ x: Tensor, generator: inout SeededGenerator) -> Tensor {
        let h = x.shape[2], w = x.shape[3]
        let maps = (0..<x.shape[0]).map { _ in randomMap(height: h, width: w, generator: &generator) }
        return x.affineResampled(height: h, width: w, maps: maps, fill: fill)
    }

    /// Checks ranges for an image of `size` pixels.
    func validate(size: Int) throws {
        func check(_ ok: Bool, _ message: @autoclosure () -> String) throws {
            if !ok { throw RunSpecError.invalid(field: "transforms", message: message()) }
        }
        try check(pad >= 0 && pad <= size, "pad=\(pad); valid: 0...\(size) for size \(size)")
        try check(jitter >= 0 && jitter <= 2 * pad + size / 2, "jitter=\(jitter); valid: 0...\(2 * pad + size / 2)")
        try check(finalJitter >= 0 && finalJitter <= size / 2, "final-jitter=\(finalJitter); valid: 0...\(size / 2)")
        try check(scaleMin.isFinite && scaleMax.isFinite && scaleMin >= 0.25 && scaleMax <= 4 && scaleMin <= scaleMax,
                  "scale=\(scaleMin):\(scaleMax); valid: 0.25 <= LO <= HI <= 4")
        try check(rotation >= 0 && rotation <= 180, "rotate=\(rotation); valid: 0...180 degrees")
        try check(fill.isFinite && fill >= 0 && fill <= 1, "fill=\(fill); valid: 0...1")
    }

    /// The settings as the command line writes them: `standard`, or `key=value` pairs for what
    /// differs from the standard.
    public var argument: String {
        let s = TransformSettings.standard
        var parts: [String] = []
        if pad != s.pad { parts.append("pad=\(pad)") }
        if jitter != s.jitter { parts.append("jitter=\(jitter)") }
        if scaleMin != s.scaleMin || scaleMax != s.scaleMax { parts.append("scale=\(scaleMin):\(scaleMax)") }
        if rotation != s.rotation { parts.append("rotate=\(rotation)") }
        if finalJitter != s.finalJitter { parts.append("final-jitter=\(finalJitter)") }
        if fill != s.fill { parts.append("fill=\(fill)") }
        return parts.isEmpty ? "standard" : parts.joined(separator: ",")
    }

    static let syntax = "none, standard, or comma-separated changes to the standard: pad=12,jitter=8,scale=0.9:1.1,rotate=10,final-jitter=4,fill=0.5"

    /// Parses `none` (nil), `standard`, or `key=value` changes to the standard.
    public static func parse(_ text: String) throws -> TransformSettings? {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t == "none" { return nil }
        var s = TransformSettings.standard
        if t == "standard" { return s }
        func bad(_ why: String) -> RunSpecError { .invalid(field: "transforms", message: "'\(text)': \(why); write \(syntax)") }
        for part in t.split(separator: ",", omittingEmptySubsequences: false) {
            let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2 else { throw bad("'\(part)' is not key=value") }
            func int() throws -> Int { guard let v = Int(kv[1]) else { throw bad("\(kv[0]) takes a whole number") }; return v }
            switch kv[0] {
            case "pad": s.pad = try int()
            case "jitter": s.jitter = try int()
            case "rotate": s.rotation = try int()
            case "final-jitter": s.finalJitter = try int()
            case "fill":
                guard let v = Float(kv[1]) else { throw bad("fill takes a number") }
                s.fill = v
            case "scale":
                let r = kv[1].split(separator: ":").map { Float($0) }
                guard r.count == 2, let lo = r[0], let hi = r[1] else { throw bad("scale takes LO:HI, e.g. 0.9:1.1") }
                s.scaleMin = lo; s.scaleMax = hi
            default: throw bad("unknown key \(kv[0])")
            }
        }
        return s
    }
}

/// The fixed, seeded set of random transforms under which results are scored
/// (`robust_probability`, `robust_activation`): Lucid's standard transforms, the same 24 maps
/// for every run, whatever transforms the run itself used.
enum RobustnessCheck {
    static let seed: UInt64 = 2017
    static let count = 24

    static func maps(height: Int, width: Int) -> [AffineMap] {
        var g = SeededGenerator(seed: seed)
        return (0..<count).map { _ in TransformSettings.standard.randomMap(height: height, width: width, generator: &g) }
    }

    /// The image as a PNG holds it (8 bits per channel), so the score is the written file's.
    static func quantized(_ x: Tensor) -> Tensor {
        let q = Tensor(zeros: x.shape)
        for i in 0..<x.count { q.data[i] = (Swift.min(Swift.max(x.data[i], 0), 1) * 255).rounded() / 255 }
        return q
    }

    /// Mean of `value` over the transformed copies of `image` (no gradient).
    static func mean(_ image: Tensor, _ value: (Tensor) throws -> Double) throws -> Double {
        let x = quantized(image)
        let h = x.shape[2], w = x.shape[3]
        return try GradMode.withoutGrad {
            var total = 0.0
            for m in maps(height: h, width: w) {
                total += try value(x.affineResampled(height: h, width: w, maps: [m], fill: TransformSettings.standard.fill))
            }
            return total / Double(count)
        }
    }
}
