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
        enum CodingKeys: String, CodingKey {
            case size, dipIterations = "dip_iterations", tvIterations = "tv_iterations", maximizeDipIterations = "maximize_dip_iterations"
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

    public struct Model: Codable, Sendable {
        public var name: String
        public var path: String
        public var inversion: Inversion?
        public var maximization: Maximization?
    }

    public var title: String
    public var description: String?
    public var seed: UInt64?
    public var budgets: [String: Budget]
    public var models: [Model]

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
        guard let data = FileManager.default.contents(atPath: path) else { throw GalleryError.spec("cannot read \(path)") }
        do { return try JSONDecoder().decode(GallerySpec.self, from: data) } catch {
            throw GalleryError.spec("\(path) is not a valid gallery spec: \(error)")
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

/// One result of the gallery: an inversion or a maximisation with its full configuration.
public struct Experiment: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case invert, maximize }
    public var kind: Kind
    public var modelName: String
    public var modelPath: String
    public var image: String?
    public var layer: String
    public var unit: Int?
    public var prior: PriorKind
    public var iterations: Int
    public var size: Int
    public var seed: UInt64

    /// A stable hash of the configuration: the key under which the result is cached.
    public var key: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(self)) ?? Data()
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in data { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return String(format: "%016llx", h)
    }

    public var title: String {
        switch kind {
        case .invert: return "\(layer) pre-image of \((image.map { ($0 as NSString).lastPathComponent }) ?? "") (\(prior.rawValue))"
        case .maximize: return "\(layer) unit \(unit ?? 0) (\(prior.rawValue))"
        }
    }
}

extension GallerySpec {
    /// Every experiment the spec asks for under a budget, in page order.
    public func experiments(budget name: String, specDirectory: String) throws -> [Experiment] {
        guard let budget = budgets[name] else {
            throw GalleryError.spec("no budget named \(name); the spec has \(budgets.keys.sorted().joined(separator: ", "))")
        }
        func resolve(_ p: String) -> String {
            p.hasPrefix("/") ? p : GallerySpec.normalized((specDirectory as NSString).appendingPathComponent(p))
        }
        var out: [Experiment] = []
        for m in models {
            if let inv = m.inversion {
                for img in inv.images { for layer in inv.layers { for prior in inv.priors {
                    out.append(Experiment(kind: .invert, modelName: m.name, modelPath: resolve(m.path), image: resolve(img), layer: layer,
                                          unit: nil, prior: prior, iterations: prior == .dip ? budget.dipIterations : budget.tvIterations,
                                          size: budget.size, seed: seed ?? 0))
                } } }
            }
            if let mx = m.maximization {
                let bounds = mx.units.split(separator: "-").compactMap { Int($0) }
                guard let lo = bounds.first, let hi = bounds.last, lo <= hi, lo >= 0 else {
                    throw GalleryError.spec("units \(mx.units) of \(m.name) must be I or I-J")
                }
                for unit in lo...hi { for prior in mx.priors {
                    out.append(Experiment(kind: .maximize, modelName: m.name, modelPath: resolve(m.path), image: nil, layer: mx.layer,
                                          unit: unit, prior: prior,
                                          iterations: prior == .dip ? budget.maximizeDipIterations ?? budget.dipIterations : budget.tvIterations,
                                          size: budget.size, seed: seed ?? 0))
                } }
            }
        }
        return out
    }
}
