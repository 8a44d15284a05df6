import DipvizGallery
import DipvizImage
import DipvizONNX
import DipvizTensor
import Foundation
import Testing

@Suite("Gallery")
struct GalleryTests {
    /// A spec over a tiny generated classifier and photo, in a temporary folder.
    static func fixture() throws -> (dir: URL, spec: GallerySpec) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dipviz-gallery-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var b = ONNXGraphBuilder(seed: 3)
        b.conv(4, kernel: 3, pad: 1); b.relu(); b.maxPool(2, stride: 2); b.conv(4, kernel: 3, pad: 1); b.relu()
        try b.model(name: "tiny", inputShape: [1, 3, nil, nil]).encode().write(to: dir.appendingPathComponent("tiny.onnx"))
        var px = [UInt8]()
        for y in 0..<20 { for x in 0..<20 { px += [UInt8(x * 12), UInt8(y * 12), 90] } }
        try PNG.write(RGBImage(width: 20, height: 20, pixels: px), path: dir.appendingPathComponent("photo.png").path)
        let json = """
        {"title": "Tiny gallery", "budgets": {"quick": {"size": 16, "dip_iterations": 3, "tv_iterations": 3}},
         "models": [{"name": "Tiny net", "path": "tiny.onnx",
           "inversion": {"images": ["photo.png"], "layers": ["conv1", "relu2"], "priors": ["tv", "pixel"]},
           "maximization": {"layer": "conv2", "units": "0-1", "priors": ["pixel"]}}]}
        """
        return (dir, try JSONDecoder().decode(GallerySpec.self, from: Data(json.utf8)))
    }

    @Test func buildsASelfContainedSiteAndReusesResults() throws {
        let (dir, spec) = try GalleryTests.fixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("site").path
        let builder = try GalleryBuilder(spec: spec, budget: "quick", specDirectory: dir.path, output: out)
        #expect(builder.experiments.count == 2 * 2 + 2)
        #expect(Set(builder.experiments.map(\.key)).count == builder.experiments.count)
        for e in builder.pending { #expect(try builder.run(e) == .finished) }
        #expect(builder.pending.isEmpty)
        let index = try GallerySite(builder: builder, budget: "quick").render()
        let html = try String(contentsOfFile: index, encoding: .utf8)
        #expect(html.contains("Tiny gallery") && html.contains("inversion-tiny-net-photo.html"))
        // Every page: relative links only, nothing from the network, alt text on every image.
        let pages = FileManager.default.enumerator(atPath: out)!.compactMap { $0 as? String }.filter { $0.hasSuffix(".html") }
        #expect(pages.count == 4 + builder.experiments.count)
        for page in pages {
            let text = try String(contentsOfFile: out + "/" + page, encoding: .utf8)
            #expect(!text.contains("http://") && !text.contains("https://"), "\(page)")
            let imgs = text.components(separatedBy: "<img ").dropFirst()
            #expect(imgs.allSatisfy { $0.contains("alt=\"") }, "\(page)")
            // Each local reference exists.
            for chunk in text.components(separatedBy: "src=\"").dropFirst() + text.components(separatedBy: "href=\"").dropFirst() {
                let target = String(chunk.prefix { $0 != "\"" })
                let base = (out as NSString).appendingPathComponent((page as NSString).deletingLastPathComponent)
                let resolved = URL(fileURLWithPath: base).appendingPathComponent(target).standardized.path
                #expect(FileManager.default.fileExists(atPath: resolved), "\(page) links to missing \(target)")
            }
        }
        // A second build over the same folder computes nothing.
        let again = try GalleryBuilder(spec: spec, budget: "quick", specDirectory: dir.path, output: out)
        #expect(again.pending.isEmpty)
    }

    @Test func badSpecsAreClearErrors() throws {
        let (dir, spec) = try GalleryTests.fixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: GalleryError.self) { _ = try GalleryBuilder(spec: spec, budget: "full", specDirectory: dir.path, output: dir.path) }
        #expect(throws: GalleryError.self) { _ = try GallerySpec.load(path: dir.appendingPathComponent("nope.json").path) }
    }
}
