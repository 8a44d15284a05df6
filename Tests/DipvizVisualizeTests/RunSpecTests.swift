@testable import DipvizVisualize
import DipvizONNX
import DipvizPrior
import DipvizTensor
import Foundation
import Testing

@Suite("Run spec")
struct RunSpecTests {
    @Test func resolvesDefaultsInOnePlace() throws {
        let f = try RunFixture()
        defer { f.remove() }
        let net = try ONNXNetwork(path: f.model)
        let inversion = try RunSpec.resolve(RunRequest(model: f.model, task: .inversion(image: f.photo, layers: ["relu1"]), prior: .dip), network: net)
        #expect(inversion.iterations == 3100 && inversion.prior.learningRate == 1e-3 && inversion.size == 16 && inversion.snapshotEvery == 100)
        #expect(inversion.prior.generator == PriorConfiguration.inversion.fitted(toImageSize: 16))
        let tv = try RunSpec.resolve(RunRequest(model: f.model, task: .inversion(image: f.photo, layers: ["relu1"]), prior: .tv), network: net)
        #expect(tv.iterations == 500 && tv.prior.tv?.dataWeight == 100 && tv.prior.generator == nil)
        // Fully connected layers and classes get the paper's larger rate, in the CLI and the gallery alike.
        let fc = try RunSpec.resolve(RunRequest(model: f.model, task: .maximization(layer: "fc6", targets: [.channel(unit: 0, window: 1)],
                                                                                   goal: .maximize, jitter: 0, reference: nil), prior: .dip), network: net)
        #expect(fc.prior.learningRate == 1e-2)
        let cls = try RunSpec.resolve(RunRequest(model: f.model, task: .maximization(layer: nil, targets: [.classScore(index: 2, score: .logit)],
                                                                                    goal: .maximize, jitter: 0, reference: nil), prior: .tv), network: net)
        #expect(cls.prior.tv?.dataWeight == 0.003)
    }

    /// Enums are written as {"kind": ...}: no synthesised "_0" keys, and the JSON reads back equal.
    @Test func jsonRoundTripsWithoutSynthesisedKeys() throws {
        let f = try RunFixture()
        defer { f.remove() }
        let net = try ONNXNetwork(path: f.model)
        var requests = [RunRequest(model: f.model, task: .inversion(image: f.photo, layers: ["relu1", "fc6"]), prior: .dip)]
        requests.append(RunRequest(model: f.model, task: .maximization(layer: "conv1", targets: [.neuron(unit: 1, y: 2, x: 3), .neuron(unit: 2, y: 2, x: 3)],
                                                                      goal: .reach(300), jitter: 2, reference: f.photo), prior: .tv))
        var deep = RunRequest(model: f.model, task: .inversion(image: f.photo, layers: ["conv1"]), prior: .dip)
        deep.preset = "deep-decoder"
        requests.append(deep)
        for r in requests {
            let spec = try RunSpec.resolve(r, network: net)
            let record = RunRecord(spec: spec, workingDirectory: "/somewhere")
            let data = try ResultJSON.encoder.encode(record)
            let text = String(decoding: data, as: UTF8.self)
            #expect(!text.contains("\"_0\""), "\(text)")
            #expect(text.contains("\"kind\""))
            #expect(try ResultJSON.decoder.decode(RunRecord.self, from: data) == record)
        }
    }

    /// Class targets name their score; runs written when a class target said only
    /// `"probability": true|false` read back as the probability or the logit.
    @Test func classScoresReadBackAndOldRunsStillRead() throws {
        for score in ClassScore.allCases {
            let data = try ResultJSON.encoder.encode(ActivationTarget.classScore(index: 7, score: score))
            #expect(String(decoding: data, as: UTF8.self).contains("\"\(score.rawValue)\""))
            #expect(try ResultJSON.decoder.decode(ActivationTarget.self, from: data) == .classScore(index: 7, score: score))
        }
        let old = { (p: Bool) in try ResultJSON.decoder.decode(ActivationTarget.self, from: Data(#"{"kind": "class", "index": 4, "probability": \#(p)}"#.utf8)) }
        #expect(try old(true) == .classScore(index: 4, score: .probability))
        #expect(try old(false) == .classScore(index: 4, score: .logit))
        #expect(throws: DecodingError.self) {
            try ResultJSON.decoder.decode(ActivationTarget.self, from: Data(#"{"kind": "class", "index": 4, "score": "odds"}"#.utf8))
        }
    }

    @Test func badFieldsAreTypedErrors() throws {
        let f = try RunFixture()
        defer { f.remove() }
        let (good, net) = try f.spec(.dip, iterations: 5)
        func rejects(_ change: (inout RunSpec) -> Void, _ field: String, memoryLimit: Int? = nil) {
            var s = good
            change(&s)
            do { try s.validate(network: net, memoryLimit: memoryLimit); Issue.record("accepted a bad \(field)") } catch let e as RunSpecError {
                #expect(e.description.hasPrefix(field) || e.description.contains(field), "\(e)")
            } catch let e as VisualizeError { #expect(e.description.contains(field) || field == "unit", "\(e)") } catch let e as AllocationError {
                #expect(field == "memory" && e.description.contains("bytes"), "\(e)")
            } catch { Issue.record("untyped error \(error)") }
        }
        rejects({ $0.size = 0 }, "size")
        rejects({ $0.size = 100_000 }, "size")
        rejects({ $0.iterations = 0 }, "iterations")
        rejects({ $0.iterations = -5 }, "iterations")
        for lr: Float in [.nan, .infinity, 0, -1] { rejects({ $0.prior.learningRate = lr }, "lr") }
        rejects({ $0.snapshotEvery = 0 }, "snapshot-every")
        rejects({ $0.prior.generator?.inputDepth = 100_000 }, "generator")
        rejects({ $0.objective = .inversion(InversionObjective(image: FileReference(path: f.photo, hash: ""), layers: [])) }, "layer")
        rejects({ $0.objective = .maximization(MaximizationObjective(layer: "conv1", targets: [.channel(unit: 4, window: 1)])) }, "unit")
        rejects({ $0.objective = .maximization(MaximizationObjective(layer: "conv1", targets: [.channel(unit: 0, window: 0)])) }, "window")
        rejects({ $0.objective = .maximization(MaximizationObjective(layer: "conv1", targets: [.channel(unit: 0, window: 1)], jitter: 100)) }, "jitter")
        rejects({ $0.objective = .maximization(MaximizationObjective(layer: nil, targets: [.classScore(index: 5, score: .logit)])) }, "unit")
        // (A limit for this check only: the process-wide one is shared with tests running alongside.)
        rejects({ $0.size = 4096 }, "memory", memoryLimit: 1 << 20)
    }

    @Test func memoryLimitsParse() {
        #expect(MemoryLimit.parse("512M") == 512 << 20)
        #expect(MemoryLimit.parse("32G") == 32 << 30)
        #expect(MemoryLimit.parse("1.5k") == 1536)
        #expect(MemoryLimit.parse("123") == 123)
        for bad in ["", "-1G", "0", "12GiB", "abc", "1e30T", "nan"] { #expect(MemoryLimit.parse(bad) == nil, "\(bad)") }
        #expect(MemoryLimit.elements([1 << 40, 1 << 40]) == nil && MemoryLimit.elements([3, -1]) == nil && MemoryLimit.elements([2, 3, 4]) == 24)
        #expect(throws: AllocationError.self) { try MemoryLimit.check(shape: [1 << 20, 1 << 20], what: "x") }
    }

    @Test func unitListsAreStrict() throws {
        #expect(try UnitRange.parse("3") == 3...3)
        #expect(try UnitRange.parse("0-15") == 0...15)
        for bad in ["-3", "1-2-3", "5-2", "", "a", "1-", "0-100000000", "99999999999999999999", "٣"] {
            #expect(throws: RunSpecError.self, "\(bad)") { _ = try UnitRange.parse(bad) }
        }
    }

    /// Reproduce commands: every argument arrives intact through a real shell, whatever its name.
    @Test func shellQuotingRoundTrips() throws {
        let names = ["plain/path.png", "a b.png", "it's.png", "$(touch PWNED).png", "x;touch PWNED2", "\"q\"", "`id`", "tab\there", "{braces}", "$HOME"]
        let line = Shell.line("printf", ["%s\\n"] + names)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", line]
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dipviz-shell-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        p.currentDirectoryURL = dir
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(out.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init) == names)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty, "the quoted line ran something")
        // IPython reads $$, {{ and }} as literal characters.
        let ipython = Shell.ipythonLine("dipviz", ["$HOME{x}"])
        #expect(ipython == "dipviz '$$HOME{{x}}'")
    }

    /// The flags a page shows rebuild the identical spec (checked end to end in the CLI tests);
    /// specs that flags cannot express fall back to `dipviz run`.
    @Test func commandArgumentsCoverTheSpec() throws {
        let f = try RunFixture()
        defer { f.remove() }
        let net = try ONNXNetwork(path: f.model)
        var r = RunRequest(model: f.model, task: .maximization(layer: "conv1", targets: [.channel(unit: 1, window: 0.5), .channel(unit: 2, window: 0.5)],
                                                              goal: .reach(300), jitter: 2, reference: nil), prior: .dip)
        r.preset = "hourglass"
        r.seed = 9
        let spec = try RunSpec.resolve(r, network: net)
        let args = try #require(spec.commandArguments(out: "o"))
        #expect(args.starts(with: ["maximize", f.model, "--layer", "conv1", "--unit", "1-2", "--window", "0.5", "--target-value", "300.0", "--jitter", "2"]))
        for flag in ["--preset", "hourglass", "--lr", "0.001", "--seed", "9", "--size", "16", "--snapshot-every", "100", "--out", "o"] {
            #expect(args.contains(flag), "\(flag) in \(args)")
        }
        var custom = spec
        custom.prior.generator = smallGenerator
        #expect(custom.commandArguments(out: "o") == nil)
        #expect(custom.reproduceArguments(out: "o", runRecord: "r/run.json") == ["run", "r/run.json", "--out", "o"])
    }

    /// The classifier's precision: fp32, the default, is not written (runs from before the field
    /// read back as fp32 with the same key); bf16 round-trips, is in the reproduce command, and
    /// is refused with a typed error where it cannot run (here: the kernels held at avx2).
    @Test func precisionRoundTripsAndOldRunsReadAsFP32() throws {
        let f = try RunFixture()
        defer { f.remove() }
        let net = try ONNXNetwork(path: f.model)
        let single = try RunSpec.resolve(RunRequest(model: f.model, task: .inversion(image: f.photo, layers: ["relu1"]), prior: .tv), network: net)
        #expect(single.precision == nil && single.convolutionPrecision == .fp32)
        #expect(!String(decoding: try ResultJSON.encoder.encode(single), as: UTF8.self).contains("precision"))
        #expect(try #require(single.commandArguments(out: "o")).contains("--precision") == false)
        var bf16 = single
        bf16.precision = .bf16
        let data = try ResultJSON.encoder.encode(bf16)
        #expect(String(decoding: data, as: UTF8.self).contains("bf16"))
        #expect(try ResultJSON.decoder.decode(RunSpec.self, from: data) == bf16)
        #expect(bf16.key != single.key)
        let args = try #require(bf16.commandArguments(out: "o"))
        #expect(args.firstIndex(of: "--precision").map { args[$0 + 1] } == "bf16", "\(args)")
        let unknown = String(decoding: data, as: UTF8.self).replacingOccurrences(of: "bf16", with: "fp8")
        #expect(throws: DecodingError.self) { try ResultJSON.decoder.decode(RunSpec.self, from: Data(unknown.utf8)) }
        if VectorKernels.supported().contains(.avx2) {
            VectorKernels.withPath(.avx2) {
                #expect(throws: ConvPrecisionError.self) { try bf16.validate(network: net) }
            }
        }
        if ConvPrecision.bf16.unsupportedReason() == nil { try bf16.validate(network: net) }
        // Under dip, where the generator dominates a step, bf16 is not offered.
        var dip = try RunSpec.resolve(RunRequest(model: f.model, task: .inversion(image: f.photo, layers: ["relu1"]), prior: .dip), network: net)
        dip.precision = .bf16
        #expect { try dip.validate(network: net) } throws: { "\($0)".contains("tv, pixel and fft") }
    }

    @Test func decodingErrorsAreOneLine() throws {
        let bad = Data(#"{"format_version": 3, "spec": {"size": "big"}, "working_directory": "/"}"#.utf8)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dipviz-bad-\(UUID().uuidString).json").path
        try bad.write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        do { _ = try ResultJSON.read(RunRecord.self, path: path, what: "run record"); Issue.record("accepted") } catch {
            let text = "\(error)"
            #expect(!text.contains("DecodingError") && !text.contains("\n") && text.contains("spec"), "\(text)")
        }
    }
}
