import DipvizImage
import DipvizTensor
import Foundation

/// A result folder: the image, metrics.json, curve.json, snapshots/ and checkpoint/.
public struct OutputFolder {
    public let path: String

    public init(path: String) throws {
        self.path = path
        do {
            try FileManager.default.createDirectory(atPath: path + "/snapshots", withIntermediateDirectories: true)
        } catch {
            throw VisualizeError.invalid("cannot create \(path): \(error.localizedDescription)")
        }
    }

    public func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    public func writeImage(_ t: Tensor, name: String) throws {
        try PNG.write(RGBImage(tensor: t), path: file(name))
    }

    public func writeJSON<T: Encodable>(_ value: T, name: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try encoder.encode(value).write(to: URL(fileURLWithPath: file(name)), options: .atomic)
    }

    /// A control that writes snapshots (prefixed for several results in one folder) and a checkpoint.
    public func control(snapshotEvery: Int, prefix: String = "", checkpoint: Bool = true) -> RunControl {
        var c = RunControl()
        c.snapshotEvery = Swift.max(1, snapshotEvery)
        c.checkpointDirectory = checkpoint ? (prefix.isEmpty ? path : file(prefix)) : nil
        let folder = self
        c.snapshot = { t, image in
            try? folder.writeImage(image, name: String(format: "snapshots/%@iter-%06d.png", prefix.isEmpty ? "" : prefix + "-", t))
        }
        return c
    }
}
