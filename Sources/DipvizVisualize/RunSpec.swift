import DipvizONNX
import DipvizPrior
import DipvizTensor
import Foundation

/// Everything that defines a run: the model (pinned by a content hash), the objective, the
/// prior and its settings, size, iterations, seed and snapshot interval. Every default is
/// resolved when the spec is made (`RunSpec.resolve`) and every field is checked in one place
/// (`validate`). The command line, the gallery, notebooks and reproduce commands all build or
/// read this one value and hand it to `Runner`.
public struct RunSpec: Codable, Equatable, Sendable {
    /// Version of the result folder's format (run.json, metrics.json, curve.json, checkpoints).
    /// It is part of every gallery cache key, so results of another version are recomputed.
    public static let formatVersion = 3

    public var model: ModelSource
    public var objective: Objective
    public var prior: PriorSpec
    /// Working image size in pixels (square).
    public var size: Int
    public var iterations: Int
    public var seed: UInt64
    /// Iterations between snapshots and checkpoints: a kill loses at most this many.
    public var snapshotEvery: Int
    /// The arithmetic of the classifier's convolutions; nil is fp32, the default, so that runs
    /// written before this field existed read as fp32 and keep their keys.
    public var precision: ConvPrecision?

    enum CodingKeys: String, CodingKey { case model, objective, prior, size, iterations, seed, snapshotEvery = "snapshot_every", precision }

    public static let sizes = 4...8192
    public static let iterationCounts = 1...10_000_000

    public init(model: ModelSource, objective: Objective, prior: PriorSpec, size: Int, iterations: Int, seed: UInt64, snapshotEvery: Int,
                precision: ConvPrecision = .fp32) {
        self.model = model; self.objective = objective; self.prior = prior; self.size = size
        self.iterations = iterations; self.seed = seed; self.snapshotEvery = snapshotEvery
        self.precision = precision == .fp32 ? nil : precision
    }

    /// The precision the classifier's convolutions run in.
    public var convolutionPrecision: ConvPrecision { precision ?? .fp32 }

    /// The spec as canonical JSON (sorted keys): what hashes and comparisons use.
    public var canonicalJSON: Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return (try? encoder.encode(self)) ?? Data()
    }

    /// A stable hash of the spec and the result format: the gallery's cache key.
    public var key: String { ContentHash.hex(ContentHash.of(canonicalJSON + Data("format \(RunSpec.formatVersion)".utf8))) }

    /// Names of the results a run writes (`image` for one target, else one per target).
    public var resultNames: [String] {
        switch objective {
        case .inversion: return ["image"]
        case .maximization(let m):
            if let n = m.images { return (0..<n).map { "image-\($0)" } }
            return m.targets.count == 1 ? ["image"] : m.targets.map(\.label)
        }
    }
}

/// A file a run reads, with a hash of its content, so that a resume or a cached gallery result
/// is never silently made from a different file.
public struct FileReference: Codable, Equatable, Sendable {
    /// As given when the run was created: relative to the run's working directory, or absolute.
    public var path: String
    /// `h64:` and 16 hex digits (`ContentHash`).
    public var hash: String

    public init(path: String, hash: String) { self.path = path; self.hash = hash }

    /// Reads and hashes `path` (after checking it is a regular file of bounded size).
    public static func make(_ path: String, what: String) throws -> FileReference {
        FileReference(path: path, hash: try ContentHash.ofFile(path, what: what))
    }

    /// The path to open: relative paths are taken from `directory` (the run's working directory).
    public func resolved(in directory: String?) -> String {
        guard !path.hasPrefix("/"), let directory else { return path }
        return (directory as NSString).appendingPathComponent(path)
    }
}

/// The model and, when the user overrode it, how images are fed to it (nil: the model's own
/// preprocessing, which the model's hash pins).
public struct ModelSource: Codable, Equatable, Sendable {
    public var file: FileReference
    public var preprocessing: Preprocessing?

    public init(file: FileReference, preprocessing: Preprocessing? = nil) { self.file = file; self.preprocessing = preprocessing }

    public static func == (a: ModelSource, b: ModelSource) -> Bool {
        guard a.file == b.file else { return false }
        switch (a.preprocessing, b.preprocessing) {
        case (nil, nil): return true
        case let (x?, y?):
            return x.channelOrder == y.channelOrder && x.scale == y.scale && x.mean == y.mean && x.std == y.std && x.inputSize == y.inputSize
        default: return false
        }
    }
}

/// What the run optimises for.
public enum Objective: Codable, Equatable, Sendable {
    /// Natural pre-image: features at `layers` match those of the photo.
    case inversion(InversionObjective)
    /// Activation maximisation of one or several targets (each its own image).
    case maximization(MaximizationObjective)

    enum CodingKeys: String, CodingKey { case kind }

    /// JSON as `{"kind": "inversion", ...fields}`.
    public init(from decoder: Decoder) throws {
        let kind = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .kind)
        switch kind {
        case "inversion": self = .inversion(try InversionObjective(from: decoder))
        case "maximization": self = .maximization(try MaximizationObjective(from: decoder))
        default:
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath + [CodingKeys.kind],
                                                    debugDescription: "unknown objective \(kind); valid: inversion, maximization"))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .inversion(let i): try c.encode("inversion", forKey: .kind); try i.encode(to: encoder)
        case .maximization(let m): try c.encode("maximization", forKey: .kind); try m.encode(to: encoder)
        }
    }

    var isBatched: Bool { if case .maximization(let m) = self { return m.batch == true || m.images != nil }; return false }

    public var kindName: String {
        switch self { case .inversion: return "inversion"; case .maximization: return "maximization" }
    }
}

public struct InversionObjective: Codable, Equatable, Sendable {
    public var image: FileReference
    public var layers: [String]
    public init(image: FileReference, layers: [String]) { self.image = image; self.layers = layers }
}

public struct MaximizationObjective: Codable, Equatable, Sendable {
    /// The layer whose units are read; nil for class targets (the class scores).
    public var layer: String?
    public var targets: [ActivationTarget]
    public var goal: MaximizationGoal
    /// Random shifts of up to this many pixels every iteration (robustness; 0: none).
    public var jitter: Int
    /// A photo whose activation is reported for comparison.
    public var reference: FileReference?
    /// Random transforms of the image before the classifier, every iteration (nil: none).
    public var transforms: TransformSettings?
    /// Several targets optimised together in one batch (nil or false: one after another).
    public var batch: Bool?
    /// Images of the (single) target, each from its own seed (the run's seed + k for image k),
    /// optimised in one batch, so that a diversity term can compare them (nil: one image).
    public var images: Int?

    public init(layer: String?, targets: [ActivationTarget], goal: MaximizationGoal = .maximize, jitter: Int = 0,
                reference: FileReference? = nil) {
        self.layer = layer; self.targets = targets; self.goal = goal; self.jitter = jitter; self.reference = reference
    }

    public init(layer: String?, targets: [ActivationTarget], goal: MaximizationGoal = .maximize, jitter: Int = 0,
                reference: FileReference? = nil, transforms: TransformSettings?, batch: Bool? = nil) {
        self.init(layer: layer, targets: targets, goal: goal, jitter: jitter, reference: reference)
        self.transforms = transforms
        self.batch = batch
    }

    var isClass: Bool { targets.contains { if case .classScore = $0 { return true }; return false } }
    /// Results of the run: one per target, or `images` of the one target.
    public var resultCount: Int { images ?? targets.count }
    /// Result i's target and the seed it starts from.
    func result(_ i: Int, seed: UInt64) -> (target: ActivationTarget, seed: UInt64) {
        images == nil ? (targets[i], seed) : (targets[0], seed &+ UInt64(i))
    }
    /// The objective expression, when the target is one.
    var expression: ObjectiveExpression? { if case let .expression(e)? = targets.first { return e }; return nil }
}

/// Which score of a class a class target raises.
public enum ClassScore: String, Codable, Equatable, Sendable, CaseIterable {
    /// The class's logit (pre-softmax score): Lucid's choice; rivals may rise with it.
    case logit
    /// The softmax probability: saturates, so its gradient vanishes once the class wins or
    /// while it is improbable.
    case probability
    /// The log softmax: the logit less the log of the summed exponentials, so it falls when
    /// rival classes rise, and its gradient does not vanish while the class is improbable.
    case logProbability = "log-probability"

    /// How pages name it: "logit", "probability", "log-probability".
    public var phrase: String { rawValue }
}

/// What to excite.
public enum ActivationTarget: Codable, Equatable, Sendable {
    /// A class score: the logit, the softmax probability or its logarithm.
    case classScore(index: Int, score: ClassScore)
    /// A channel, averaged over the central `window` fraction of its map (1: the whole map).
    case channel(unit: Int, window: Float)
    /// One neuron; a nil position means the centre of the map.
    case neuron(unit: Int, y: Int?, x: Int?)
    /// A weighted sum of terms written as text (ObjectiveExpression.swift).
    case expression(ObjectiveExpression)

    enum CodingKeys: String, CodingKey { case kind, index, score, probability, unit, window, y, x }

    /// JSON as `{"kind": "class", "index": 100, "score": "log-probability"}`, `{"kind": "channel",
    /// "unit": 3, "window": 1}` or `{"kind": "neuron", "unit": 3, "y": 6, "x": 6}`.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decode(String.self, forKey: .kind) {
        case "class":
            // Runs written before the log-probability score say `"probability": true|false`.
            let score = try c.decodeIfPresent(ClassScore.self, forKey: .score)
                ?? (try c.decode(Bool.self, forKey: .probability) ? .probability : .logit)
            self = .classScore(index: try c.decode(Int.self, forKey: .index), score: score)
        case "channel": self = .channel(unit: try c.decode(Int.self, forKey: .unit), window: try c.decode(Float.self, forKey: .window))
        case "neuron":
            self = .neuron(unit: try c.decode(Int.self, forKey: .unit), y: try c.decodeIfPresent(Int.self, forKey: .y),
                           x: try c.decodeIfPresent(Int.self, forKey: .x))
        case "expression": self = .expression(try ObjectiveExpression(from: decoder))
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .kind, in: c, debugDescription: "unknown target \(other); valid: class, channel, neuron, expression")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case let .classScore(index, score):
            try c.encode("class", forKey: .kind); try c.encode(index, forKey: .index); try c.encode(score, forKey: .score)
        case let .channel(unit, window):
            try c.encode("channel", forKey: .kind); try c.encode(unit, forKey: .unit); try c.encode(window, forKey: .window)
        case let .neuron(unit, y, x):
            try c.encode("neuron", forKey: .kind); try c.encode(unit, forKey: .unit)
            try c.encodeIfPresent(y, forKey: .y); try c.encodeIfPresent(x, forKey: .x)
        case let .expression(e): try c.encode("expression", forKey: .kind); try e.encode(to: encoder)
        }
    }

    /// A file-name-safe label: `class-100`, `unit-3`, `unit-3-at-2-4`.
    public var label: String {
        switch self {
        case let .classScore(index, _): return "class-\(index)"
        case let .channel(unit, _): return "unit-\(unit)"
        case let .neuron(unit, y, x): return y.map { "unit-\(unit)-at-\($0)-\(x ?? 0)" } ?? "unit-\(unit)"
        case .expression: return "objective"
        }
    }

    public var unit: Int? {
        switch self {
        case .classScore, .expression: return nil
        case let .channel(unit, _), let .neuron(unit, _, _): return unit
        }
    }
}

public enum MaximizationGoal: Codable, Equatable, Sendable {
    case maximize
    /// Minimise |value - activation| (the DIP notebook drives a logit to 300).
    case reach(Float)

    enum CodingKeys: String, CodingKey { case kind, value }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decode(String.self, forKey: .kind) {
        case "maximize": self = .maximize
        case "reach": self = .reach(try c.decode(Float.self, forKey: .value))
        case let other: throw DecodingError.dataCorruptedError(forKey: .kind, in: c, debugDescription: "unknown goal \(other); valid: maximize, reach")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .maximize: try c.encode("maximize", forKey: .kind)
        case .reach(let v): try c.encode("reach", forKey: .kind); try c.encode(v, forKey: .value)
        }
    }
}

/// The prior and its settings: a generator and Adam's rate for `dip`, Mahendran & Vedaldi's
/// settings for `tv` and `pixel`.
public struct PriorSpec: Codable, Equatable, Sendable {
    public var kind: PriorKind
    public var generator: PriorConfiguration?
    public var learningRate: Float?
    public var tv: TVSettings?

    enum CodingKeys: String, CodingKey { case kind, generator, learningRate = "learning_rate", tv }

    public init(kind: PriorKind, generator: PriorConfiguration? = nil, learningRate: Float? = nil, tv: TVSettings? = nil) {
        self.kind = kind; self.generator = generator; self.learningRate = learningRate; self.tv = tv
    }

    var behaviour: any PriorBehaviour { kind.behaviour }
}

/// A user-caused problem with a run: what was wrong, where, and what is valid.
public enum RunSpecError: Error, CustomStringConvertible, Equatable {
    case invalid(field: String, message: String)
    case file(path: String, reason: String)
    case mismatch(String)

    public var description: String {
        switch self {
        case let .invalid(field, message): return "\(field): \(message)"
        case let .file(path, reason): return "\(path): \(reason)"
        case .mismatch(let s): return s
        }
    }
}

/// What a user asked for; nil means "the default", which `RunSpec.resolve` fills in.
public struct RunRequest: Sendable {
    public enum Task: Sendable {
        case inversion(image: String, layers: [String])
        case maximization(layer: String?, targets: [ActivationTarget], goal: MaximizationGoal, jitter: Int, reference: String?)
    }

    public var model: String
    /// Preprocessing when the user overrode any of it (nil: the model's own).
    public var preprocessing: Preprocessing?
    public var task: Task
    public var prior: PriorKind
    public var preset: String?
    public var iterations: Int?
    public var learningRate: Float?
    public var size: Int?
    public var seed: UInt64 = 0
    public var dataWeight: Float?
    public var snapshotEvery: Int?
    /// Transforms of a maximisation (nil: none); Lucid's standard ones unless changed.
    public var transforms: TransformSettings? = .standard
    /// Whether several targets of a maximisation are optimised in one batch.
    public var batch = true
    /// Images of one maximisation target, from seeds seed, seed + 1, ... (nil: one).
    public var images: Int?
    /// The arithmetic of the classifier's convolutions.
    public var precision = ConvPrecision.fp32

    public init(model: String, task: Task, prior: PriorKind) { self.model = model; self.task = task; self.prior = prior }
}

extension RunSpec {
    /// Fills in every default of `request` for `network` (loaded from `request.model`) and
    /// validates the result.
    public static func resolve(_ request: RunRequest, network: ONNXNetwork) throws -> RunSpec {
        let model = ModelSource(file: try FileReference.make(request.model, what: "model"), preprocessing: request.preprocessing)
        let preprocessing = try request.preprocessing ?? Preprocessing.forModel(network.model)
        let size = try workingSize(network, preprocessing, requested: request.size)
        var objective: Objective
        switch request.task {
        case let .inversion(image, layers):
            objective = .inversion(InversionObjective(image: try FileReference.make(image, what: "photo"), layers: layers))
        case let .maximization(layer, targets, goal, jitter, reference):
            objective = .maximization(MaximizationObjective(layer: layer, targets: targets, goal: goal, jitter: jitter,
                                                            reference: try reference.map { try FileReference.make($0, what: "reference photo") },
                                                            transforms: request.transforms, batch: targets.count > 1 ? request.batch : nil))
            if let n = request.images, n > 1, case .maximization(var m) = objective {
                m.images = n
                objective = .maximization(m)
            }
        }
        let behaviour = request.prior.behaviour
        let prior = try behaviour.settings(for: request, objective: objective, size: size, network: network)
        let spec = RunSpec(model: model, objective: objective, prior: prior, size: size,
                           iterations: request.iterations ?? behaviour.defaultIterations(prior),
                           seed: request.seed, snapshotEvery: request.snapshotEvery ?? 100, precision: request.precision)
        try spec.validate(network: network)
        return spec
    }

    /// The paper's rate: 1e-3 for convolutional layers, 1e-2 for fully connected ones and classes.
    static func defaultLearningRate(_ objective: Objective, network: ONNXNetwork) -> Float {
        guard case .maximization(let m) = objective else { return 1e-3 }
        if m.isClass { return 1e-2 }
        guard let layer = m.layer, let tensor = try? network.resolve(layer) else { return 1e-3 }
        let fullyConnected = network.nodes.first { $0.outputs.first == tensor }.map { ["Gemm", "MatMul"].contains($0.opType) } ?? false
        return fullyConnected ? 1e-2 : 1e-3
    }

    /// The TV/pixel data weight C: `TVSettings.inversionDataWeight` for inversion (see TVSettings);
    /// for maximisation, where the data term is -C times the activation, a C that makes it of the
    /// order of the regularisers: class logits reach a few hundred, channels tens, probabilities one.
    static func defaultDataWeight(_ objective: Objective) -> Float {
        guard case .maximization(let m) = objective, let first = m.targets.first else { return TVSettings.inversionDataWeight }
        switch first {
        // The log-probability's gradient is the logit's less the softmax-weighted mean: the same scale.
        case .classScore(_, let score): return score == .probability ? 1 : 0.003
        case .channel, .neuron, .expression: return 0.03
        }
    }

    /// The working size: the graph's when it fixes one (a requested size must then match).
    static func workingSize(_ net: ONNXNetwork, _ preprocessing: Preprocessing, requested: Int?) throws -> Int {
        let fixed = net.imageInput?.shape.flatMap { $0.count == 4 ? $0[2] : nil }
        let (h, w) = net.inputSize(preprocessing: preprocessing)
        if fixed != nil {
            guard h == w else { throw RunSpecError.invalid(field: "size", message: "the model takes \(h)x\(w) input; only square inputs are supported") }
            if let requested, requested != h { throw RunSpecError.invalid(field: "size", message: "the model takes \(h)x\(w) input; --size \(requested) does not fit") }
            return h
        }
        return requested ?? h
    }

    /// Checks every field; with `network`, also layers, units and the memory a step needs.
    public func validate(network: ONNXNetwork? = nil, memoryLimit: Int? = nil) throws {
        func check(_ ok: Bool, _ field: String, _ message: @autoclosure () -> String) throws {
            if !ok { throw RunSpecError.invalid(field: field, message: message()) }
        }
        func finite(_ v: Float, _ field: String, positive: Bool = true) throws {
            try check(v.isFinite && (!positive || v > 0), field, "\(v) is not valid; give a finite number\(positive ? " above 0" : "")")
        }
        try check(RunSpec.sizes.contains(size), "size", "\(size) pixels; valid: \(RunSpec.sizes.lowerBound)...\(RunSpec.sizes.upperBound)")
        try check(RunSpec.iterationCounts.contains(iterations), "iterations",
                  "\(iterations); valid: \(RunSpec.iterationCounts.lowerBound)...\(RunSpec.iterationCounts.upperBound)")
        try check(snapshotEvery >= 1, "snapshot-every", "\(snapshotEvery); valid: 1 or more")
        try check(!model.file.path.isEmpty, "model", "no model file given")
        try check(convolutionPrecision == .fp32 || prior.kind.behaviour.offersBF16, "precision",
                  "bf16 is offered for the tv, pixel and fft priors; under dip the generator dominates each step, so it saves nothing (give fp32)")
        try convolutionPrecision.checkSupported()
        if let p = model.preprocessing {
            do { try p.validate() } catch { throw RunSpecError.invalid(field: "preprocessing", message: "\(error)") }
        }
        try prior.behaviour.validate(prior)
        switch objective {
        case .inversion(let inv):
            try check(!inv.layers.isEmpty, "layer", "give at least one layer to invert")
            try check(!inv.image.path.isEmpty, "image", "no photo given")
        case .maximization(let m):
            try check(!m.targets.isEmpty, "unit", "give at least one unit or class")
            try check(m.targets.count <= 4096, "unit", "\(m.targets.count) targets; at most 4096 in one run")
            try check(m.jitter >= 0 && m.jitter <= size / 2, "jitter", "\(m.jitter); valid: 0...\(size / 2) for size \(size)")
            if case .reach(let v) = m.goal { try finite(v, "target-value", positive: false) }
            try m.transforms?.validate(size: size)
            try check(m.layer != nil || m.isClass || m.expression != nil, "layer", "give the layer whose units are excited")
            try check(Set(m.targets.map(\.label)).count == m.targets.count, "unit", "a target is listed twice")
            for t in m.targets {
                switch t {
                case .classScore(let index, _): try check(index >= 0, "class", "\(index); class indices start at 0")
                case let .channel(unit, window):
                    try check(unit >= 0, "unit", "\(unit); units start at 0")
                    try check(window.isFinite && window > 0 && window <= 1, "window", "\(window); valid: 0 < window <= 1")
                case let .neuron(unit, y, x):
                    try check(unit >= 0, "unit", "\(unit); units start at 0")
                    try check((y == nil) == (x == nil) && (y ?? 0) >= 0 && (x ?? 0) >= 0, "at", "a position is Y,X with both >= 0")
                case let .expression(e):
                    try check(!e.terms.isEmpty && e.terms.allSatisfy { $0.weight.isFinite }, "objective", "'\(e.text)' needs terms with finite weights")
                    try check(m.targets.count == 1 && m.layer == nil, "objective", "an objective expression is the run's only target")
                    try check(!e.hasDiversity || (m.images ?? 1) >= 2, "objective",
                              "diversity(...) compares the images of a batch; give --images 2 or more (e.g. --images 4)")
                }
            }
            if let n = m.images {
                try check(n >= 2 && n <= 64, "images", "\(n); valid: 2...64 images of one target")
                try check(m.targets.count == 1, "images", "several images are of one target; give one unit, class or objective")
            }
        }
        if let network { try validateAgainst(network, memoryLimit: memoryLimit) }
    }

    /// Layer shapes of `network` at `size` (empty when the graph cannot take that size), kept
    /// per network and size: a gallery validates many specs of one model.
    static func summary(_ network: ONNXNetwork, size: Int) -> [LayerSummary] {
        let key = "\(ObjectIdentifier(network).hashValue):\(size)"
        if let (owner, rows) = summaries.value(key), owner.network === network { return rows }
        let rows = (try? network.summarize(height: size, width: size)) ?? []
        summaries.set(key, (WeakNetwork(network: network), rows))
        return rows
    }

    final class WeakNetwork { weak var network: ONNXNetwork?; init(network: ONNXNetwork) { self.network = network } }
    static let summaries = Memo<String, (WeakNetwork, [LayerSummary])>()

    /// Layers exist, units and positions fit their maps, classes fit the scores, and a step
    /// fits the memory limit.
    func validateAgainst(_ network: ONNXNetwork, memoryLimit: Int?) throws {
        // Layers past the deepest one asked for may not fit a small size (a pooling window
        // larger than its input): then shapes are checked when the run reaches them.
        let summary = RunSpec.summary(network, size: size)
        func shape(of layer: String) throws -> [Int] {
            let tensor = try network.resolve(layer)
            return summary.first { $0.tensor == tensor }?.shape ?? []  // empty: unknown at this size
        }
        var deepest: [String] = []
        switch objective {
        case .inversion(let inv):
            for l in inv.layers { _ = try shape(of: l) }
            deepest = inv.layers
        case .maximization(let m):
            if m.expression?.hasDiversity == true, (network.imageInput?.shape?.first ?? nil) == 1 {
                throw RunSpecError.invalid(field: "objective", message: "diversity(...) compares images optimised in one batch, and this model's input takes one image at a time (batch 1)")
            }
            if let e = m.expression {
                let classes = summary.last.map { $0.shape.dropFirst().reduce(1, *) } ?? Int.max
                for term in e.terms {
                    if let layer = term.layer {
                        let s = try shape(of: layer)
                        deepest.append(layer)
                        if let unit = term.index, s.count >= 2, unit >= s[1] { throw VisualizeError.unitOutOfRange(layer: layer, unit: unit, channels: s[1]) }
                        if let y = term.y, let x = term.x, s.count == 4, y >= s[2] || x >= s[3] {
                            throw VisualizeError.positionOutOfRange(layer: layer, y: y, x: x, height: s[2], width: s[3])
                        }
                    } else if let index = term.index, index >= classes {
                        throw VisualizeError.unitOutOfRange(layer: "the class scores", unit: index, channels: classes)
                    }
                }
                // A class term reads the whole network.
                if e.terms.contains(where: { $0.layer == nil }) { deepest = [] }
            } else if let layer = m.layer, !m.isClass {
                let s = try shape(of: layer)
                deepest = [layer]
                if s.count >= 2 {
                    let channels = s[1]
                    for t in m.targets {
                        guard let unit = t.unit else { continue }
                        guard unit < channels else { throw VisualizeError.unitOutOfRange(layer: layer, unit: unit, channels: channels) }
                        if case let .neuron(_, y?, x?) = t, s.count == 4, y >= s[2] || x >= s[3] {
                            throw VisualizeError.positionOutOfRange(layer: layer, y: y, x: x, height: s[2], width: s[3])
                        }
                    }
                }
            } else {
                let classes = summary.last.map { $0.shape.dropFirst().reduce(1, *) } ?? Int.max
                for case let .classScore(index, _) in m.targets where index >= classes {
                    throw VisualizeError.unitOutOfRange(layer: "the class scores", unit: index, channels: classes)
                }
            }
        }
        // Activations of the classifier up to the deepest layer (forward, gradient, scratch),
        // plus the generator's, must fit the memory limit.
        let tensors = Set(try deepest.map { try network.resolve($0) })
        var elements = 0.0, scratch = 0.0
        for row in summary {
            elements += Double(row.shape.reduce(1, *))
            // A convolution's unfolded input (im2col): its MACs over its output channels.
            if row.shape.count >= 2, row.shape[1] > 0 { scratch = Swift.max(scratch, Double(row.macs) / Double(row.shape[1])) }
            if tensors.contains(row.tensor) { break }
        }
        // Values, gradients and the copies around them (preprocessing, jitter, pooling indices).
        var bytes = (elements * 4 + scratch * 2) * 4 + Double(size * size * 3 * 4 * 8)
        if let g = prior.generator { bytes += g.estimatedStepBytes(size: size) }
        let needed = bytes < 9e18 ? (Int(bytes), false) : (0, true)
        try MemoryLimit.check(bytes: needed, what: "a step at \(size)x\(size) px", limit: memoryLimit)
    }
}

/// A fast 64-bit content hash (multiply-rotate mixing over 8-byte words, murmur-style): enough
/// to notice that a file changed, not a cryptographic digest.
public enum ContentHash {
    public static func of(_ data: Data) -> UInt64 {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(data.count)
        let k1: UInt64 = 0x87C3_7B91_1142_53D5, k2: UInt64 = 0x4CF5_AD43_2745_937F
        data.withUnsafeBytes { raw in
            let words = raw.count / 8
            for i in 0..<words {
                var w = raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self) &* k1
                w = (w << 31) | (w >> 33)
                h ^= w &* k2
                h = ((h << 27) | (h >> 37)) &* 5 &+ 0x52DC_E729
            }
            var tail: UInt64 = 0
            for i in (words * 8)..<raw.count { tail |= UInt64(raw[i]) << (8 * UInt64(i - words * 8)) }
            h ^= tail &* k1
        }
        h ^= h >> 33; h = h &* 0xFF51_AFD7_ED55_8CCD; h ^= h >> 33; h = h &* 0xC4CE_B9FE_1A85_EC53; h ^= h >> 33
        return h
    }

    public static func hex(_ h: UInt64) -> String { String(format: "%016llx", h) }

    /// Hashes a regular file (FIFOs, devices and folders are refused before anything is read).
    /// A file seen before with the same identity, size and modification time is not read again
    /// (a gallery resolves many specs of one model).
    public static func ofFile(_ path: String, what: String) throws -> String {
        var st = stat()
        guard !path.isEmpty, stat(path, &st) == 0 else {
            throw RunSpecError.file(path: path.isEmpty ? "\"\"" : path, reason: "no such \(what) file (\(String(cString: strerror(errno))))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw RunSpecError.file(path: path, reason: "the \(what) is not a regular file") }
        let identity = "\(st.st_dev):\(st.st_ino):\(st.st_size):\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec):\(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec)"
        if let known = memo.value(identity) { return known }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw RunSpecError.file(path: path, reason: "cannot read the \(what): \(FileErrors.describe(error))")
        }
        let hash = "h64:" + hex(of(data))
        memo.set(identity, hash)
        return hash
    }

    static let memo = Memo<String, String>()
}

/// A small thread-safe dictionary for values that are costly to compute and never change.
final class Memo<Key: Hashable, Value>: @unchecked Sendable {
    private var values: [Key: Value] = [:]
    private let lock = NSLock()
    func value(_ key: Key) -> Value? { lock.lock(); defer { lock.unlock() }; return values[key] }
    func set(_ key: Key, _ value: Value) { lock.lock(); values[key] = value; lock.unlock() }
}

/// Unit lists as users write them: "I" or "I-J" (0 <= I <= J, at most 4096 units).
public enum UnitRange {
    public static let maximumCount = 4096

    public static func parse(_ text: String) throws -> ClosedRange<Int> {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map { String($0).trimmingCharacters(in: .whitespaces) }
        let numbers = parts.map { p in !p.isEmpty && p.count <= 9 && p.allSatisfy(\.isASCII) && p.allSatisfy(\.isNumber) ? Int(p) : nil }
        guard (1...2).contains(numbers.count), let first = numbers.first ?? nil, let last = numbers.last ?? nil, last >= first else {
            throw RunSpecError.invalid(field: "unit", message: "'\(text)' is not a unit list; write I or I-J with 0 <= I <= J, e.g. 3 or 0-15")
        }
        guard last - first < maximumCount else {
            throw RunSpecError.invalid(field: "unit", message: "'\(text)' asks for \(last - first + 1) units; at most \(maximumCount) in one run")
        }
        return first...last
    }
}
