import DipvizImage
import DipvizONNX
import DipvizTensor
import Foundation

/// Runs a `RunSpec` into a result folder: the one way every entry point (the commands, the
/// gallery, reproduce commands) computes an experiment. A folder that already holds the same
/// run continues from its checkpoints and skips finished results; a folder holding another
/// run, a changed model or photo, or a run that diverged is refused with what differs.
public enum Runner {
    /// Where a run stands after `run`: its record, metrics and folder.
    public struct Outcome {
        public var record: RunRecord
        public var metrics: RunMetrics
        public var folder: ResultFolder
    }

    /// Starts `spec` in `folder`, or continues it when the folder already holds this run.
    /// `keepFinishedCheckpoints` keeps the last checkpoint of a finished result (the gallery's
    /// --keep-checkpoints); by default it is deleted.
    public static func run(_ spec: RunSpec, network: ONNXNetwork, folder: ResultFolder,
                           workingDirectory: String = FileManager.default.currentDirectoryPath,
                           control: RunControl = RunControl(), keepFinishedCheckpoints: Bool = false) throws -> Outcome {
        let record = try folder.adopt(RunRecord(spec: spec, workingDirectory: workingDirectory), what: "run record", same: { $0.spec == spec }) {
            "\(folder.path) holds another run (\(difference($0.spec, spec))); choose another --out, or continue that run with --resume \(folder.path)"
        }
        return try execute(record, network: network, folder: folder, control: control, keepFinishedCheckpoints: keepFinishedCheckpoints)
    }

    /// Reads the run saved in `directory` (from any working directory), checks that its model
    /// and photos are unchanged, loads the model with `load`, and continues the run.
    public static func resume(directory: String, control: RunControl = RunControl(),
                              load: (String, RunSpec) throws -> ONNXNetwork) throws -> Outcome {
        var st = stat()
        guard stat(directory, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw RunSpecError.file(path: directory, reason: "no such run folder")
        }
        guard FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent("run.json")) else {
            throw RunSpecError.file(path: directory, reason: "has no run.json: not a folder written by invert, maximize or run")
        }
        let folder = try ResultFolder(path: directory)
        let record = try folder.read(RunRecord.self, name: "run.json", what: "run record")
        try record.spec.validate()
        let modelPath = record.spec.model.file.resolved(in: record.workingDirectory)
        try checkUnchanged(record.spec.model.file, path: modelPath, what: "model")
        let network = try load(modelPath, record.spec)
        try record.spec.validate(network: network)
        return try execute(record, network: network, folder: folder, control: control)
    }

    static func checkUnchanged(_ reference: FileReference, path: String, what: String) throws {
        let now = try ContentHash.ofFile(path, what: what)
        guard now == reference.hash else {
            throw RunSpecError.mismatch("the \(what) \(path) changed since the run was created (hash \(reference.hash) then, \(now) now); resume refuses to continue with another \(what)")
        }
    }

    static func execute(_ record: RunRecord, network: ONNXNetwork, folder: ResultFolder, control base: RunControl,
                        keepFinishedCheckpoints: Bool = false) throws -> Outcome {
        let spec = record.spec
        // Only the classifier's convolutions: the prior's generator keeps its own (fp32) weights.
        try spec.convolutionPrecision.checkSupported()
        let previousPrecision = network.convolutionPrecision
        network.convolutionPrecision = spec.convolutionPrecision
        defer { network.convolutionPrecision = previousPrecision }
        let preprocessing = try spec.model.preprocessing ?? Preprocessing.forModel(network.model)
        let probe = Probe(network: network, preprocessing: preprocessing)
        let names = spec.resultNames
        let previous = folder.exists("metrics.json") ? try folder.read(RunMetrics.self, name: "metrics.json", what: "metrics file") : nil
        if let previous, previous.specKey != spec.key {
            throw RunSpecError.mismatch("\(folder.path)/run.json does not match the run its results came from (edited after the run was made); start a new run with the settings you want")
        }
        if let previous, previous.ending == .diverged {
            throw RunSpecError.mismatch("the run in \(folder.path) diverged (\(previous.message ?? "non-finite loss")); it cannot continue: start a new run, e.g. with a smaller --lr")
        }
        var results = names.map { previous?.result($0) ?? ResultMetrics(name: $0, ending: .pending, iterations: 0, seconds: 0) }
        var curves = folder.exists("curve.json") ? (try folder.read(CurveFile.self, name: "curve.json", what: "curve file")).curves : [:]

        func readPhoto(_ reference: FileReference, what: String) throws -> RGBImage {
            let path = reference.resolved(in: record.workingDirectory)
            try checkUnchanged(reference, path: path, what: what)
            return try PNG.read(path: path).centreCropped(aspect: 1).resized(width: spec.size, height: spec.size)
        }
        var photo: Tensor? = nil
        switch spec.objective {
        case .inversion(let inv):
            let picture = try readPhoto(inv.image, what: "photo")
            if !folder.exists("original.png") { try folder.writePNG(picture, name: "original.png") }
            photo = picture.tensor()
        case .maximization(let m):
            photo = try m.reference.map { try readPhoto($0, what: "reference photo").tensor() }
        }

        let pending = names.indices.filter { results[$0].ending != .finished || !folder.exists(results[$0].imageFile) }
        let batched = spec.objective.isBatched && names.count > 1 && takesBatches(network)
        if case .maximization(let m) = spec.objective, batched, !pending.isEmpty {
            // All pending targets in one batch, with one checkpoint.
            var control = base
            control.snapshotEvery = spec.snapshotEvery
            control.checkpoint = folder.checkpoint(Maximization.batchCheckpointName)
            control.specKey = spec.key
            control.snapshot = { t, image in
                for (k, i) in pending.enumerated() {
                    try folder.writeImage(image.slice(axis: 0, start: k, end: k + 1), name: String(format: "snapshots/%@-iter-%06d.png", names[i], t))
                }
            }
            let checkpointPath = folder.checkpoint(Maximization.batchCheckpointName)
            let resume = FileManager.default.fileExists(atPath: checkpointPath)
                ? try Checkpoint.load(path: checkpointPath, specKey: spec.key, iterations: spec.iterations) : nil
            let outcomes = try Maximization.runBatch(probe: probe, spec: spec, objective: m, targets: pending.map { m.result($0, seed: spec.seed) },
                                                     names: pending.map { names[$0] }, reference: photo, control: control, resume: resume)
            for ((loop, metrics), i) in zip(outcomes, pending) {
                try folder.writeImage(loop.image, name: metrics.imageFile)
                results[i] = metrics
                curves[names[i]] = loop.curve
            }
            try folder.writeJSON(CurveFile(curves: curves), name: "curve.json")
            try folder.writeJSON(RunMetrics(spec: spec, results: results), name: "metrics.json")
            if outcomes.allSatisfy({ $0.1.ending == .finished }) && !keepFinishedCheckpoints { try? FileManager.default.removeItem(atPath: checkpointPath) }
        }
        for (i, name) in names.enumerated() where pending.contains(i) && !batched {
            var control = base
            control.snapshotEvery = spec.snapshotEvery
            control.checkpoint = folder.checkpoint(name)
            control.specKey = spec.key
            let prefix = names.count == 1 ? "" : name + "-"
            control.snapshot = { t, image in try folder.writeImage(image, name: String(format: "snapshots/%@iter-%06d.png", prefix, t)) }
            let checkpointPath = folder.checkpoint(name)
            let resume = FileManager.default.fileExists(atPath: checkpointPath)
                ? try Checkpoint.load(path: checkpointPath, specKey: spec.key, iterations: spec.iterations) : nil
            let loop: RunRecordOfLoop
            var metrics: ResultMetrics
            switch spec.objective {
            case .inversion(let inv):
                (loop, metrics) = try Inversion.run(probe: probe, target: photo!, spec: spec, objective: inv, control: control, resume: resume)
                let models = (spec.model.file.resolved(in: record.workingDirectory) as NSString).deletingLastPathComponent
                (metrics.lpipsAlex, metrics.lpipsVgg) = LPIPSCache.distances(loop.image, photo!, modelsDirectory: models)
            case .maximization(let m):
                let (target, seed) = m.result(i, seed: spec.seed)
                (loop, metrics) = try Maximization.run(probe: probe, spec: spec, objective: m, target: target, seed: seed, name: name,
                                                       reference: photo, control: control, resume: resume)
            }
            try folder.writeImage(loop.image, name: metrics.imageFile)
            results[i] = metrics
            curves[name] = loop.curve
            try folder.writeJSON(CurveFile(curves: curves), name: "curve.json")
            try folder.writeJSON(RunMetrics(spec: spec, results: results), name: "metrics.json")
            // A finished result needs no checkpoint; an interrupted or diverged one keeps its last good one.
            if metrics.ending == .finished && !keepFinishedCheckpoints { try? FileManager.default.removeItem(atPath: checkpointPath) }
            if metrics.ending != .finished { break }
        }
        let metrics = RunMetrics(spec: spec, results: results)
        if !folder.exists("metrics.json") { try folder.writeJSON(metrics, name: "metrics.json") }
        return Outcome(record: record, metrics: metrics, folder: folder)
    }

    /// Whether a run may stack several images in one batch through `network`: not when its graph
    /// input fixes a batch of one (SqueezeNet's [1, 3, 227, 227]), which takes one image at a time.
    public static func takesBatches(_ network: ONNXNetwork) -> Bool { (network.imageInput?.shape?.first ?? nil) != 1 }

    /// The first few fields in which two specs differ, as `path: old -> new`.
    public static func difference(_ a: RunSpec, _ b: RunSpec) -> String {
        func flatten(_ value: Any, _ path: String, into out: inout [String: String]) {
            if let d = value as? [String: Any] {
                for (k, v) in d { flatten(v, path.isEmpty ? k : path + "." + k, into: &out) }
            } else if let a = value as? [Any] {
                for (i, v) in a.enumerated() { flatten(v, "\(path)[\(i)]", into: &out) }
                if a.isEmpty { out[path] = "[]" }
            } else {
                out[path] = "\(value)"
            }
        }
        var fa: [String: String] = [:], fb: [String: String] = [:]
        if let ja = try? JSONSerialization.jsonObject(with: a.canonicalJSON) { flatten(ja, "", into: &fa) }
        if let jb = try? JSONSerialization.jsonObject(with: b.canonicalJSON) { flatten(jb, "", into: &fb) }
        // Shallow fields first: "prior.kind: dip -> tv" says more than the generator it implies.
        func depth(_ k: String) -> Int { k.filter { $0 == "." || $0 == "[" }.count }
        let keys = Set(fa.keys).union(fb.keys).filter { fa[$0] != fb[$0] }.sorted { (depth($0), $0) < (depth($1), $1) }
        let shown = keys.prefix(3).map { "\($0): \(fa[$0] ?? "absent") -> \(fb[$0] ?? "absent")" }
        return shown.joined(separator: "; ") + (keys.count > 3 ? "; and \(keys.count - 3) more" : "")
    }
}

extension Runner {
    /// One optimisation step at a time of `spec`'s first target, with the parametrisation and
    /// objective a run uses, for benchmarks (no files: `probe` and `photo` are given).
    public static func stepper(_ spec: RunSpec, probe: Probe, photo: Tensor?) throws -> () throws -> Void {
        let behaviour = spec.prior.behaviour
        let p: ImageParametrization
        let objective: (Tensor) throws -> Tensor
        switch spec.objective {
        case .inversion(let inv):
            guard let photo else { throw VisualizeError.invalid("an inversion step needs a photo") }
            let targets = try GradMode.withoutGrad { try probe.features(photo, layers: inv.layers) }
            let stride = try inv.layers.map { try probe.stride(of: $0, height: spec.size, width: spec.size) }.max() ?? 1
            p = try behaviour.parametrization(spec.prior, height: spec.size, width: spec.size, seed: spec.seed,
                                              jitter: behaviour.inversionJitter(stride: stride), iterations: spec.iterations)
            objective = { x in Inversion.dataTerm(try probe.features(x, layers: inv.layers), targets, prior: spec.prior) }
        case .maximization(let m):
            guard let target = m.targets.first else { throw VisualizeError.invalid("no target") }
            let (tensors, measure) = try Maximization.evaluator(probe: probe, layer: m.layer, target: target)
            p = try behaviour.parametrization(spec.prior, height: spec.size, width: spec.size, seed: spec.seed, jitter: m.jitter,
                                              iterations: spec.iterations)
            let weight = behaviour.activationWeight(spec.prior)
            var t = 0
            objective = { x in
                let seen = Maximization.transformed(x, m.transforms, seed: spec.seed, iteration: t)
                t += 1
                return (-(try measure(try probe.features(seen, layers: tensors)))).scaled(by: weight)
            }
        }
        var t = 0
        return {
            p.zeroGrad()
            var loss = try objective(p.image(iteration: t))
            if let r = p.regularizer(iteration: t) { loss = loss + r }
            loss.backward()
            p.step(iteration: t)
            t += 1
        }
    }
}
