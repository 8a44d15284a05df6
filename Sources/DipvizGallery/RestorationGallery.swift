import DipvizImage
import DipvizTensor
import DipvizVisualize
import Foundation
import Mustache

/// A restoration gallery (`gallery/restoration.json`): photos cropped and corrupted per task
/// (`--degrade`), restored under each prior, beside the baselines and the ground truth, with the
/// PSNR curves and where the result was taken. Runs live in the work folder (OUT.work) and
/// continue from their checkpoints; the site gets the images and a single page.
public struct RestorationGallerySpec: Codable, Sendable {
    public struct Photo: Codable, Sendable {
        public var name: String
        public var path: String
        /// [x, y, size]: the square crop at the full budget; smaller budgets take its centre.
        public var crop: [Int]
    }

    public struct Task: Codable, Sendable {
        public var title: String
        public var task: RestorationTaskKind
        public var factor: Int?
        public var drop: Float?
        public var sigma: Float?
        public var quality: Int?
        public var priors: [RestorationPriorKind]
    }

    public struct Budget: Codable, Sendable {
        /// Side of the crops in pixels.
        public var size: Int
        /// Fraction of each run's default iterations (1: the paper's).
        public var scale: Double
    }

    public var title: String
    public var description: String?
    public var seed: UInt64?
    public var budgets: [String: Budget]
    public var photos: [Photo]
    public var tasks: [Task]
    /// Folder (relative to the spec) of BM3D results made by bench/restore_bm3d.py, named
    /// PHOTO-SIZE.png; shown beside denoising when present.
    public var bm3d: String?
    /// Folder (relative to the spec) with AlexNet's features and LPIPS heads (`models/prepare`),
    /// for LPIPS beside PSNR and SSIM; captions leave it out where the files are absent.
    public var lpipsModels: String?

    enum CodingKeys: String, CodingKey { case title, description, seed, budgets, photos, tasks, bm3d, lpipsModels = "lpips_models" }

    /// Whether the JSON at `path` is a restoration gallery (it lists `tasks`).
    public static func isRestoration(path: String) -> Bool {
        guard let data = FileManager.default.contents(atPath: path),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return false }
        return object["tasks"] != nil && object["photos"] != nil
    }

    public static func load(path: String) throws -> RestorationGallerySpec {
        guard let data = FileManager.default.contents(atPath: path) else { throw GalleryError.spec("cannot read \(path)") }
        let spec: RestorationGallerySpec
        do { spec = try JSONDecoder().decode(RestorationGallerySpec.self, from: data) } catch {
            throw GalleryError.spec("\(path): \(DecodingErrors.describe(error))")
        }
        for p in spec.photos where p.crop.count != 3 || p.crop.contains(where: { $0 < 0 }) {
            throw GalleryError.spec("\(path): photo \(p.name): crop is [x, y, size] with whole numbers >= 0")
        }
        guard !spec.tasks.isEmpty, !spec.photos.isEmpty else { throw GalleryError.spec("\(path): give at least one photo and one task") }
        return spec
    }
}

public struct RestorationGallery {
    public let spec: RestorationGallerySpec
    public let budgetName: String
    let budget: RestorationGallerySpec.Budget
    let specDirectory: String
    public let output: String
    public let work: String

    public init(spec: RestorationGallerySpec, budget: String, specDirectory: String, output: String, work: String) throws {
        guard let b = spec.budgets[budget] else {
            throw GalleryError.spec("no budget \(budget) in the spec; valid: \(spec.budgets.keys.sorted().joined(separator: ", "))")
        }
        guard b.size >= 32, b.scale > 0, b.scale <= 1 else { throw GalleryError.spec("budget \(budget): size >= 32 and 0 < scale <= 1") }
        self.spec = spec; budgetName = budget; self.budget = b; self.specDirectory = specDirectory; self.output = output; self.work = work
    }

    public struct Experiment {
        public var photo: RestorationGallerySpec.Photo
        public var task: RestorationGallerySpec.Task
        public var prior: RestorationPriorKind
        public var spec: RestorationSpec
        public var key: String { spec.key }
    }

    func path(_ p: String) -> String { p.hasPrefix("/") ? p : GallerySpec.normalized((specDirectory as NSString).appendingPathComponent(p)) }

    /// Every run of the gallery, resolved.
    public func experiments() throws -> [Experiment] {
        var out: [Experiment] = []
        for task in spec.tasks {
            for photo in spec.photos {
                for prior in task.priors {
                    var r = RestorationRequest(task: RestorationTask(kind: task.task, factor: task.factor, drop: task.drop, sigma: task.sigma,
                                                                     quality: task.quality), input: path(photo.path))
                    r.degrade = true
                    let shrink = (photo.crop[2] - budget.size) / 2
                    r.crop = CropBox(x: photo.crop[0] + Swift.max(shrink, 0), y: photo.crop[1] + Swift.max(shrink, 0), width: budget.size, height: budget.size)
                    r.prior = prior
                    r.seed = spec.seed ?? 0
                    var s = try RestorationSpec.resolve(r)
                    s.iterations = Swift.max(1, Int((Double(s.iterations) * budget.scale).rounded()))
                    s.stopping.patience = Swift.max(1, Int((Double(s.stopping.patience) * budget.scale).rounded()))
                    s.snapshotEvery = Swift.max(10, s.iterations / 10)
                    out.append(Experiment(photo: photo, task: task, prior: prior, spec: s))
                }
            }
        }
        return out
    }

    func runFolder(_ e: Experiment) -> String { (work as NSString).appendingPathComponent("results/\(e.key)") }
    func siteFolder(_ e: Experiment) -> String { (output as NSString).appendingPathComponent("results/\(e.key)") }

    /// Computes what is not finished (continuing interrupted runs), then writes the site.
    public func build(control: RunControl = RunControl(), log: (String) -> Void = { _ in }) throws -> String {
        let all = try experiments()
        for (i, e) in all.enumerated() {
            if control.shouldStop() { throw GalleryError.spec("interrupted; run the same command again to continue") }
            let folder = try ResultFolder(path: runFolder(e))
            let started = Date()
            let outcome = try Restoration.run(e.spec, folder: folder, workingDirectory: FileManager.default.currentDirectoryPath, control: control,
                                              lpipsModels: spec.lpipsModels.map(path))
            if outcome.metrics.ending == .interrupted { throw GalleryError.spec("interrupted; run the same command again to continue") }
            log(String(format: "[%d/%d] %@ %@ %@: %.1f s", i + 1, all.count, e.task.task.rawValue, e.photo.name, e.prior.rawValue,
                       Date().timeIntervalSince(started)))
            try publish(e)
        }
        return try render(all)
    }

    func publish(_ e: Experiment) throws {
        let source = runFolder(e), target = siteFolder(e)
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        for name in ["image.png", "input.png", "ground-truth.png", "mask.png", "bicubic.png", "metrics.json", "curve.json", "run.json"] {
            let from = (source as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: from) else { continue }
            try AtomicFile.write(data, to: (target as NSString).appendingPathComponent(name))
        }
    }

    static func format(_ v: Double?, _ f: String) -> String { v.map { String(format: f, $0) } ?? "–" }

    /// "27.31 dB · SSIM 0.812 · LPIPS 0.143" (LPIPS where it was computed).
    static func caption(_ f: Fidelity?) -> String {
        "\(format(f?.psnr, "%.2f")) dB · SSIM \(format(f?.ssim, "%.3f"))" + (f?.lpips.map { String(format: " · LPIPS %.3f", $0) } ?? "")
    }

    /// The PSNR curves of a row as an inline SVG: one line per prior, a ring at the best
    /// iteration and a bar where the result was taken.
    static func curveSVG(_ series: [(name: String, colour: String, points: [CurvePoint], stop: Int, best: Int?)]) -> String {
        let all = series.flatMap { s in s.points.compactMap { p in p.values["psnr"].map { (p.iteration, $0) } } }
        guard let maxIteration = all.map(\.0).max(), maxIteration > 0 else { return "" }
        let values = all.map(\.1)
        let lo = (values.min() ?? 0).rounded(.down), hi = Swift.max((values.max() ?? 1).rounded(.up), lo + 1)
        let w = 360.0, h = 160.0, left = 34.0, bottom = 20.0
        func x(_ i: Int) -> Double { left + (w - left - 6) * Double(i) / Double(maxIteration) }
        func y(_ v: Double) -> Double { 6 + (h - bottom - 6) * (1 - (v - lo) / (hi - lo)) }
        var svg = "<svg class=\"curve\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" width=\"\(Int(w))\" height=\"\(Int(h))\" role=\"img\" aria-label=\"PSNR against iterations\">"
        svg += "<line x1=\"\(left)\" y1=\"\(y(lo))\" x2=\"\(w - 6)\" y2=\"\(y(lo))\" stroke=\"#999\"/><line x1=\"\(left)\" y1=\"6\" x2=\"\(left)\" y2=\"\(y(lo))\" stroke=\"#999\"/>"
        svg += String(format: "<text x=\"2\" y=\"12\" font-size=\"10\">%.0f dB</text><text x=\"2\" y=\"%.0f\" font-size=\"10\">%.0f</text>", hi, y(lo), lo)
        svg += "<text x=\"\(w - 60)\" y=\"\(h - 4)\" font-size=\"10\">\(maxIteration) it.</text>"
        for s in series {
            let pts = s.points.compactMap { p in p.values["psnr"].map { String(format: "%.1f,%.1f", x(p.iteration), y($0)) } }
            guard !pts.isEmpty else { continue }
            svg += "<polyline fill=\"none\" stroke=\"\(s.colour)\" stroke-width=\"1.5\" points=\"\(pts.joined(separator: " "))\"><title>\(s.name)</title></polyline>"
            if let best = s.best, let p = s.points.min(by: { Swift.abs($0.iteration - best) < Swift.abs($1.iteration - best) }), let v = p.values["psnr"] {
                svg += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"none\" stroke=\"%@\"><title>%@: best %.2f dB at %d</title></circle>", x(best), y(v), s.colour, s.name, v, best)
            }
            svg += String(format: "<line x1=\"%.1f\" y1=\"6\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%@\" stroke-dasharray=\"3,3\"><title>%@: result taken at %d</title></line>", x(s.stop), x(s.stop), y(lo), s.colour, s.name, s.stop)
        }
        return svg + "</svg>"
    }

    static let colours: [RestorationPriorKind: String] = [.dip: "#c0392b", .deepDecoder: "#2471a3", .tv: "#7d8c2e"]

    public func render(_ all: [Experiment]) throws -> String {
        guard let url = Bundle.module.url(forResource: "restoration", withExtension: "mustache", subdirectory: "Templates"),
              let text = try? String(contentsOf: url, encoding: .utf8),
              let cssURL = Bundle.module.url(forResource: "style", withExtension: "css", subdirectory: "Templates"),
              let css = try? String(contentsOf: cssURL, encoding: .utf8) else {
            throw GalleryError.spec("the restoration template is missing from the installation")
        }
        let template = try MustacheTemplate(string: text)
        let size = budget.size
        var sections: [[String: Any]] = []
        for task in spec.tasks {
            var rows: [[String: Any]] = []
            for photo in spec.photos {
                let mine = all.filter { $0.task.title == task.title && $0.photo.name == photo.name }
                guard let first = mine.first else { continue }
                let site = "results/\(first.key)/"
                var cells: [[String: Any]] = [["label": "input", "src": site + "input.png", "caption": inputCaption(first)]]
                var series: [(String, String, [CurvePoint], Int, Int?)] = []
                for e in mine {
                    let metricsPath = (siteFolder(e) as NSString).appendingPathComponent("metrics.json")
                    guard let m = try? ResultJSON.read(RestorationMetrics.self, path: metricsPath, what: "metrics") else {
                        cells.append(["label": e.prior.rawValue, "missing": true]); continue
                    }
                    let rule = m.stopRule == .budget ? "budget" : m.varianceMinimumIteration == nil ? "variance rule: no minimum, budget end" : "variance rule"
                    cells.append(["label": e.prior.rawValue, "src": "results/\(e.key)/image.png",
                                  "caption": RestorationGallery.caption(m.result),
                                  "detail": "iteration \(m.stopIteration) (\(rule)); best \(RestorationGallery.format(m.bestPSNR, "%.2f")) dB at \(m.bestIteration ?? 0)"])
                    if e.prior != .tv,
                       let curves = try? ResultJSON.read(CurveFile.self, path: (siteFolder(e) as NSString).appendingPathComponent("curve.json"), what: "curve") {
                        series.append((e.prior.rawValue, RestorationGallery.colours[e.prior] ?? "#333", curves.curves["image"] ?? [], m.stopIteration, m.bestIteration))
                    }
                    for (name, b) in m.baselines.sorted(by: { $0.key < $1.key }) where e.prior == mine.first?.prior {
                        cells.append(["label": name, "src": "results/\(e.key)/\(name).png",
                                      "caption": RestorationGallery.caption(b)])
                    }
                }
                if task.task == .denoise, let cell = try bm3dCell(photo, truth: (siteFolder(first) as NSString).appendingPathComponent("ground-truth.png")) {
                    cells.append(cell)
                }
                cells.append(["label": "ground truth", "src": site + "ground-truth.png", "caption": "\(size)×\(size) crop"])
                rows.append(["photo": photo.name, "cells": cells, "size": size,
                             "curve": RestorationGallery.curveSVG(series.map { (name: $0.0, colour: $0.1, points: $0.2, stop: $0.3, best: $0.4) })])
            }
            sections.append(["title": task.title, "rows": rows])
        }
        let context: [String: Any] = [
            "title": spec.title, "description": spec.description ?? "", "css": css, "sections": sections, "size": size,
            "budget": budgetName, "budgetDetail": "\(size)×\(size) px crops, \(String(format: "%g", budget.scale * 100))% of each prior's default iterations",
            "partialBudget": budget.scale < 1,
        ]
        let html = template.render(context)
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        let index = (output as NSString).appendingPathComponent("index.html")
        try AtomicFile.write(Data(html.utf8), to: index)
        return index
    }

    func inputCaption(_ e: Experiment) -> String {
        let m = try? ResultJSON.read(RestorationMetrics.self, path: (siteFolder(e) as NSString).appendingPathComponent("metrics.json"), what: "metrics")
        guard let input = m?.input else { return e.task.task == .superres ? "low resolution (×\(e.task.factor ?? 4))" : "" }
        return RestorationGallery.caption(input)
    }

    /// The BM3D fixture for `photo` at this budget's size, measured against the ground truth.
    func bm3dCell(_ photo: RestorationGallerySpec.Photo, truth: String) throws -> [String: Any]? {
        guard let folder = spec.bm3d else { return nil }
        let source = path((folder as NSString).appendingPathComponent("\(photo.name)-\(budget.size).png"))
        guard FileManager.default.fileExists(atPath: source), FileManager.default.fileExists(atPath: truth) else { return nil }
        let image = try PNG.read(path: source), reference = try PNG.read(path: truth)
        guard image.width == reference.width, image.height == reference.height else { return nil }
        let target = "bm3d/\(photo.name)-\(budget.size).png"
        let full = (output as NSString).appendingPathComponent(target)
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try AtomicFile.write(try PNG.encode(image), to: full)
        let (a, b) = (image.tensor(), reference.tensor())
        let lpips = spec.lpipsModels.flatMap { try? LPIPS(.alex, modelsDirectory: path($0)) }
        return ["label": "CBM3D", "src": target, "caption": RestorationGallery.caption(Fidelity(a, b, lpips: lpips))]
    }
}
