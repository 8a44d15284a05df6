import Foundation

/// A recycled float buffer. Buffers go back to `BufferPool.shared` when the last tensor
/// using them dies, so an optimisation loop of fixed shapes stops allocating after its
/// first iteration.
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    init(count: Int) {
        self.count = count
        self.pointer = BufferPool.shared.take(count: count)
    }

    deinit { BufferPool.shared.give(pointer, count: count) }

    /// Values derived from this buffer's contents (a convolution's transformed weights), kept
    /// while the buffer lives and dropped when it is written through `Tensor.copy`, `fill` or an
    /// optimiser step.
    private var derived: [String: TensorStorage] = [:]
    private let derivedLock = NSLock()

    /// The derived buffer under `key`, made by `make` on first use.
    func derivedBuffer(_ key: String, count: Int, make: (UnsafeMutablePointer<Float>) -> Void) -> TensorStorage {
        derivedLock.lock(); defer { derivedLock.unlock() }
        if let found = derived[key], found.count == count { return found }
        let buffer = TensorStorage(count: count)
        make(buffer.pointer)
        derived[key] = buffer
        return buffer
    }

    func dropDerived() {
        derivedLock.lock(); defer { derivedLock.unlock() }
        derived.removeAll()
    }
}

/// Size-keyed free lists of 64-byte aligned float buffers.
public final class BufferPool: @unchecked Sendable {
    public static let shared = BufferPool()

    private var free: [Int: [UnsafeMutablePointer<Float>]] = [:]
    private let lock = NSLock()
    /// Buffers obtained from the system allocator since start, in all and by calling thread
    /// (a check that a loop of fixed shapes reaches steady state).
    public private(set) var systemAllocations = 0
    private var allocationsByThread: [UInt: Int] = [:]

    public var systemAllocationsOnCurrentThread: Int {
        lock.lock(); defer { lock.unlock() }
        return allocationsByThread[UInt(bitPattern: Int(bitPattern: pthread_self()))] ?? 0
    }
    public private(set) var pooledBytes = 0

    func take(count: Int) -> UnsafeMutablePointer<Float> {
        let n = max(count, 1)
        lock.lock()
        if var list = free[n], let p = list.popLast() {
            free[n] = list
            pooledBytes -= n * 4
            lock.unlock()
            return p
        }
        systemAllocations += 1
        allocationsByThread[UInt(bitPattern: Int(bitPattern: pthread_self())), default: 0] += 1
        lock.unlock()
        let raw = UnsafeMutableRawPointer.allocate(byteCount: n * MemoryLayout<Float>.stride, alignment: 64)
        return raw.bindMemory(to: Float.self, capacity: n)
    }

    func give(_ p: UnsafeMutablePointer<Float>, count: Int) {
        let n = max(count, 1)
        lock.lock()
        free[n, default: []].append(p)
        pooledBytes += n * 4
        lock.unlock()
    }

    /// Returns every idle buffer to the system.
    public func trim() {
        lock.lock()
        let lists = free
        free = [:]
        pooledBytes = 0
        lock.unlock()
        for (_, list) in lists { for p in list { UnsafeMutableRawPointer(p).deallocate() } }
    }
}

/// A scratch buffer from the pool for the lifetime of `body`.
@inline(__always)
func withScratch<R>(_ count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
    let storage = TensorStorage(count: count)
    return try withExtendedLifetime(storage) { try body(storage.pointer) }
}
