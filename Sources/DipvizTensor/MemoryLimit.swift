import Foundation

/// A request for more memory than allowed, or for a size that overflows.
public struct AllocationError: Error, CustomStringConvertible, Equatable {
    /// What was to be allocated (e.g. "the input of model.onnx at 100000x100000").
    public let what: String
    /// Bytes needed; nil when the size overflows a 64-bit integer.
    public let bytes: Int?
    public let limit: Int

    public var description: String {
        let needed = bytes.map { MemoryLimit.format($0) } ?? "more than 2^63 bytes"
        return "\(what) needs \(needed), over the memory limit of \(MemoryLimit.format(limit)) (set DIPVIZ_MEMORY_LIMIT, e.g. 32G, to change it)"
    }
}

/// The most memory one allocation (or one estimated run) may ask for. Sizes that come from
/// users or files (shapes, image sizes, iteration budgets) are checked against it before
/// anything is allocated, so a hostile file gives an error instead of an abort.
public enum MemoryLimit {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var override: Int?

    /// The limit in bytes: `DIPVIZ_MEMORY_LIMIT` (bytes, or with a K/M/G/T suffix) when set,
    /// else three quarters of the memory this process may really use: physical memory, a
    /// container's cgroup limit, or half an address-space limit (`ulimit -v`; code and buffer
    /// pools need the rest), whichever is least.
    public static var bytes: Int {
        get {
            lock.lock(); defer { lock.unlock() }
            if let override { return override }
            if let text = ProcessInfo.processInfo.environment["DIPVIZ_MEMORY_LIMIT"], let v = parse(text) { return v }
            return available
        }
        set { lock.lock(); override = newValue; lock.unlock() }
    }

    static var available: Int {
        var usable = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        for file in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            if let text = try? String(contentsOfFile: file, encoding: .utf8),
               let v = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), v > 0 {
                usable = Swift.min(usable, v)
            }
        }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_AS.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max {
            usable = Swift.min(usable, Int(clamping: limit.rlim_cur / 2) / 3 * 4)
        }
        return usable / 4 * 3
    }

    /// Parses "123", "512M", "32G", "1.5T" (powers of 1024).
    public static func parse(_ text: String) -> Int? {
        let t = text.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [Character: Double] = ["K": 1024, "M": 1024 * 1024, "G": 1024 * 1024 * 1024, "T": 1024 * 1024 * 1024 * 1024]
        var scale = 1.0, number = Substring(t)
        if let last = t.last, let s = units[last] { scale = s; number = t.dropLast() }
        if number.hasSuffix("I") || number.hasSuffix("B") { return nil }
        guard let v = Double(number), v.isFinite, v > 0, v * scale < 9.0e18 else { return nil }
        return Int(v * scale)
    }

    /// Elements of a shape, or nil when a dimension is negative or the product overflows.
    public static func elements(_ shape: [Int]) -> Int? {
        var n = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            n = p
        }
        return n
    }

    /// Checks that `shape` of `bytesPerElement`-byte elements fits the limit; returns its bytes.
    @discardableResult
    public static func check(shape: [Int], bytesPerElement: Int = 4, what: String) throws -> Int {
        guard let n = elements(shape) else { throw AllocationError(what: what, bytes: nil, limit: bytes) }
        return try check(bytes: n.multipliedReportingOverflow(by: bytesPerElement), what: what)
    }

    /// Checks a byte count (as computed with overflow reporting) against the limit.
    @discardableResult
    public static func check(bytes needed: (partialValue: Int, overflow: Bool), what: String, limit given: Int? = nil) throws -> Int {
        let limit = given ?? bytes
        guard !needed.overflow else { throw AllocationError(what: what, bytes: nil, limit: limit) }
        guard needed.partialValue <= limit else { throw AllocationError(what: what, bytes: needed.partialValue, limit: limit) }
        return needed.partialValue
    }

    public static func format(_ n: Int) -> String {
        let d = Double(n)
        if d >= 1024 * 1024 * 1024 { return String(format: "%.1f GiB (%lld bytes)", d / 1024 / 1024 / 1024, Int64(n)) }
        if d >= 1024 * 1024 { return String(format: "%.1f MiB (%lld bytes)", d / 1024 / 1024, Int64(n)) }
        return "\(n) bytes"
    }
}
