import DipvizImage
import DipvizONNX
import DipvizTensor
import DipvizVisualize
import Foundation

/// Unit lists computed in batches: single-target maximisations of one model that differ only
/// in their target (channels of one layer, or class scores) run as one multi-target run with
/// `batch` on, whose targets share every classifier pass. The finished batch is then split into
/// each experiment's own result folder, exactly what its single-target spec writes alone (its
/// run.json holds that spec, so keys, reuse, merges and reproduce commands are unchanged).
extension GalleryBuilder {
    /// The most experiments one batch computes.
    public static let batchLimit = 8

    /// The most experiments one batch of `spec` computes: a DIP batch holds a generator, its
    /// Adam state and its activations per target (measured at 128 px: 1.5 GB of memory for 8,
    /// against 0.34 GB for one), which grow with the pixels, so larger DIP images come in
    /// smaller batches (8 at 128 px, 2 at 224); the other priors hold little per target.
    public static func batchLimit(for spec: RunSpec) -> Int {
        guard spec.prior.kind == .dip else { return batchLimit }
        return Swift.max(1, Swift.min(batchLimit, batchLimit * 128 * 128 / (spec.size * spec.size)))
    }

    /// The spec of `e` with its target removed, when `e` may share a batch: a single-target
    /// maximisation of a channel or class score through a network that takes batches. Two
    /// experiments with the same signature differ only in their target.
    func batchSignature(_ e: Experiment) -> Data? {
        guard case .maximization(var m) = e.spec.objective, m.targets.count == 1, m.batch == nil, m.images == nil, m.reference == nil else { return nil }
        switch m.targets[0] {
        case .channel, .classScore: break
        case .neuron, .expression: return nil
        }
        guard let net = try? network(e.modelPath), Runner.takesBatches(net), !hasUnfinishedRun(e) else { return nil }
        m.targets = []
        var spec = e.spec
        spec.objective = .maximization(m)
        return spec.canonicalJSON
    }

    /// Whether a run of `e` alone was started (and not finished) earlier: it continues from
    /// its own checkpoint rather than joining a batch.
    func hasUnfinishedRun(_ e: Experiment) -> Bool {
        let fm = FileManager.default
        if fm.fileExists(atPath: runDirectory(e) + "/run.json") { return true }
        guard shard == nil else { return false }
        if fm.fileExists(atPath: resultDirectory(e) + "/run.json") && metrics(e) == nil { return true }
        let shardsRoot = (work as NSString).appendingPathComponent("shards")
        return ((try? fm.contentsOfDirectory(atPath: shardsRoot)) ?? []).contains {
            fm.fileExists(atPath: (shardsRoot as NSString).appendingPathComponent("\($0)/runs/\(e.key)/run.json"))
        }
    }

    /// `experiments` cut into what one run computes: batches of up to `batchLimit(for:)` experiments
    /// with the same signature (in the order of their first member), and every other experiment
    /// alone. Members of a batch come from `experiments` only, so a batch never spans two
    /// processes' shares. With `batching` off, every experiment is alone.
    public func batches(_ experiments: [Experiment]) -> [[Experiment]] {
        guard batching else { return experiments.map { [$0] } }
        var out: [[Experiment]] = []
        var open: [Data: Int] = [:]
        for e in experiments {
            guard let signature = batchSignature(e) else { out.append([e]); continue }
            if let i = open[signature], out[i].count < GalleryBuilder.batchLimit(for: e.spec) {
                out[i].append(e)
            } else {
                open[signature] = out.count
                out.append([e])
            }
        }
        return out
    }

    /// A batch's title for progress lines: "conv5 units 0, 1, 2 (tv)", "classes 100, 1 (dip)".
    public static func title(ofBatch members: [Experiment]) -> String {
        guard let first = members.first else { return "" }
        let units = members.compactMap(\.unit), classes = members.compactMap(\.classIndex)
        let prior = " (\(first.prior.rawValue), one batch)"
        if classes.count == members.count { return "classes " + classes.map(String.init).joined(separator: ", ") + prior }
        if units.count == members.count { return "\(first.layer) units " + units.map(String.init).joined(separator: ", ") + prior }
        return members.map(\.title).joined(separator: "; ")
    }

    /// The multi-target spec that computes `members` (experiments of one signature) together.
    public static func batchSpec(_ members: [Experiment]) -> RunSpec {
        var spec = members[0].spec
        guard case .maximization(var m) = spec.objective else { preconditionFailure("a batch of maximisations") }
        m.targets = members.map { e -> ActivationTarget in
            guard case .maximization(let own) = e.spec.objective, let t = own.targets.first else { preconditionFailure("a batch of maximisations") }
            return t
        }
        m.batch = true
        spec.objective = .maximization(m)
        return spec
    }

    /// Where a batch is computed: a run folder in the work folder (or the shard's) named from
    /// its multi-target spec, so the same batch finds its checkpoint after a kill.
    public func batchDirectory(_ members: [Experiment]) -> String {
        ((shardFolder ?? work) as NSString).appendingPathComponent("runs/batch-\(GalleryBuilder.batchSpec(members).key)")
    }

    /// Runs `members` (one of `batches`) and publishes each finished one. A batch of one is
    /// `run`; a batch that diverges (one target's loss stops being finite, which stops them
    /// all) is run again one experiment at a time.
    public func run(batch members: [Experiment], control: RunControl = RunControl()) throws -> RunEnding {
        guard members.count > 1 else { return try run(members[0], control: control) }
        let fm = FileManager.default
        let spec = GalleryBuilder.batchSpec(members)
        let runPath = batchDirectory(members)
        // A batch left unfinished by a shard continues from its checkpoint, as a single run does.
        if shard == nil, !fm.fileExists(atPath: runPath) {
            let shardsRoot = (work as NSString).appendingPathComponent("shards")
            let name = (runPath as NSString).lastPathComponent
            if let unfinished = ((try? fm.contentsOfDirectory(atPath: shardsRoot)) ?? []).sorted()
                .map({ (shardsRoot as NSString).appendingPathComponent("\($0)/runs/\(name)") })
                .first(where: { fm.fileExists(atPath: $0 + "/run.json") }) {
                try? fm.createDirectory(atPath: (runPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try? fm.moveItem(atPath: unfinished, toPath: runPath)
            }
        }
        let outcome: Runner.Outcome
        do {
            let folder = try ResultFolder(path: runPath)
            outcome = try Runner.run(spec, network: try network(members[0].modelPath), folder: folder, control: control,
                                     keepFinishedCheckpoints: keepCheckpoints)
        }
        switch outcome.metrics.ending {
        case .finished: break
        case .diverged:
            try? fm.removeItem(atPath: runPath)
            var last = RunEnding.finished
            for e in members {
                last = try run(e, control: control)
                if last == .interrupted { break }
            }
            return last
        case .interrupted, .pending: return .interrupted
        }
        for (e, result) in zip(members, outcome.metrics.results) {
            let staging = runDirectory(e) + ".from-batch"
            try? fm.removeItem(atPath: staging)
            try split(result, of: runPath, record: outcome.record, into: staging, as: e)
            try publish(staging, as: finishedDirectory(e))
            try? fm.removeItem(atPath: staging)
        }
        if !keepCheckpoints { try? fm.removeItem(atPath: runPath) }
        return .finished
    }

    /// Writes into `target` the run folder `e` would have alone, from its `result` in the
    /// finished batch run in `batchPath`: run.json with `e`'s spec, its metrics and curve under
    /// the single-result name, its image, and its snapshots under single-run names.
    func split(_ result: ResultMetrics, of batchPath: String, record: RunRecord, into target: String, as e: Experiment) throws {
        let fm = FileManager.default
        let single = e.spec.resultNames[0]
        let folder = try ResultFolder(path: target)
        try folder.writeJSON(RunRecord(spec: e.spec, workingDirectory: record.workingDirectory), name: "run.json")
        let curves = try ResultJSON.read(CurveFile.self, path: batchPath + "/curve.json", what: "curve file").curves
        try folder.writeJSON(CurveFile(curves: curves[result.name].map { [single: $0] } ?? [:]), name: "curve.json")
        var own = result
        own.name = single
        try AtomicFile.write(try Data(contentsOf: URL(fileURLWithPath: batchPath + "/" + result.imageFile)), to: folder.file(own.imageFile))
        let prefix = result.name + "-"
        try fm.createDirectory(atPath: folder.file("snapshots"), withIntermediateDirectories: true)
        for f in ((try? fm.contentsOfDirectory(atPath: batchPath + "/snapshots")) ?? []).sorted() where f.hasPrefix(prefix) && f.hasSuffix(".png") {
            try AtomicFile.write(try Data(contentsOf: URL(fileURLWithPath: batchPath + "/snapshots/" + f)),
                                 to: folder.file("snapshots/" + String(f.dropFirst(prefix.count))))
        }
        // Last, as a run writes it: metrics.json is what marks a result finished.
        try folder.writeJSON(RunMetrics(spec: e.spec, results: [own]), name: "metrics.json")
    }
}
