import ArgumentParser
import DipvizONNX
import DipvizVisualize
import Foundation

extension ClassScore: ExpressibleByArgument {}

struct Maximize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Activation maximisation: an image that excites a class, a channel or a neuron.")

    @OptionGroup var model: RunModelOptions

    @Option(help: "Layer whose units are excited (with --unit).")
    var layer: String?

    @Option(help: "Channel(s): I or I-J (at most 4096).")
    var unit: String?

    @Option(help: "Class name (from the labels) or index; reads the class scores.")
    var `class`: String?

    @Option(help: "An objective expression instead of --unit/--class, e.g. 'conv4:12 - 0.5*conv4:40', 'conv4:12@6,6', 'class(black swan) - 0.2*class(goose)', 'direction(conv5, v.npy)'.")
    var objective: String?

    @Option(help: "A single neuron's position Y,X in the layer's map instead of the channel mean.")
    var at: String?

    @Flag(help: "With --unit and no --at: the neuron at the centre of the map.")
    var neuron = false

    @Option(help: "Central fraction of the map a channel is averaged over (1: the whole map).")
    var window: Float?

    @Option(help: "With --class: the score raised: logit, probability or log-probability. Default: log-probability under --prior dip, the logit under the others.")
    var score: ClassScore?

    @Option(help: "Drive the activation to this value instead of maximising it (e.g. 300).")
    var targetValue: Float?

    @Option(help: "Random shifts of up to this many pixels every iteration (robustness).")
    var jitter: Int?

    @Option(help: "Random transforms before the classifier every iteration: standard (Lucid's: pad=12,jitter=8,scale=0.9:1.1,rotate=10,final-jitter=4,fill=0.5), none, or changes to the standard such as rotate=5,pad=16. Default: standard.")
    var transforms: String?

    @Flag(help: "With several units: optimise them one after another instead of in one batch.")
    var oneAtATime = false

    @Option(help: "Several images of the one target, from seeds SEED, SEED+1, ..., optimised in one batch (2-64); with a diversity(LAYER) term in --objective they are pushed apart.")
    var images: Int?

    @Option(help: "Class names for --class (default: a labels file beside the model).")
    var labels: String?

    @Option(help: "A photo whose activation is reported for comparison (PNG).")
    var reference: String?

    @OptionGroup var runOptions: RunOptions

    func validate() throws {
        guard runOptions.resume == nil else { return }
        guard model.model != nil else { throw ValidationError("give the model (an ONNX file)") }
        guard [unit != nil, self.class != nil, objective != nil].filter({ $0 }).count == 1 else {
            throw ValidationError("give exactly one of --unit, --class and --objective")
        }
        if objective != nil && (layer != nil || at != nil || neuron || window != nil || score != nil) {
            throw ValidationError("--objective names its own layers, units and classes; give no --layer, --at, --neuron, --window or --score")
        }
        if unit != nil && layer == nil { throw ValidationError("--unit needs --layer") }
        if self.class != nil && layer != nil { throw ValidationError("--class reads the class scores; --layer goes with --unit") }
        if let window, !(window.isFinite && window > 0 && window <= 1) { throw ValidationError("--window \(window) is not valid; give 0 < window <= 1") }
        if let jitter, jitter < 0 { throw ValidationError("--jitter must not be negative") }
        if let images, !(2...64).contains(images) { throw ValidationError("--images \(images) is not valid; give 2...64") }
        if images != nil && (unit.map { (try? Maximize.units($0))?.count ?? 1 } ?? 1) > 1 {
            throw ValidationError("--images makes several images of one target; give one unit, not a range")
        }
        if let targetValue, !targetValue.isFinite { throw ValidationError("--target-value must be a finite number") }
        if let unit { _ = try Maximize.units(unit) }
        if let at { _ = try Maximize.position(at) }
        if let transforms { _ = try Maximize.transformSettings(transforms) }
        if self.class != nil && (at != nil || neuron || window != nil) { throw ValidationError("--at, --neuron and --window go with --unit") }
        if self.class == nil && score != nil { throw ValidationError("--score goes with --class") }
    }

    static func units(_ text: String) throws -> ClosedRange<Int> {
        do { return try UnitRange.parse(text) } catch let e as RunSpecError { throw ValidationError("--\(e.description)") }
    }

    static func transformSettings(_ text: String) throws -> TransformSettings? {
        do { return try TransformSettings.parse(text) } catch let e as RunSpecError { throw ValidationError("--\(e.description)") }
    }

    static func position(_ text: String) throws -> (Int, Int) {
        let p = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard p.count == 2, let y = p[0], let x = p[1], y >= 0, x >= 0 else { throw ValidationError("--at takes Y,X with both >= 0, got '\(text)'") }
        return (y, x)
    }

    func run() throws {
        if let dir = runOptions.resume {
            var extra: [String] = []
            if model.model != nil { extra.append("the model") }
            for (given, name) in [(layer != nil, "--layer"), (unit != nil, "--unit"), (self.class != nil, "--class"), (objective != nil, "--objective"), (at != nil, "--at"),
                                  (neuron, "--neuron"), (window != nil, "--window"), (score != nil, "--score"),
                                  (targetValue != nil, "--target-value"), (jitter != nil, "--jitter"), (transforms != nil, "--transforms"), (oneAtATime, "--one-at-a-time"), (images != nil, "--images"), (reference != nil, "--reference"),
                                  (!model.preprocessing.isEmpty, "the preprocessing options")] where given {
                extra.append(name)
            }
            return try RunCommand.resume(dir, options: runOptions, extra: extra, label: "maximize")
        }
        let modelPath = model.model!
        var targets: [ActivationTarget]
        if let objective {
            let labelsPath = labels ?? ClassLabels.besideModel(modelPath)
            targets = [.expression(try ObjectiveExpression.parse(objective, labels: try labelsPath.map { try ClassLabels.load(path: $0) } ?? []))]
        } else if let cls = self.class {
            let prior = runOptions.prior ?? .dip
            targets = [.classScore(index: try classIndex(cls, model: modelPath), score: score ?? prior.defaultClassScore)]
        } else {
            let position = try at.map(Maximize.position)
            targets = try Maximize.units(unit!).map { u in
                if let position { return .neuron(unit: u, y: position.0, x: position.1) }
                return neuron ? .neuron(unit: u, y: nil, x: nil) : .channel(unit: u, window: window ?? 1)
            }
        }
        let task = RunRequest.Task.maximization(layer: self.class == nil ? layer : nil, targets: targets,
                                                goal: targetValue.map { .reach($0) } ?? .maximize, jitter: jitter ?? 0, reference: reference)
        var request = RunRequest(model: modelPath, task: task, prior: runOptions.prior ?? .dip)
        runOptions.fill(&request)
        if let transforms { request.transforms = try Maximize.transformSettings(transforms) }
        request.batch = !oneAtATime
        request.images = images
        let what = objective ?? self.class.map { "class \($0)" } ?? "\(layer ?? "") unit \(unit ?? "")"
        try RunCommand.start(request, preprocessing: model.preprocessing, out: runOptions.out!,
                             label: "maximize \(what) (\(request.prior.rawValue))")
    }

    func classIndex(_ cls: String, model: String) throws -> Int {
        if cls.allSatisfy(\.isNumber), let i = Int(cls) { return i }
        guard let path = labels ?? ClassLabels.besideModel(model) else {
            throw ValidationError("--class \(cls) needs --labels (no labels file beside the model); or give the class index")
        }
        guard let i = ClassLabels.index(of: cls, in: try ClassLabels.load(path: path)) else { throw VisualizeError.unknownClass(cls) }
        return i
    }
}
