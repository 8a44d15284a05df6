import Foundation

/// Whether a run had stopped improving: the rule pages use to say which results had not converged.
public enum Convergence {
    /// The share of the run at the end over which improvement is measured.
    public static let window = 0.2
    /// Relative improvement over that window above which a result counts as still improving.
    public static let threshold = 0.05

    /// True when `key` (a value that falls as the run improves, e.g. feature_error) fell by more
    /// than `threshold` of its final value over the last `window` of the iterations; nil when the
    /// curve is too short to tell.
    public static func stillImproving(_ curve: [CurvePoint], key: String = "feature_error") -> Bool? {
        let points = curve.compactMap { p in p.values[key].map { (p.iteration, $0) } }
        guard let last = points.last, last.0 >= 10, points.count >= 3 else { return nil }
        let cut = Int((Double(last.0) * (1 - window)).rounded())
        guard let before = points.last(where: { $0.0 <= cut }), before.0 < last.0 else { return nil }
        return (before.1 - last.1) > threshold * Swift.max(abs(last.1), 1e-12)
    }
}
