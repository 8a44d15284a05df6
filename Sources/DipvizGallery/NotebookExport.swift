import DipvizVisualize
import Foundation

/// Writes Jupyter notebooks (nbformat 4.5) that tell an experiment: the method and its
/// configuration in markdown, the commands as code cells, and their outputs (PNG images and
/// metric tables) embedded, so the notebook reads on GitHub without running anything.
public enum NotebookExport {
    struct Notebook: Encodable {
        var cells: [Cell]
        var metadata: [String: [String: String]] = [
            "kernelspec": ["display_name": "Bash", "language": "bash", "name": "bash"],
            "language_info": ["name": "bash"],
        ]
        var nbformat = 4
        var nbformat_minor = 5
    }

    struct Output: Encodable {
        var output_type = "display_data"
        var data: [String: String]
        var metadata: [String: String] = [:]
    }

    struct Cell: Encodable {
        var cell_type: String
        var id: String
        var metadata: [String: String] = [:]
        var source: [String]
        var execution_count: Int?
        var outputs: [Output]?

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: Key.self)
            try c.encode(cell_type, forKey: .cell_type)
            try c.encode(id, forKey: .id)
            try c.encode(metadata, forKey: .metadata)
            try c.encode(source, forKey: .source)
            if cell_type == "code" {
                try c.encode(execution_count, forKey: .execution_count)
                try c.encode(outputs ?? [], forKey: .outputs)
            }
        }
        enum Key: String, CodingKey { case cell_type, id, metadata, source, execution_count, outputs }
    }

    static func lines(_ text: String) -> [String] {
        let parts = text.components(separatedBy: "\n")
        return parts.enumerated().map { $0.offset < parts.count - 1 ? $0.element + "\n" : $0.element }
    }

    /// One result folder as written by `invert`, `maximize`, `run` or a gallery.
    struct Result {
        var folder: String
        var title: String
        var command: String
        var metrics: ResultMetrics
        var seed: UInt64
        var configuration: String
        var images: [(String, String)]  // (caption, base64 PNG)
        /// The model file, which decides the LPIPS backbone shown (`LPIPS.independent`).
        var modelPath = ""
    }

    /// One entry per result image of the folder.
    static func load(_ folder: String) throws -> [Result] {
        let fm = FileManager.default
        guard fm.fileExists(atPath: folder + "/run.json") else {
            throw GalleryError.experiment("\(folder) has no run.json (not a result folder of invert, maximize, run or a gallery)")
        }
        let record = try ResultJSON.read(RunRecord.self, path: folder + "/run.json", what: "run record")
        let metrics = try ResultJSON.read(RunMetrics.self, path: folder + "/metrics.json", what: "metrics file")
        let spec = record.spec
        let arguments = spec.reproduceArguments(out: (folder as NSString).lastPathComponent + "-rerun", runRecord: folder + "/run.json")
        let command = Shell.ipythonLine("dipviz", arguments)
        let configuration = String(decoding: (try? ResultJSON.encoder.encode(spec)) ?? Data(), as: UTF8.self)
        let model = (spec.model.file.path as NSString).lastPathComponent
        return metrics.results.map { m in
            var images: [(String, String)] = []
            for (file, caption) in [("original.png", "original"), (m.imageFile, "result")] {
                if let png = fm.contents(atPath: folder + "/" + file) { images.append((caption, png.base64EncodedString())) }
            }
            let title: String
            switch spec.objective {
            case .inversion(let inv):
                title = "\(inv.layers.joined(separator: ",")) pre-image of \((inv.image.path as NSString).lastPathComponent) (\(spec.prior.kind.rawValue), \(model))"
            case .maximization(let mx):
                title = "\(mx.layer ?? "class scores") \(m.target ?? m.name) (\(spec.prior.kind.rawValue), \(model))"
            }
            return Result(folder: folder, title: title, command: command, metrics: m, seed: spec.seed, configuration: configuration,
                          images: images, modelPath: spec.model.file.path)
        }
    }

    static let metricKeys = ["feature_error", "feature_error_start", "psnr", "ssim", "lpips_alex", "lpips_vgg", "top1_match", "activation", "activation_start",
                             "activation_x0", "probability", "iterations", "seconds", "seed"]

    /// A result's metrics by their JSON names.
    static func values(_ r: Result) -> [String: String] {
        let m = r.metrics
        func number(_ v: Double?) -> String? { v.map { $0 == $0.rounded() && abs($0) < 1e9 ? String(Int($0)) : String(format: "%.4g", $0) } }
        var out: [String: String] = [:]
        out["feature_error"] = number(m.featureError)
        out["feature_error_start"] = number(m.featureErrorStart)
        out["psnr"] = number(m.psnr)
        out["ssim"] = number(m.ssim)
        // Only the LPIPS whose backbone is not the inverted network (the other is circular).
        if LPIPS.independent(ofModel: r.modelPath) == .alex { out["lpips_alex"] = number(m.lpipsAlex) } else { out["lpips_vgg"] = number(m.lpipsVgg) }
        out["top1_match"] = m.top1Match.map { $0 ? "yes" : "no" }
        out["activation"] = number(m.activation)
        out["activation_start"] = number(m.activationStart)
        out["activation_x0"] = number(m.activationX0)
        out["probability"] = number(m.probability)
        out["iterations"] = String(m.iterations)
        out["seconds"] = number(m.seconds)
        out["seed"] = String(r.seed)
        return out
    }

    /// Text safe inside a markdown table cell.
    static func markdownCell(_ s: String) -> String {
        s.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
    }

    /// One notebook per model and kind of experiment of a gallery (finished results only);
    /// returns the paths written.
    public static func writeGallery(_ builder: GalleryBuilder, budget: String, to directory: String) throws -> [String] {
        var written: [String] = []
        let modelSlugs = GallerySite.uniqueSlugs(builder.spec.models.map(\.name))
        for model in builder.spec.models {
            let slug = modelSlugs[model.name]!
            let detail = model.budget(budget, in: builder.spec).map { "\($0.size) px, \($0.dipIterations) DIP and \($0.tvIterations) TV iterations" } ?? ""
            for (kind, name, intro) in [
                (true, "feature-inversion",
                 "Natural pre-images (Ulyanov, Vedaldi & Lempitsky's Deep Image Prior, against Mahendran & Vedaldi's total-variation inversion): for each layer, an image whose features match the photo's. Budget `\(budget)` (\(detail)). LPIPS (v0.1) uses the \(LPIPS.independent(ofModel: model.path).title) backbone, not the inverted network."),
                (false, "activation-maximization",
                 "Activation maximisation: images that maximise the mean activation of each channel, under the Deep Image Prior and under the total-variation prior. Budget `\(budget)` (\(detail))."),
            ] {
                let folders = builder.experiments.filter { $0.modelName == model.name && $0.isInversion == kind && builder.isDone($0) }
                    .map { builder.resultDirectory($0) }
                guard !folders.isEmpty else { continue }
                let path = (directory as NSString).appendingPathComponent("\(slug)-\(name).ipynb")
                try write(results: folders, title: "\(model.name): \(name.replacingOccurrences(of: "-", with: " "))", introduction: intro, to: path)
                written.append(path)
            }
        }
        return written
    }

    /// Builds and writes the notebook; returns its cell count.
    @discardableResult
    public static func write(results folders: [String], title: String, introduction: String, to path: String) throws -> Int {
        let results = try folders.flatMap(load)
        var cells: [Cell] = []
        var counter = 0
        func id() -> String { counter += 1; return String(format: "cell-%04d", counter) }
        cells.append(Cell(cell_type: "markdown", id: id(), source: lines("# \(title)\n\n\(introduction)")))
        let table = results.map(values)
        let keys = metricKeys.filter { k in table.contains { $0[k] != nil } }
        var summary = "| result | " + keys.joined(separator: " | ") + " |\n|---|" + keys.map { _ in "---:" }.joined(separator: "|") + "|\n"
        for (r, v) in zip(results, table) { summary += "| \(markdownCell(r.title)) | " + keys.map { v[$0] ?? "–" }.joined(separator: " | ") + " |\n" }
        cells.append(Cell(cell_type: "markdown", id: id(), source: lines("## Summary\n\n" + summary)))
        var printed = Set<String>()
        for (n, (r, v)) in zip(results, table).enumerated() {
            cells.append(Cell(cell_type: "markdown", id: id(), source: lines("## \(r.title)\n\nConfiguration:\n\n```json\n\(r.configuration)\n```")))
            var outputs = r.images.map { Output(data: ["image/png": $0.1, "text/plain": "<\($0.0) image>"]) }
            let rows = keys.filter { v[$0] != nil }.map { "| \($0) | \(v[$0]!) |" }.joined(separator: "\n")
            outputs.append(Output(data: ["text/markdown": "| metric | value |\n|---|---:|\n" + rows, "text/plain": rows]))
            // Several images of one run share its command: show it once.
            let source = printed.insert(r.folder).inserted ? "!" + r.command : "# the same run as above (\(r.metrics.name))"
            cells.append(Cell(cell_type: "code", id: id(), source: lines(source), execution_count: n + 1, outputs: outputs))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(Notebook(cells: cells))
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        return cells.count
    }
}
