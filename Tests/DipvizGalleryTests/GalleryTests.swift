import DipvizGallery
import DipvizImage
import DipvizONNX
import DipvizTensor
import DipvizVisualize
import Foundation
import Testing

@Suite("Gallery")
struct GalleryTests {
    /// A spec over a tiny generated classifier and photo, in a temporary folder.
    static func fixture(iterations: Int = 3) throws -> (dir: URL, spec: GallerySpec) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dipviz-gallery-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var b = ONNXGraphBuilder(seed: 3)
        b.conv(4, kernel: 3, pad: 1); b.relu(); b.maxPool(2, stride: 2); b.conv(4, kernel: 3, pad: 1); b.relu()
        try b.model(name: "tiny", inputShape: [1, 3, nil, nil]).encode().write(to: dir.appendingPathComponent("tiny.onnx"))
        var px = [UInt8]()
        for y in 0..<20 { for x in 0..<20 { px += [UInt8(x * 12), UInt8(y * 12), 90] } }
        try PNG.write(RGBImage(width: 20, height: 20, pixels: px), path: dir.appendingPathComponent("photo.png").path)
        let json = """
        {"title": "Tiny gallery", "budgets": {"quick": {"size": 16, "dip_iterations": \(iterations), "tv_iterations": \(iterations)}},
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
        builder.thumbnailSide = 8
        #expect(builder.work == out + ".work")
        #expect(builder.experiments.count == 2 * 2 + 2)
        #expect(Set(builder.experiments.map(\.key)).count == builder.experiments.count)
        for e in builder.pending { #expect(try builder.run(e) == .finished) }
        #expect(builder.pending.isEmpty)
        let index = try GallerySite(builder: builder, budget: "quick").render()
        let html = try String(contentsOfFile: index, encoding: .utf8)
        #expect(html.contains("Tiny gallery") && html.contains("inversion-tiny-net-photo.html"))
        #expect(html.contains("notebooks/tiny-net-feature-inversion.ipynb"))
        // Every page: relative links only, nothing from the network, alt text on every image.
        let files = FileManager.default.enumerator(atPath: out)!.compactMap { $0 as? String }
        let pages = files.filter { $0.hasSuffix(".html") }
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
        // The grids show thumbnails, no larger than asked; the site holds no working state.
        let grid = try String(contentsOfFile: out + "/maximization-tiny-net.html", encoding: .utf8)
        #expect(grid.contains("/thumbs/image.png"), "\(grid)")
        // Each unit shows its activation map on the sample photo, scaled per unit: its highest
        // value is the ramp's brightest colour.
        #expect(grid.contains("activations/tiny-net/conv2/unit-1-photo.png"), "\(grid)")
        let unitPage = builder.experiments.first { $0.unit == 1 }.map { out + "/results/\($0.key)/index.html" } ?? ""
        let unitHTML = try String(contentsOfFile: unitPage, encoding: .utf8)
        #expect(unitHTML.contains("What it responds to") && unitHTML.contains("../../activations/tiny-net/conv2/unit-1-photo.png"))
        #expect(unitHTML.contains("<h2>Reproduce</h2>") && unitHTML.contains("Objective: <code>conv2 channel 1"))
        let map = try PNG.read(path: out + "/activations/tiny-net/conv2/unit-1-photo.png")
        #expect(map.width >= 96 && map.width == map.height)
        #expect(stride(from: 0, to: map.pixels.count, by: 3).contains { map.pixels[$0] == 252 && map.pixels[$0 + 1] == 255 && map.pixels[$0 + 2] == 164 })
        let thumbs = files.filter { $0.contains("/thumbs/") && $0.hasSuffix(".png") }
        #expect(thumbs.count >= builder.experiments.count)
        for t in thumbs {
            let image = try PNG.read(path: out + "/" + t)
            #expect(max(image.width, image.height) <= 8, "\(t)")
        }
        #expect(files.filter { $0.hasSuffix(".ckpt") || $0.hasSuffix(".lock") || $0.hasSuffix("/checkpoints") || $0.contains(".tmp-") }.isEmpty,
                "\(files)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: builder.work + "/runs")) ?? []).isEmpty)
        // A second build over the same folders computes nothing.
        let again = try GalleryBuilder(spec: spec, budget: "quick", specDirectory: dir.path, output: out)
        #expect(again.pending.isEmpty)
    }

    /// An interrupted result waits in the work folder with its checkpoint, continues from it,
    /// and leaves the site lean; --keep-checkpoints keeps finished run folders.
    @Test func checkpointsStayInTheWorkFolder() throws {
        let (dir, spec) = try GalleryTests.fixture(iterations: 30)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("site").path
        let builder = try GalleryBuilder(spec: spec, budget: "quick", specDirectory: dir.path, output: out)
        let e = builder.experiments[0]
        var control = RunControl()
        var steps = 0
        control.shouldStop = { steps += 1; return steps > 25 }
        #expect(try builder.run(e, control: control) == .interrupted)
        #expect(FileManager.default.fileExists(atPath: builder.runDirectory(e) + "/checkpoints/image.ckpt"))
        #expect(!FileManager.default.fileExists(atPath: builder.resultDirectory(e)))
        #expect(try builder.run(e) == .finished)
        #expect(!FileManager.default.fileExists(atPath: builder.runDirectory(e)))
        #expect(builder.metrics(e)?.results.first?.iterations == 30)
        builder.keepCheckpoints = true
        let kept = builder.experiments[1]
        #expect(try builder.run(kept) == .finished)
        #expect(FileManager.default.fileExists(atPath: builder.runDirectory(kept) + "/checkpoints/image.ckpt"))
        let published = FileManager.default.enumerator(atPath: out)!.compactMap { $0 as? String }
        #expect(!published.contains { $0.hasSuffix(".ckpt") }, "\(published)")
    }

    /// Shards write only into their own folders; merging copies finished results of this
    /// gallery once, and refuses results of another spec or result format.
    @Test func shardsMergeIdempotentlyAndRefuseOtherResults() throws {
        let (dir, spec) = try GalleryTests.fixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("site").path
        var keys = Set<String>()
        for i in 1...2 {
            let shard = try GalleryBuilder(spec: spec, budget: "quick", specDirectory: dir.path, output: out, shard: (i, 2))
            let share = try shard.shard(i, of: 2)
            for e in share { #expect(try shard.run(e) == .finished); keys.insert(e.key) }
            #expect(share.allSatisfy { shard.isDone($0) })
        }
        #expect(!FileManager.default.fileExists(atPath: out), "a shard wrote into the site")
        let builder = try GalleryBuilder(spec: spec, budget: "quick", specDirectory: dir.path, output: out)
        #expect(keys == Set(builder.experiments.map(\.key)))
        let folders = (1...2).map { GalleryBuilder.shardFolder(work: builder.work, index: $0, count: 2) }
        // A result of another gallery and one of an older result format sit among the shards' results.
        let stray = folders[0] + "/results/00000000deadbeef"
        try FileManager.default.createDirectory(atPath: stray, withIntermediateDirectories: true)
        try Data("{\"format_version\": 1}".utf8).write(to: URL(fileURLWithPath: stray + "/run.json"))
        let first = try builder.merge(from: folders)
        #expect(first.copied == builder.experiments.count && first.present == 0)
        #expect(first.refused.count == 1 && first.refused[0].contains("result format 1"), "\(first.refused)")
        #expect(builder.pending.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: out + "/results/00000000deadbeef"))
        let second = try builder.merge(from: folders)
        #expect(second.copied == 0 && second.present == builder.experiments.count)
        // A result whose record holds another spec under this gallery's key is refused too.
        let fresh = dir.appendingPathComponent("fresh").path
        let other = try GalleryBuilder(spec: spec, budget: "quick", specDirectory: dir.path, output: fresh)
        let e = other.experiments[0], f = other.experiments[1]
        let forged = folders[1] + "/results/" + e.key
        try? FileManager.default.removeItem(atPath: forged)
        try FileManager.default.copyItem(atPath: out + "/results/" + f.key, toPath: forged)
        let third = try other.merge(from: [folders[1]])
        #expect(third.refused.contains { $0.contains(e.key) && $0.contains("spec") }, "\(third.refused)")
        #expect(!other.isDone(e))
    }

    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Runs a command; nil when it cannot start.
    static func run(_ args: [String]) -> (Int32, String)? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        guard (try? p.run()) != nil else { return nil }
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: out, as: UTF8.self))
    }

    static var browserAvailable: Bool {
        (run(["sh", "-c", "command -v chromium || command -v chromium-browser"])?.0 == 0)
            && run(["python3", "-c", "import websocket"])?.0 == 0
    }

    static var nbformatAvailable: Bool { run(["python3", "-c", "import nbformat"])?.0 == 0 }

    static func builtSite() throws -> (URL, GalleryBuilder) {
        let (dir, spec) = try fixture()
        let builder = try GalleryBuilder(spec: spec, budget: "quick", specDirectory: dir.path, output: dir.appendingPathComponent("site").path)
        for e in builder.pending { _ = try builder.run(e) }
        try GallerySite(builder: builder, budget: "quick").render()
        return (dir, builder)
    }

    /// Loads every page of `site` in headless Chromium (`Tests/browser/check_site.py`) and expects
    /// no failure and a screenshot of the index; returns how many images decoded.
    static func checkInBrowser(site: String, screenshot shot: String) throws -> Int {
        let script = repo.appendingPathComponent("Tests/browser/check_site.py").path
        let (status, output) = try #require(run(["python3", script, site, shot]))
        #expect(status == 0, "\(output)")
        #expect(output.contains("\"failures\": []"), "\(output)")
        let size = (try? FileManager.default.attributesOfItem(atPath: shot)[.size] as? Int) ?? 0
        #expect(size > 1000, "no screenshot")
        let report = output.split(separator: "\n").last.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        return report?["images"] as? Int ?? 0
    }

    /// Headless Chromium loads every page: all images decode, no console errors; a screenshot of the index is kept.
    @Test(.enabled(if: GalleryTests.browserAvailable, "chromium or the python websocket-client package is missing"))
    func pagesWorkInARealBrowser() throws {
        let (dir, builder) = try GalleryTests.builtSite()
        defer { try? FileManager.default.removeItem(at: dir) }
        let images = try GalleryTests.checkInBrowser(site: builder.output, screenshot: dir.appendingPathComponent("index.png").path)
        #expect(images > 0)
    }

    @Test(.enabled(if: GalleryTests.nbformatAvailable, "the python nbformat package is missing"))
    func notebookExportValidates() throws {
        let (dir, builder) = try GalleryTests.builtSite()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("nb/results.ipynb").path
        let folders = builder.experiments.map { builder.resultDirectory($0) }
        let cells = try NotebookExport.write(results: folders, title: "Tiny", introduction: "A test.", to: path)
        #expect(cells == 2 + 2 * folders.count)
        let check = "import nbformat, sys; nb = nbformat.read(sys.argv[1], as_version=4); nbformat.validate(nb); " +
            "imgs = sum('image/png' in o.get('data', {}) for c in nb.cells if c.cell_type == 'code' for o in c.outputs); print(imgs)"
        let (status, output) = try #require(GalleryTests.run(["python3", "-c", check, path]))
        #expect(status == 0, "\(output)")
        #expect(Int(output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0 >= folders.count)
        #expect(throws: GalleryError.self) { try NotebookExport.write(results: [dir.path], title: "x", introduction: "", to: path) }
    }

    @Test func pathsStayRelative() {
        #expect(GallerySpec.normalized("gallery/../models/a.onnx") == "models/a.onnx")
        #expect(GallerySpec.normalized("./x/./y/../z") == "x/z")
        #expect(GallerySpec.normalized("../shared/m.onnx") == "../shared/m.onnx")
        #expect(GallerySpec.normalized("/a/b/../c") == "/a/c")
    }

    @Test func badSpecsAreClearErrors() throws {
        let (dir, spec) = try GalleryTests.fixture()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: GalleryError.self) { _ = try GalleryBuilder(spec: spec, budget: "full", specDirectory: dir.path, output: dir.path) }
        #expect(throws: GalleryError.self) { _ = try GallerySpec.load(path: dir.appendingPathComponent("nope.json").path) }
    }
}
