import DipvizImage
import Foundation
import Testing

@Suite("dipviz restore")
struct RestoreCommandTests {
    /// A 32x32 photo with edges and gradients.
    static func photo(_ dir: URL) throws -> String {
        var px = [UInt8]()
        for y in 0..<32 { for x in 0..<32 { px += [UInt8(x < 16 ? 40 : 200), UInt8(y * 7), UInt8((x * y) % 256)] } }
        let path = dir.appendingPathComponent("photo.png").path
        try PNG.write(RGBImage(width: 32, height: 32, pixels: px), path: path)
        return path
    }

    static func json(_ path: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any] ?? [:]
    }

    @Test func denoiseWritesItsFilesIsSeededAndResumes() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let photo = try RestoreCommandTests.photo(dir)
        let out = dir.appendingPathComponent("d").path
        let args = ["restore", "denoise", photo, "--degrade", "--prior", "deep-decoder", "--iterations", "4", "--snapshot-every", "2", "--seed", "3"]
        let r = try runDipviz(args + ["--out", out])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("PSNR"), "\(r.stdout)")
        for f in ["image.png", "input.png", "ground-truth.png", "metrics.json", "curve.json", "run.json", "snapshots/iter-000002.png"] {
            #expect(FileManager.default.fileExists(atPath: out + "/" + f), "\(f)")
        }
        let m = try RestoreCommandTests.json(out + "/metrics.json")
        #expect(m["ending"] as? String == "finished" && m["iterations"] as? Int == 4 && m["stop_rule"] as? String == "budget")
        #expect((m["result"] as? [String: Any])?["psnr"] != nil && m["best_iteration"] != nil)
        let again = try runDipviz(args + ["--out", out + "2"])
        #expect(again.status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: out + "/image.png")) == Data(contentsOf: URL(fileURLWithPath: out + "2/image.png")),
                "same command, same output")
        #expect(try Data(contentsOf: URL(fileURLWithPath: out + "/input.png")) != Data(contentsOf: URL(fileURLWithPath: photo)))
        let resumed = try runDipviz(["restore", "--resume", out])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let other = try runDipviz(["restore", "denoise", photo, "--degrade", "--prior", "deep-decoder", "--iterations", "5", "--out", out])
        #expect(other.status != 0 && other.stderr.contains("another restoration"), "\(other.stderr)")
    }

    @Test func superresAndInpaintWithTheDefaultGenerator() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let photo = try RestoreCommandTests.photo(dir)
        let sr = dir.appendingPathComponent("sr").path
        let start = dir.appendingPathComponent("start.ckpt").path
        let r = try runDipviz(["restore", "superres", photo, "--factor", "4", "--degrade", "--iterations", "2", "--out", sr, "--save-start", start,
                               "--lpips-models", dir.appendingPathComponent("no-models").path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: start)).prefix(8) == Data("DIPVIZC2".utf8), "the start file is a checkpoint")
        #expect(r.stderr.contains("note: no LPIPS") && r.stderr.contains("no-models"), "\(r.stderr)")
        let m = try RestoreCommandTests.json(sr + "/metrics.json")
        #expect((m["baselines"] as? [String: Any])?["bicubic"] != nil)
        // The forward model is recorded: by default the resize that made the input.
        let spec = try RestoreCommandTests.json(sr + "/run.json")["spec"] as? [String: Any]
        #expect((spec?["task"] as? [String: Any])?["downsampler"] as? String == "lanczos3", "\(String(describing: spec?["task"]))")
        let low = try PNG.read(path: sr + "/input.png"), high = try PNG.read(path: sr + "/image.png")
        #expect(low.width == 8 && high.width == 32)
        // A mask file: the left half known.
        var px = [UInt8]()
        for _ in 0..<32 { for x in 0..<32 { let v: UInt8 = x < 16 ? 255 : 0; px += [v, v, v] } }
        let mask = dir.appendingPathComponent("mask.png").path
        try PNG.write(RGBImage(width: 32, height: 32, pixels: px), path: mask)
        let inp = dir.appendingPathComponent("inp").path
        let i = try runDipviz(["restore", "inpaint", photo, "--mask", mask, "--degrade", "--prior", "tv", "--iterations", "5", "--out", inp])
        #expect(i.status == 0, "\(i.stderr)")
        #expect(FileManager.default.fileExists(atPath: inp + "/mask.png"))
    }

    @Test func badRequestsFailInOneLine() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let photo = try RestoreCommandTests.photo(dir)
        let out = dir.appendingPathComponent("x").path
        let cases: [([String], String)] = [
            (["restore", "superres", photo, "--factor", "3", "--out", out], "valid: 4, 8"),
            (["restore", "inpaint", photo, "--out", out], "--mask"),
            (["restore", "flash", photo, "--out", out], "--no-flash"),
            (["restore", "denoise", photo, "--downsampler", "lanczos3", "--out", out], "applies to superres only"),
            (["restore", "denoise", dir.appendingPathComponent("none.png").path, "--out", out], "none.png"),
            (["restore", "denoise", photo, "--crop", "0,0,64", "--out", out], "does not fit"),
            (["restore", "--resume", dir.path], "not a folder written by dipviz restore"),
            (["restore", "denoise", photo, "--degrade", "--prior", "tv", "--save-start", out + ".ckpt", "--out", out + "-tv"], "no generator"),
        ]
        for (args, expected) in cases {
            let r = try runDipviz(args)
            #expect(r.status != 0 && r.stderr.contains(expected), "\(args): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count <= 2, "\(args): \(r.stderr)")
        }
        // A resumed run's start is long gone: --save-start goes with a new run only (usage follows).
        let resumed = try runDipviz(["restore", "--resume", dir.path, "--save-start", out + ".ckpt"])
        #expect(resumed.status != 0 && resumed.stderr.contains("give only --resume"), "\(resumed.stderr)")
    }
}
