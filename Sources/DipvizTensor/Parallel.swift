import Foundation

/// Splits index ranges over the machine's cores when there is enough work to pay for it.
public enum Parallel {
    public static let workerCount = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Calls `body` on disjoint sub-ranges covering `0..<count`. `grain` is the least number
    /// of items worth a thread of its own.
    @inline(__always)
    public static func forEachRange(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = min(workerCount, max(1, count / max(grain, 1)))
        if chunks <= 1 { body(0..<count); return }
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            let lo = count * chunk / chunks, hi = count * (chunk + 1) / chunks
            if lo < hi { body(lo..<hi) }
        }
    }

    /// One call per index when each index carries `itemCost` elements of work.
    @inline(__always)
    public static func forEach(_ count: Int, itemCost: Int, _ body: (Int) -> Void) {
        let grain = max(1, (1 << 15) / max(itemCost, 1))
        forEachRange(count, grain: grain) { range in for i in range { body(i) } }
    }
}
