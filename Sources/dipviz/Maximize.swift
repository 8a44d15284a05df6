import ArgumentParser
import DipvizImage
import DipvizONNX
import DipvizTensor
import DipvizVisualize
import Foundation

struct Maximize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Activation maximisation: an image that excites a class, a channel or a neuron.")

    @OptionGroup var model: ModelOptions

    @Option(help: "Layer whose units are excited (default for --class: the class scores).")
    var layer: String?

    @Option(help: "Channel(s): I or I-J.")
    var unit: String?

    @Option(help: "Class name (from the labels) or index.")
    var `class`: String?

    @Option(help: "A single neuron's position Y,X in the layer's map (default: the centre) instead of the channel mean.")
    var at: String?

    @Flag(help: "With --unit and no --at: the neuron at the centre of the map.")
    var neuron = false

    @Option(help: "Central fraction of the map a channel is averaged over (1: the whole map).")
    var window: Float = 1

    @Flag(help: "Maximise the class probability instead of the logit.")
    var probability = false

    @Option(help: "Drive the activation to this value instead of maximising it (e.g. 300).")
    var targetValue: Float?

    @Option(help: "Random shifts of up to this many pixels every iteration (robustness).")
    var jitter = 0

    @Option(help: "Class names for --class (default: a labels file beside the model).")
    var labels: String?

    @Option(help: "A photo whose activation is reported for comparison (PNG).")
    var reference: String?

    @OptionGroup var runOptions: RunOptions

    func validate() throws {
        guard runOptions.resume != nil || (unit == nil) != (self.class == nil) else {
            throw ValidationError("give exactly one of --unit and --class")
        }
        if unit != nil && layer == nil && runOptions.resume == nil { throw ValidationError("--unit needs --layer") }
        guard window > 0 && window <= 1 else { throw ValidationError("--window must be in (0, 1]") }
        guard jitter >= 0 else { throw ValidationError("--jitter must not be negative") }
        if let unit { _ = try Maximize.units(unit) }
    }

    static func units(_ text: String) throws -> [Int] {
        let parts = text.split(separator: "-").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count <= 2, let first = parts.first ?? nil, let last = parts.last ?? nil, first >= 0, last >= first, last - first < 4096 else {
            throw ValidationError("--unit takes I or I-J with 0 <= I <= J, got \(text)")
        }
        return Array(first...last)
    }

    func run() throws {
        Interruption.install()
        let (net, preprocessing) = try model.load()
        let probe = Probe(network: net, preprocessing: preprocessing)
        var targets: [MaximizationSettings]
        if let dir = runOptions.resume {
            let record = try JSONDecoder().decode(RunRecordFile.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/run.json")))
            guard let saved = record.maximization else { throw ValidationError("\(dir) is not a maximisation run") }
            targets = saved
        } else {
            targets = try makeTargets(net: net, size: try runOptions.workingSize(net, preprocessing))
        }
        let folder = try OutputFolder(path: runOptions.resume ?? runOptions.out)
        try folder.writeJSON(RunRecordFile(command: "maximize", model: model.model, image: reference, maximization: targets), name: "run.json")
        let size = targets[0].size
        let x0 = try reference.map { try PNG.read(path: $0).centreCropped(aspect: 1).resized(width: size, height: size).tensor() }
        let single = targets.count == 1
        var all: [MaximizationMetrics] = [], curves: [String: [CurvePoint]] = [:]
        for settings in targets {
            let name = single ? "image" : Maximize.label(settings.target)
            if !single, FileManager.default.fileExists(atPath: folder.file("\(name).png")),
               !FileManager.default.fileExists(atPath: folder.file("\(name)/checkpoint.partial")),
               let data = FileManager.default.contents(atPath: folder.file("\(name).metrics.json")),
               let done = try? JSONDecoder().decode(MaximizationMetrics.self, from: data), done.ending == .finished {
                all.append(done)
                continue
            }
            let prefix = single ? "" : name
            let resume = runOptions.resume != nil ? try? Checkpoint.load(directory: single ? folder.path : folder.file(prefix)) : nil
            var control = folder.control(snapshotEvery: runOptions.snapshotEvery, prefix: prefix)
            control.progress = ProgressLine(label: "maximize \(Maximize.label(settings.target)) (\(settings.prior.rawValue))").update
            control.shouldStop = { Interruption.isRequested }
            let result = try Maximization.run(probe: probe, settings: settings, reference: x0, control: control, resume: resume,
                                              modelName: model.model)
            try folder.writeImage(result.image, name: "\(name).png")
            if !single { try folder.writeJSON(result.metrics, name: "\(name).metrics.json") }
            all.append(result.metrics)
            curves[name] = result.curve
            if result.metrics.ending != .finished {
                try folder.writeJSON(single ? AnyMetrics.one(result.metrics) : .many(all), name: "metrics.json")
                try finish(result.metrics.ending, message: result.metrics.message, folder: folder.path, summary: "")
            }
        }
        try folder.writeJSON(single ? AnyMetrics.one(all[0]) : .many(all), name: "metrics.json")
        try folder.writeJSON(single ? AnyCurve.one(curves["image"] ?? []) : .many(curves), name: "curve.json")
        let summary = all.map { m -> String in
            var s = String(format: "%@: activation %.4g (start %.4g)", Maximize.label(m.settings.target), m.activation, m.activationStart)
            if let p = m.probability { s += String(format: ", probability %.4f", p) }
            return s
        }.joined(separator: "\n")
        try finish(.finished, message: nil, folder: folder.path, summary: summary)
    }

    func makeTargets(net: ONNXNetwork, size: Int) throws -> [MaximizationSettings] {
        var base: [ActivationTarget] = []
        var layerName = layer ?? "scores"
        if let cls = self.class {
            let index: Int
            if let i = Int(cls) { index = i } else {
                guard let path = labels ?? ClassLabels.besideModel(model.model) else {
                    throw ValidationError("--class \(cls) needs --labels (no labels file beside the model)")
                }
                let names = try ClassLabels.load(path: path)
                guard let i = names.firstIndex(where: { $0 == cls || $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.contains(cls) })
                else { throw VisualizeError.unknownClass(cls) }
                index = i
            }
            base = [.classScore(index: index, probability: probability)]
            layerName = layer ?? "scores"
        } else {
            _ = try net.resolve(layer!)
            var position: (Int, Int)? = nil
            if let at {
                let p = at.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard p.count == 2 else { throw ValidationError("--at takes Y,X") }
                position = (p[0], p[1])
            }
            base = try Maximize.units(unit!).map { u in
                if let position { return .neuron(unit: u, y: position.0, x: position.1) }
                return neuron ? .neuron(unit: u, y: nil, x: nil) : .channel(unit: u, window: window)
            }
        }
        let fullyConnected = self.class != nil || (try? net.resolve(layerName)).map { t in
            net.nodes.first { $0.outputs.first == t }.map { ["Gemm", "MatMul"].contains($0.opType) } ?? false
        } ?? false
        return base.map { target in
            var s = MaximizationSettings(layer: layerName, target: target, prior: runOptions.prior, iterations: runOptions.iterations,
                                         size: size, seed: runOptions.seed)
            s.generator = runOptions.generator(default: .maximization).fitted(toImageSize: size)
            // The paper's rate: 1e-3 for convolutional layers, 1e-2 for fully connected ones.
            s.learningRate = runOptions.lr ?? (fullyConnected ? 1e-2 : 1e-3)
            if let targetValue { s.objective = .reach(targetValue) }
            s.jitter = jitter
            if let weight = runOptions.dataWeight { s.tv.dataWeight = weight }
            return s
        }
    }

    static func label(_ t: ActivationTarget) -> String {
        switch t {
        case let .classScore(index, _): return "class-\(index)"
        case let .channel(unit, _): return "unit-\(unit)"
        case let .neuron(unit, y, x): return y.map { "unit-\(unit)-at-\($0)-\(x ?? 0)" } ?? "unit-\(unit)"
        }
    }
}

enum AnyMetrics: Encodable {
    case one(MaximizationMetrics), many([MaximizationMetrics])
    func encode(to encoder: Encoder) throws {
        switch self {
        case .one(let m): try m.encode(to: encoder)
        case .many(let list):
            var c = encoder.container(keyedBy: Key.self)
            try c.encode(list, forKey: .results)
        }
    }
    enum Key: String, CodingKey { case results }
}

enum AnyCurve: Encodable {
    case one([CurvePoint]), many([String: [CurvePoint]])
    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .one(let list): try c.encode(list)
        case .many(let map): try c.encode(map)
        }
    }
}
