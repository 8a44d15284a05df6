import DipvizImage
import Foundation
import Testing

/// A started `dipviz` process, for signals and kills.
final class RunningDipviz {
    let process = Process()
    let stderr = Pipe()

    init(_ arguments: [String], directory: URL? = nil, shell: String? = nil) throws {
        let binary = Bundle.main.bundleURL.appendingPathComponent("dipviz").path
        if let shell {
            // `shell` prefixes the command (e.g. a file-size limit); "$@" is the binary and arguments.
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", shell + "; exec \"$@\"", "sh", binary] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = arguments
        }
        if let directory { process.currentDirectoryURL = directory }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = stderr
        try process.run()
    }

    func wait() -> (status: Int32, reason: Process.TerminationReason, stderr: String) {
        let err = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, process.terminationReason, String(decoding: err, as: UTF8.self))
    }
}

func waitFor(_ path: String, seconds: Double = 60) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if FileManager.default.fileExists(atPath: path) { return true }
        usleep(5_000)
    }
    return false
}

func bytes(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

/// Starts `arguments` (a run into `out`, relative to `directory` when given), waits for its
/// first checkpoint, sends `signal`, and waits for the process to end.
@discardableResult
func interruptedRun(_ arguments: [String], out: String, directory: URL? = nil, signal: Int32 = SIGINT)
    throws -> (status: Int32, reason: Process.TerminationReason, stderr: String) {
    let running = try RunningDipviz(arguments, directory: directory)
    let folder = directory.map { $0.appendingPathComponent(out).path } ?? out
    #expect(waitFor(folder + "/checkpoints/image.ckpt"), "no checkpoint appeared in \(folder)")
    kill(running.process.processIdentifier, signal)
    return running.wait()
}

@Suite("Faults: kills, signals, divergence, full disks, changed files", .serialized)
struct FaultTests {
    static func invertArguments(_ model: String, _ photo: String, out: String, prior: String = "tv", iterations: Int = 40,
                                snapshotEvery: Int = 3) -> [String] {
        ["invert", model, photo, "--layer", "relu1", "--prior", prior, "--iterations", "\(iterations)", "--size", "16",
         "--snapshot-every", "\(snapshotEvery)", "--out", out]
    }

    /// kill -9 at random moments, many times: every run resumes (from any directory, with
    /// --resume alone) and ends bit for bit where an uninterrupted run does.
    @Test func killsNeverCostAResume() throws {
        let (dir, model, photo) = try VisualizeCommandTests.fixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        let reference = dir.appendingPathComponent("reference").path
        #expect(try runDipviz(FaultTests.invertArguments(model, photo, out: reference, iterations: 60)).status == 0)
        var rng = SystemRandomNumberGenerator()
        var kills = 0
        for trial in 0..<6 {
            let out = dir.appendingPathComponent("killed-\(trial)").path
            var args = FaultTests.invertArguments(model, photo, out: out, iterations: 60)
            for _ in 0..<3 {
                let running = try RunningDipviz(args)
                usleep(UInt32.random(in: 20_000...400_000, using: &rng))
                if running.process.isRunning { kill(running.process.processIdentifier, SIGKILL); kills += 1 }
                _ = running.wait()
                if !FileManager.default.fileExists(atPath: out + "/run.json") { break }
                args = ["invert", "--resume", out]
            }
            let finished = try RunningDipviz(["invert", "--resume", out], directory: URL(fileURLWithPath: "/"))
            let result = finished.wait()
            if FileManager.default.fileExists(atPath: out + "/run.json") {
                #expect(result.status == 0, "trial \(trial): \(result.stderr)")
            } else {
                // Killed before the run was recorded: nothing to resume, a clean error.
                #expect(result.status != 0 && result.stderr.contains("run"), "\(result.stderr)")
                #expect(try runDipviz(FaultTests.invertArguments(model, photo, out: out, iterations: 60)).status == 0)
            }
            #expect(bytes(out + "/image.png") == bytes(reference + "/image.png"), "trial \(trial) differs")
        }
        #expect(kills > 0)
    }

    /// SIGHUP, SIGINT and SIGTERM save and exit 130; the saved run resumes to the same bytes.
    @Test(arguments: [SIGHUP, SIGINT, SIGTERM])
    func signalsSaveAndResume(_ signal: Int32) throws {
        let (dir, model, photo) = try VisualizeCommandTests.fixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        let reference = dir.appendingPathComponent("reference").path, out = dir.appendingPathComponent("signalled").path
        #expect(try runDipviz(FaultTests.invertArguments(model, photo, out: reference, iterations: 400, snapshotEvery: 2)).status == 0)
        let r = try interruptedRun(FaultTests.invertArguments(model, photo, out: out, iterations: 400, snapshotEvery: 2), out: out,
                                   signal: signal)
        #expect(r.reason == .exit && r.status == 130, "\(r.stderr)")
        #expect(r.stderr.contains("--resume"))
        #expect(try runDipviz(["invert", "--resume", out]).status == 0)
        #expect(bytes(out + "/image.png") == bytes(reference + "/image.png"))
    }

    /// A full disk (here: a file-size limit) is an error, and the last good image stays.
    @Test func fullDiskKeepsTheLastGoodImage() throws {
        let (dir, model, photo) = try VisualizeCommandTests.fixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("full").path
        try interruptedRun(FaultTests.invertArguments(model, photo, out: out, iterations: 400, snapshotEvery: 2), out: out)
        let image = try #require(bytes(out + "/image.png"))
        // Checkpoints of this run are a few KB: a 1 KB limit makes the next one fail.
        let limited = try RunningDipviz(["invert", "--resume", out], shell: "trap '' XFSZ; ulimit -f 1")
        let r = limited.wait()
        #expect(r.reason == .exit && r.status != 0, "\(r.stderr)")
        #expect(r.stderr.hasPrefix("Error: cannot write") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(bytes(out + "/image.png") == image)
        #expect((try? PNG.read(path: out + "/image.png")) != nil)
        // With room again, the run continues.
        #expect(try runDipviz(["invert", "--resume", out]).status == 0)
    }

    @Test func divergenceIsReportedAndNotResumed() throws {
        let (dir, model, photo) = try VisualizeCommandTests.fixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("diverged").path
        let r = try runDipviz(FaultTests.invertArguments(model, photo, out: out, prior: "pixel", iterations: 20, snapshotEvery: 2)
                              + ["--data-weight", "1e38"])
        #expect(r.status == 2, "\(r.stderr)")
        let m = try VisualizeCommandTests.json(out + "/metrics.json")
        #expect(m["ending"] as? String == "diverged", "\(m)")
        #expect((try? PNG.read(path: out + "/image.png")) != nil)
        let again = try runDipviz(["invert", "--resume", out])
        #expect(again.status == 1 && again.stderr.contains("diverged") && again.stderr.split(separator: "\n").count == 1, "\(again.stderr)")
        for lr in ["nan", "inf", "0", "-1"] {
            let bad = try runDipviz(FaultTests.invertArguments(model, photo, out: out + lr, prior: "dip") + ["--lr", lr])
            #expect(bad.status != 0 && bad.stderr.contains("--lr"), "\(lr): \(bad.stderr)")
        }
    }

    /// Resume refuses a changed model or photo and says what changed.
    @Test func resumeRefusesChangedFiles() throws {
        let (dir, model, photo) = try VisualizeCommandTests.fixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("run").path
        try interruptedRun(FaultTests.invertArguments(model, photo, out: out, iterations: 400, snapshotEvery: 2), out: out,
                           signal: SIGTERM)
        let original = try #require(bytes(model))
        var changed = original
        changed[changed.count - 1] ^= 0x5A
        try changed.write(to: URL(fileURLWithPath: model))
        let r = try runDipviz(["invert", "--resume", out])
        #expect(r.status != 0 && r.stderr.contains("changed since the run was created") && r.stderr.contains("model"), "\(r.stderr)")
        try original.write(to: URL(fileURLWithPath: model))
        var px = [UInt8](repeating: 7, count: 24 * 20 * 3)
        px[0] = 1
        let oldPhoto = try #require(bytes(photo))
        try PNG.write(RGBImage(width: 24, height: 20, pixels: px), path: photo)
        let p = try runDipviz(["invert", "--resume", out])
        #expect(p.status != 0 && p.stderr.contains("photo") && p.stderr.contains("changed"), "\(p.stderr)")
        try oldPhoto.write(to: URL(fileURLWithPath: photo))
        #expect(try runDipviz(["invert", "--resume", out]).status == 0)
    }

    /// Relative paths are resolved when the run is created: a resume works from anywhere.
    @Test func resumeWorksFromAnyDirectory() throws {
        let (dir, _, _) = try VisualizeCommandTests.fixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        let stopped = try interruptedRun(FaultTests.invertArguments("tiny.onnx", "photo.png", out: "rel", iterations: 400, snapshotEvery: 2),
                                         out: "rel", directory: dir)
        #expect(stopped.status == 130)
        let r = try RunningDipviz(["invert", "--resume", dir.appendingPathComponent("rel").path], directory: URL(fileURLWithPath: "/")).wait()
        #expect(r.status == 0, "\(r.stderr)")
    }

    /// Misuse: clear errors in a line or two, never a crash.
    @Test func misuseIsAClearError() throws {
        let (dir, model, photo) = try VisualizeCommandTests.fixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("x").path
        let cases: [([String], String)] = [
            (["invert", model, photo, "--layer", "relu1", "--iterations", "-3", "--out", out], "--iterations"),
            (["invert", model, photo, "--layer", "relu1", "--iterations", "0", "--out", out], "--iterations"),
            (["invert", model, photo, "--layer", "relu1", "--size", "0", "--out", out], "--size"),
            (["invert", model, photo, "--layer", "relu1", "--size", "100000", "--out", out], "--size"),
            (["invert", model, photo, "--layer", "relu1", "--out", ""], "--out"),
            (["invert", model, photo, "--layer", "nope", "--out", out], "relu1"),
            (["invert", model, dir.path, "--layer", "relu1", "--out", out], "regular file"),
            (["maximize", model, "--layer", "conv1", "--unit", "-3", "--out", out], "unit"),
            (["maximize", model, "--layer", "conv1", "--unit", "1-2-3", "--out", out], "unit"),
            (["maximize", model, "--layer", "conv1", "--unit", "0-100000000", "--out", out], "at most 4096"),
            (["maximize", model, "--layer", "conv1", "--unit", "9", "--size", "16", "--out", out], "out of range"),
            (["invert", "--resume", dir.appendingPathComponent("none").path], "no such run folder"),
            (["run", dir.appendingPathComponent("none.json").path, "--out", out], "none.json"),
        ]
        for (args, mention) in cases {
            let r = try runDipviz(args)
            #expect(r.status != 0 && r.status < 128, "\(args)")
            let message = r.stderr.components(separatedBy: "\nUsage:")[0]
            #expect(message.hasPrefix("Error: ") && message.split(separator: "\n").count <= 2, "\(args): \(r.stderr)")
            #expect(message.contains(mention), "\(args) should mention \(mention): \(r.stderr)")
            for dump in ["DecodingError", "Error Domain=", "Fatal error"] { #expect(!r.stderr.contains(dump), "\(args): \(r.stderr)") }
        }
    }
}
