import DipvizImage
import DipvizONNX
import DipvizPrior
import DipvizTensor
import DipvizVisualize
import Foundation

/// Computes what a gallery needs, reusing every result already on disk (keyed by the
/// experiment's configuration hash), and resuming interrupted ones from their checkpoints.
public final class GalleryBuilder {
    public let spec: GallerySpec
    public let experiments: [Experiment]
    public let output: String
    private var networks: [String: (ONNXNetwork, Preprocessing)] = [:]

    public init(spec: GallerySpec, budget: String, specDirectory: String, output: String) throws {
        self.spec = spec
        self.output = output
        experiments = try spec.experiments(budget: budget, specDirectory: specDirectory)
    }

    public func resultDirectory(_ e: Experiment) -> String { (output as NSString).appendingPathComponent("results/\(e.key)") }

    public func isDone(_ e: Experiment) -> Bool {
        guard let data = FileManager.default.contents(atPath: resultDirectory(e) + "/metrics.json"),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return false }
        return object["ending"] as? String == "finished"
    }

    public var pending: [Experiment] { experiments.filter { !isDone($0) } }

    /// The experiments of shard `index` (1-based) of `count`: a disjoint share, stable across runs.
    public func shard(_ index: Int, of count: Int) -> [Experiment] {
        experiments.enumerated().filter { $0.offset % count == index - 1 }.map(\.element)
    }

    /// Copies finished results from other output folders (shards) into this one.
    public func merge(from folders: [String]) throws -> Int {
        let fm = FileManager.default
        var copied = 0
        for e in experiments where !isDone(e) {
            for folder in folders {
                let source = (folder as NSString).appendingPathComponent("results/\(e.key)")
                let other = try GalleryBuilder(spec: spec, experiments: experiments, output: folder)
                guard other.isDone(e) else { continue }
                let target = resultDirectory(e)
                try? fm.removeItem(atPath: target)
                try fm.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try fm.copyItem(atPath: source, toPath: target)
                copied += 1
                break
            }
        }
        return copied
    }

    init(spec: GallerySpec, experiments: [Experiment], output: String) throws {
        self.spec = spec
        self.experiments = experiments
        self.output = output
    }

    func network(_ path: String) throws -> (ONNXNetwork, Preprocessing) {
        if let n = networks[path] { return n }
        let net = try ONNXNetwork(path: path)
        let n = (net, try Preprocessing.forModel(net.model))
        networks[path] = n
        return n
    }

    /// Runs one experiment into its result folder.
    public func run(_ e: Experiment, control base: RunControl = RunControl(), shouldStop: @escaping () -> Bool = { false }) throws -> RunEnding {
        let (net, preprocessing) = try network(e.modelPath)
        let probe = Probe(network: net, preprocessing: preprocessing)
        let folder = try OutputFolder(path: resultDirectory(e))
        try folder.writeJSON(e, name: "experiment.json")
        var control = folder.control(snapshotEvery: Swift.max(20, e.iterations / 8))
        control.progress = base.progress
        control.shouldStop = shouldStop
        let resume = try? Checkpoint.load(directory: folder.path)
        func generator(_ preset: PriorConfiguration) -> PriorConfiguration { preset.fitted(toImageSize: e.size) }
        switch e.kind {
        case .invert:
            guard let image = e.image else { throw GalleryError.experiment("inversion without an image") }
            let picture = try PNG.read(path: image).centreCropped(aspect: 1).resized(width: e.size, height: e.size)
            try PNG.write(picture, path: folder.file("original.png"))
            var s = InversionSettings(layers: [e.layer], prior: e.prior, iterations: e.iterations, size: e.size, seed: e.seed)
            s.generator = generator(.inversion)
            let r = try Inversion.run(probe: probe, target: picture.tensor(), settings: s, control: control, resume: resume,
                                      modelName: e.modelPath)
            try folder.writeImage(r.image, name: "image.png")
            try folder.writeJSON(r.curve, name: "curve.json")
            try folder.writeJSON(r.metrics, name: "metrics.json")
            return r.metrics.ending
        case .maximize:
            var s = MaximizationSettings(layer: e.layer, target: .channel(unit: e.unit ?? 0, window: 1), prior: e.prior,
                                         iterations: e.iterations, size: e.size, seed: e.seed)
            s.generator = generator(.maximization)
            let r = try Maximization.run(probe: probe, settings: s, control: control, resume: resume, modelName: e.modelPath)
            try folder.writeImage(r.image, name: "image.png")
            try folder.writeJSON(r.curve, name: "curve.json")
            try folder.writeJSON(r.metrics, name: "metrics.json")
            return r.metrics.ending
        }
    }

    /// The command that reproduces an experiment with dipviz.
    public static func command(_ e: Experiment) -> String {
        switch e.kind {
        case .invert:
            return "dipviz invert \(e.modelPath) \(e.image ?? "") --layer \(e.layer) --prior \(e.prior.rawValue) --iterations \(e.iterations) --size \(e.size) --seed \(e.seed) --out \(e.key)"
        case .maximize:
            return "dipviz maximize \(e.modelPath) --layer \(e.layer) --unit \(e.unit ?? 0) --prior \(e.prior.rawValue) --iterations \(e.iterations) --size \(e.size) --seed \(e.seed) --out \(e.key)"
        }
    }
}
