import DipvizTensor
import Foundation

/// What a run needs to continue: its tensors (generator weights, optimiser state, pixels),
/// iteration, curve and elapsed time, in one file: an 8-byte magic, the length of a JSON
/// header, the header, then the tensors as little-endian float32. One file can be replaced
/// atomically (written aside, flushed, renamed over the old one), so a kill at any moment
/// leaves either the previous checkpoint or the new one, never neither.
public struct Checkpoint {
    public var iteration: Int
    public var curve: [CurvePoint]
    public var seconds: Double
    /// The feature error or activation of the starting image.
    public var startValue: Double?
    /// Per target, the activation of its starting image (a batched run; nil otherwise).
    public var startValues: [Double]?
    var tensors: [Tensor]

    static let magic = Array("DIPVIZC2".utf8)

    struct Header: Codable {
        var iteration: Int
        var curve: [CurvePoint]
        var seconds: Double
        var startValue: Double?
        var startValues: [Double]?
        /// `RunSpec.key` of the run that wrote it: a checkpoint never continues another run.
        var specKey: String
        var shapes: [[Int]]
        enum CodingKeys: String, CodingKey { case iteration, curve, seconds, startValue = "start_value", startValues = "start_values", specKey = "spec_key", shapes }
    }

    /// Writes the checkpoint of `state` to `path` atomically.
    static func save(path: String, specKey: String, state: [Tensor], iteration: Int, curve: [CurvePoint], seconds: Double,
                     startValue: Double?, startValues: [Double]? = nil) throws {
        let header = Header(iteration: iteration, curve: curve, seconds: seconds, startValue: startValue, startValues: startValues, specKey: specKey,
                            shapes: state.map(\.shape))
        var data = Data(magic)
        let json = try ResultJSON.encoder.encode(header)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(json)
        for t in state { data.append(UnsafeBufferPointer(start: t.data, count: t.count)) }
        try AtomicFile.write(data, to: path)
    }

    /// Reads and checks a checkpoint: made by the run `specKey`, at most `iterations` in, sizes
    /// consistent with the file (a damaged or hostile file is an error, never a crash).
    public static func load(path: String, specKey: String, iterations: Int) throws -> Checkpoint {
        func bad(_ reason: String) -> VisualizeError { .checkpoint("\(path) \(reason); delete it to start the run over") }
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { throw bad("is not a regular file") }
        guard let data = FileManager.default.contents(atPath: path) else { throw bad("is unreadable") }
        guard data.count >= 16, Array(data.prefix(8)) == magic else { throw bad("is not a dipviz checkpoint (format \(RunSpec.formatVersion))") }
        let length = data.subdata(in: 8..<16).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard length <= UInt64(data.count - 16) else { throw bad("is truncated (header of \(length) bytes)") }
        let headerEnd = 16 + Int(length)
        let header: Header
        do { header = try ResultJSON.decoder.decode(Header.self, from: data.subdata(in: 16..<headerEnd)) } catch {
            throw bad("has a damaged header (\(DecodingErrors.describe(error)))")
        }
        guard header.specKey == specKey else {
            throw VisualizeError.checkpoint("\(path) was written by another run configuration (\(header.specKey), this run is \(specKey)); resume refuses to mix runs")
        }
        guard header.iteration >= 0, header.iteration <= iterations else {
            throw bad("says iteration \(header.iteration); valid: 0...\(iterations)")
        }
        guard header.seconds.isFinite, header.seconds >= 0 else { throw bad("has an invalid time") }
        var offset = headerEnd
        var tensors: [Tensor] = []
        for shape in header.shapes {
            guard let n = MemoryLimit.elements(shape), n <= (data.count - offset) / 4 else { throw bad("is truncated or lists an impossible shape \(shape)") }
            let t = Tensor(zeros: shape)
            data.withUnsafeBytes { raw in
                for i in 0..<n { t.data[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 4 * i, as: UInt32.self))) }
            }
            offset += 4 * n
            tensors.append(t)
        }
        guard offset == data.count else { throw bad("has \(data.count - offset) bytes more than its tensors") }
        return Checkpoint(iteration: header.iteration, curve: header.curve, seconds: header.seconds, startValue: header.startValue,
                          startValues: header.startValues, tensors: tensors)
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

/// Writes that replace a file in one step: the data goes to a temporary file beside the target,
/// is flushed to disk, then renamed over the target. On any failure (a full disk) the target
/// keeps its previous content and the error names the file and the cause.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = (directory.isEmpty ? "." : directory) + "/." + (path as NSString).lastPathComponent + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw VisualizeError.io(path: path, reason: String(cString: strerror(errno))) }
        var failure: Int32 = 0
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 { if errno == EINTR { continue }; failure = errno; return }
                offset += n
            }
        }
        if failure == 0 && fsync(fd) != 0 { failure = errno }
        close(fd)
        if failure == 0 && rename(temporary, path) != 0 { failure = errno }
        if failure != 0 {
            unlink(temporary)
            throw VisualizeError.io(path: path, reason: failure == EFBIG ? "file too large for the allowed size (or the disk is full)" : String(cString: strerror(failure)))
        }
        let dfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }
}
