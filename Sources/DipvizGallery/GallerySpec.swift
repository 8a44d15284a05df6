import DipvizONNX
import DipvizVisualize
import Foundation

/// A gallery definition (JSON): the models, images, layers, priors and units to show, and
/// the iteration budgets. Paths are relative to the spec file.
public struct GallerySpec: Codable, Sendable {
    public struct Budget: Codable, Sendable, Equatable {
        public var size: Int
        public var dipIterations: Int
        public var tvIterations: Int
        /// DIP iterations for maximisation (its generator is larger); default: `dipIterations`.
        public var maximizeDipIterations: Int?
        /// Iterations of every prior in a class section (class images run at the classifier's
        /// own input size, so a quick budget needs fewer); default: the prior's usual count.
        public var classIterations: Int?
        enum CodingKeys: String, CodingKey {
            case size, dipIterations = "dip_iterations", tvIterations = "tv_iterations", maximizeDipIterations = "maximize_dip_iterations"
            case classIterations = "class_iterations"
        }

        /// Iterations of a prior: DIP's count, else the hand-made priors' (tv, pixel, fft).
        func iterations(_ prior: PriorKind, maximization: Bool) -> Int {
            prior == .dip ? (maximization ? maximizeDipIterations ?? dipIterations : dipIterations) : tvIterations
        }
    }

    public struct Inversion: Codable, Sendable {
        public var images: [String]
        public var layers: [String]
        public var priors: [PriorKind]
    }

    public struct Maximization: Codable, Sendable {
        public var layer: String
        /// "I" or "I-J".
        public var units: String
        public var priors: [PriorKind]
    }

    /// Class images: each class (a name from the labels beside the model, or an index)
    /// maximised under each prior.
    public struct Classes: Codable, Sendable {
        public var names: [String]
        public var priors: [PriorKind]
    }

    /// Objective expressions (`dipviz maximize --objective` syntax), each under each prior.
    public struct Objectives: Codable, Sendable {
        public var expressions: [String]
        /// Images of each expression, optimised in one batch from seeds SEED, SEED+1, ... (what
        /// a `diversity(LAYER)` term compares; nil: one).
        public var images: Int?
        public var priors: [PriorKind]
    }

    public struct Model: Codable, Sendable {
        public var name: String
        public var path: String
        public var inversion: Inversion?
        public var maximization: Maximization?
        /// Budgets of this model that replace the spec's of the same name (a network much costlier
        /// per step than the others gets a smaller size or fewer iterations).
        public var budgets: [String: Budget]?

        /// The budget `name` for this model.
        public func budget(_ name: String, in spec: GallerySpec) -> Budget? { budgets?[name] ?? spec.budgets[name] }
        public var classes: Classes?
        public var objectives: Objectives?
    }

    public var title: String
    public var description: String?
    public var seed: UInt64?
    public var budgets: [String: Budget]
    public var models: [Model]

    /// The keys each level of a spec may have: anything else is a mistake worth naming.
    static let validKeys: [String: [String]] = [
        "spec": ["title", "description", "seed", "budgets", "models"],
        "budget": ["size", "dip_iterations", "tv_iterations", "maximize_dip_iterations", "class_iterations"],
        "model": ["name", "path", "inversion", "maximization", "budgets", "classes", "objectives"],
        "objectives": ["expressions", "priors", "images"],
        "classes": ["names", "priors"],
        "inversion": ["images", "layers", "priors"],
        "maximization": ["layer", "units", "priors"],
    ]

    /// A path with "." and "x/.." steps removed, kept relative when it is (so result keys and
    /// reproduce commands do not depend on where the repository lives).
    public static func normalized(_ path: String) -> String {
        var out: [String] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true).map(String.init) {
            if part == "." { continue }
            if part == "..", let last = out.last, last != ".." { out.removeLast(); continue }
            out.append(part)
        }
        let joined = out.joined(separator: "/")
        return path.hasPrefix("/") ? "/" + joined : (joined.isEmpty ? "." : joined)
    }

    public static func load(path: String) throws -> GallerySpec {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size <= 16 << 20,
              let data = FileManager.default.contents(atPath: path) else {
            throw GalleryError.spec("cannot read \(path): give a JSON file of at most 16 MiB (see gallery/default.json)")
        }
        return try decode(data, name: path)
    }

    public static func decode(_ data: Data, name: String) throws -> GallerySpec {
        guard let object = try? JSONSerialization.jsonObject(with: data) else { throw GalleryError.spec("\(name) is not valid JSON") }
        try checkKeys(object, level: "spec", path: "", name: name)
        let spec: GallerySpec
        do { spec = try JSONDecoder().decode(GallerySpec.self, from: data) } catch {
            throw GalleryError.spec("\(name): \(DecodingErrors.describe(error))")
        }
        try spec.validate(name: name)
        return spec
    }

    static func checkKeys(_ value: Any, level: String, path: String, name: String) throws {
        guard let object = value as? [String: Any] else { return }
        let valid = validKeys[level] ?? []
        for key in object.keys.sorted() where !valid.contains(key) {
            let closest = valid.min { editDistance($0, key) < editDistance($1, key) } ?? ""
            throw GalleryError.spec("\(name): unknown key '\(key)' in \(path.isEmpty ? "the spec" : path); did you mean '\(closest)'? Valid: \(valid.joined(separator: ", "))")
        }
        if level == "spec", let budgets = object["budgets"] as? [String: Any] {
            for (k, v) in budgets { try checkKeys(v, level: "budget", path: "budgets.\(k)", name: name) }
        }
        if let models = object["models"] as? [Any] {
            for (i, m) in models.enumerated() {
                try checkKeys(m, level: "model", path: "models[\(i)]", name: name)
                if let m = m as? [String: Any] {
                    if let inv = m["inversion"] { try checkKeys(inv, level: "inversion", path: "models[\(i)].inversion", name: name) }
                    if let mx = m["maximization"] { try checkKeys(mx, level: "maximization", path: "models[\(i)].maximization", name: name) }
                    if let budgets = m["budgets"] as? [String: Any] {
                        for (k, v) in budgets { try checkKeys(v, level: "budget", path: "models[\(i)].budgets.\(k)", name: name) }
                    }
                    if let c = m["classes"] { try checkKeys(c, level: "classes", path: "models[\(i)].classes", name: name) }
                    if let o = m["objectives"] { try checkKeys(o, level: "objectives", path: "models[\(i)].objectives", name: name) }
                }
            }
        }
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0...b.count)
        for i in 1...Swift.max(a.count, 1) where !a.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                let current = row[j]
                row[j] = Swift.min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = current
            }
        }
        return row[b.count]
    }

    /// Sizes, budgets, units and names, before anything is loaded.
    func validate(name: String) throws {
        func fail(_ s: String) -> GalleryError { .spec("\(name): \(s)") }
        guard !budgets.isEmpty else { throw fail("no budgets; give at least one, e.g. \"quick\"") }
        let modelBudgets = models.enumerated().flatMap { i, m in
            (m.budgets ?? [:]).map { ("models[\(i)].budgets.\($0.key)", $0.value) }
        }
        for (i, m) in models.enumerated() {
            for k in (m.budgets ?? [:]).keys.sorted() where budgets[k] == nil {
                throw fail("models[\(i)].budgets.\(k) replaces no budget of the spec; valid: \(budgets.keys.sorted().joined(separator: ", "))")
            }
        }
        for (k, b) in budgets.sorted(by: { $0.key < $1.key }).map({ ("budgets.\($0.key)", $0.value) }) + modelBudgets {
            guard RunSpec.sizes.contains(b.size) else {
                throw fail("\(k).size is \(b.size); valid: \(RunSpec.sizes.lowerBound)...\(RunSpec.sizes.upperBound)")
            }
            for (field, v) in [("dip_iterations", b.dipIterations), ("tv_iterations", b.tvIterations),
                               ("maximize_dip_iterations", b.maximizeDipIterations ?? 1), ("class_iterations", b.classIterations ?? 1)] where !RunSpec.iterationCounts.contains(v) {
                throw fail("\(k).\(field) is \(v); valid: \(RunSpec.iterationCounts.lowerBound)...\(RunSpec.iterationCounts.upperBound)")
            }
        }
        guard !models.isEmpty else { throw fail("no models") }
        var names = Set<String>()
        for (i, m) in models.enumerated() {
            guard !m.name.isEmpty, !m.path.isEmpty else { throw fail("models[\(i)] needs a name and a path") }
            guard names.insert(m.name).inserted else { throw fail("two models are named '\(m.name)'; names must be unique") }
            if let inv = m.inversion {
                guard !inv.images.isEmpty, !inv.layers.isEmpty, !inv.priors.isEmpty else {
                    throw fail("models[\(i)].inversion needs images, layers and priors")
                }
            }
            if let mx = m.maximization {
                guard !mx.priors.isEmpty, !mx.layer.isEmpty else { throw fail("models[\(i)].maximization needs a layer and priors") }
                do { _ = try UnitRange.parse(mx.units) } catch { throw fail("models[\(i)].maximization.units: \(error)") }
            }
            if let c = m.classes {
                guard !c.names.isEmpty, !c.priors.isEmpty, c.names.allSatisfy({ !$0.isEmpty }) else {
                    throw fail("models[\(i)].classes needs names (class names or indices) and priors")
                }
            }
            if let o = m.objectives, let n = o.images, !(2...64).contains(n) {
                throw fail("models[\(i)].objectives.images is \(n); valid: 2...64 (leave it out for one image)")
            }
            if let o = m.objectives, o.expressions.isEmpty || o.priors.isEmpty {
                throw fail("models[\(i)].objectives needs expressions and priors")
            }
        }
    }
}

public enum GalleryError: Error, CustomStringConvertible, Equatable {
    case spec(String)
    case experiment(String)
    public var description: String {
        switch self {
        case .spec(let s): return "gallery spec: \(s)"
        case .experiment(let s): return "gallery: \(s)"
        }
    }
}

/// One result of the gallery: the run spec and where it belongs on the pages.
public struct Experiment: Sendable, Equatable {
    public var modelName: String
    public var spec: RunSpec

    /// The cache key: the spec's hash, which includes the model's and photo's content hashes
    /// and the result format version.
    public var key: String { spec.key }

    public var isInversion: Bool { if case .inversion = spec.objective { return true }; return false }
    public var modelPath: String { spec.model.file.path }
    public var image: String? { if case .inversion(let i) = spec.objective { return i.image.path }; return nil }
    public var layer: String {
        switch spec.objective {
        case .inversion(let i): return i.layers.joined(separator: ",")
        case .maximization(let m): return m.layer ?? "class scores"
        }
    }
    public var unit: Int? { if case .maximization(let m) = spec.objective { return m.targets.first?.unit }; return nil }
    /// The objective expression of an expression image.
    public var expression: ObjectiveExpression? {
        if case .maximization(let m) = spec.objective, case let .expression(e)? = m.targets.first { return e }
        return nil
    }
    /// The class of a class image.
    public var classIndex: Int? {
        if case .maximization(let m) = spec.objective, case let .classScore(index, _)? = m.targets.first { return index }
        return nil
    }
    public var prior: PriorKind { spec.prior.kind }
    public var iterations: Int { spec.iterations }

    public var title: String {
        if let classIndex { return "class \(classIndex) (\(prior.rawValue))" }
        if let expression { return "\(expression.text) (\(prior.rawValue))" }
        return isInversion ? "\(layer) pre-image of \((image.map { ($0 as NSString).lastPathComponent }) ?? "") (\(prior.rawValue))"
            : "\(layer) unit \(unit ?? 0) (\(prior.rawValue))"
    }
}

extension GallerySpec {
    /// Every experiment the spec asks for under a budget, in page order, as resolved run specs
    /// (`network` loads a model once per path).
    public func experiments(budget name: String, specDirectory: String, network: (String) throws -> ONNXNetwork) throws -> [Experiment] {
        guard budgets[name] != nil else {
            throw GalleryError.spec("no budget named \(name); the spec has \(budgets.keys.sorted().joined(separator: ", "))")
        }
        func resolve(_ p: String) -> String {
            p.hasPrefix("/") ? p : GallerySpec.normalized((specDirectory as NSString).appendingPathComponent(p))
        }
        var out: [Experiment] = []
        for m in models {
            let budget = m.budget(name, in: self)!
            let path = resolve(m.path)
            let net: ONNXNetwork
            do { net = try network(path) } catch { throw GalleryError.spec("model \(m.name) (\(path)): \(error)") }
            let fixedSize = net.imageInput?.shape.flatMap { $0.count == 4 ? $0[2] : nil } != nil
            func make(_ task: RunRequest.Task, prior: PriorKind, iterations: Int, images: Int? = nil) throws -> Experiment {
                var r = RunRequest(model: path, task: task, prior: prior)
                r.images = images
                r.size = fixedSize ? nil : budget.size
                r.iterations = iterations
                r.seed = seed ?? 0
                r.snapshotEvery = Swift.max(20, iterations / 8)
                do { return Experiment(modelName: m.name, spec: try RunSpec.resolve(r, network: net)) } catch {
                    throw GalleryError.spec("model \(m.name): \(error)")
                }
            }
            if let inv = m.inversion {
                for img in inv.images { for layer in inv.layers { for prior in inv.priors {
                    out.append(try make(.inversion(image: resolve(img), layers: [layer]), prior: prior,
                                        iterations: budget.iterations(prior, maximization: false)))
                } } }
            }
            if let mx = m.maximization {
                for unit in try UnitRange.parse(mx.units) { for prior in mx.priors {
                    out.append(try make(.maximization(layer: mx.layer, targets: [.channel(unit: unit, window: 1)], goal: .maximize, jitter: 0,
                                                      reference: nil), prior: prior,
                                        iterations: budget.iterations(prior, maximization: true)))
                } }
            }
            let labels = try ClassLabels.besideModel(path).map { try ClassLabels.load(path: $0) } ?? []
            if let objectives = m.objectives {
                for text in objectives.expressions {
                    // Direction files are relative to the spec, like every other path in it.
                    let expression: ObjectiveExpression
                    do { expression = try ObjectiveExpression.parse(text, labels: labels, resolvingPaths: resolve) } catch {
                        throw GalleryError.spec("model \(m.name): \(error)")
                    }
                    for prior in objectives.priors {
                        out.append(try make(.maximization(layer: nil, targets: [.expression(expression)], goal: .maximize, jitter: 0, reference: nil),
                                            prior: prior, iterations: budget.iterations(prior, maximization: true), images: objectives.images))
                    }
                }
            }
            if let classes = m.classes {
                for name in classes.names {
                    guard let index = ClassLabels.index(of: name, in: labels) else {
                        throw GalleryError.spec("model \(m.name): no class named '\(name)' in the labels beside the model; give a name from that file or an index")
                    }
                    for prior in classes.priors {
                        out.append(try make(.maximization(layer: nil, targets: [.classScore(index: index, score: prior.defaultClassScore)], goal: .maximize,
                                                          jitter: 0, reference: nil), prior: prior,
                                            iterations: budget.classIterations ?? budget.iterations(prior, maximization: true)))
                    }
                }
            }
        }
        return out
    }
}
