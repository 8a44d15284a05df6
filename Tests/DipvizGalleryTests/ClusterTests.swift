import DipvizGallery
import DipvizPrior
import DipvizTensor
import Foundation
import Testing

@Suite("Gallery at scale: cost model, shard plans, cluster job files")
struct ClusterTests {
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    /// A gallery of mixed costs like a real one, in page order: rows of (TV, DIP) pairs, DIP
    /// about ten times TV, and VGG16-like rows twenty times AlexNet-like ones (deterministic).
    static func mixedCosts() -> [Double] {
        var costs: [Double] = []
        var rng = SeededGenerator(seed: 7)
        for model in [20.0, 1.0, 1.0, 1.0] {
            for _ in 0..<24 {
                let layer = Double.random(in: 0.3...1.7, using: &rng)
                costs += [model * layer, model * layer * 10]
            }
        }
        return costs
    }

    @Test func shardsOfMixedCostDifferByAtMostTenPercent() {
        let costs = ClusterTests.mixedCosts()
        for n in [2, 3, 4, 8, 16] {
            let plan = ShardPlan(costs: costs, shards: n)
            #expect(plan.assignment.count == costs.count && plan.assignment.allSatisfy { (0..<n).contains($0) })
            #expect((0..<n).flatMap { plan.members($0) }.sorted() == Array(costs.indices), "not a partition")
            #expect(plan.spread <= ShardPlan.tolerance, "\(n) shards: spread \(plan.spread)")
            #expect(plan.imbalanceReason == nil)
            #expect(plan == ShardPlan(costs: costs, shards: n), "not deterministic")
        }
        // Cutting by count, as before (every N-th result), is far from balanced on the same costs.
        for n in [2, 4] {
            let byCount = (0..<n).map { s in costs.indices.filter { $0 % n == s }.reduce(0) { $0 + costs[$1] } }
            #expect((byCount.max()! - byCount.min()!) / byCount.max()! > 0.5)
        }
    }

    @Test func tooManyShardsIsReported() {
        // One result costs more than a quarter of the whole: four shards cannot be balanced.
        let costs = [50.0] + [Double](repeating: 1, count: 40)
        let plan = ShardPlan(costs: costs, shards: 4)
        #expect(!plan.isBalanced)
        let reason = plan.imbalanceReason ?? ""
        #expect(reason.contains("use at most 1"), "\(reason)")
        #expect(ShardPlan(costs: costs, shards: 1).spread == 0)
        #expect(ShardPlan(costs: [Double](repeating: 1, count: 8), shards: 4).spread == 0)
    }

    /// The generator's size and work follow what `DeepImagePrior` builds; the work of the paper's
    /// inversion generator at 256 px is within a quarter of the benchmark's nominal 45.8 GFLOP
    /// per step (which counts pooling after full-resolution convolutions; the engine folds it).
    @Test func generatorCostFollowsTheNetwork() throws {
        for (config, size) in [(PriorConfiguration.inversion, 224), (.inversion.fitted(toImageSize: 100), 100), (.maximization, 128),
                               (.maximization, 60), (.unet, 96), (.deepDecoder, 100), (.resnet, 50)] {
            let built = try DeepImagePrior(config, height: size, width: size, seed: 0)
            #expect(config.generatedSize(forImage: size) == built.outputSize, "\(config.architecture.name) at \(size)")
        }
        let step = PriorConfiguration.inversion.estimatedForwardWork(size: 256)
        let gflop = 2 * 3 * step.macs / 1e9
        #expect(abs(gflop - 45.8) / 45.8 < 0.25, "\(gflop) GFLOP")
        let small = PriorConfiguration.inversion.fitted(toImageSize: 128).estimatedForwardWork(size: 128)
        #expect(abs(small.macs * 4 / step.macs - 1) < 0.01, "work scales with the area")
    }

    @Test func costsRankExperiments() throws {
        let (dir, spec) = try GalleryTests.fixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        let builder = try GalleryBuilder(spec: spec, budget: "quick", specDirectory: dir.path, output: dir.appendingPathComponent("s").path)
        let seconds = try builder.estimatedSeconds(cpus: 1)
        #expect(seconds.allSatisfy { $0 > 0 && $0.isFinite })
        let two = try builder.estimatedSeconds(cpus: 2)
        #expect(zip(seconds, two).allSatisfy { abs($0 / $1 - 2) < 1e-9 })
        // A deeper layer costs more than a shallower one under the same prior.
        let e = builder.experiments
        let conv1 = e.firstIndex { $0.isInversion && $0.layer == "conv1" && $0.prior == .tv }!
        let relu2 = e.firstIndex { $0.isInversion && $0.layer == "relu2" && $0.prior == .tv }!
        #expect(try builder.step(e[relu2]).macs > builder.step(e[conv1]).macs)
    }

    static func jobs() -> ClusterJobs {
        var jobs = ClusterJobs(spec: "gallery/default.json", output: "out/gallery", work: "out/gallery.work", budget: "quick",
                               shardSeconds: [152.4, 149.8, 151.0, 147.2], resultCount: 56, cpus: 2)
        jobs.title = "AlexNet through two priors"
        jobs.parallelism = 2
        return jobs
    }

    /// The emitted files, byte for byte (DIPVIZ_UPDATE_GOLDEN=1 rewrites the golden files).
    static func compare(_ files: [(name: String, text: String)], folder: String) throws {
        let dir = golden.appendingPathComponent(folder)
        if ProcessInfo.processInfo.environment["DIPVIZ_UPDATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            for f in files { try f.text.write(to: dir.appendingPathComponent(f.name), atomically: true, encoding: .utf8) }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == files.map(\.name).sorted())
        for f in files {
            let expected = try String(contentsOf: dir.appendingPathComponent(f.name), encoding: .utf8)
            #expect(f.text == expected, "\(folder)/\(f.name) differs from its golden file")
            #expect(!f.text.contains(FileManager.default.currentDirectoryPath) && !f.text.contains("/tmp/"))
        }
    }

    @Test func slurmFilesMatchGolden() throws {
        let files = ClusterTests.jobs().slurm()
        try ClusterTests.compare(files, folder: "slurm")
        let shards = try #require(files.first { $0.name == "shards.sbatch" }?.text)
        #expect(shards.contains("#SBATCH --array=0-3") && shards.contains("#SBATCH --cpus-per-task=2"))
        // Twice the costliest shard's 2.5 minutes, plus ten.
        #expect(shards.contains("#SBATCH --time=0:16:00"), "\(shards)")
        #expect(shards.contains("--shard auto --shards 4"))
        let submit = try #require(files.first { $0.name == "submit.sh" }?.text)
        #expect(submit.contains("--dependency=afterok:"))
        // Each script parses as shell.
        for f in files {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("dipviz-\(UUID().uuidString)-\(f.name)").path
            try f.text.write(toFile: path, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: path) }
            let (status, output) = try #require(GalleryTests.run(["bash", "-n", path]))
            #expect(status == 0, "\(f.name): \(output)")
        }
    }

    @Test func kubernetesManifestsMatchGoldenAndTheJobSchema() throws {
        let jobs = ClusterTests.jobs()
        try ClusterTests.compare(jobs.kubernetes(), folder: "k8s")
        let objects = jobs.kubernetesObjects()
        // The fields an Indexed Job needs, checked on the value the YAML is written from.
        let job = objects.shards
        #expect(job["apiVersion"] as? String == "batch/v1" && job["kind"] as? String == "Job")
        let spec = try #require(job["spec"] as? [String: Any])
        #expect(spec["completionMode"] as? String == "Indexed")
        #expect(spec["completions"] as? Int == 4 && spec["parallelism"] as? Int == 2)
        let template = try #require((spec["template"] as? [String: Any])?["spec"] as? [String: Any])
        #expect(template["restartPolicy"] as? String == "Never")
        let volumes = try #require(template["volumes"] as? [[String: Any]])
        let container = try #require((template["containers"] as? [[String: Any]])?.first)
        let mounts = try #require(container["volumeMounts"] as? [[String: Any]])
        #expect(Set(mounts.compactMap { $0["name"] as? String }).isSubset(of: Set(volumes.compactMap { $0["name"] as? String })))
        let claim = (volumes.first?["persistentVolumeClaim"] as? [String: Any])?["claimName"] as? String
        #expect(claim == (objects.volume["metadata"] as? [String: Any])?["name"] as? String)
        let command = try #require(container["command"] as? [String])
        #expect(command.suffix(4) == ["--shard", "auto", "--shards", "4"])
        #expect((objects.merge["spec"] as? [String: Any])?["completionMode"] == nil)
    }

    static var kubernetesClientAvailable: Bool { GalleryTests.run(["python3", "-c", "import kubernetes, yaml"])?.0 == 0 }

    /// Strict validation against the API schema the official Python client is generated from;
    /// the YAML must also read back as the value it was written from.
    @Test(.enabled(if: ClusterTests.kubernetesClientAvailable, "the python kubernetes and yaml packages are missing"))
    func kubernetesManifestsValidateAgainstTheAPISchema() throws {
        let jobs = ClusterTests.jobs()
        let objects = jobs.kubernetesObjects()
        let files = jobs.kubernetes()
        let script = GalleryTests.repo.appendingPathComponent("Tests/DipvizGalleryTests/Tools/validate_k8s.py").path
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dipviz-k8s-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for (name, object) in [("volume.yaml", objects.volume), ("shards-job.yaml", objects.shards), ("merge-job.yaml", objects.merge)] {
            let yaml = dir.appendingPathComponent(name).path, json = dir.appendingPathComponent(name + ".json").path
            try files.first { $0.name == name }!.text.write(toFile: yaml, atomically: true, encoding: .utf8)
            try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: json))
            let (status, output) = try #require(GalleryTests.run(["python3", script, yaml, json]))
            #expect(status == 0 && output.contains("valid:"), "\(name): \(output)")
        }
        // The validator can fail: a misspelt field and a string count are caught.
        let bad = dir.appendingPathComponent("bad.yaml").path
        try files.first { $0.name == "shards-job.yaml" }!.text.replacingOccurrences(of: "parallelism: 2", with: "parallelizm: \"2\"")
            .write(toFile: bad, atomically: true, encoding: .utf8)
        let (status, output) = try #require(GalleryTests.run(["python3", script, bad]))
        #expect(status != 0 && output.contains("parallelizm"), "\(output)")
    }
}
