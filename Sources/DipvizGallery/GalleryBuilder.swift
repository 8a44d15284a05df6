import DipvizImage
import DipvizONNX
import DipvizPrior
import DipvizTensor
import DipvizVisualize
import Foundation

/// Computes what a gallery needs with the one runner (`Runner`), reusing every result already
/// on disk (keyed by the run spec's hash, which includes the files' content hashes and the
/// result format version) and resuming interrupted ones from their checkpoints.
///
/// Two folders: `output` is the published site (pages, and per result its images, thumbnails,
/// snapshots, curves, metrics and run record: what a static host serves), and `work` holds
/// what only a build needs (unfinished runs with their checkpoints, the lock, the status, the
/// shards' folders). A result is computed in `work/runs/KEY` and, once finished, published into
/// `output/results/KEY` in one rename; its run folder, checkpoint included, is then deleted.
public final class GalleryBuilder {
    public let spec: GallerySpec
    public let budget: String
    public private(set) var experiments: [Experiment] = []
    public let output: String
    public let work: String
    /// Set when this process computes one shard (1-based index of count): its finished results
    /// and runs then go to its own folder under `work/shards/`, never into `output`.
    public let shard: (index: Int, count: Int)?
    /// Keep each finished run's folder (with its final checkpoint) in the work folder.
    public var keepCheckpoints = false
    /// Compute single-target maximisations that differ only in their target in one batch
    /// (`batches`); off: one experiment at a time.
    public var batching = true
    /// Longest side of the thumbnails on the index pages and of published snapshots.
    public var thumbnailSide = 160
    private var networks: [String: ONNXNetwork] = [:]
    var summaries: [String: [LayerSummary]] = [:]

    public init(spec: GallerySpec, budget: String, specDirectory: String, output: String, work: String? = nil,
                shard: (index: Int, count: Int)? = nil) throws {
        self.spec = spec
        self.budget = budget
        self.output = output
        self.work = work ?? GalleryBuilder.defaultWork(for: output)
        self.shard = shard
        experiments = try spec.experiments(budget: budget, specDirectory: specDirectory) { try self.network($0) }
    }

    /// `OUT.work` beside the site `OUT`.
    public static func defaultWork(for output: String) -> String {
        var o = output
        while o.count > 1 && o.hasSuffix("/") { o.removeLast() }
        return o + ".work"
    }

    /// The folder of shard `index` of `count` under the work folder.
    public static func shardFolder(work: String, index: Int, count: Int) -> String {
        (work as NSString).appendingPathComponent("shards/\(index)-of-\(count)")
    }

    public var shardFolder: String? { shard.map { GalleryBuilder.shardFolder(work: work, index: $0.index, count: $0.count) } }

    /// The published result folder of an experiment (what the site's pages show).
    public func resultDirectory(_ e: Experiment) -> String { (output as NSString).appendingPathComponent("results/\(e.key)") }

    /// Where this process publishes a finished result: the site, or its shard's folder.
    func finishedDirectory(_ e: Experiment) -> String {
        ((shardFolder ?? output) as NSString).appendingPathComponent("results/\(e.key)")
    }

    /// Where an experiment is computed: a run folder in the work folder (or the shard's).
    public func runDirectory(_ e: Experiment) -> String {
        ((shardFolder ?? work) as NSString).appendingPathComponent("runs/\(e.key)")
    }

    /// The finished metrics of a published experiment, or nil when it is missing, unfinished,
    /// or of another result format.
    public func metrics(_ e: Experiment) -> RunMetrics? {
        GalleryBuilder.finishedMetrics(in: resultDirectory(e), spec: e.spec)
    }

    static func finishedMetrics(in directory: String, spec: RunSpec) -> RunMetrics? {
        let fm = FileManager.default
        guard fm.fileExists(atPath: directory + "/metrics.json"),
              let record = try? ResultJSON.read(RunRecord.self, path: directory + "/run.json", what: "run record"), record.spec == spec,
              let m = try? ResultJSON.read(RunMetrics.self, path: directory + "/metrics.json", what: "metrics"), m.ending == .finished,
              m.results.allSatisfy({ fm.fileExists(atPath: directory + "/" + $0.imageFile) }) else { return nil }
        return m
    }

    /// Finished, in the site or (for a shard) in the shard's folder.
    public func isDone(_ e: Experiment) -> Bool {
        metrics(e) != nil || (shardFolder != nil && GalleryBuilder.finishedMetrics(in: finishedDirectory(e), spec: e.spec) != nil)
    }

    public var pending: [Experiment] { experiments.filter { !isDone($0) } }

    /// The cost-balanced plan of `count` shards on `cpus` cores per shard.
    public func plan(shards count: Int, cpus: Int = 2, model: CostModel = CostModel()) throws -> ShardPlan {
        ShardPlan(costs: try estimatedSeconds(cpus: cpus, model: model), shards: count)
    }

    /// The experiments of shard `index` (1-based) of `count`: a disjoint share of about equal
    /// estimated cost, the same in every process that reads the same spec.
    public func shard(_ index: Int, of count: Int) throws -> [Experiment] {
        try plan(shards: count).members(index - 1).map { experiments[$0] }
    }

    /// What a merge did: results copied in, already there, and those refused with why.
    public struct MergeReport: Sendable, Equatable {
        public var copied = 0
        public var present = 0
        public var refused: [String] = []
    }

    /// Copies finished results of this gallery from shard folders (each with `results/KEY`)
    /// into the site. Idempotent: results already published are left alone. Results of another
    /// spec or result format are refused (listed in the report, never copied). With `move`, a
    /// result is renamed out of its shard folder instead of copied (same file system).
    public func merge(from folders: [String], move: Bool = false) throws -> MergeReport {
        let fm = FileManager.default
        for folder in folders {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw GalleryError.experiment("--merge \(folder): no such folder (give the shards' folders, e.g. OUT.work/shards/1-of-4)")
            }
        }
        let byKey = Dictionary(experiments.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        var report = MergeReport()
        for folder in folders {
            let results = (folder as NSString).appendingPathComponent("results")
            let names = ((try? fm.contentsOfDirectory(atPath: results)) ?? []).filter { !$0.hasPrefix(".") && !$0.contains(".") }.sorted()
            for name in names {
                let source = (results as NSString).appendingPathComponent(name)
                guard let e = byKey[name] else {
                    let version = (try? Data(contentsOf: URL(fileURLWithPath: source + "/run.json"))).flatMap {
                        (try? JSONSerialization.jsonObject(with: $0) as? [String: Any])?["format_version"] as? Int
                    }
                    let what = version.map { $0 == RunSpec.formatVersion ? "another spec" : "result format \($0) (this dipviz: \(RunSpec.formatVersion))" } ?? "another spec"
                    report.refused.append("\(source): made by \(what), not a result of this gallery")
                    continue
                }
                if metrics(e) != nil { report.present += 1; continue }
                guard GalleryBuilder.finishedMetrics(in: source, spec: e.spec) != nil else {
                    if fm.fileExists(atPath: source + "/run.json"),
                       (try? ResultJSON.read(RunRecord.self, path: source + "/run.json", what: "run record"))?.spec != e.spec {
                        report.refused.append("\(source): its run.json does not hold this result's spec or result format")
                    }
                    continue
                }
                try install(source, as: resultDirectory(e), move: move)
                report.copied += 1
            }
        }
        return report
    }

    /// Puts a finished result folder in place at `target` in one rename, lean (no checkpoints,
    /// no lock, thumbnails made).
    func install(_ source: String, as target: String, move: Bool) throws {
        let fm = FileManager.default
        let staging = target + ".merging-\(getpid())"
        try? fm.removeItem(atPath: staging)
        do {
            try fm.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            if move { try fm.moveItem(atPath: source, toPath: staging) } else { try fm.copyItem(atPath: source, toPath: staging) }
            try tidy(staging)
            try GalleryBuilder.replace(target, with: staging)
        } catch let error as GalleryError {
            throw error
        } catch {
            throw GalleryError.experiment("cannot copy \(source) to \(target): \(FileErrors.describe(error))")
        }
    }

    /// Renames `staging` to `target`, replacing what was there.
    static func replace(_ target: String, with staging: String) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: target) {
            let old = target + ".replaced-\(getpid())"
            try? fm.removeItem(atPath: old)
            try fm.moveItem(atPath: target, toPath: old)
            try fm.moveItem(atPath: staging, toPath: target)
            try? fm.removeItem(atPath: old)
        } else {
            try fm.moveItem(atPath: staging, toPath: target)
        }
    }

    func network(_ path: String) throws -> ONNXNetwork {
        if let n = networks[path] { return n }
        let net = try ONNXNetwork(path: path)
        networks[path] = net
        return net
    }

    /// Runs one experiment in its run folder and publishes it once finished.
    public func run(_ e: Experiment, control: RunControl = RunControl()) throws -> RunEnding {
        let fm = FileManager.default
        let runPath = runDirectory(e)
        // A result left unfinished by a shard, or inside the site by an older dipviz, continues
        // from its checkpoint rather than from the start.
        if shard == nil, !fm.fileExists(atPath: runPath) {
            let shardsRoot = (work as NSString).appendingPathComponent("shards")
            let candidates = [resultDirectory(e)] + ((try? fm.contentsOfDirectory(atPath: shardsRoot)) ?? []).sorted().map {
                (shardsRoot as NSString).appendingPathComponent("\($0)/runs/\(e.key)")
            }
            if metrics(e) == nil, let unfinished = candidates.first(where: { fm.fileExists(atPath: $0 + "/run.json") }) {
                try? fm.createDirectory(atPath: (runPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try? fm.moveItem(atPath: unfinished, toPath: runPath)
            }
        }
        let ending: RunEnding
        do {
            let folder = try ResultFolder(path: runPath)
            ending = try Runner.run(e.spec, network: try network(e.modelPath), folder: folder, control: control,
                                    keepFinishedCheckpoints: keepCheckpoints).metrics.ending
        }
        if ending == .finished {
            try publish(runPath, as: finishedDirectory(e))
            if !keepCheckpoints { try? fm.removeItem(atPath: runPath) }
        }
        return ending
    }

    /// Copies what the site shows of a finished run folder to `target`: records, curves, the
    /// images, thumbnails, and snapshots no larger than a thumbnail.
    func publish(_ runPath: String, as target: String) throws {
        let fm = FileManager.default
        let staging = target + ".publishing-\(getpid())"
        try? fm.removeItem(atPath: staging)
        do {
            try fm.createDirectory(atPath: staging + "/snapshots", withIntermediateDirectories: true)
            let metrics = try ResultJSON.read(RunMetrics.self, path: runPath + "/metrics.json", what: "metrics")
            let files = ["run.json", "metrics.json", "curve.json", "original.png"] + metrics.results.map(\.imageFile)
            for f in files where fm.fileExists(atPath: runPath + "/" + f) {
                try AtomicFile.write(try Data(contentsOf: URL(fileURLWithPath: runPath + "/" + f)), to: staging + "/" + f)
            }
            for f in ((try? fm.contentsOfDirectory(atPath: runPath + "/snapshots")) ?? []).sorted() where f.hasSuffix(".png") && !f.hasPrefix(".") {
                try writeReduced(from: runPath + "/snapshots/" + f, to: staging + "/snapshots/" + f, always: true)
            }
            try tidy(staging)
            try GalleryBuilder.replace(target, with: staging)
        } catch let error as GalleryError {
            throw error
        } catch {
            try? fm.removeItem(atPath: staging)
            throw GalleryError.experiment("cannot publish \(runPath) to \(target): \(FileErrors.describe(error))")
        }
    }

    /// Makes a published result folder lean: no checkpoints or lock (left by older dipviz
    /// versions), and a thumbnail for every image larger than `thumbnailSide`.
    func tidy(_ folder: String) throws {
        let fm = FileManager.default
        try? fm.removeItem(atPath: folder + "/checkpoints")
        try? fm.removeItem(atPath: folder + "/.lock")
        for f in ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).sorted() where f.hasSuffix(".png") && !f.hasPrefix(".") {
            let thumb = folder + "/thumbs/" + f
            if !fm.fileExists(atPath: thumb) { try writeReduced(from: folder + "/" + f, to: thumb, always: false) }
        }
    }

    /// Writes `source` scaled down to at most `thumbnailSide` pixels on its longest side;
    /// an image already that small is copied when `always`, else nothing is written.
    func writeReduced(from source: String, to target: String, always: Bool) throws {
        // The header says the size: a site of small images is re-rendered without decoding them.
        if let (w, h) = GalleryBuilder.pngSize(source), Swift.max(w, h) <= thumbnailSide {
            if always { try AtomicFile.write(try Data(contentsOf: URL(fileURLWithPath: source)), to: target) }
            return
        }
        let image = try PNG.read(path: source)
        let longest = Swift.max(image.width, image.height)
        guard longest > thumbnailSide else {
            if always { try AtomicFile.write(try Data(contentsOf: URL(fileURLWithPath: source)), to: target) }
            return
        }
        let scale = Double(thumbnailSide) / Double(longest)
        let small = image.resized(width: Swift.max(1, Int((Double(image.width) * scale).rounded())),
                                  height: Swift.max(1, Int((Double(image.height) * scale).rounded())))
        try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try AtomicFile.write(try PNG.encode(small), to: target)
    }

    /// Width and height from a PNG's IHDR chunk (bytes 16-23), or nil when it is not a PNG.
    static func pngSize(_ path: String) -> (Int, Int)? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        let head = [UInt8](handle.readData(ofLength: 24))
        guard head.count == 24, head[0...7] == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], head[12...15] == [0x49, 0x48, 0x44, 0x52] else {
            return nil
        }
        func be(_ i: Int) -> Int { head[i...i + 3].reduce(0) { $0 << 8 | Int($1) } }
        return (be(16), be(20))
    }

    /// The image the index pages show for `file` of a published result: its thumbnail when
    /// there is one (relative to the site).
    public func thumbnail(_ e: Experiment, _ file: String) -> String {
        let thumb = "results/\(e.key)/thumbs/\(file)"
        return FileManager.default.fileExists(atPath: (output as NSString).appendingPathComponent(thumb)) ? thumb : "results/\(e.key)/\(file)"
    }

    /// Cleans published results left by older dipviz versions (checkpoints inside the site, and
    /// the site's own lock file when no process holds it).
    public func tidyPublished() throws {
        for e in experiments where metrics(e) != nil { try tidy(resultDirectory(e)) }
        let oldLock = (output as NSString).appendingPathComponent(".gallery.lock")
        let fd = open(oldLock, O_RDWR | O_CLOEXEC)
        if fd >= 0 {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { unlink(oldLock) }
            close(fd)
        }
    }

    /// The command that reproduces an experiment, run from the folder the gallery was built in.
    public func command(_ e: Experiment) -> String {
        Shell.line("dipviz", e.spec.reproduceArguments(out: e.key, runRecord: resultDirectory(e) + "/run.json"))
    }
}
