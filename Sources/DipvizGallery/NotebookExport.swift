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

    /// One result folder as written by `invert`, `maximize` or a gallery.
    struct Result {
        var folder: String
        var title: String
        var command: String
        var metrics: [String: Any]
        var configuration: String
        var images: [(String, String)]  // (caption, base64 PNG)
    }

    static func load(_ folder: String) throws -> Result {
        let fm = FileManager.default
        guard let metricsData = fm.contents(atPath: folder + "/metrics.json"),
              let metrics = try? JSONSerialization.jsonObject(with: metricsData) as? [String: Any] else {
            throw GalleryError.experiment("\(folder) has no metrics.json (not a result folder)")
        }
        var title = (folder as NSString).lastPathComponent, command = ""
        if let data = fm.contents(atPath: folder + "/experiment.json"), let e = try? JSONDecoder().decode(Experiment.self, from: data) {
            title = e.title
            command = GalleryBuilder.command(e)
        } else if let data = fm.contents(atPath: folder + "/run.json"),
                  let run = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            title = "\(run["command"] as? String ?? "run") of \((run["model"] as? String).map { ($0 as NSString).lastPathComponent } ?? "")"
            command = "dipviz \(run["command"] as? String ?? "") ... --out \(folder)"
        }
        let configuration = (metrics["configuration"]).flatMap { try? JSONSerialization.data(withJSONObject: $0, options: [.prettyPrinted, .sortedKeys]) }
            .map { String(decoding: $0, as: UTF8.self) } ?? ""
        var images: [(String, String)] = []
        for (file, caption) in [("original.png", "original"), ("image.png", "result")] {
            if let png = fm.contents(atPath: folder + "/" + file) { images.append((caption, png.base64EncodedString())) }
        }
        return Result(folder: folder, title: title, command: command, metrics: metrics, configuration: configuration, images: images)
    }

    static let metricKeys = ["feature_error", "feature_error_start", "psnr", "ssim", "top1_match", "activation", "activation_start",
                             "activation_x0", "probability", "iterations", "seconds", "seed"]

    static func cell(_ value: Any?) -> String {
        switch value {
        case let d as Double: return d == d.rounded() && abs(d) < 1e9 ? String(Int(d)) : String(format: "%.4g", d)
        case let i as Int: return String(i)
        case let b as Bool: return b ? "yes" : "no"
        case let s as String: return s
        default: return "–"
        }
    }

    /// One notebook per model and kind of experiment of a gallery (finished results only);
    /// returns the paths written.
    public static func writeGallery(_ builder: GalleryBuilder, budget: String, to directory: String) throws -> [String] {
        var written: [String] = []
        let detail = builder.spec.budgets[budget].map { "\($0.size) px, \($0.dipIterations) DIP and \($0.tvIterations) TV iterations" } ?? ""
        for model in builder.spec.models {
            let slug = GallerySite.slug(model.name)
            for (kind, name, intro) in [
                (Experiment.Kind.invert, "feature-inversion",
                 "Natural pre-images (Ulyanov, Vedaldi & Lempitsky's Deep Image Prior, against Mahendran & Vedaldi's total-variation inversion): for each layer, an image whose features match the photo's. Budget `\(budget)` (\(detail))."),
                (.maximize, "activation-maximization",
                 "Activation maximisation: images that maximise the mean activation of each channel, under the Deep Image Prior and under the total-variation prior. Budget `\(budget)` (\(detail))."),
            ] {
                let folders = builder.experiments.filter { $0.modelName == model.name && $0.kind == kind && builder.isDone($0) }
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
        let results = try folders.map(load)
        var cells: [Cell] = []
        var counter = 0
        func id() -> String { counter += 1; return String(format: "cell-%04d", counter) }
        cells.append(Cell(cell_type: "markdown", id: id(), source: lines("# \(title)\n\n\(introduction)")))
        let keys = metricKeys.filter { k in results.contains { $0.metrics[k] != nil } }
        var table = "| result | " + keys.joined(separator: " | ") + " |\n|---|" + keys.map { _ in "---:" }.joined(separator: "|") + "|\n"
        for r in results { table += "| \(r.title) | " + keys.map { cell(r.metrics[$0]) }.joined(separator: " | ") + " |\n" }
        cells.append(Cell(cell_type: "markdown", id: id(), source: lines("## Summary\n\n" + table)))
        for (n, r) in results.enumerated() {
            cells.append(Cell(cell_type: "markdown", id: id(), source: lines("## \(r.title)\n\nConfiguration:\n\n```json\n\(r.configuration)\n```")))
            var outputs = r.images.map { Output(data: ["image/png": $0.1, "text/plain": "<\($0.0) image>"]) }
            let rows = keys.filter { r.metrics[$0] != nil }.map { "| \($0) | \(cell(r.metrics[$0])) |" }.joined(separator: "\n")
            outputs.append(Output(data: ["text/markdown": "| metric | value |\n|---|---:|\n" + rows, "text/plain": rows]))
            cells.append(Cell(cell_type: "code", id: id(), source: lines("!" + r.command), execution_count: n + 1, outputs: outputs))
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
