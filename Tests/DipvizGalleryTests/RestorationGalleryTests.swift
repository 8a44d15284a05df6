import DipvizGallery
import DipvizImage
import DipvizVisualize
import Foundation
import Testing

@Suite("Restoration gallery")
struct RestorationGalleryTests {
    /// A 40x40 photo and a restoration spec of two tasks on it, in a fresh folder.
    static func fixture() throws -> (dir: URL, specPath: String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dipviz-restoration-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var px = [UInt8]()
        for y in 0..<40 { for x in 0..<40 { px += [UInt8(x * 6), UInt8(y * 6), x < 20 ? 40 : 210] } }
        try PNG.write(RGBImage(width: 40, height: 40, pixels: px), path: dir.appendingPathComponent("photo.png").path)
        let json = """
        {"title": "Tiny restoration", "seed": 1, "budgets": {"tiny": {"size": 32, "scale": 0.002}},
         "photos": [{"name": "photo", "path": "photo.png", "crop": [2, 2, 36]}],
         "tasks": [{"title": "Denoising", "task": "denoise", "sigma": 25, "priors": ["deep-decoder", "tv"]},
                   {"title": "Super-resolution", "task": "superres", "factor": 4, "priors": ["tv"]}]}
        """
        let specPath = dir.appendingPathComponent("restoration.json").path
        try json.write(toFile: specPath, atomically: true, encoding: .utf8)
        return (dir, specPath)
    }

    @Test func computesRendersAndReusesItsRuns() throws {
        let (dir, specPath) = try RestorationGalleryTests.fixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(RestorationGallerySpec.isRestoration(path: specPath))
        let spec = try RestorationGallerySpec.load(path: specPath)
        let out = dir.appendingPathComponent("site").path
        let gallery = try RestorationGallery(spec: spec, budget: "tiny", specDirectory: dir.path, output: out, work: out + ".work")
        let runs = try gallery.experiments()
        #expect(runs.count == 3)
        #expect(runs.allSatisfy { $0.spec.crop == CropBox(x: 4, y: 4, width: 32, height: 32) }, "the budget's size is the centre of the crop")
        var lines: [String] = []
        let index = try gallery.build { lines.append($0) }
        let html = try String(contentsOfFile: index, encoding: .utf8)
        for text in ["Denoising", "Super-resolution", "deep-decoder", "bicubic", "ground truth", "<svg class=\"curve\"", "still forming their images"] {
            #expect(html.contains(text), "the page lacks \(text)")
        }
        for e in runs { #expect(FileManager.default.fileExists(atPath: out + "/results/\(e.key)/image.png")) }
        // A second build finds every run finished.
        let started = Date()
        _ = try gallery.build()
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(throws: GalleryError.self) { try RestorationGallery(spec: spec, budget: "full", specDirectory: dir.path, output: out, work: out + ".work") }
    }

    /// Headless Chromium loads the restoration pages: every image (inputs, outputs, baselines,
    /// ground truth) decodes, and no console error or failed request occurs.
    @Test(.enabled(if: GalleryTests.browserAvailable, "chromium or the python websocket-client package is missing"))
    func pagesWorkInARealBrowser() throws {
        let (dir, specPath) = try RestorationGalleryTests.fixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("site").path
        let gallery = try RestorationGallery(spec: try RestorationGallerySpec.load(path: specPath), budget: "tiny",
                                             specDirectory: dir.path, output: out, work: out + ".work")
        _ = try gallery.build()
        // Denoising: input, deep-decoder, tv, ground truth; super-resolution: input, bicubic, tv, ground truth.
        let images = try GalleryTests.checkInBrowser(site: out, screenshot: dir.appendingPathComponent("index.png").path)
        #expect(images == 8)
    }
}
