import Foundation

/// Splits index ranges over the machine's cores when there is enough work to pay for it.
public enum Parallel {
    /// The cores this process may run on: its CPU affinity (a Slurm task's grant, `taskset`),
    /// else the active processors; `DIPVIZ_THREADS` overrides it.
    public static let workerCount: Int = {
        if let text = ProcessInfo.processInfo.environment["DIPVIZ_THREADS"], let n = Int(text), n >= 1 { return min(n, 256) }
        return max(1, allowedCores ?? ProcessInfo.processInfo.activeProcessorCount)
    }()

    static var allowedCores: Int? { Processor.allowedCores }

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
