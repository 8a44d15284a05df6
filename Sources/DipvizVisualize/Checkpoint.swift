import DipvizTensor
import Foundation

/// What a run needs to continue: its tensors (generator weights, optimiser state, pixels),
/// iteration, curve and elapsed time. Stored as .npy files and a JSON index.
public struct Checkpoint {
    public var iteration: Int
    public var curve: [CurvePoint]
    public var seconds: Double
    public var startError: Double?
    var tensors: [Tensor]

    struct Index: Codable {
        var iteration: Int
        var curve: [CurvePoint]
        var seconds: Double
        var startError: Double?
        var shapes: [[Int]]
        enum CodingKeys: String, CodingKey { case iteration, curve, seconds, startError = "start_error", shapes }
    }

    static func folder(_ directory: String) -> String { (directory as NSString).appendingPathComponent("checkpoint") }

    static func save(directory: String, state: [Tensor], iteration: Int, curve: [CurvePoint], seconds: Double,
                     startError: Double?) throws {
        let dir = folder(directory)
        let partial = dir + ".partial"
        let fm = FileManager.default
        try? fm.removeItem(atPath: partial)
        try fm.createDirectory(atPath: partial, withIntermediateDirectories: true)
        for (i, t) in state.enumerated() { try t.writeNPY(path: partial + String(format: "/tensor-%04d.npy", i)) }
        let index = Index(iteration: iteration, curve: curve, seconds: seconds, startError: startError, shapes: state.map(\.shape))
        try JSONEncoder().encode(index).write(to: URL(fileURLWithPath: partial + "/index.json"))
        // Replace the previous checkpoint only once the new one is complete.
        try? fm.removeItem(atPath: dir)
        try fm.moveItem(atPath: partial, toPath: dir)
    }

    public static func load(directory: String) throws -> Checkpoint {
        let dir = folder(directory)
        guard let data = FileManager.default.contents(atPath: dir + "/index.json") else {
            throw VisualizeError.checkpoint("no checkpoint in \(directory)")
        }
        let index: Index
        do { index = try JSONDecoder().decode(Index.self, from: data) } catch {
            throw VisualizeError.checkpoint("\(dir)/index.json is unreadable: \(error)")
        }
        let tensors = try index.shapes.indices.map { try Tensor.readNPY(path: dir + String(format: "/tensor-%04d.npy", $0)) }
        return Checkpoint(iteration: index.iteration, curve: index.curve, seconds: index.seconds, startError: index.startError,
                          tensors: tensors)
    }

    /// Copies the saved tensors into a freshly built run; returns the iteration to continue from.
    func restore(into p: ImageParametrization) throws -> Int {
        let state = p.state
        guard state.count == tensors.count, zip(state, tensors).allSatisfy({ $0.shape == $1.shape }) else {
            throw VisualizeError.checkpoint("it does not match this configuration (\(tensors.count) tensors saved, \(state.count) expected)")
        }
        for (dst, src) in zip(state, tensors) { dst.copy(from: src) }
        p.restore(step: iteration)
        return iteration
    }
}
