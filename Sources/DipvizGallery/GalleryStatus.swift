import DipvizVisualize
import Foundation

/// `status.json` in the work folder: where a build stands, for a person or a merge job. A
/// shard writes its own (`shards/I-of-N/status.json`) and then the sum over its sibling
/// shards into the work folder's, under a lock so that concurrent shards never lose an update.
public struct GalleryStatus: Codable, Equatable, Sendable {
    public var formatVersion = 1
    public var title: String
    public var budget: String
    /// `running`, `finished`, `interrupted`, `failed`, or `incomplete` (a merge that found
    /// results missing).
    public var state: String
    /// UTC, ISO 8601.
    public var updated: String
    public var total: Int
    public var done: Int
    public var left: Int
    /// The cost model's estimate of the minutes left (for shards: the slowest shard's).
    public var estimatedMinutesLeft: Double
    /// The result being computed.
    public var current: String?
    /// `I/N` for a shard's own file.
    public var shard: String?
    /// The shards' own statuses, in the work folder's file of a sharded build.
    public var shards: [GalleryStatus]?

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version", title, budget, state, updated, total, done, left
        case estimatedMinutesLeft = "estimated_minutes_left", current, shard, shards
    }

    public init(title: String, budget: String, state: String, total: Int, done: Int, estimatedMinutesLeft: Double,
                current: String? = nil, shard: String? = nil) {
        self.title = title; self.budget = budget; self.state = state; self.total = total; self.done = done
        left = total - done
        self.estimatedMinutesLeft = (estimatedMinutesLeft * 10).rounded() / 10
        self.current = current; self.shard = shard
        updated = GalleryStatus.now()
    }

    static func now() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: Date())
    }

    public static func path(work: String) -> String { (work as NSString).appendingPathComponent("status.json") }

    public static func read(_ path: String) -> GalleryStatus? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(GalleryStatus.self, from: data)
    }

    public func write(to path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try AtomicFile.write(try ResultJSON.encoder.encode(self), to: path)
    }

    /// Writes a shard's status into its folder, then the sum over the shards of the same
    /// count into `work/status.json` (`galleryTotal`: the results of the whole gallery).
    public func writeShard(work: String, index: Int, count: Int, galleryTotal: Int) throws {
        try write(to: GalleryStatus.path(work: GalleryBuilder.shardFolder(work: work, index: index, count: count)))
        let lockPath = (work as NSString).appendingPathComponent("status.lock")
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        flock(fd, LOCK_EX)
        let siblings = (1...count).compactMap {
            GalleryStatus.read(GalleryStatus.path(work: GalleryBuilder.shardFolder(work: work, index: $0, count: count)))
        }
        // Shards not started yet have no file: the total is the gallery's, not the sum.
        var sum = GalleryStatus(title: title, budget: budget, state: "running", total: galleryTotal,
                                done: Swift.min(galleryTotal, siblings.reduce(0) { $0 + $1.done }),
                                estimatedMinutesLeft: siblings.map(\.estimatedMinutesLeft).max() ?? 0)
        let states = Set(siblings.map(\.state))
        if siblings.count == count && states == ["finished"] { sum.state = "finished" }
        else if states.contains("running") || siblings.count < count { sum.state = "running" }
        else { sum.state = states.contains("failed") ? "failed" : "interrupted" }
        sum.shards = siblings
        try sum.write(to: GalleryStatus.path(work: work))
    }
}
