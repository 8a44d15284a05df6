import DipvizTensor
import Foundation

public struct Prediction: Codable, Equatable, Sendable {
    public var index: Int
    public var label: String
    public var probability: Float
}

/// Class names, one per line in output order. WordNet-style lines ("n01440764 tench, Tinca
/// tinca") lose their synset id.
public enum ClassLabels {
    public static func load(path: String) throws -> [String] {
        if let why = FileErrors.notRegular(path) { throw ONNXError.unreadable(path: path, reason: "labels file: \(why)") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ONNXError.unreadable(path: path, reason: "labels file is not readable")
        }
        return String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .map { line -> String in
                let s = line.trimmingCharacters(in: .whitespacesAndNewlines)
                if let space = s.firstIndex(of: " "), s.hasPrefix("n"), s[s.index(after: s.startIndex)..<space].allSatisfy(\.isNumber) {
                    return String(s[s.index(after: space)...])
                }
                return s
            }
            .enumerated().filter { !($0.element.isEmpty && $0.offset > 0) }.map(\.element)
    }

    /// The index of a class given as an index ("100") or a name: a whole label ("black swan,
    /// Cygnus atratus") or one of its comma-separated names ("black swan"); nil when none matches.
    public static func index(of name: String, in labels: [String]) -> Int? {
        if !name.isEmpty, name.allSatisfy(\.isNumber), let i = Int(name) { return i }
        return labels.firstIndex { $0 == name || $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.contains(name) }
    }

    /// A labels file beside the model, if one is there.
    public static func besideModel(_ modelPath: String) -> String? {
        let dir = URL(fileURLWithPath: modelPath).deletingLastPathComponent()
        for name in ["imagenet-synsets.txt", "synset.txt", "labels.txt"] {
            let p = dir.appendingPathComponent(name).path
            if FileManager.default.fileExists(atPath: p) { return p }
        }
        return nil
    }
}

extension ONNXNetwork {
    /// Whether a tensor is produced by a softmax (already probabilities).
    public func isProbability(_ tensor: String) -> Bool {
        guard let i = producers[tensor] else { return false }
        return nodes[i].opType == "Softmax"
    }

    /// Top-k classes of the default output for one preprocessed input.
    public func classify(_ input: Tensor, top k: Int, labels: [String]? = nil) throws -> [Prediction] {
        let output = defaultOutput
        let y = try GradMode.withoutGrad { try self(input, output: output) }
        // One score per class: [N, classes], possibly with trailing 1x1 (a global pool's output).
        // A feature map (a headless extractor's [1, 256, 6, 6]) is not classes to rank.
        let perImage = Array(y.shape.dropFirst())
        guard y.rank >= 1, perImage.filter({ $0 > 1 }).count <= 1, y.count > 0 else {
            let shape = y.shape.map(String.init).joined(separator: "x")
            throw ONNXError.notAClassifier(model: model.source, detail: "its output '\(output)' is a \(shape) map, not one score per class; "
                + "valid: an output of shape 1 x classes (use inspect, invert or maximize for feature maps)")
        }
        let scores = y.reshaped([y.rank == 1 ? 1 : y.shape[0], -1])
        let probs = isProbability(output) ? scores : scores.softmax(axis: 1)
        let n = probs.shape[1]
        if let labels, labels.count != n {
            throw ONNXError.inputMismatch("the labels file has \(labels.count) entries for \(n) outputs")
        }
        let values = Array(UnsafeBufferPointer(start: probs.data, count: n))
        return values.indices.sorted { values[$0] > values[$1] }.prefix(Swift.max(k, 0)).map {
            Prediction(index: $0, label: labels?[$0] ?? "class \($0)", probability: values[$0])
        }
    }
}
