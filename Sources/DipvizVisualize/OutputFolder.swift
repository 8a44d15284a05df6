import DipvizImage
import DipvizTensor
import Foundation

/// A result folder (see ResultFormat.swift for its files). Opening one takes an exclusive
/// lock on it, so two processes never write the same run.
public final class ResultFolder {
    public let path: String
    private var lockDescriptor: Int32 = -1

    public init(path: String) throws {
        guard !path.isEmpty else { throw RunSpecError.invalid(field: "out", message: "the output folder must not be empty") }
        self.path = path
        var st = stat()
        if lstat(path, &st) == 0, (st.st_mode & S_IFMT) != S_IFDIR {
            throw RunSpecError.file(path: path, reason: "is not a folder; give --out a folder (new or a previous run's)")
        }
        do {
            try FileManager.default.createDirectory(atPath: path + "/snapshots", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: path + "/checkpoints", withIntermediateDirectories: true)
        } catch {
            throw RunSpecError.file(path: path, reason: "cannot create the folder: \(FileErrors.describe(error))")
        }
        lockDescriptor = try FolderLock.acquire(path + "/.lock", what: "run folder \(path)")
    }

    deinit { if lockDescriptor >= 0 { FolderLock.release(lockDescriptor) } }

    public func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }
    public func checkpoint(_ name: String) -> String { file("checkpoints/\(name).ckpt") }
    public func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: file(name)) }

    public func writeImage(_ t: Tensor, name: String) throws {
        try AtomicFile.write(try PNG.encode(RGBImage(tensor: t)), to: file(name))
    }

    public func writePNG(_ image: RGBImage, name: String) throws {
        try AtomicFile.write(try PNG.encode(image), to: file(name))
    }

    public func writeJSON<T: Encodable>(_ value: T, name: String) throws {
        try AtomicFile.write(try ResultJSON.encoder.encode(value), to: file(name))
    }

    public func read<T: Decodable>(_ type: T.Type, name: String, what: String) throws -> T {
        try ResultJSON.read(type, path: file(name), what: what)
    }

    /// The folder's run.json when it records the same run as `record` (`same`), else `record`,
    /// written; a folder holding another run is refused with `refusal(existing)`.
    func adopt<R: Codable>(_ record: R, what: String, same: (R) -> Bool, refusal: (R) -> String) throws -> R {
        guard exists("run.json") else {
            try writeJSON(record, name: "run.json")
            return record
        }
        let existing = try read(R.self, name: "run.json", what: what)
        guard same(existing) else { throw RunSpecError.mismatch(refusal(existing)) }
        return existing
    }
}

/// An advisory lock (flock) held while the process lives; a second holder gets a clear error.
public enum FolderLock {
    public static func acquire(_ path: String, what: String) throws -> Int32 {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RunSpecError.file(path: path, reason: "cannot create the lock file (\(String(cString: strerror(errno))))") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw RunSpecError.mismatch("another dipviz process\(holder.isEmpty ? "" : " (pid \(holder))") is writing \(what); wait for it to finish or use another folder")
        }
        ftruncate(fd, 0)
        let pid = "\(getpid())\n"
        _ = pid.withCString { Glibc.write(fd, $0, strlen($0)) }
        return fd
    }

    /// Unlocks, then closes. A forked child (a kernel check run in a child process) shares the
    /// lock's open file description, and closing this descriptor alone would leave the lock
    /// held until that child exits; unlocking releases it for every copy.
    public static func release(_ fd: Int32) {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
