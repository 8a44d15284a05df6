import DipvizTensor
import Foundation
import Testing

/// Runs the built `dipviz` binary; with `environment`, that is added to this process's
/// environment without any OPENBLAS_CORETYPE or core simulation this process may have.
func runDipviz(_ arguments: [String], environment: [String: String]? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
    let binary = Bundle.main.bundleURL.appendingPathComponent("dipviz")
    let process = Process()
    process.executableURL = binary
    process.arguments = arguments
    if let environment {
        var env = ProcessInfo.processInfo.environment
        env[BLASCoreSelection.coreTypeVariable] = nil
        env[BLASCoreSelection.simulationVariable] = nil
        env.merge(environment) { $1 }
        process.environment = env
    }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
}

@Suite("dipviz command line")
struct CLITests {
    @Test func benchListsItsCases() throws {
        let r = try runDipviz(["bench", "--list"])
        #expect(r.status == 0)
        #expect(r.stdout.split(separator: "\n") == ["sgemm_1024", "conv_fwd", "conv_bwd", "dip_step_256", "alexnet_fwd_224",
                                                    "vgg16_fwd_224", "onnx_load_vgg16", "dip_invert_alexnet_conv5_224",
                                                    "tv_invert_alexnet_conv5_224", "dip_maximize_squeezenet_227",
                                                    "dip_invert_alexnet_conv5_128", "dip_invert_alexnet_conv5_384",
                                                    "dip_invert_alexnet_conv5_512", "dip_invert_vgg16_conv5_3_224"])
    }

    /// DIPVIZ_ISA lowers the kernel level; the bench says which ran, on every line and once on
    /// standard error, with its processor time and peak memory.
    @Test func benchReportsTheForcedKernelLevel() throws {
        let r = try runDipviz(["bench", "--cases", "conv_fwd", "--repeats", "1"], environment: ["DIPVIZ_ISA": "portable"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("kernels portable"))
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        #expect(object?["kernels"] as? String == "portable")
        #expect((object?["cpu_ms"] as? Double ?? 0) > 0)
        #expect((object?["peak_rss_mb"] as? Double ?? 0) > 0)
    }

    @Test func benchPrintsOneJSONObjectPerCase() throws {
        let r = try runDipviz(["bench", "--cases", "sgemm_1024", "conv_fwd", "--repeats", "1"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 2)
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["case"] is String)
            #expect((object?["ms"] as? Double ?? 0) > 0)
            #expect((object?["gflops"] as? Double ?? 0) > 0)
            let core = object?["openblas_core"] as? String ?? ""
            #expect(core.count > 0)
        }
    }

    @Test func unknownCaseIsAnErrorNamingTheKnownOnes() throws {
        let r = try runDipviz(["bench", "--cases", "nope"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("unknown case nope"))
        #expect(r.stderr.contains("sgemm_1024"))
    }
}

enum Repo {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func path(_ p: String) -> String { root.appendingPathComponent(p).path }
    static let corpusModel = path("Tests/DipvizONNXTests/Corpus/conv_relu_pool.onnx")
    static let squeezenet = path("models/squeezenet1.0-dc.onnx")
    static var haveSqueezeNet: Bool {
        FileManager.default.fileExists(atPath: squeezenet) && FileManager.default.fileExists(atPath: path("samples/chelsea.png"))
    }
}

func temporaryDirectory() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dipviz-cli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

@Suite("dipviz inspect, eval and classify")
struct ModelCommandTests {
    @Test func inspectPrintsATableAndJSON() throws {
        let table = try runDipviz(["inspect", Repo.corpusModel])
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.contains("conv1") && table.stdout.contains("pool1") && table.stdout.contains("norm1"))
        let json = try runDipviz(["inspect", Repo.corpusModel, "--json"])
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        let layers = object?["layers"] as? [[String: Any]] ?? []
        #expect(layers.count == 4)
        #expect(layers.first?["macs"] as? Int == 3 * 36 * 2 * 9)
        #expect(layers.first?["receptive_field"] as? Int == 3)
    }

    @Test func evalWritesTheRequestedTensor() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("x.npy").path, output = dir.appendingPathComponent("y.npy").path
        // A 1x2x6x6 float32 array of 0.5s.
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 6, 6), }"
        header += String(repeating: " ", count: (64 - (10 + header.count + 1) % 64) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.count), 0]) + Data(header.utf8)
        for _ in 0..<72 { withUnsafeBytes(of: Float(0.5)) { data.append(contentsOf: $0) } }
        try data.write(to: URL(fileURLWithPath: input))
        let r = try runDipviz(["eval", Repo.corpusModel, "--input", input, "--output", output, "--tensor", "relu1"])
        #expect(r.status == 0, "\(r.stderr)")
        let written = try Data(contentsOf: URL(fileURLWithPath: output))
        #expect(String(decoding: written.prefix(80), as: UTF8.self).contains("(1, 3, 6, 6)"))
        let bad = try runDipviz(["eval", Repo.corpusModel, "--input", input, "--output", output, "--tensor", "conv9"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("conv1") && bad.stderr.split(separator: "\n").count == 1)
    }

    @Test(.enabled(if: Repo.haveSqueezeNet, "samples/ missing (run make prepare)"))
    func classifyPrintsTopClasses() throws {
        let r = try runDipviz(["classify", Repo.squeezenet, Repo.path("samples/chelsea.png"), "--json", "--top", "3",
                               "--labels", Repo.path("models/imagenet-synsets.txt")])
        #expect(r.status == 0, "\(r.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let top = object?["top"] as? [[String: Any]] ?? []
        #expect(top.count == 3)
        #expect(top.first?["label"] as? String == "Egyptian cat")
        #expect((top.first?["probability"] as? Double ?? 0) > 0.5)
    }

    /// Bad input: one line on standard error and a non-zero exit.
    @Test func badInputsFailInOneLine() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let png = dir.appendingPathComponent("picture.onnx").path
        try Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13]).write(to: URL(fileURLWithPath: png))
        let truncated = dir.appendingPathComponent("truncated.onnx").path
        try Data(try Data(contentsOf: URL(fileURLWithPath: Repo.corpusModel)).prefix(100)).write(to: URL(fileURLWithPath: truncated))
        let notPNG = dir.appendingPathComponent("image.png").path
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: notPNG))
        let cases: [[String]] = [
            ["inspect", png], ["inspect", truncated], ["inspect", dir.appendingPathComponent("missing.onnx").path],
            ["classify", Repo.corpusModel, notPNG], ["classify", Repo.corpusModel, dir.appendingPathComponent("none.png").path],
        ]
        for args in cases {
            let r = try runDipviz(args)
            #expect(r.status != 0, "\(args)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1, "\(args): \(r.stderr)")
            #expect(r.stderr.hasPrefix("Error: "), "\(args): \(r.stderr)")
        }
    }
}

import DipvizImage
import DipvizONNX
import DipvizTensor

@Suite("dipviz invert and maximize")
struct VisualizeCommandTests {
    /// A small RGB classifier and photo on disk.
    static func fixture() throws -> (dir: URL, model: String, photo: String) {
        let dir = try temporaryDirectory()
        var b = ONNXGraphBuilder(seed: 3)
        b.conv(4, kernel: 3, pad: 1); b.relu(); b.maxPool(2, stride: 2)
        b.flatten(features: 4 * 8 * 8); b.linear(3); b.softmax()
        let model = dir.appendingPathComponent("tiny.onnx").path
        try b.model(name: "tiny", inputShape: [1, 3, 16, 16]).encode().write(to: URL(fileURLWithPath: model))
        try "n00000001 red thing\nn00000002 green thing\nn00000003 blue thing\n"
            .write(toFile: dir.appendingPathComponent("labels.txt").path, atomically: true, encoding: .utf8)
        var px = [UInt8]()
        for y in 0..<20 { for x in 0..<24 { px += [UInt8(x * 10), UInt8(y * 12), 90] } }
        let photo = dir.appendingPathComponent("photo.png").path
        try PNG.write(RGBImage(width: 24, height: 20, pixels: px), path: photo)
        return (dir, model, photo)
    }

    static func json(_ path: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any] ?? [:]
    }

    @Test func invertWritesImageMetricsCurveAndSnapshots() throws {
        let (dir, model, photo) = try VisualizeCommandTests.fixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("inv").path
        let r = try runDipviz(["invert", model, photo, "--layer", "relu1", "--prior", "tv", "--iterations", "12", "--size", "16",
                               "--snapshot-every", "5", "--out", out])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.isEmpty, "progress must stay quiet when piped: \(r.stderr)")
        for f in ["image.png", "original.png", "metrics.json", "curve.json", "run.json", "snapshots/iter-000005.png"] {
            #expect(FileManager.default.fileExists(atPath: out + "/" + f), "\(f)")
        }
        #expect(!FileManager.default.fileExists(atPath: out + "/checkpoints/image.ckpt"), "a finished run keeps no checkpoint")
        let m = try VisualizeCommandTests.json(out + "/metrics.json")
        #expect(m["format_version"] as? Int == 3 && m["ending"] as? String == "finished")
        let result = (m["results"] as? [[String: Any]])?.first ?? [:]
        for key in ["feature_error", "feature_error_start", "psnr", "ssim", "top1_match", "iterations", "seconds"] {
            #expect(result[key] != nil, "metrics.json lacks \(key)")
        }
        #expect(result["iterations"] as? Int == 12)
        let run = try VisualizeCommandTests.json(out + "/run.json")
        #expect((run["spec"] as? [String: Any])?["iterations"] as? Int == 12)
        let again = try runDipviz(["invert", model, photo, "--layer", "relu1", "--prior", "tv", "--iterations", "12", "--size", "16",
                                   "--snapshot-every", "5", "--out", out + "2"])
        #expect(again.status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: out + "/image.png")) == Data(contentsOf: URL(fileURLWithPath: out + "2/image.png")),
                "same command, same output")
        // `dipviz run` reruns a saved spec into a new folder: the same bytes.
        let rerun = try runDipviz(["run", out + "/run.json", "--out", out + "3"])
        #expect(rerun.status == 0, "\(rerun.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: out + "/image.png")) == Data(contentsOf: URL(fileURLWithPath: out + "3/image.png")))
        // --resume works alone; with other options it says what to drop.
        let resumed = try runDipviz(["invert", "--resume", out])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let mixed = try runDipviz(["invert", model, "--resume", out, "--iterations", "1"])
        #expect(mixed.status != 0 && mixed.stderr.contains("--iterations") && mixed.stderr.contains("the model"), "\(mixed.stderr)")
        // Another run into the same folder is refused, naming what differs.
        let other = try runDipviz(["invert", model, photo, "--layer", "relu1", "--prior", "tv", "--iterations", "13", "--size", "16", "--out", out])
        #expect(other.status != 0 && other.stderr.contains("iterations: 12 -> 13"), "\(other.stderr)")
    }

    /// `--precision bf16` end to end: where the processor has the bf16 products the run is
    /// written down as bf16; elsewhere it stops in one line naming fp32. Under dip it is refused
    /// everywhere.
    @Test func invertInBF16() throws {
        let (dir, model, photo) = try VisualizeCommandTests.fixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("bf16").path
        let r = try runDipviz(["invert", model, photo, "--layer", "relu1", "--prior", "tv", "--iterations", "4", "--size", "16",
                               "--precision", "bf16", "--out", out])
        if ConvPrecision.bf16.unsupportedReason() == nil {
            #expect(r.status == 0, "\(r.stderr)")
            let spec = try VisualizeCommandTests.json(out + "/run.json")["spec"] as? [String: Any]
            #expect(spec?["precision"] as? String == "bf16", "\(String(describing: spec))")
            #expect(FileManager.default.fileExists(atPath: out + "/image.png"))
        } else {
            #expect(r.status != 0 && r.stderr.contains("--precision fp32") && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        }
        let dip = try runDipviz(["invert", model, photo, "--layer", "relu1", "--prior", "dip", "--iterations", "4", "--size", "16",
                                 "--precision", "bf16", "--out", out + "-dip"])
        #expect(dip.status != 0 && dip.stderr.contains("precision") && dip.stderr.split(separator: "\n").count <= 2, "\(dip.stderr)")
    }

    @Test func maximizeUnitsAndClasses() throws {
        let (dir, model, _) = try VisualizeCommandTests.fixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        let units = dir.appendingPathComponent("units").path
        let r = try runDipviz(["maximize", model, "--layer", "conv1", "--unit", "0-1", "--prior", "pixel", "--iterations", "5",
                               "--size", "16", "--out", units])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: units + "/unit-0.png") && FileManager.default.fileExists(atPath: units + "/unit-1.png"))
        let results = try VisualizeCommandTests.json(units + "/metrics.json")["results"] as? [[String: Any]] ?? []
        #expect(results.count == 2)
        let cls = dir.appendingPathComponent("class").path
        let c = try runDipviz(["maximize", model, "--class", "green thing", "--labels", dir.appendingPathComponent("labels.txt").path,
                               "--prior", "tv", "--iterations", "5", "--size", "16", "--out", cls])
        #expect(c.status == 0, "\(c.stderr)")
        let m = (try VisualizeCommandTests.json(cls + "/metrics.json")["results"] as? [[String: Any]])?.first ?? [:]
        #expect(m["probability"] != nil && m["activation"] != nil && m["target"] as? String == "class-1")
        // The class score defaults by prior (the logit under tv, the log-probability under dip) and is written down.
        #expect(try String(contentsOfFile: cls + "/run.json", encoding: .utf8).contains("\"logit\""))
        let dipClass = dir.appendingPathComponent("dip-class").path
        let d = try runDipviz(["maximize", model, "--class", "1", "--iterations", "1", "--size", "16", "--out", dipClass])
        #expect(d.status == 0, "\(d.stderr)")
        #expect(try String(contentsOfFile: dipClass + "/run.json", encoding: .utf8).contains("\"log-probability\""))
        let misplaced = try runDipviz(["maximize", model, "--layer", "conv1", "--unit", "0", "--score", "logit", "--out", dir.appendingPathComponent("bad3").path])
        #expect(misplaced.status != 0 && misplaced.stderr.contains("--score goes with --class"))
        let badScore = try runDipviz(["maximize", model, "--class", "1", "--score", "odds", "--out", dir.appendingPathComponent("bad4").path])
        #expect(badScore.status != 0 && badScore.stderr.contains("log-probability"))
        let bad = try runDipviz(["maximize", model, "--layer", "conv1", "--unit", "7", "--prior", "pixel", "--iterations", "2",
                                 "--size", "16", "--out", dir.appendingPathComponent("bad").path])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("unit 7 is out of range") && bad.stderr.contains("4 channels"))
        let unknown = try runDipviz(["maximize", model, "--class", "purple thing", "--labels", dir.appendingPathComponent("labels.txt").path,
                                     "--prior", "pixel", "--iterations", "2", "--size", "16", "--out", dir.appendingPathComponent("bad2").path])
        #expect(unknown.status != 0 && unknown.stderr.contains("purple thing"))
    }
}
