import ArgumentParser
import DipvizGallery
import DipvizTensor
import DipvizVisualize
import Foundation

struct Gallery: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compute the experiments a gallery spec lists (reusing finished ones) and write the static site.")

    @Argument(help: "A gallery spec (JSON); see gallery/default.json.")
    var spec: String

    @Option(help: "Output folder of the site.")
    var out: String

    @Option(help: "Iteration budget named in the spec (e.g. quick or full).")
    var budget = "quick"

    @Flag(help: "The paper's settings: same as --budget full.")
    var full = false

    @Flag(help: "Only write the pages from the results already computed.")
    var renderOnly = false

    @Option(help: "Also export one notebook per model and experiment kind into this folder.")
    var notebooks: String?

    @Option(help: "Compute with this many parallel processes (each a shard), then write the site.")
    var jobs = 1

    @Option(help: "Compute only share I of N (I/N, 1-based) and write no pages; assemble with --merge.")
    var shard: ShardSpec?

    @Option(parsing: .upToNextOption, help: "Output folders of shards whose results are copied in before the site is written.")
    var merge: [String] = []

    /// Set by --jobs for its shard processes, which share the parent's lock on --out.
    @Flag(help: .hidden)
    var underParentLock = false

    func validate() throws {
        guard jobs >= 1 && jobs <= 64 else { throw ValidationError("--jobs must be between 1 and 64") }
        if shard != nil && jobs > 1 { throw ValidationError("--shard and --jobs do not combine") }
        if out.isEmpty { throw ValidationError("--out must name a folder") }
    }

    func run() throws {
        Interruption.install()
        let definition = try GallerySpec.load(path: spec)
        let budget = full ? "full" : self.budget
        var lock: Int32 = -1
        if !underParentLock {
            do { try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true) } catch {
                throw GalleryError.experiment("cannot create \(out): \(FileErrors.describe(error))")
            }
            lock = try FolderLock.acquire((out as NSString).appendingPathComponent(".gallery.lock"), what: "the gallery in \(out)")
        }
        defer { if lock >= 0 { close(lock) } }
        let builder = try GalleryBuilder(spec: definition, budget: budget, specDirectory: (spec as NSString).deletingLastPathComponent, output: out)
        if !merge.isEmpty {
            let copied = try builder.merge(from: merge)
            print("gallery: merged \(copied) results from \(merge.count) folders")
        }
        if jobs > 1 && !renderOnly {
            try runJobs(builder)
        }
        let share = shard.map { s in builder.shard(s.index, of: s.count) } ?? builder.experiments
        let pending = renderOnly ? [] : share.filter { !builder.isDone($0) }
        let total = share.count
        print("gallery: \(total) results, \(total - pending.count) reused, \(pending.count) to compute")
        let started = Date()
        var interrupted = false
        for (i, e) in pending.enumerated() {
            let elapsed = Date().timeIntervalSince(started)
            let eta = i > 0 ? ProgressLine.duration(elapsed / Double(i) * Double(pending.count - i)) : "?"
            let line = ProgressLine(label: "[\(i + 1)/\(pending.count), ETA \(eta)] \(e.modelName): \(e.title)")
            var control = DipvizVisualize.RunControl()
            control.progress = line.update
            control.shouldStop = { Interruption.isRequested }
            if !line.enabled { print("[\(i + 1)/\(pending.count)] \(e.modelName): \(e.title)"); fflush(stdout) }
            let ending = try builder.run(e, control: control)
            if ending == .diverged {
                FileHandle.standardError.write(Data("gallery: \(e.modelName): \(e.title) diverged; its page shows the last good image\n".utf8))
            }
            if ending == .interrupted { interrupted = true; break }
        }
        if let shard {
            print(String(format: "gallery: shard %d/%d computed %d results in %.0f s; assemble with --merge", shard.index, shard.count,
                         pending.count, Date().timeIntervalSince(started)))
            return
        }
        let index = try GallerySite(builder: builder, budget: budget).render()
        if let notebooks {
            for path in try NotebookExport.writeGallery(builder, budget: budget, to: notebooks) { print("gallery: wrote \(path)") }
        }
        if interrupted {
            FileHandle.standardError.write(Data("interrupted: finished results are kept; run the same command again to continue\n".utf8))
            throw ExitCode(130)
        }
        print(String(format: "gallery: computed %d results in %.0f s; open %@", pending.count, Date().timeIntervalSince(started), index))
    }

    /// Runs this command as `jobs` shard processes writing into the same folder (results are
    /// per-experiment folders, so shards never touch the same files).
    func runJobs(_ builder: GalleryBuilder) throws {
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).path
        let processes = try (1...jobs).map { i -> Process in
            let p = Process()
            p.executableURL = URL(fileURLWithPath: me)
            p.arguments = ["gallery", spec, "--out", out, "--budget", full ? "full" : budget, "--shard", "\(i)/\(jobs)", "--under-parent-lock"]
            try p.run()
            return p
        }
        for p in processes { p.waitUntilExit() }
        let failed = processes.filter { $0.terminationStatus != 0 }.count
        if failed > 0 && !Interruption.isRequested {
            throw ValidationError("\(failed) of \(jobs) gallery processes failed")
        }
    }
}

struct ShardSpec: ExpressibleByArgument {
    let index: Int, count: Int
    init?(argument: String) {
        let parts = argument.split(separator: "/").compactMap { Int($0) }
        guard parts.count == 2, parts[1] >= 1, parts[0] >= 1, parts[0] <= parts[1] else { return nil }
        index = parts[0]; count = parts[1]
    }
}

import DipvizVisualize
