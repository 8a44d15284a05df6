import DipvizImage
import DipvizONNX
import DipvizPrior
import DipvizTensor
import DipvizVisualize
import Foundation

/// Computes what a gallery needs with the one runner (`Runner`), reusing every result already
/// on disk (keyed by the run spec's hash, which includes the files' content hashes and the
/// result format version) and resuming interrupted ones from their checkpoints.
public final class GalleryBuilder {
    public let spec: GallerySpec
    public private(set) var experiments: [Experiment] = []
    public let output: String
    private var networks: [String: ONNXNetwork] = [:]

    public init(spec: GallerySpec, budget: String, specDirectory: String, output: String) throws {
        self.spec = spec
        self.output = output
        experiments = try spec.experiments(budget: budget, specDirectory: specDirectory) { try self.network($0) }
    }

    public func resultDirectory(_ e: Experiment) -> String { (output as NSString).appendingPathComponent("results/\(e.key)") }

    /// The finished metrics of an experiment, or nil when it is missing, unfinished, or of
    /// another result format.
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

    public func isDone(_ e: Experiment) -> Bool { metrics(e) != nil }

    public var pending: [Experiment] { experiments.filter { !isDone($0) } }

    /// The experiments of shard `index` (1-based) of `count`: a disjoint share, stable across runs.
    public func shard(_ index: Int, of count: Int) -> [Experiment] {
        experiments.enumerated().filter { $0.offset % count == index - 1 }.map(\.element)
    }

    /// Copies finished results of this spec from other output folders (shards) into this one;
    /// results of another spec or result format are left out.
    public func merge(from folders: [String]) throws -> Int {
        let fm = FileManager.default
        for folder in folders {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw GalleryError.experiment("--merge \(folder): no such folder (give the --out folders of the shards)")
            }
        }
        var copied = 0
        for e in experiments where !isDone(e) {
            for folder in folders {
                let source = (folder as NSString).appendingPathComponent("results/\(e.key)")
                guard GalleryBuilder.finishedMetrics(in: source, spec: e.spec) != nil else { continue }
                let target = resultDirectory(e)
                let staging = target + ".merging-\(getpid())"
                try? fm.removeItem(atPath: staging)
                do {
                    try fm.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                    try fm.copyItem(atPath: source, toPath: staging)
                    try? fm.removeItem(atPath: target)
                    try fm.moveItem(atPath: staging, toPath: target)
                } catch {
                    throw GalleryError.experiment("cannot copy \(source) to \(target): \(FileErrors.describe(error))")
                }
                copied += 1
                break
            }
        }
        return copied
    }

    func network(_ path: String) throws -> ONNXNetwork {
        if let n = networks[path] { return n }
        let net = try ONNXNetwork(path: path)
        networks[path] = net
        return net
    }

    /// Runs one experiment into its result folder.
    public func run(_ e: Experiment, control: RunControl = RunControl()) throws -> RunEnding {
        let folder = try ResultFolder(path: resultDirectory(e))
        return try Runner.run(e.spec, network: try network(e.modelPath), folder: folder, control: control).metrics.ending
    }

    /// The command that reproduces an experiment, run from the folder the gallery was built in.
    public func command(_ e: Experiment) -> String {
        Shell.line("dipviz", e.spec.reproduceArguments(out: e.key, runRecord: resultDirectory(e) + "/run.json"))
    }
}
