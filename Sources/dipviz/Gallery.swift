import ArgumentParser
import DipvizGallery
import DipvizTensor
import DipvizVisualize
import Foundation

struct Gallery: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compute the experiments a gallery spec lists (reusing finished ones) and write the static site.",
        discussion: """
        --out is the site to publish as it is; checkpoints, unfinished runs, the lock, status.json and the \
        shards' folders live in the work folder (--work, default OUT.work beside it). On a cluster: \
        --plan --shards N shows cost-balanced shards, --emit slurm|k8s --shards N writes the job files, \
        --shard auto computes the shard of a Slurm array task or Kubernetes Indexed Job, and \
        --merge-shards --render-only assembles the site.
        """)

    @Argument(help: "A gallery spec (JSON); see gallery/default.json.")
    var spec: String

    @Option(help: "Output folder of the site (what is published).")
    var out: String

    @Option(help: "Working folder: unfinished runs and their checkpoints, lock, status.json, shard folders (default: OUT.work).")
    var work: String?

    @Option(help: "Iteration budget named in the spec (e.g. quick or full).")
    var budget = "quick"

    @Flag(help: "The paper's settings: same as --budget full.")
    var full = false

    @Flag(help: "Only write the pages from the results already computed.")
    var renderOnly = false

    @Option(help: "Also export one notebook per model and experiment kind into this folder (the site holds them too).")
    var notebooks: String?

    @Option(help: "Compute with this many parallel processes (each a shard), then write the site.")
    var jobs = 1

    @Option(help: "Compute only shard I of N (I/N, 1-based), or 'auto' for a Slurm array task or Kubernetes Indexed Job; writes no pages.")
    var shard: ShardSpec?

    @Option(help: "Number of shards for --plan, --emit and --shard auto.")
    var shards: Int?

    @Flag(help: "Print the cost-balanced shards (--shards N) with their estimated minutes, and exit.")
    var plan = false

    @Flag(help: "With --plan: the plan as JSON, with every result's key, title, shard and estimated seconds.")
    var json = false

    @Option(help: "Write cluster job files for --shards N shards into the work folder: slurm or k8s.")
    var emit: ClusterKind?

    @Option(help: "CPUs per shard, for --plan's estimates and the emitted jobs.")
    var cpus = 2

    @Option(help: "Kubernetes: shard pods running at once (default: all).")
    var parallelism: Int?

    @Option(help: "Kubernetes: the container image with dipviz.")
    var image = "dipviz:latest"

    @Option(parsing: .upToNextOption, help: "Folders holding results/ (shard folders) whose finished results are copied in first.")
    var merge: [String] = []

    @Flag(help: "Copy in the finished results of every shard folder under the work folder first.")
    var mergeShards = false

    @Flag(help: "Keep each finished run's folder, with its last checkpoint, in the work folder.")
    var keepCheckpoints = false

    @Flag(help: "Compute every result on its own instead of a model's units (or classes) under one prior in batches of up to 8.")
    var oneAtATime = false

    /// Set by --jobs for its shard processes, which run under the parent's lock.
    @Flag(help: .hidden)
    var underParentLock = false

    enum ClusterKind: String, ExpressibleByArgument, CaseIterable { case slurm, k8s }

    func validate() throws {
        guard jobs >= 1 && jobs <= 64 else { throw ValidationError("--jobs must be between 1 and 64") }
        if shard != nil && jobs > 1 { throw ValidationError("--shard and --jobs do not combine") }
        if shard != nil && (!merge.isEmpty || mergeShards || renderOnly) {
            throw ValidationError("--shard computes one shard; merge and render in a separate run (--merge-shards --render-only)")
        }
        if out.isEmpty { throw ValidationError("--out must name a folder") }
        if let shards, !(1...4096).contains(shards) { throw ValidationError("--shards must be between 1 and 4096") }
        if (plan || emit != nil) && shards == nil { throw ValidationError("--plan and --emit need --shards N") }
        if plan && emit != nil { throw ValidationError("give --plan or --emit, not both") }
        if json && !plan { throw ValidationError("--json goes with --plan") }
        if let s = shard, s.count != nil, let n = shards, n != s.count {
            throw ValidationError("--shard \(s.text) and --shards \(n) disagree; give one count")
        }
        guard (1...1024).contains(cpus) else { throw ValidationError("--cpus must be between 1 and 1024") }
        if let p = parallelism, p < 1 { throw ValidationError("--parallelism must be 1 or more") }
    }

    var workFolder: String { work ?? GalleryBuilder.defaultWork(for: out) }

    func run() throws {
        Interruption.install()
        if RestorationGallerySpec.isRestoration(path: spec) { return try runRestoration() }
        let definition = try GallerySpec.load(path: spec)
        let budget = full ? "full" : self.budget
        let specDirectory = (spec as NSString).deletingLastPathComponent
        if plan || emit != nil {
            let builder = try GalleryBuilder(spec: definition, budget: budget, specDirectory: specDirectory, output: out, work: workFolder)
            try planOrEmit(builder, budget: budget)
            return
        }
        if let shard {
            let (index, count) = try shard.resolve(shards: shards, environment: ProcessInfo.processInfo.environment)
            try runShard(definition, budget: budget, specDirectory: specDirectory, index: index, count: count)
            return
        }
        do { try FileManager.default.createDirectory(atPath: workFolder, withIntermediateDirectories: true) } catch {
            throw GalleryError.experiment("cannot create \(workFolder): \(FileErrors.describe(error))")
        }
        let lock = try FolderLock.acquire((workFolder as NSString).appendingPathComponent("gallery.lock"), what: "the gallery in \(out)")
        defer { FolderLock.release(lock) }
        let builder = try GalleryBuilder(spec: definition, budget: budget, specDirectory: specDirectory, output: out, work: workFolder)
        builder.keepCheckpoints = keepCheckpoints
        builder.batching = !oneAtATime
        var sources = merge
        if mergeShards {
            let root = (workFolder as NSString).appendingPathComponent("shards")
            sources += ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted().filter { !$0.hasPrefix(".") }
                .map { (root as NSString).appendingPathComponent($0) }
        }
        if !sources.isEmpty || mergeShards {
            report(try builder.merge(from: sources), folders: sources.count)
        }
        let started = Date()
        var ending = RunEnding.finished
        var computed = 0
        if jobs > 1 && !renderOnly {
            computed = try runJobs(builder, budget: budget)
        }
        if !renderOnly {
            let pending = builder.pending
            let batches = builder.batches(pending)
            print("gallery: \(builder.experiments.count) results, \(builder.experiments.count - pending.count) reused, \(pending.count) to compute"
                  + GalleryProgress.batchNote(batches))
            let progress = try GalleryProgress(builder: builder, pending: batches.flatMap { $0 }, shardLabel: nil)
            let (last, here) = try compute(batches, builder: builder, progress: progress) { status in
                try status.write(to: GalleryStatus.path(work: self.workFolder))
            }
            ending = last
            computed += here
        }
        let index = try GallerySite(builder: builder, budget: budget).render()
        if let notebooks {
            for path in try NotebookExport.writeGallery(builder, budget: budget, to: notebooks) { print("gallery: wrote \(path)") }
        }
        let missing = builder.pending.count
        let state = ending == .interrupted ? "interrupted" : (missing == 0 ? "finished" : (renderOnly ? "incomplete" : "failed"))
        try GalleryStatus(title: definition.title, budget: budget, state: state, total: builder.experiments.count,
                          done: builder.experiments.count - missing, estimatedMinutesLeft: 0).write(to: GalleryStatus.path(work: workFolder))
        if ending == .interrupted {
            FileHandle.standardError.write(Data("interrupted: finished results are kept; run the same command again to continue\n".utf8))
            throw ExitCode(130)
        }
        if renderOnly && missing > 0 {
            FileHandle.standardError.write(Data("gallery: \(missing) results are not computed yet; their cells say so\n".utf8))
        }
        print(String(format: "gallery: computed %d results in %.0f s; open %@", computed, Date().timeIntervalSince(started), index))
    }

    func report(_ r: GalleryBuilder.MergeReport, folders: Int) {
        print("gallery: merged \(r.copied) results from \(folders) folders (\(r.present) already in the site)")
        for line in r.refused.prefix(5) { FileHandle.standardError.write(Data("gallery: refused \(line)\n".utf8)) }
        if r.refused.count > 5 { FileHandle.standardError.write(Data("gallery: refused \(r.refused.count - 5) more\n".utf8)) }
    }

    /// Runs `batches` (`GalleryBuilder.batches`) in order with one progress line for all of
    /// them; `status` is called with the build's state after each batch. Returns how the last
    /// run ended and how many results finished.
    func compute(_ batches: [[Experiment]], builder: GalleryBuilder, progress: GalleryProgress,
                 status: (GalleryStatus) throws -> Void) throws -> (RunEnding, Int) {
        var computed = 0
        let pending = batches.flatMap { $0 }
        try status(progress.status(state: "running", current: pending.first))
        var i = 0
        for members in batches {
            let e = members[0]
            progress.begin(i, count: members.count)
            var control = DipvizVisualize.RunControl()
            control.progress = { t, total, _ in progress.update(iteration: t, of: total) }
            control.shouldStop = { Interruption.isRequested }
            let ending: RunEnding
            do { ending = try builder.run(batch: members, control: control) } catch {
                progress.finishLine()
                try? status(progress.status(state: "failed", current: e))
                throw error
            }
            for (k, member) in members.enumerated() {
                let done = builder.isDone(member)
                progress.end(i + k, finished: done)
                if done { computed += 1 }
            }
            if ending == .diverged {
                progress.finishLine()
                let last = members.last { !builder.isDone($0) } ?? e
                FileHandle.standardError.write(Data("gallery: \(last.modelName): \(last.title) diverged; its page shows the last good image\n".utf8))
            }
            if ending == .interrupted {
                progress.finishLine()
                try status(progress.status(state: "interrupted", current: e))
                return (.interrupted, computed)
            }
            i += members.count
            try status(progress.status(state: i == pending.count ? "finished" : "running", current: pending.dropFirst(i).first))
        }
        progress.finishLine()
        return (.finished, computed)
    }

    /// One shard: its share of the cost-balanced plan, into its own folder under the work
    /// folder, with no lock on the site (shards run at the same time on other machines).
    func runShard(_ definition: GallerySpec, budget: String, specDirectory: String, index: Int, count: Int) throws {
        let builder = try GalleryBuilder(spec: definition, budget: budget, specDirectory: specDirectory, output: out, work: workFolder,
                                         shard: (index, count))
        builder.keepCheckpoints = keepCheckpoints
        builder.batching = !oneAtATime
        let folder = builder.shardFolder!
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            throw GalleryError.experiment("cannot create \(folder): \(FileErrors.describe(error))")
        }
        let lock = try FolderLock.acquire((folder as NSString).appendingPathComponent("shard.lock"), what: "shard \(index)/\(count) in \(folder)")
        defer { FolderLock.release(lock) }
        let share = try builder.shard(index, of: count)
        let pending = share.filter { !builder.isDone($0) }
        let batches = builder.batches(pending)
        print("gallery: shard \(index)/\(count): \(share.count) results, \(share.count - pending.count) reused, \(pending.count) to compute"
              + GalleryProgress.batchNote(batches))
        let started = Date()
        let progress = try GalleryProgress(builder: builder, pending: batches.flatMap { $0 }, shardLabel: "\(index)/\(count)", total: share.count,
                                           quiet: underParentLock)
        let (ending, computed) = try compute(batches, builder: builder, progress: progress) { status in
            try status.writeShard(work: self.workFolder, index: index, count: count, galleryTotal: builder.experiments.count)
        }
        if ending == .interrupted {
            FileHandle.standardError.write(Data("interrupted: finished results are kept; run the same command again to continue\n".utf8))
            throw ExitCode(130)
        }
        print(String(format: "gallery: shard %d/%d computed %d results in %.0f s into %@; assemble with --merge-shards", index, count,
                     computed, Date().timeIntervalSince(started), folder))
    }

    func planOrEmit(_ builder: GalleryBuilder, budget: String) throws {
        let count = shards ?? 1
        let plan = try builder.plan(shards: count, cpus: cpus)
        if self.plan {
            print(json ? try GalleryPlanReport.json(plan, builder: builder, cpus: cpus)
                       : GalleryPlanReport.text(plan, builder: builder, spec: spec, budget: budget, cpus: cpus))
            if let reason = plan.imbalanceReason { FileHandle.standardError.write(Data("gallery: \(reason)\n".utf8)) }
            return
        }
        if let reason = plan.imbalanceReason, count > 1 && (plan.costs.max() ?? 0) > plan.costs.reduce(0, +) / Double(count) {
            throw GalleryError.experiment("--shards \(count): \(reason)")
        }
        var jobs = ClusterJobs(spec: spec, output: out, work: workFolder, budget: budget, shardSeconds: plan.loads,
                               resultCount: builder.experiments.count, cpus: cpus)
        jobs.title = builder.spec.title
        jobs.parallelism = parallelism
        jobs.image = image
        let kind = emit ?? .slurm
        let directory = (workFolder as NSString).appendingPathComponent(kind.rawValue)
        let paths = try ClusterJobs.write(kind == .slurm ? jobs.slurm() : jobs.kubernetes(), into: directory)
        for p in paths { print("gallery: wrote \(p)") }
        print(kind == .slurm ? "gallery: submit with: sh \(Shell.quote(directory + "/submit.sh"))"
                             : "gallery: apply with: sh \(Shell.quote(directory + "/submit.sh"))")
    }

    /// Runs this command as `jobs` shard processes (each into its own shard folder), then
    /// moves their results into the site; returns how many came in.
    func runJobs(_ builder: GalleryBuilder, budget: String) throws -> Int {
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).path
        let processes = try (1...jobs).map { i -> Process in
            let p = Process()
            p.executableURL = URL(fileURLWithPath: me)
            p.arguments = ["gallery", spec, "--out", out, "--work", workFolder, "--budget", budget, "--shard", "\(i)/\(jobs)",
                           "--under-parent-lock"] + (keepCheckpoints ? ["--keep-checkpoints"] : []) + (oneAtATime ? ["--one-at-a-time"] : [])
            try p.run()
            return p
        }
        // One line for all of them, from the status files the shards keep.
        let showLine = isatty(2) != 0
        let total = builder.experiments.count, before = total - builder.pending.count
        var drawn = false
        while processes.contains(where: \.isRunning) {
            usleep(500_000)
            guard showLine else { continue }
            let statuses = (1...jobs).compactMap {
                GalleryStatus.read(GalleryStatus.path(work: GalleryBuilder.shardFolder(work: workFolder, index: $0, count: jobs)))
            }
            let done = statuses.isEmpty ? before : statuses.reduce(0) { $0 + $1.done }
            let eta = statuses.map(\.estimatedMinutesLeft).max().map { ProgressLine.duration($0 * 60) } ?? "?"
            let line = "\rgallery: \(done)/\(total) done, \(total - done) left, ETA \(eta) | \(jobs) processes\u{1B}[K"
            FileHandle.standardError.write(Data(line.utf8))
            drawn = true
        }
        if drawn { FileHandle.standardError.write(Data("\n".utf8)) }
        for p in processes { p.waitUntilExit() }
        let folders = (1...jobs).map { GalleryBuilder.shardFolder(work: workFolder, index: $0, count: jobs) }
            .filter { FileManager.default.fileExists(atPath: $0) }
        let merged = try builder.merge(from: folders, move: true)
        let failed = processes.filter { $0.terminationStatus != 0 }.count
        if failed > 0 && !Interruption.isRequested {
            throw ValidationError("\(failed) of \(jobs) gallery processes failed")
        }
        return merged.copied
    }
}

/// One progress line for a whole build: results done and left, and an ETA from the cost
/// model, corrected by the speed measured so far; on a terminal only (a line per result when
/// piped).
final class GalleryProgress {
    let builder: GalleryBuilder
    let pending: [Experiment]
    let costs: [Double]
    let total: Int
    let alreadyDone: Int
    let shardLabel: String?
    let enabled: Bool
    let quiet: Bool
    let started = Date()
    var finishedCost = 0.0
    var finished = 0
    var current = 0
    /// Results the current run computes together (a batch), from `current` on.
    var span = 1
    var fraction = 0.0
    var last = Date.distantPast

    init(builder: GalleryBuilder, pending: [Experiment], shardLabel: String?, total: Int? = nil, quiet: Bool = false) throws {
        self.builder = builder
        self.pending = pending
        let estimates = try builder.estimatedSeconds(cpus: Parallel.workerCount)
        let index = Dictionary(builder.experiments.enumerated().map { ($1.key, $0) }, uniquingKeysWith: { a, _ in a })
        costs = pending.map { estimates[index[$0.key] ?? 0] }
        self.total = total ?? builder.experiments.count
        alreadyDone = self.total - pending.count
        self.shardLabel = shardLabel
        self.quiet = quiet
        enabled = isatty(2) != 0 && !quiet
    }

    /// Seconds left: the model's estimate of what remains, scaled by how fast the finished
    /// part went against its estimate.
    var secondsLeft: Double {
        let running = costs.dropFirst(current).prefix(span).reduce(0, +)
        let remaining = costs.dropFirst(current).reduce(0, +) - fraction * running
        let doneCost = finishedCost + fraction * running
        let elapsed = Date().timeIntervalSince(started)
        guard doneCost > 0, elapsed > 5 else { return remaining }
        return remaining * elapsed / doneCost
    }

    /// Starts the run of `pending[i..<i + count]` (a batch when `count` > 1).
    func begin(_ i: Int, count: Int = 1) {
        current = i; span = count; fraction = 0
        if !enabled && !quiet {
            let first = alreadyDone + finished + 1
            let numbers = count > 1 ? "\(first)-\(first + count - 1)" : "\(first)"
            print("[\(numbers)/\(total)] \(pending[i].modelName): \(title(i))")
            fflush(stdout)
        }
        draw(force: true)
    }

    /// The title of the run starting at `pending[i]`: the result's, or the batch's.
    func title(_ i: Int) -> String {
        span > 1 ? GalleryBuilder.title(ofBatch: Array(pending[i..<Swift.min(i + span, pending.count)])) : pending[i].title
    }

    /// ", in N batches" for a build that batches some of its results.
    static func batchNote(_ batches: [[Experiment]]) -> String {
        let batched = batches.filter { $0.count > 1 }
        guard !batched.isEmpty else { return "" }
        return " (\(batched.reduce(0) { $0 + $1.count }) of them in \(batched.count) batch\(batched.count == 1 ? "" : "es"))"
    }

    func update(iteration t: Int, of n: Int) {
        fraction = n > 0 ? Double(t) / Double(n) : 0
        draw(force: false)
    }

    func end(_ i: Int, finished ok: Bool) {
        if ok { finished += 1; finishedCost += costs[i] }
        if i + 1 >= current + span { current = i + 1; span = 1; fraction = 0 }
    }

    func draw(force: Bool) {
        guard enabled, force || Date().timeIntervalSince(last) > 0.25, pending.indices.contains(current) else { return }
        last = Date()
        let e = pending[current]
        let done = alreadyDone + finished
        let head = (shardLabel.map { "shard \($0): " } ?? "gallery: ") +
            "\(done)/\(total) done, \(total - done) left, ETA \(ProgressLine.duration(secondsLeft))"
        var title = "\(e.modelName): \(self.title(current))"
        if title.count > 48 { title = String(title.prefix(47)) + "…" }
        let line = String(format: "\r%@ | %@ %3.0f%%\u{1B}[K", head, title, fraction * 100)
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finishLine() {
        guard enabled, last != .distantPast else { return }
        FileHandle.standardError.write(Data("\n".utf8))
        last = .distantPast
    }

    func status(state: String, current e: Experiment?) -> GalleryStatus {
        GalleryStatus(title: builder.spec.title, budget: builder.budget, state: state, total: total, done: alreadyDone + finished,
                      estimatedMinutesLeft: state == "finished" ? 0 : secondsLeft / 60,
                      current: state == "running" ? e.map { "\($0.modelName): \($0.title)" } : nil, shard: shardLabel)
    }
}

/// `--shard I/N`, or `auto`: the index from SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX
/// (0-based, so array indices 0..N-1 are shards 1..N), the count from --shards or
/// SLURM_ARRAY_TASK_COUNT.
struct ShardSpec: ExpressibleByArgument {
    let index: Int?, count: Int?
    let text: String

    init?(argument: String) {
        text = argument
        if argument == "auto" { index = nil; count = nil; return }
        let parts = argument.split(separator: "/", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count == 2, let i = parts[0], let n = parts[1], n >= 1, i >= 1, i <= n else { return nil }
        index = i; count = n
    }

    func resolve(shards: Int?, environment: [String: String]) throws -> (Int, Int) {
        if let index, let count { return (index, count) }
        let fromSlurm = environment["SLURM_ARRAY_TASK_ID"]
        let fromK8s = environment["JOB_COMPLETION_INDEX"]
        guard let raw = fromSlurm ?? fromK8s else {
            throw ValidationError("--shard auto: neither SLURM_ARRAY_TASK_ID (a Slurm array task) nor JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set; give --shard I/N")
        }
        let variable = fromSlurm != nil ? "SLURM_ARRAY_TASK_ID" : "JOB_COMPLETION_INDEX"
        guard let zeroBased = Int(raw), zeroBased >= 0 else {
            throw ValidationError("--shard auto: \(variable) is '\(raw)'; expected an index 0, 1, 2, ...")
        }
        let count: Int
        if let shards { count = shards } else if let n = environment["SLURM_ARRAY_TASK_COUNT"].flatMap({ Int($0) }), n >= 1 { count = n } else {
            throw ValidationError("--shard auto: give --shards N (the number of shards; \(variable) only names this task's index)")
        }
        guard zeroBased < count else {
            throw ValidationError("--shard auto: \(variable)=\(zeroBased) but there are \(count) shards; valid indices: 0...\(count - 1)")
        }
        return (zeroBased + 1, count)
    }
}
