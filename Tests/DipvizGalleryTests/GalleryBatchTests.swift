import DipvizGallery
import DipvizImage
import DipvizONNX
import DipvizTensor
import DipvizVisualize
import Foundation
import Testing

@Suite("Gallery batches")
struct GalleryBatchTests {
    /// A spec over two tiny classifiers that take batches (units of one, classes of the other)
    /// and one whose input fixes a batch of one, in a temporary folder.
    static func fixture(iterations: Int = 6) throws -> (dir: URL, spec: GallerySpec) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dipviz-gallery-batch-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var units = ONNXGraphBuilder(seed: 3)
        units.conv(4, kernel: 3, pad: 1); units.relu(); units.maxPool(2, stride: 2); units.conv(4, kernel: 3, pad: 1); units.relu()
        try units.model(name: "units", inputShape: [nil, 3, nil, nil]).encode().write(to: dir.appendingPathComponent("units.onnx"))
        try units.model(name: "one", inputShape: [1, 3, nil, nil]).encode().write(to: dir.appendingPathComponent("one.onnx"))
        var classes = ONNXGraphBuilder(seed: 5)
        classes.conv(4, kernel: 3, pad: 1); classes.relu(); classes.maxPool(2, stride: 2)
        classes.flatten(features: 4 * 8 * 8); classes.linear(5)
        try classes.model(name: "classes", inputShape: [nil, 3, 16, 16]).encode().write(to: dir.appendingPathComponent("classes.onnx"))
        let json = """
        {"title": "Batches", "budgets": {"quick": {"size": 16, "dip_iterations": \(iterations), "tv_iterations": \(iterations)}},
         "models": [{"name": "Units", "path": "units.onnx", "maximization": {"layer": "conv2", "units": "0-3", "priors": ["tv", "fft"]}},
                    {"name": "Classes", "path": "classes.onnx", "classes": {"names": ["0", "2", "4"], "priors": ["pixel"]}},
                    {"name": "One", "path": "one.onnx", "maximization": {"layer": "conv2", "units": "0-1", "priors": ["tv"]}}]}
        """
        return (dir, try JSONDecoder().decode(GallerySpec.self, from: Data(json.utf8)))
    }

    /// Every file of a published result except the time it took: bytes, with metrics.json's
    /// `seconds` fields removed (a batch's time is shared out among its targets).
    static func published(_ builder: GalleryBuilder, _ e: Experiment) throws -> [String: Data] {
        let root = builder.resultDirectory(e)
        var out: [String: Data] = [:]
        for f in FileManager.default.enumerator(atPath: root)!.compactMap({ $0 as? String }).sorted() {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: root + "/" + f, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            var data = try Data(contentsOf: URL(fileURLWithPath: root + "/" + f))
            if f == "metrics.json" {
                var m = try ResultJSON.decoder.decode(RunMetrics.self, from: data)
                m.seconds = 0
                for i in m.results.indices { m.results[i].seconds = 0 }
                data = try ResultJSON.encoder.encode(m)
            }
            out[f] = data
        }
        return out
    }

    /// Whether two curve files hold the same points with values within 1e-6 relative.
    static func curvesAgree(_ a: Data, _ b: Data?) throws -> Bool {
        let x = try ResultJSON.decoder.decode(CurveFile.self, from: a).curves
        let y = try ResultJSON.decoder.decode(CurveFile.self, from: b ?? Data()).curves
        func close(_ u: Double, _ v: Double) -> Bool { abs(u - v) <= 1e-6 * max(abs(u), abs(v), 1e-3) }
        return x.keys.sorted() == y.keys.sorted() && x.keys.allSatisfy { k in
            x[k]!.count == y[k]!.count && zip(x[k]!, y[k]!).allSatisfy { p, q in
                p.iteration == q.iteration && close(p.loss, q.loss) && p.values.keys.sorted() == q.values.keys.sorted()
                    && p.values.allSatisfy { close($0.value, q.values[$0.key]!) }
            }
        }
    }

    /// The first line in which two text files differ (alone, then batched).
    static func firstDifference(_ a: Data, _ b: Data?) -> String {
        let x = String(decoding: a, as: UTF8.self).split(separator: "\n"), y = String(decoding: b ?? Data(), as: UTF8.self).split(separator: "\n")
        guard let i = (0..<min(x.count, y.count)).first(where: { x[$0] != y[$0] }) else { return "\(x.count) lines against \(y.count)" }
        return "line \(i + 1): \(x[i].trimmingCharacters(in: .whitespaces)) | \(y[i].trimmingCharacters(in: .whitespaces))"
    }

    @Test func batchesPublishWhatEachExperimentGetsAlone() throws {
        let (dir, spec) = try GalleryBatchTests.fixture(iterations: 8)
        defer { try? FileManager.default.removeItem(at: dir) }
        let alone = try GalleryBuilder(spec: spec, budget: "quick", specDirectory: dir.path, output: dir.appendingPathComponent("alone").path)
        alone.batching = false
        #expect(alone.batches(alone.pending).allSatisfy { $0.count == 1 })
        for e in alone.pending { #expect(try alone.run(e) == .finished) }
        let batched = try GalleryBuilder(spec: spec, budget: "quick", specDirectory: dir.path, output: dir.appendingPathComponent("batched").path)
        let batches = batched.batches(batched.pending)
        // Units 0-3 under tv and under fft, the three classes together; SqueezeNet-like "One" alone.
        #expect(batches.map(\.count) == [4, 4, 3, 1, 1], "\(batches.map { $0.map(\.title) })")
        #expect(batches[0].allSatisfy { $0.prior == .tv } && batches[1].allSatisfy { $0.prior == .fft })
        #expect(Set(batches.flatMap { $0 }.map(\.key)) == Set(batched.experiments.map(\.key)))
        for members in batches { #expect(try batched.run(batch: members) == .finished) }
        #expect(batched.pending.isEmpty)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: batched.work + "/runs")) ?? []).isEmpty)
        for e in batched.experiments {
            let a = try GalleryBatchTests.published(alone, e), b = try GalleryBatchTests.published(batched, e)
            #expect(a.keys.sorted() == b.keys.sorted(), "\(e.title)")
            #expect(a.keys.contains("image.png") && a.keys.contains { $0.hasPrefix("snapshots/iter-") })
            for (name, data) in a where b[name] != data {
                // A class score read through a fully connected layer: BLAS computes one row (a run
                // alone) by another kernel than several, so the curve's values, which the batch
                // measures together, may differ in the last bits; images and metrics do not.
                if name == "curve.json", e.classIndex != nil, try GalleryBatchTests.curvesAgree(data, b[name]) { continue }
                Issue.record("\(e.title): \(name) differs between a batch and a run alone: \(GalleryBatchTests.firstDifference(data, b[name]))")
            }
        }
        // The targets differ, so the comparison above can fail.
        let images = Set(batches[0].map { (try? Data(contentsOf: URL(fileURLWithPath: batched.resultDirectory($0) + "/image.png"))) ?? Data() })
        #expect(images.count > 1)
        // DIP batches shrink with the image: a generator per target.
        var large = batches[0][0].spec
        #expect(GalleryBuilder.batchLimit(for: large) == 8)
        large.size = 224
        #expect(GalleryBuilder.batchLimit(for: large) == 8)
        large.prior.kind = .dip
        #expect(GalleryBuilder.batchLimit(for: large) == 2)
        large.size = 128
        #expect(GalleryBuilder.batchLimit(for: large) == 8)
        // A second builder reuses every batched result.
        #expect(try GalleryBuilder(spec: spec, budget: "quick", specDirectory: dir.path, output: batched.output).pending.isEmpty)
    }

    /// Gallery class lists raise the score `--class` would under each prior: the log-probability
    /// under dip, the logit under the others.
    @Test func classListsTakeEachPriorsDefaultScore() throws {
        let (dir, _) = try GalleryBatchTests.fixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        let json = """
        {"title": "Classes", "budgets": {"quick": {"size": 16, "dip_iterations": 2, "tv_iterations": 2}},
         "models": [{"name": "Classes", "path": "classes.onnx", "classes": {"names": ["2"], "priors": ["dip", "fft", "tv"]}}]}
        """
        let spec = try JSONDecoder().decode(GallerySpec.self, from: Data(json.utf8))
        let builder = try GalleryBuilder(spec: spec, budget: "quick", specDirectory: dir.path, output: dir.appendingPathComponent("site").path)
        var scores: [PriorKind: ClassScore] = [:]
        for e in builder.experiments {
            guard case .maximization(let m) = e.spec.objective, case let .classScore(index, score)? = m.targets.first else {
                Issue.record("\(e.title) is not a class target"); continue
            }
            #expect(index == 2)
            scores[e.spec.prior.kind] = score
        }
        #expect(scores == [.dip: .logProbability, .fft: .logit, .tv: .logit])
    }

    @Test func aKilledBatchResumesFromItsCheckpoint() throws {
        let (dir, spec) = try GalleryBatchTests.fixture(iterations: 8)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("site").path
        let builder = try GalleryBuilder(spec: spec, budget: "quick", specDirectory: dir.path, output: out)
        let members = builder.batches(builder.pending)[0]
        #expect(members.count == 4)
        var control = RunControl()
        var steps = 0
        control.progress = { t, _, _ in steps = t }
        control.shouldStop = { steps >= 3 }
        #expect(try builder.run(batch: members, control: control) == .interrupted)
        let runPath = builder.batchDirectory(members)
        #expect(FileManager.default.fileExists(atPath: runPath + "/checkpoints/batch.ckpt"))
        #expect(members.allSatisfy { !builder.isDone($0) })
        // A new process finds the same batch and its checkpoint.
        let again = try GalleryBuilder(spec: spec, budget: "quick", specDirectory: dir.path, output: out)
        let resumed = again.batches(again.pending)[0]
        #expect(resumed.map(\.key) == members.map(\.key) && again.batchDirectory(resumed) == runPath)
        var resumedSteps = 0
        var counting = RunControl()
        counting.progress = { _, _, _ in resumedSteps += 1 }
        #expect(try again.run(batch: resumed, control: counting) == .finished)
        #expect(resumedSteps == 8 - 3, "the batch continued from its checkpoint, not from the start")
        #expect(!FileManager.default.fileExists(atPath: runPath))
        let alone = try GalleryBuilder(spec: spec, budget: "quick", specDirectory: dir.path, output: dir.appendingPathComponent("alone").path)
        for e in members {
            #expect(try alone.run(e) == .finished)
            let a = try GalleryBatchTests.published(alone, e), b = try GalleryBatchTests.published(again, e)
            #expect(a.keys.sorted() == b.keys.sorted())
            for (name, data) in a where b[name] != data {
                Issue.record("\(e.title): \(name) differs after a resumed batch: \(GalleryBatchTests.firstDifference(data, b[name]))")
            }
        }
    }

    /// An objectives section with `images`: one experiment of N results in one batch, all of
    /// them published and shown on its page, and a diversity term without `images` refused.
    @Test func severalImagesOfAnObjectiveArePublishedTogether() throws {
        let (dir, _) = try GalleryBatchTests.fixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        func spec(_ objectives: String) throws -> GallerySpec {
            let json = """
            {"title": "Images", "budgets": {"quick": {"size": 16, "dip_iterations": 4, "tv_iterations": 4}},
             "models": [{"name": "Units", "path": "units.onnx", "objectives": \(objectives)}]}
            """
            return try JSONDecoder().decode(GallerySpec.self, from: Data(json.utf8))
        }
        let good = try spec(#"{"expressions": ["conv2:1 - 10*diversity(conv2)"], "priors": ["fft"], "images": 3}"#)
        let builder = try GalleryBuilder(spec: good, budget: "quick", specDirectory: dir.path, output: dir.appendingPathComponent("site").path)
        #expect(builder.experiments.count == 1 && builder.batches(builder.experiments).count == 1)
        let e = builder.experiments[0]
        #expect(try builder.run(e) == .finished)
        let names = builder.metrics(e)?.results.map(\.name)
        #expect(names == ["image-0", "image-1", "image-2"])
        for n in names ?? [] { #expect(FileManager.default.fileExists(atPath: builder.resultDirectory(e) + "/\(n).png")) }
        _ = try GallerySite(builder: builder, budget: "quick").render()
        let page = try String(contentsOfFile: builder.resultDirectory(e) + "/index.html", encoding: .utf8)
        #expect(page.contains("The images of the batch") && page.contains("image-2") && page.contains("src=\"image-0.png\""))
        let bad = try spec(#"{"expressions": ["conv2:1 - diversity(conv2)"], "priors": ["fft"]}"#)
        #expect(throws: GalleryError.self) {
            _ = try GalleryBuilder(spec: bad, budget: "quick", specDirectory: dir.path, output: dir.appendingPathComponent("bad").path)
        }
    }
}
