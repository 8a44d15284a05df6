import DipvizTensor
import Foundation

// The result folder, format version 3 (`RunSpec.formatVersion`):
//
//   run.json        RunRecord: the spec, the working directory relative paths start from
//   metrics.json    RunMetrics: how the run ended and one entry per result image
//   curve.json      CurveFile: loss and metrics every 10 iterations, per result
//   image.png       the result (or one PNG per target: unit-3.png, class-100.png, ...)
//   original.png    the photo at the working size (inversion)
//   snapshots/      the image every `snapshot_every` iterations
//   checkpoints/    NAME.ckpt per result: what a resume continues from
//
// Every file is written aside and renamed into place, so a kill leaves the previous version.

/// `run.json`.
public struct RunRecord: Codable, Equatable, Sendable {
    public var formatVersion: Int
    public var spec: RunSpec
    /// The absolute folder the run was created from: relative paths in the spec start there, so
    /// a resume works from any directory.
    public var workingDirectory: String

    enum CodingKeys: String, CodingKey { case formatVersion = "format_version", spec, workingDirectory = "working_directory" }

    public init(spec: RunSpec, workingDirectory: String) {
        formatVersion = RunSpec.formatVersion; self.spec = spec; self.workingDirectory = workingDirectory
    }
}

/// How a run ended.
public enum RunEnding: String, Codable, Sendable {
    case finished
    case interrupted
    /// The loss or the parameters became NaN or infinite; the last good image is kept.
    case diverged
    /// Not started yet (a target of a multi-target run that an interruption did not reach).
    case pending
}

/// The metrics of one result image. Fields that do not apply to the objective are absent.
public struct ResultMetrics: Codable, Equatable, Sendable {
    /// `image`, or the target's label for several targets.
    public var name: String
    /// The target (`unit-3`, `class-100`) for maximisation.
    public var target: String?
    public var ending: RunEnding
    public var message: String?
    public var iterations: Int
    public var seconds: Double
    /// ||Phi(x) - Phi0|| / ||Phi0|| at the end and at the start (inversion).
    public var featureError: Double?
    public var featureErrorStart: Double?
    /// Against the photo at the working size (inversion).
    public var psnr: Double?
    public var ssim: Double?
    /// LPIPS v0.1 to the photo with the AlexNet and the VGG16 backbone (inversion, when the models
    /// folder holds them). The one whose backbone is the inverted network is circular.
    public var lpipsAlex: Double?
    public var lpipsVgg: Double?
    /// Whether the classifier's top class agrees with the photo's, when it has a classifier head.
    public var top1Match: Bool?
    /// The objective's activation at the end and at the start (maximisation).
    public var activation: Double?
    public var activationStart: Double?
    /// The activation of the reference photo, when one was given.
    public var activationX0: Double?
    /// Softmax probability of the class, and the top class (class targets).
    public var probability: Double?
    public var top1: Int?
    /// Mean class probability (class targets) or activation (units) over a fixed, seeded set
    /// of random transforms of the 8-bit image (`RobustnessCheck`).
    public var robustProbability: Double?
    public var robustActivation: Double?

    enum CodingKeys: String, CodingKey {
        case name, target, ending, message, iterations, seconds
        case featureError = "feature_error", featureErrorStart = "feature_error_start", psnr, ssim, lpipsAlex = "lpips_alex", lpipsVgg = "lpips_vgg", top1Match = "top1_match"
        case activation, activationStart = "activation_start", activationX0 = "activation_x0", probability, top1
        case robustProbability = "robust_probability", robustActivation = "robust_activation"
    }

    public init(name: String, ending: RunEnding, message: String? = nil, iterations: Int, seconds: Double) {
        self.name = name; self.ending = ending; self.message = message; self.iterations = iterations; self.seconds = seconds
    }

    /// The PNG of this result.
    public var imageFile: String { name + ".png" }
}

/// `metrics.json`.
public struct RunMetrics: Codable, Equatable, Sendable {
    public var formatVersion: Int
    /// `RunSpec.key` of the spec these metrics belong to: an edited run.json is noticed.
    public var specKey: String
    /// `finished` when every result finished; else how the run stopped.
    public var ending: RunEnding
    public var message: String?
    public var seed: UInt64
    public var seconds: Double
    public var results: [ResultMetrics]

    enum CodingKeys: String, CodingKey { case formatVersion = "format_version", specKey = "spec_key", ending, message, seed, seconds, results }

    public init(spec: RunSpec, results: [ResultMetrics]) {
        formatVersion = RunSpec.formatVersion
        specKey = spec.key
        self.seed = spec.seed
        self.results = results
        let stopped = results.first { $0.ending != .finished }
        ending = stopped.map { $0.ending == .pending ? .interrupted : $0.ending } ?? .finished
        message = stopped?.message
        seconds = results.reduce(0) { $0 + $1.seconds }
    }

    public func result(_ name: String) -> ResultMetrics? { results.first { $0.name == name } }
}

/// One point of the loss curve.
public struct CurvePoint: Codable, Equatable, Sendable {
    public var iteration: Int
    public var loss: Double
    /// Objective-specific values (feature error, activation, ...).
    public var values: [String: Double]
}

/// `curve.json`.
public struct CurveFile: Codable, Equatable, Sendable {
    public var formatVersion: Int
    public var curves: [String: [CurvePoint]]
    enum CodingKeys: String, CodingKey { case formatVersion = "format_version", curves }
    public init(curves: [String: [CurvePoint]]) { formatVersion = RunSpec.formatVersion; self.curves = curves }
}

/// The JSON conventions of result files: sorted keys, NaN and infinities as strings.
public enum ResultJSON {
    public static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }

    public static var decoder: JSONDecoder {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }

    /// Decodes `type` from the file at `path`; errors say which file and where in it.
    public static func read<T: Decodable>(_ type: T.Type, path: String, what: String) throws -> T {
        var st = stat()
        guard stat(path, &st) == 0 else { throw RunSpecError.file(path: path, reason: "no \(what) here") }
        guard (st.st_mode & S_IFMT) == S_IFREG, st.st_size <= 256 << 20 else {
            throw RunSpecError.file(path: path, reason: "not a regular file of at most 256 MiB")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw RunSpecError.file(path: path, reason: "unreadable") }
        if let version = formatVersion(of: data), version != RunSpec.formatVersion {
            throw RunSpecError.file(path: path, reason: "made by result format \(version); this dipviz reads format \(RunSpec.formatVersion) (start a new run)")
        }
        do { return try decoder.decode(T.self, from: data) } catch {
            throw RunSpecError.file(path: path, reason: "not a valid \(what): \(DecodingErrors.describe(error))")
        }
    }

    static func formatVersion(of data: Data) -> Int? {
        (try? JSONSerialization.jsonObject(with: data) as? [String: Any])?["format_version"] as? Int
    }
}

/// One-line descriptions of decoding errors: where in the file, and what was expected.
public enum DecodingErrors {
    public static func describe(_ error: Error) -> String {
        func path(_ keys: [CodingKey]) -> String {
            let p = keys.map { k in k.intValue.map { "[\($0)]" } ?? "." + k.stringValue }.joined()
            return p.isEmpty ? "the top level" : String(p.drop { $0 == "." })
        }
        guard let e = error as? DecodingError else {
            if (error as NSError).domain == NSCocoaErrorDomain { return "not valid JSON" }
            return "\(error)"
        }
        switch e {
        case let .typeMismatch(type, c): return "at \(path(c.codingPath)): expected \(typeName(type))"
        case let .valueNotFound(type, c): return "at \(path(c.codingPath)): missing \(typeName(type))"
        case let .keyNotFound(key, c): return "at \(path(c.codingPath + [key])): missing required key '\(key.stringValue)'"
        case let .dataCorrupted(c):
            if c.codingPath.isEmpty { return "not valid JSON" }
            return "at \(path(c.codingPath)): \(c.debugDescription)"
        @unknown default: return "invalid"
        }
    }

    static func typeName(_ t: Any.Type) -> String {
        switch t {
        case is String.Type: return "a string"
        case is Int.Type, is UInt64.Type: return "an integer"
        case is Float.Type, is Double.Type: return "a number"
        case is Bool.Type: return "true or false"
        default:
            let n = "\(t)"
            if n.hasPrefix("Array") { return "a list" }
            if n.hasPrefix("Dictionary") { return "an object" }
            return "a \(n) object"
        }
    }
}
