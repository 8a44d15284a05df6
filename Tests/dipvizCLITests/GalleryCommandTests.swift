import DipvizImage
import DipvizONNX
import Foundation
import Testing

@Suite("dipviz gallery: reproduce commands, identity, locks")
struct GalleryCommandTests {
    /// A gallery whose model and photos live in folders with hostile names.
    static func fixture() throws -> (dir: URL, spec: String) {
        let dir = try temporaryDirectory()
        let weird = dir.appendingPathComponent("it's a $(touch PWNED); `x` \"q\"")
        try FileManager.default.createDirectory(at: weird.appendingPathComponent("a"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: weird.appendingPathComponent("b"), withIntermediateDirectories: true)
        var b = ONNXGraphBuilder(seed: 3)
        b.conv(4, kernel: 3, pad: 1); b.relu(); b.maxPool(2, stride: 2); b.conv(4, kernel: 3, pad: 1); b.relu()
        try b.model(name: "tiny", inputShape: [1, 3, nil, nil]).encode().write(to: weird.appendingPathComponent("tiny net.onnx"))
        for (folder, shade) in [("a", 40), ("b", 200)] {
            var px = [UInt8]()
            for y in 0..<20 { for x in 0..<20 { px += [UInt8(x * 12), UInt8(y * 12), UInt8(shade)] } }
            try PNG.write(RGBImage(width: 20, height: 20, pixels: px), path: weird.appendingPathComponent("\(folder)/cat.png").path)
        }
        let name = weird.lastPathComponent.replacingOccurrences(of: "\"", with: "\\\"")
        let json = """
        {"title": "Hostile names", "budgets": {"tiny": {"size": 16, "dip_iterations": 2, "tv_iterations": 6}},
         "models": [{"name": "Net", "path": "\(name)/tiny net.onnx",
                     "inversion": {"images": ["\(name)/a/cat.png", "\(name)/b/cat.png"], "layers": ["conv1"], "priors": ["tv"]}},
                    {"name": "net", "path": "\(name)/tiny net.onnx",
                     "maximization": {"layer": "conv2", "units": "0-1", "priors": ["pixel"]}}]}
        """
        let spec = dir.appendingPathComponent("spec.json").path
        try json.write(toFile: spec, atomically: true, encoding: .utf8)
        return (dir, spec)
    }

    static func unescape(_ html: String) -> String {
        html.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'")
            .replacingOccurrences(of: "&#x27;", with: "'").replacingOccurrences(of: "&#96;", with: "`")
            .replacingOccurrences(of: "&#x60;", with: "`").replacingOccurrences(of: "&#x3D;", with: "=")
            .replacingOccurrences(of: "&#x2F;", with: "/").replacingOccurrences(of: "&amp;", with: "&")
    }

    static func shell(_ line: String, in dir: URL) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", line]
        p.currentDirectoryURL = dir
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, text)
    }

    static func json(_ path: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any] ?? [:]
    }

    /// The command on each result page reruns exactly that result: same spec, same metrics,
    /// same image; hostile folder names round-trip and run nothing else.
    @Test func pageCommandsRerunTheirResults() throws {
        let (dir, spec) = try GalleryCommandTests.fixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        let built = try RunningDipviz(["gallery", spec, "--out", "site", "--budget", "tiny"], directory: dir).wait()
        #expect(built.status == 0, "\(built.stderr)")
        let results = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("site/results").path).sorted()
        #expect(results.count == 4)
        let binary = Bundle.main.bundleURL.appendingPathComponent("dipviz").path
        for key in results.prefix(3) {
            let page = try String(contentsOfFile: dir.appendingPathComponent("site/results/\(key)/index.html").path, encoding: .utf8)
            let code = try #require(page.components(separatedBy: "<pre><code>").dropFirst().first?.components(separatedBy: "</code></pre>").first)
            let command = GalleryCommandTests.unescape(code)
            #expect(command.hasPrefix("dipviz "), "\(command)")
            let (status, stderr) = try GalleryCommandTests.shell("'\(binary)'" + command.dropFirst("dipviz".count), in: dir)
            #expect(status == 0, "\(command): \(stderr)")
            let original = dir.appendingPathComponent("site/results/\(key)").path, rerun = dir.appendingPathComponent(key).path
            #expect(NSDictionary(dictionary: try GalleryCommandTests.json(original + "/run.json")["spec"] as? [String: Any] ?? [:])
                    == NSDictionary(dictionary: try GalleryCommandTests.json(rerun + "/run.json")["spec"] as? [String: Any] ?? [:]), "\(command)")
            var a = (try GalleryCommandTests.json(original + "/metrics.json")["results"] as? [[String: Any]])?.first ?? [:]
            var b = (try GalleryCommandTests.json(rerun + "/metrics.json")["results"] as? [[String: Any]])?.first ?? [:]
            a["seconds"] = nil; b["seconds"] = nil
            #expect(!a.isEmpty && NSDictionary(dictionary: a) == NSDictionary(dictionary: b), "\(a) vs \(b)")
            #expect(FileManager.default.contents(atPath: original + "/image.png") == FileManager.default.contents(atPath: rerun + "/image.png"))
        }
        let planted = FileManager.default.enumerator(atPath: dir.path)!.compactMap { $0 as? String }.filter { $0.contains("PWNED") && !$0.contains("$(") }
        #expect(planted.isEmpty, "a command ran an injected command: \(planted)")
        // Same file name in two folders, and model names differing in case: pages of their own.
        let site = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("site").path).filter { $0.hasSuffix(".html") }
        #expect(site.filter { $0.hasPrefix("inversion-") }.count == 2, "\(site)")
        #expect(site.filter { $0.hasPrefix("model-") }.count == 2, "\(site)")
        let pages = try site.filter { $0.hasPrefix("inversion-") }.map { try String(contentsOfFile: dir.appendingPathComponent("site/\($0)").path, encoding: .utf8) }
        #expect(pages.contains { $0.contains("a/cat") } && pages.contains { $0.contains("b/cat") })
    }

    @Test func badSpecsLocksAndMergesAreClearErrors() throws {
        let (dir, spec) = try GalleryCommandTests.fixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        var text = try String(contentsOfFile: spec, encoding: .utf8)
        text = text.replacingOccurrences(of: "\"layers\"", with: "\"layerz\"")
        let bad = dir.appendingPathComponent("bad.json").path
        try text.write(toFile: bad, atomically: true, encoding: .utf8)
        let r = try RunningDipviz(["gallery", bad, "--out", "x", "--budget", "tiny"], directory: dir).wait()
        #expect(r.status != 0 && r.stderr.contains("'layerz'") && r.stderr.contains("'layers'") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        let typed = dir.appendingPathComponent("typed.json").path
        try text.replacingOccurrences(of: "\"layerz\"", with: "\"layers\"").replacingOccurrences(of: "\"size\": 16", with: "\"size\": \"big\"")
            .write(toFile: typed, atomically: true, encoding: .utf8)
        let t = try RunningDipviz(["gallery", typed, "--out", "x", "--budget", "tiny"], directory: dir).wait()
        #expect(t.status != 0 && t.stderr.contains("budgets.tiny.size") && !t.stderr.contains("DecodingError"), "\(t.stderr)")
        // Another build holds the lock on the site's work folder.
        let work = dir.appendingPathComponent("locked.work")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        let fd = open(work.appendingPathComponent("gallery.lock").path, O_RDWR | O_CREAT, 0o644)
        #expect(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
        let locked = try RunningDipviz(["gallery", spec, "--out", "locked", "--budget", "tiny"], directory: dir).wait()
        close(fd)
        #expect(locked.status != 0 && locked.stderr.contains("another dipviz process"), "\(locked.stderr)")
        let merge = try RunningDipviz(["gallery", spec, "--out", "m", "--budget", "tiny", "--render-only", "--merge", "missing-shard"], directory: dir).wait()
        #expect(merge.status != 0 && merge.stderr.contains("missing-shard") && merge.stderr.contains("no such folder"), "\(merge.stderr)")
    }

    /// Runs dipviz in `directory` with extra environment variables; stdout and stderr apart.
    static func dipviz(_ arguments: [String], in directory: URL, environment: [String: String] = [:]) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = Bundle.main.bundleURL.appendingPathComponent("dipviz")
        p.arguments = arguments
        p.currentDirectoryURL = directory
        var env = ProcessInfo.processInfo.environment
        for k in ["SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "JOB_COMPLETION_INDEX"] { env[k] = nil }
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    /// `--shard auto` takes the shard from a Slurm array task or a Kubernetes Indexed Job;
    /// shards write only into their folders; --merge-shards --render-only assembles the site,
    /// and status.json says where the build stands.
    @Test func shardAutoReadsTheSchedulerAndMergeAssemblesTheSite() throws {
        let (dir, spec) = try GalleryCommandTests.fixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = ["gallery", spec, "--out", "site", "--budget", "tiny"]
        let none = try GalleryCommandTests.dipviz(base + ["--shard", "auto", "--shards", "2"], in: dir)
        #expect(none.status != 0 && none.err.contains("SLURM_ARRAY_TASK_ID") && none.err.contains("JOB_COMPLETION_INDEX"), "\(none.err)")
        let outOfRange = try GalleryCommandTests.dipviz(base + ["--shard", "auto", "--shards", "2"], in: dir, environment: ["JOB_COMPLETION_INDEX": "2"])
        #expect(outOfRange.status != 0 && outOfRange.err.contains("0...1"), "\(outOfRange.err)")
        let k8s = try GalleryCommandTests.dipviz(base + ["--shard", "auto", "--shards", "2"], in: dir, environment: ["JOB_COMPLETION_INDEX": "1"])
        #expect(k8s.status == 0 && k8s.out.contains("shard 2/2"), "\(k8s.err)")
        let slurm = try GalleryCommandTests.dipviz(base + ["--shard", "auto"], in: dir,
                                                   environment: ["SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "2"])
        #expect(slurm.status == 0 && slurm.out.contains("shard 1/2"), "\(slurm.err)")
        let fm = FileManager.default
        #expect(!fm.fileExists(atPath: dir.appendingPathComponent("site").path), "a shard wrote into the site")
        let shardResults = (1...2).flatMap { i in
            (try? fm.contentsOfDirectory(atPath: dir.appendingPathComponent("site.work/shards/\(i)-of-2/results").path)) ?? []
        }
        #expect(shardResults.count == 4 && Set(shardResults).count == 4, "\(shardResults)")
        let shardStatus = try GalleryCommandTests.json(dir.appendingPathComponent("site.work/status.json").path)
        #expect(shardStatus["state"] as? String == "finished" && shardStatus["done"] as? Int == 4, "\(shardStatus)")
        #expect((shardStatus["shards"] as? [Any])?.count == 2)
        let merged = try GalleryCommandTests.dipviz(base + ["--merge-shards", "--render-only"], in: dir)
        #expect(merged.status == 0 && merged.out.contains("merged 4 results"), "\(merged.err)")
        let again = try GalleryCommandTests.dipviz(base + ["--merge-shards", "--render-only"], in: dir)
        #expect(again.status == 0 && again.out.contains("merged 0 results") && again.out.contains("4 already"), "\(again.out)")
        #expect(try fm.contentsOfDirectory(atPath: dir.appendingPathComponent("site/results").path).count == 4)
        let status = try GalleryCommandTests.json(dir.appendingPathComponent("site.work/status.json").path)
        #expect(status["state"] as? String == "finished" && status["left"] as? Int == 0, "\(status)")
        // Rebuilding reuses every merged result.
        let rebuilt = try GalleryCommandTests.dipviz(base, in: dir)
        #expect(rebuilt.status == 0 && rebuilt.out.contains("4 reused, 0 to compute"), "\(rebuilt.out)")
    }

    /// --plan prints the shards with their estimated minutes; --emit writes job files whose
    /// paths are the ones given (relative), and refuses more shards than can be balanced.
    @Test func planAndEmitJobFiles() throws {
        let (dir, spec) = try GalleryCommandTests.fixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = ["gallery", spec, "--out", "site", "--budget", "tiny"]
        let plan = try GalleryCommandTests.dipviz(base + ["--plan", "--shards", "2"], in: dir)
        #expect(plan.status == 0 && plan.out.contains("1/2") && plan.out.contains("2/2") && plan.out.contains("est. min"), "\(plan.out)")
        #expect(plan.out.contains("spread"))
        let relative = try GalleryCommandTests.dipviz(["gallery", "spec.json", "--out", "site", "--budget", "tiny", "--emit", "slurm", "--shards", "2"], in: dir)
        #expect(relative.status == 0, "\(relative.err)")
        let sbatch = try String(contentsOfFile: dir.appendingPathComponent("site.work/slurm/shards.sbatch").path, encoding: .utf8)
        #expect(sbatch.contains("#SBATCH --array=0-1") && sbatch.contains("gallery spec.json --out site --work site.work"), "\(sbatch)")
        #expect(!sbatch.contains(dir.path))
        let k8s = try GalleryCommandTests.dipviz(["gallery", "spec.json", "--out", "site", "--budget", "tiny", "--emit", "k8s", "--shards", "2",
                                                   "--parallelism", "1"], in: dir)
        #expect(k8s.status == 0, "\(k8s.err)")
        let job = try String(contentsOfFile: dir.appendingPathComponent("site.work/k8s/shards-job.yaml").path, encoding: .utf8)
        #expect(job.contains("completionMode: Indexed") && job.contains("completions: 2") && job.contains("parallelism: 1"), "\(job)")
        let tooMany = try GalleryCommandTests.dipviz(base + ["--emit", "slurm", "--shards", "5"], in: dir)
        #expect(tooMany.status != 0 && tooMany.err.contains("use at most"), "\(tooMany.err)")
        let noCount = try GalleryCommandTests.dipviz(base + ["--plan"], in: dir)
        #expect(noCount.status != 0 && noCount.err.contains("--shards"), "\(noCount.err)")
    }
}
