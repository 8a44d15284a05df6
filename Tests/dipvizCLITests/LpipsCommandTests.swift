import Foundation
import Testing

@Suite("dipviz lpips")
struct LpipsCommandTests {
    static let fixtures = Repo.path("Tests/DipvizVisualizeTests/Fixtures/lpips")
    static var prepared: Bool {
        ["models/alexnet-features.onnx", "models/lpips-alexnet.npy"].allSatisfy { FileManager.default.fileExists(atPath: Repo.path($0)) }
    }

    @Test(.enabled(if: LpipsCommandTests.prepared, "models/prepare has not been run"))
    func printsTheReferenceDistance() throws {
        let fixture = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: LpipsCommandTests.fixtures + "/lpips.json"))) as! [String: Any]
        let first = (fixture["cases"] as! [[String: Any]]).first { $0["b"] as? String == "blurred.png" }!
        let r = try runDipviz(["lpips", LpipsCommandTests.fixtures + "/base.png", LpipsCommandTests.fixtures + "/blurred.png",
                               "--models", Repo.path("models"), "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let out = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        #expect(out["net"] as? String == "alex")
        #expect(abs((out["lpips"] as! Double) - (first["alex"] as! Double)) < 1e-4)
    }

    @Test func refusesWhatItCannotCompare() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let other = try runDipviz(["lpips", LpipsCommandTests.fixtures + "/base.png", Repo.path("Tests/DipvizVisualizeTests/Fixtures/lpips/noisy.png"),
                                   "--models", dir.path])
        #expect(other.status != 0 && other.stderr.contains("run models/prepare"), "\(other.stderr)")
        let net = try runDipviz(["lpips", "a.png", "b.png", "--net", "squeeze"])
        #expect(net.status != 0 && net.stderr.contains("alex"), "\(net.stderr)")
    }
}
