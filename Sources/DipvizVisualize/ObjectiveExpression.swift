import DipvizONNX
import DipvizTensor
import Foundation

/// A maximisation objective written as text, shared by `dipviz maximize --objective` and
/// gallery specs: a weighted sum of terms, as Lucid composes objectives
/// (lucid/optvis/objectives.py):
///
///     conv4:12                     channel 12 of conv4, averaged over the map
///     conv4:12@6,6                 the neuron of channel 12 at row 6, column 6
///     direction(conv5, v.npy)      the mean over positions of the dot product of the
///                                  channel vector with v (a .npy vector of the layer's channels)
///     class(black swan)            a class logit (a name from the labels, or an index)
///     probability(100)             a class's softmax probability
///     logprob(lemon)               its logarithm (log softmax of the class scores)
///     conv4:12 - 0.5*conv4:40      weighted sums and differences; -conv4:3 negates
///     diversity(conv4)             Lucid's diversity term over a batch of images (`--images N`):
///                                  each image's Gram matrix of the layer's channels, scaled to
///                                  unit Frobenius norm, and its summed cosine similarity with the
///                                  other images' Gram matrices, averaged over the images
///                                  (lucid/optvis/objectives.py, `diversity`). It measures how
///                                  alike the images are, so it is subtracted, as in Lucid:
///                                  `conv4:12 - 100*diversity(conv4)`. It is 0 for one image, and
///                                  the `activation` reported per image leaves it out.
///
/// Terms are joined by " + " or " - " with spaces around the sign (layer and class names may
/// hold a '-'); a weight is a number and '*' before a term.
public struct ObjectiveExpression: Codable, Equatable, Sendable {
    public struct Term: Codable, Equatable, Sendable {
        public enum Kind: String, Codable, Sendable { case channel, neuron, direction, classLogit = "class", classProbability = "probability", classLogProbability = "logprob", diversity }
        public var weight: Float
        public var kind: Kind
        public var layer: String?
        /// Channel (channel, neuron) or class index (class, probability).
        public var index: Int?
        public var y: Int?
        public var x: Int?
        public var direction: FileReference?

        init(weight: Float, kind: Kind, layer: String? = nil, index: Int? = nil, y: Int? = nil, x: Int? = nil, direction: FileReference? = nil) {
            self.weight = weight; self.kind = kind; self.layer = layer; self.index = index; self.y = y; self.x = x; self.direction = direction
        }

        /// The single-unit target this term reads, for the kinds that have one.
        var target: ActivationTarget? {
            switch kind {
            case .channel: return index.map { .channel(unit: $0, window: 1) }
            case .neuron: return index.map { .neuron(unit: $0, y: y, x: x) }
            case .classLogit: return index.map { .classScore(index: $0, score: .logit) }
            case .classProbability: return index.map { .classScore(index: $0, score: .probability) }
            case .classLogProbability: return index.map { .classScore(index: $0, score: .logProbability) }
            case .direction, .diversity: return nil
            }
        }
    }

    /// The text as given (shown on pages and in reproduce commands).
    public var text: String
    public var terms: [Term]

    static let syntax = "write terms such as conv4:12, conv4:12@6,6, direction(conv5, v.npy), class(black swan), probability(100), logprob(lemon) or diversity(conv4), joined by ' + ' or ' - ', each with an optional WEIGHT*, e.g. 'conv4:12 - 0.5*conv4:40'"

    /// Whether a term compares the images of a batch (needs several images).
    public var hasDiversity: Bool { terms.contains { $0.kind == .diversity } }

    /// Parses `text`; class names are looked up in `labels`, and direction files are read and
    /// hashed (paths relative to the working directory).
    public static func parse(_ text: String, labels: [String], resolvingPaths resolve: (String) -> String = { $0 }) throws -> ObjectiveExpression {
        func bad(_ why: String) -> RunSpecError { .invalid(field: "objective", message: "'\(text)': \(why); \(syntax)") }
        var pieces: [(sign: Float, text: String)] = []
        var current = "", sign: Float = 1, depth = 0
        let chars = Array(text)
        for (i, c) in chars.enumerated() {
            if c == "(" { depth += 1 } else if c == ")" { depth -= 1; if depth < 0 { throw bad("unbalanced ')'") } }
            let spaced = i > 0 && i + 1 < chars.count && chars[i - 1] == " " && chars[i + 1] == " "
            if depth == 0 && (c == "+" || c == "-") && (spaced || current.trimmingCharacters(in: .whitespaces).isEmpty) {
                if !current.trimmingCharacters(in: .whitespaces).isEmpty { pieces.append((sign, current)) }
                else if !pieces.isEmpty || sign != 1 { throw bad("a sign without a term") }
                sign = c == "-" ? -1 : 1
                current = ""
                continue
            }
            current.append(c)
        }
        guard depth == 0 else { throw bad("unbalanced '('") }
        guard !current.trimmingCharacters(in: .whitespaces).isEmpty else { throw bad(pieces.isEmpty ? "no terms" : "a sign without a term") }
        pieces.append((sign, current))
        let terms = try pieces.map {
            try parseTerm($0.text.trimmingCharacters(in: .whitespaces), sign: $0.sign, labels: labels, resolve: resolve, bad: bad)
        }
        return ObjectiveExpression(text: text.trimmingCharacters(in: .whitespaces), terms: terms)
    }

    static func parseTerm(_ s: String, sign: Float, labels: [String], resolve: (String) -> String, bad: (String) -> RunSpecError) throws -> Term {
        var weight = sign, body = s
        if let star = s.firstIndex(of: "*"), !s[..<star].contains("(") {
            guard let w = Float(s[..<star].trimmingCharacters(in: .whitespaces)), w.isFinite else { throw bad("'\(s[..<star])' is not a weight") }
            weight *= w
            body = s[s.index(after: star)...].trimmingCharacters(in: .whitespaces)
        }
        if let open = body.firstIndex(of: "("), body.hasSuffix(")") {
            let name = String(body[..<open]).trimmingCharacters(in: .whitespaces)
            let argument = String(body[body.index(after: open)..<body.index(before: body.endIndex)]).trimmingCharacters(in: .whitespaces)
            switch name {
            case "class", "probability", "logprob":
                guard let index = ClassLabels.index(of: argument, in: labels) else {
                    throw bad(labels.isEmpty ? "no labels beside the model to look up '\(argument)'; give the class index" : "no class named '\(argument)' in the labels")
                }
                let kind: Term.Kind = name == "class" ? .classLogit : name == "probability" ? .classProbability : .classLogProbability
                return Term(weight: weight, kind: kind, index: index)
            case "diversity":
                guard !argument.isEmpty, !argument.contains(",") else { throw bad("diversity takes (LAYER)") }
                return Term(weight: weight, kind: .diversity, layer: argument)
            case "direction":
                let parts = argument.split(separator: ",", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { throw bad("direction takes (LAYER, FILE.npy)") }
                return Term(weight: weight, kind: .direction, layer: parts[0], direction: try FileReference.make(resolve(parts[1]), what: "direction"))
            default: throw bad("unknown function \(name)")
            }
        }
        guard let colon = body.lastIndex(of: ":") else { throw bad("'\(body)' is not a term") }
        let layer = String(body[..<colon]).trimmingCharacters(in: .whitespaces)
        let rest = body[body.index(after: colon)...]
        let unitAndPosition = rest.split(separator: "@", maxSplits: 1)
        guard !layer.isEmpty, let first = unitAndPosition.first, let unit = Int(first.trimmingCharacters(in: .whitespaces)), unit >= 0 else {
            throw bad("'\(body)' is not LAYER:UNIT with a unit of 0 or more")
        }
        guard unitAndPosition.count == 2 else { return Term(weight: weight, kind: .channel, layer: layer, index: unit) }
        let p = unitAndPosition[1].split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard p.count == 2, let y = p[0], let x = p[1], y >= 0, x >= 0 else { throw bad("a position is @Y,X with both 0 or more") }
        return Term(weight: weight, kind: .neuron, layer: layer, index: unit, y: y, x: x)
    }

    /// The tensors the expression reads and its value from them for one image (a scalar,
    /// differentiable), without the diversity terms (`batchEvaluator` has those).
    func evaluator(probe: Probe) throws -> ([String], ([Tensor]) throws -> Tensor) {
        var tensors: [String] = []
        var parts: [(Float, Int, (Tensor) throws -> Tensor)] = []
        for term in terms where term.kind != .diversity {
            let tensor: String, measure: (Tensor) throws -> Tensor
            if let target = term.target {
                (tensor, measure) = try Maximization.activation(probe: probe, layer: term.layer, target: target)
            } else {
                guard let layer = term.layer, let file = term.direction else { throw VisualizeError.invalid("a direction needs a layer and a file") }
                tensor = layer
                let v = try Tensor.readNPY(path: file.path)
                measure = { y in
                    guard y.rank == 4 || y.rank == 2 else { throw VisualizeError.invalid("layer \(layer) has shape \(y.shape)") }
                    guard v.count == y.shape[1] else {
                        throw VisualizeError.invalid("the direction \(file.path) has \(v.count) values; layer \(layer) has \(y.shape[1]) channels")
                    }
                    let weights = Tensor(shape: y.rank == 4 ? [1, v.count, 1, 1] : [1, v.count], scalars: v.scalars)
                    return (y * weights).sum(axes: [1]).mean()
                }
            }
            let slot = tensors.firstIndex(of: tensor) ?? { tensors.append(tensor); return tensors.count - 1 }()
            parts.append((term.weight, slot, measure))
        }
        return (tensors, { features in
            var total: Tensor? = nil
            for (w, slot, measure) in parts {
                let value = try measure(features[slot])
                let weighted = w == 1 ? value : value.scaled(by: w)
                total = total.map { $0 + weighted } ?? weighted
            }
            // An expression of diversity terms alone is 0 for one image.
            return total ?? Tensor(scalar: 0)
        })
    }

    /// The tensors the diversity terms read and their weighted sum over a whole batch (nil
    /// when the expression has none).
    func batchEvaluator() -> ([String], ([Tensor]) -> Tensor)? {
        let diversity = terms.filter { $0.kind == .diversity }
        guard !diversity.isEmpty else { return nil }
        let tensors = diversity.compactMap(\.layer).reduce(into: [String]()) { all, l in if !all.contains(l) { all.append(l) } }
        return (tensors, { features in
            var total: Tensor? = nil
            for term in diversity {
                let value = ObjectiveExpression.diversity(features[tensors.firstIndex(of: term.layer!)!]).scaled(by: term.weight)
                total = total.map { $0 + value } ?? value
            }
            return total!
        })
    }

    /// log softmax(y)[index] of class scores y [1, classes, ...]: the logit less the log of the
    /// summed exponentials, shifted by the largest logit (a constant) so nothing overflows.
    /// Unlike the logit it falls when rival classes rise; unlike the probability its gradient
    /// does not vanish while the class is improbable.
    static func logProbability(_ y: Tensor, index: Int) throws -> Tensor {
        let flat = y.reshaped([y.shape[0], -1])
        guard index >= 0 && index < flat.shape[1] else { throw VisualizeError.unitOutOfRange(layer: "the class scores", unit: index, channels: flat.shape[1]) }
        let top = flat.detached().scalars.max() ?? 0
        let logSum = flat.shifted(by: -top).exp().sum().log().shifted(by: top)
        return flat.slice(axis: 1, start: index, end: index + 1).sum() - logSum
    }

    /// Lucid's diversity of a batch y [B, C, ...]: per image the Gram matrix G = F Fᵀ of its
    /// channels F [C, positions], divided by its Frobenius norm; then the sum over ordered pairs
    /// i ≠ j of <G_i, G_j>, divided by B. 0 for B = 1; B - 1 when all images are alike.
    public static func diversity(_ y: Tensor) -> Tensor {
        let b = y.shape[0], c = y.rank >= 2 ? y.shape[1] : 1
        let flat = y.reshaped([b, c, -1])
        let grams = (0..<b).map { i -> Tensor in
            let f = flat.slice(axis: 0, start: i, end: i + 1).reshaped([c, -1])
            let g = f.matmul(f, transposeOther: true)
            // l2_normalize's epsilon (1e-10 on the squared norm) keeps an all-zero map finite.
            let norm = g.squared().sum().shifted(by: 1e-10).sqrt().reshaped([1, 1])
            return g / norm
        }
        var total = Tensor(scalar: 0)
        for i in 0..<b { for j in 0..<b where j != i { total = total + (grams[i] * grams[j]).sum() } }
        return total.scaled(by: 1 / Float(b))
    }
}
