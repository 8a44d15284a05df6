import DipvizImage
import DipvizONNX
import Foundation
import Testing

@Suite("dipviz classify refuses models that do not classify")
struct ClassifyRefusalTests {
    /// A conv + relu feature extractor: its output is a 1x4x8x8 map, not class scores.
    @Test func featureExtractorIsRefusedInOneLine() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var b = ONNXGraphBuilder(seed: 5)
        b.conv(4, kernel: 3, pad: 1); b.relu()
        let model = dir.appendingPathComponent("features.onnx").path
        try b.model(name: "features", inputShape: [1, 3, 8, 8]).encode().write(to: URL(fileURLWithPath: model))
        let photo = dir.appendingPathComponent("photo.png").path
        try PNG.write(RGBImage(width: 8, height: 8, pixels: [UInt8](repeating: 100, count: 8 * 8 * 3)), path: photo)
        let r = try runDipviz(["classify", model, photo])
        #expect(r.status != 0)
        #expect(r.stdout.isEmpty, "printed classes for a feature map: \(r.stdout)")
        #expect(r.stderr.contains("not a classifier") && r.stderr.contains("1x4x8x8"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: Repo.path("models/alexnet-features.onnx"))
                      && FileManager.default.fileExists(atPath: Repo.path("samples/chelsea.png")), "models/prepare has not been run"))
    func alexNetFeaturesIsRefused() throws {
        let r = try runDipviz(["classify", Repo.path("models/alexnet-features.onnx"), Repo.path("samples/chelsea.png")])
        #expect(r.status != 0)
        #expect(r.stderr.contains("not a classifier") && r.stderr.contains("1x256x6x6"), "\(r.stderr)")
    }
}
