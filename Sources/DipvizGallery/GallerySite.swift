import DipvizONNX
import DipvizVisualize
import Foundation
import Mustache

/// Writes the static site for a gallery from the results on disk: an index, a page per model,
/// an inversion page per image, a maximisation page per model, and a page per result. Every
/// link is relative and nothing is loaded from the network, so it works from file://.
public struct GallerySite {
    let builder: GalleryBuilder
    let budget: String
    let library: MustacheLibrary
    let css: String

    public init(builder: GalleryBuilder, budget: String) throws {
        self.builder = builder
        self.budget = budget
        var library = MustacheLibrary()
        for name in ["layout", "index", "model", "inversion", "maximization", "classes", "result"] {
            guard let url = Bundle.module.url(forResource: name, withExtension: "mustache", subdirectory: "Templates"),
                  let text = try? String(contentsOf: url, encoding: .utf8) else {
                throw GalleryError.spec("the \(name) template is missing from the installation")
            }
            try library.register(text, named: name)
        }
        self.library = library
        guard let url = Bundle.module.url(forResource: "style", withExtension: "css", subdirectory: "Templates"),
              let css = try? String(contentsOf: url, encoding: .utf8) else { throw GalleryError.spec("style.css is missing") }
        self.css = css
    }

    var budgetDetail: String {
        guard let b = builder.spec.budgets[budget] else { return "" }
        func describe(_ b: GallerySpec.Budget) -> String {
            let maximize = b.maximizeDipIterations.map { " (\($0) for maximisation)" } ?? ""
            let classes = b.classIterations.map { ", \($0) iterations per class image" } ?? ""
            return "\(b.size)×\(b.size) px, \(b.dipIterations) DIP iterations\(maximize), \(b.tvIterations) TV/pixel/FFT iterations\(classes)"
        }
        let own = builder.spec.models.compactMap { m in m.budgets?[budget].map { "\(m.name): \(describe($0))" } }
        return ([describe(b)] + own).joined(separator: "; ")
    }

    /// The LPIPS pages show: the backbone that is not the inverted network (see `LPIPS.independent`).
    static func lpips(_ m: ResultMetrics, modelPath: String) -> String {
        let backbone = LPIPS.independent(ofModel: modelPath)
        return "LPIPS-\(backbone.title) " + format(backbone == .alex ? m.lpipsAlex : m.lpipsVgg, "%.3f")
    }

    /// Whether a result's feature error was still falling at the end (`Convergence`).
    func stillImproving(_ e: Experiment, _ m: ResultMetrics) -> Bool {
        guard e.isInversion,
              let file = try? ResultJSON.read(CurveFile.self, path: builder.resultDirectory(e) + "/curve.json", what: "curve file"),
              let curve = file.curves[m.name] else { return false }
        return Convergence.stillImproving(curve) ?? false
    }

    static func slug(_ s: String) -> String {
        let allowed = s.lowercased().map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "-" }
        let joined = String(allowed).split(separator: "-").joined(separator: "-")
        return joined.isEmpty ? "x" : String(joined.prefix(60))
    }

    /// Page-name slugs for `names`, unique even when two names differ only in case or
    /// punctuation: colliding ones get a short hash of the exact name.
    static func uniqueSlugs(_ keys: [String], text: (String) -> String = { $0 }) -> [String: String] {
        var groups: [String: [String]] = [:]
        for k in unique(keys) { groups[slug(text(k)), default: []].append(k) }
        var out: [String: String] = [:]
        for (s, members) in groups {
            for k in members {
                out[k] = members.count == 1 ? s : s + "-" + String(ContentHash.hex(ContentHash.of(Data(k.utf8))).prefix(8))
            }
        }
        return out
    }

    func page(_ template: String, title: String, root: String, crumb: [[String: String]] = [], context: [String: Any]) throws -> String {
        guard let body = library.render(context, withTemplate: template) else { throw GalleryError.spec("template \(template) failed") }
        let layout: [String: Any] = ["title": title, "galleryTitle": builder.spec.title, "css": css, "root": root, "crumb": crumb,
                                     "body": body, "budget": budget, "budgetDetail": budgetDetail]
        return library.render(layout, withTemplate: "layout")!
    }

    func write(_ html: String, _ relative: String) throws {
        let path = (builder.output as NSString).appendingPathComponent(relative)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try html.write(toFile: path, atomically: true, encoding: .utf8)
    }

    func metrics(_ e: Experiment) -> ResultMetrics? { builder.metrics(e)?.results.first }

    static func format(_ v: Double?, _ f: String) -> String {
        guard let d = v else { return "–" }
        return String(format: f, d)
    }

    /// Renders every page (and the notebooks); returns the index path.
    @discardableResult
    public func render() throws -> String {
        try builder.tidyPublished()
        var modelEntries: [[String: Any]] = []
        let modelSlugs = GallerySite.uniqueSlugs(builder.spec.models.map(\.name))
        var mapsByModel: [String: ActivationMaps] = [:]
        for model in builder.spec.models {
            let slug = modelSlugs[model.name]!
            let mine = builder.experiments.filter { $0.modelName == model.name }
            var inversions: [[String: Any]] = []
            if let inv = model.inversion {
                let images = GallerySite.unique(mine.compactMap(\.image))
                // Photos of the same file name in different folders get pages (and titles) of their own.
                func base(_ p: String) -> String { ((p as NSString).lastPathComponent as NSString).deletingPathExtension }
                let imageSlugs = GallerySite.uniqueSlugs(images, text: base)
                let baseCounts = Dictionary(grouping: images, by: base).mapValues(\.count)
                for image in images {
                    let name = (baseCounts[base(image)] ?? 0) > 1 ? GallerySite.displayPath(image) : base(image)
                    let href = "inversion-\(slug)-\(imageSlugs[image]!).html"
                    inversions.append(["href": href, "image": name])
                    try renderInversion(model: model, slug: slug, image: image, name: name, layers: inv.layers, priors: inv.priors,
                                        experiments: mine, href: href)
                }
            }
            var maximization: [String: Any]? = nil
            if let mx = model.maximization {
                let href = "maximization-\(slug).html"
                maximization = ["href": href, "layer": mx.layer]
                let units = GallerySite.unique(mine.filter { !$0.isInversion }.compactMap(\.unit))
                let maps = activationMaps(model: model, slug: slug, layer: mx.layer, units: units)
                mapsByModel[model.name] = maps
                try renderMaximization(model: model, slug: slug, layer: mx.layer, priors: mx.priors, experiments: mine, href: href, maps: maps)
            }
            var classes: [String: Any]? = nil
            if let cl = model.classes {
                let href = "classes-\(slug).html"
                classes = ["href": href, "count": cl.names.count]
                try renderClasses(model: model, slug: slug, priors: cl.priors, experiments: mine, href: href)
            }
            var objectives: [String: Any]? = nil
            if let ob = model.objectives {
                let href = "objectives-\(slug).html"
                objectives = ["href": href, "count": ob.expressions.count]
                try renderObjectives(model: model, slug: slug, priors: ob.priors, experiments: mine, href: href)
            }
            let summary = try? builder.summary(modelPath: mine.first?.modelPath ?? model.path, size: model.budget(budget, in: builder.spec)?.size ?? 224)
            let layers: [[String: Any]] = (summary ?? []).filter { !$0.aliases.isEmpty }.map { r in
                ["alias": r.aliases.joined(separator: " "), "op": r.op, "shape": r.shape.map(String.init).joined(separator: "×"),
                 "parameters": GallerySite.compact(r.parameters), "macs": GallerySite.compact(r.macs),
                 "rf": r.receptiveField.map(String.init) ?? "all", "stride": r.stride]
            }
            let modelPage = "model-\(slug).html"
            var context: [String: Any] = ["inversions": inversions, "layers": layers]
            if let maximization { context["maximization"] = maximization }
            if let classes { context["classes"] = classes }
            if let objectives { context["objectives"] = objectives }
            try write(try page("model", title: model.name, root: "", context: context), modelPage)
            var entry: [String: Any] = ["name": model.name, "modelPage": modelPage, "inversions": inversions, "layerCount": layers.count,
                                        "parameters": GallerySite.compact((summary ?? []).reduce(0) { $0 + $1.parameters }),
                                        "macs": GallerySite.compact((summary ?? []).reduce(0) { $0 + $1.macs })]
            if let maximization { entry["maximization"] = maximization }
            if let classes { entry["classes"] = classes }
            if let objectives { entry["objectives"] = objectives }
            modelEntries.append(entry)
        }
        for e in builder.experiments where builder.metrics(e) != nil {
            let maps = mapsByModel[e.modelName].flatMap { $0.layer == e.layer ? $0 : nil }
            try renderResult(e, modelSlug: modelSlugs[e.modelName] ?? GallerySite.slug(e.modelName), maps: maps)
        }
        // The notebooks travel with the site: one per model and kind of experiment.
        let notebookFolder = (builder.output as NSString).appendingPathComponent("notebooks")
        let notebooks = try NotebookExport.writeGallery(builder, budget: budget, to: notebookFolder).map { path -> [String: String] in
            let name = (path as NSString).lastPathComponent
            return ["href": "notebooks/" + name, "name": name]
        }
        var index: [String: Any] = ["models": modelEntries, "budget": budget, "budgetDetail": budgetDetail]
        if !notebooks.isEmpty { index["notebookSection"] = ["items": notebooks] }
        if let d = builder.spec.description { index["description"] = d }
        try write(try page("index", title: builder.spec.title, root: "", context: index), "index.html")
        return (builder.output as NSString).appendingPathComponent("index.html")
    }

    func cell(_ e: Experiment?, size: Int, alt: String, fill: (Experiment, ResultMetrics) -> [String: Any]) -> [String: Any] {
        guard let e, let m = metrics(e) else {
            return ["done": false, "prior": e?.prior.rawValue ?? "", "size": size]
        }
        var c: [String: Any] = ["done": true, "prior": e.prior.rawValue, "size": size, "alt": alt,
                                "src": builder.thumbnail(e, m.imageFile), "page": "results/\(e.key)/index.html"]
        for (k, v) in fill(e, m) { c[k] = v }
        return c
    }

    func renderInversion(model: GallerySpec.Model, slug: String, image: String, name: String, layers: [String], priors: [PriorKind],
                         experiments: [Experiment], href: String) throws {
        let display = Swift.max(160, Swift.min(224, model.budget(budget, in: builder.spec)?.size ?? 224))
        var unconverged: [String] = []
        let rows: [[String: Any]] = layers.map { layer in
            let found = experiments.filter { $0.isInversion && $0.image == image && $0.layer == layer }
            let original = found.first { builder.metrics($0) != nil }.map { builder.thumbnail($0, "original.png") } ?? ""
            let cells = priors.map { prior in
                cell(found.first { $0.prior == prior }, size: display, alt: "\(prior.rawValue) pre-image of \(name) at \(layer)") { e, m in
                    let improving = stillImproving(e, m)
                    if improving { unconverged.append("\(layer) \(prior.rawValue)") }
                    return ["featureError": GallerySite.format(m.featureError, "%.3f"), "psnr": GallerySite.format(m.psnr, "%.1f"),
                            "ssim": GallerySite.format(m.ssim, "%.3f"), "lpips": GallerySite.lpips(m, modelPath: e.modelPath),
                            "iterations": m.iterations, "improving": improving]
                }
            }
            return ["layer": layer, "original": original, "image": name, "size": display, "cells": cells]
        }
        let lpipsBackbone = LPIPS.independent(ofModel: experiments.first?.modelPath ?? model.path).title
        let b = model.budget(budget, in: builder.spec)
        var context: [String: Any] = ["rows": rows, "model": model.name, "lpipsBackbone": lpipsBackbone,
                                      "budgetLine": b.map { "\($0.size)×\($0.size) px, \($0.dipIterations) DIP iterations, \($0.tvIterations) TV iterations" } ?? "",
                                      "window": Int(Convergence.window * 100), "threshold": Int(Convergence.threshold * 100)]
        context["unconverged"] = unconverged.isEmpty ? "none" : unconverged.joined(separator: ", ")
        try write(try page("inversion", title: "\(model.name): pre-images of \(name)", root: "",
                           crumb: [["href": "model-\(slug).html", "label": model.name]],
                           context: context), href)
    }

    func renderMaximization(model: GallerySpec.Model, slug: String, layer: String, priors: [PriorKind], experiments: [Experiment],
                            href: String, maps: ActivationMaps? = nil) throws {
        let units = GallerySite.unique(experiments.filter { !$0.isInversion }.compactMap(\.unit))
        let display = 112
        let entries: [[String: Any]] = units.map { unit in
            let cells = priors.map { prior in
                cell(experiments.first { !$0.isInversion && $0.unit == unit && $0.prior == prior }, size: display,
                     alt: "\(prior.rawValue) image maximising \(layer) unit \(unit)") { _, m in
                    ["activation": "activation " + GallerySite.format(m.activation, "%.3g") + (GallerySite.robustness(m).map { " · " + $0 } ?? "")]
                }
            }
            let strip = GallerySite.strip(maps, unit: unit, root: "")
            return ["heading": "unit \(unit)", "cells": cells, "maps": strip, "hasMaps": !strip.isEmpty]
        }
        var photos: [[String: String]] = []
        if let maps, !maps.maps.isEmpty { photos = maps.photos.map { ["src": $0.src, "name": $0.name] } }
        try write(try page("maximization", title: "\(model.name): units of \(layer)", root: "",
                           crumb: [["href": "model-\(slug).html", "label": model.name]],
                           context: ["units": entries, "model": model.name, "photos": photos, "hasPhotos": !photos.isEmpty,
                                     "mapsNote": ActivationMaps.note,
                                     "note": "Images that maximise the mean activation of each channel of \(layer) in \(model.name), one column per prior; robust: the mean activation over 24 fixed random shifts, scales and rotations (robust_activation)."]), href)
    }

    /// Class names from the labels beside a model (empty when there are none).
    func classNames(_ modelPath: String) -> [String] {
        guard let path = ClassLabels.besideModel(modelPath) else { return [] }
        return (try? ClassLabels.load(path: path)) ?? []
    }

    static func className(_ index: Int, _ names: [String]) -> String {
        index < names.count ? String(names[index].split(separator: ",").first ?? "") : "class \(index)"
    }

    /// The robustness numbers of a maximisation result, for captions.
    static func robustness(_ m: ResultMetrics) -> String? {
        if let p = m.robustProbability { return "robust p " + format(p, "%.2f") }
        return m.robustActivation.map { "robust " + format($0, "%.3g") }
    }

    func renderClasses(model: GallerySpec.Model, slug: String, priors: [PriorKind], experiments: [Experiment], href: String) throws {
        let names = classNames(experiments.first?.modelPath ?? model.path)
        let display = 160
        let rows: [[String: Any]] = GallerySite.unique(experiments.compactMap(\.classIndex)).map { index in
            let name = GallerySite.className(index, names)
            let cells = priors.map { prior in
                cell(experiments.first { $0.classIndex == index && $0.prior == prior }, size: display,
                     alt: "\(prior.rawValue) image maximising the class \(name)") { _, m in
                    ["activation": "p " + GallerySite.format(m.probability, "%.2f") + (GallerySite.robustness(m).map { " · " + $0 } ?? "")]
                }
            }
            return ["heading": "\(name) (\(index))", "cells": cells]
        }
        try write(try page("classes", title: "\(model.name): classes", root: "", crumb: [["href": "model-\(slug).html", "label": model.name]],
                           context: ["units": rows, "model": model.name]), href)
    }

    func renderObjectives(model: GallerySpec.Model, slug: String, priors: [PriorKind], experiments: [Experiment], href: String) throws {
        let rows: [[String: Any]] = GallerySite.unique(experiments.compactMap { $0.expression?.text }).map { text in
            let cells = priors.map { prior in
                cell(experiments.first { $0.expression?.text == text && $0.prior == prior }, size: 160,
                     alt: "\(prior.rawValue) image maximising \(text)") { _, m in
                    ["activation": "value " + GallerySite.format(m.activation, "%.3g") + (GallerySite.robustness(m).map { " · " + $0 } ?? "")]
                }
            }
            return ["heading": text, "cells": cells]
        }
        try write(try page("maximization", title: "\(model.name): objectives", root: "", crumb: [["href": "model-\(slug).html", "label": model.name]],
                           context: ["units": rows, "model": model.name,
                                     "note": "Images that maximise each objective expression in \(model.name), one column per prior."]), href)
    }

    /// What a maximisation optimises, in words: "logit of class 100 (black swan)", "conv5 channel 3".
    func objectiveText(_ e: Experiment) -> String? {
        guard case .maximization(let m) = e.spec.objective, let t = m.targets.first else { return nil }
        var text: String
        switch t {
        case let .classScore(index, score):
            text = "\(score.phrase) of class \(index) (\(GallerySite.className(index, classNames(e.modelPath))))"
        case let .channel(unit, window): text = "\(e.layer) channel \(unit)" + (window < 1 ? " (central \(window) of the map)" : "")
        case let .neuron(unit, y, x): text = "\(e.layer) neuron \(unit) at " + (y.map { "\($0),\(x ?? 0)" } ?? "the centre")
        case let .expression(x): text = x.text
        }
        text += m.transforms.map { ", under random transforms (\($0.argument))" } ?? ", without transforms"
        return text
    }

    func renderResult(_ e: Experiment, modelSlug slug: String, maps: ActivationMaps? = nil) throws {
        let dir = builder.resultDirectory(e)
        guard let m = metrics(e) else { return }
        let snapshots = ((try? FileManager.default.contentsOfDirectory(atPath: dir + "/snapshots")) ?? []).filter { $0.hasSuffix(".png") }.sorted()
            .map { f -> [String: Any] in ["src": "snapshots/\(f)", "iteration": Int(f.filter(\.isNumber)) ?? 0] }
        var plots: [[String: Any]] = []
        let curve = (try? ResultJSON.read(CurveFile.self, path: dir + "/curve.json", what: "curve file"))?.curves[m.name]
        if let curve, curve.count > 1 {
            plots.append(GallerySite.plot("loss", curve.map { (Double($0.iteration), $0.loss) }))
            for key in Set(curve.flatMap { $0.values.keys }).sorted() {
                plots.append(GallerySite.plot(key.replacingOccurrences(of: "_", with: " "), curve.compactMap { p in p.values[key].map { (Double(p.iteration), $0) } }))
            }
        }
        let configuration = String(decoding: (try? ResultJSON.encoder.encode(e.spec)) ?? Data(), as: UTF8.self)
        let summary = e.isInversion
            ? "feature error \(GallerySite.format(m.featureError, "%.3f")) · PSNR \(GallerySite.format(m.psnr, "%.1f")) dB · SSIM \(GallerySite.format(m.ssim, "%.3f")) · \(GallerySite.lpips(m, modelPath: e.modelPath))"
                + (stillImproving(e, m) ? " · not converged (still improving at the end)" : "")
            : "activation \(GallerySite.format(m.activation, "%.4g")) (start \(GallerySite.format(m.activationStart, "%.3g")))"
                + (m.probability.map { " · probability " + GallerySite.format($0, "%.3f") } ?? "")
                + (m.robustProbability.map { " · robust_probability " + GallerySite.format($0, "%.3f") } ?? "")
                + (m.robustActivation.map { " · robust_activation " + GallerySite.format($0, "%.4g") } ?? "")
        // The same objective under the other priors, side by side.
        let others: [[String: Any]] = e.isInversion ? [] : builder.experiments.filter { o in
            guard o.key != e.key, o.modelName == e.modelName, case .maximization(let a) = o.spec.objective,
                  case .maximization(let b) = e.spec.objective else { return false }
            return a.layer == b.layer && a.targets == b.targets
        }.compactMap { o in
            guard let om = metrics(o) else { return nil }
            return ["src": "../\(o.key)/\(om.imageFile)", "page": "../\(o.key)/index.html", "prior": o.prior.rawValue,
                    "robust": GallerySite.robustness(om) ?? ""]
        }
        let strip = GallerySite.strip(maps, unit: e.unit, root: "../../")
        // Several images of one objective (`images`): all of them, the first one large.
        let results = builder.metrics(e)?.results ?? []
        let batch: [[String: Any]] = results.count < 2 ? [] : results.map { r in
            ["src": builder.thumbnail(e, r.imageFile).replacingOccurrences(of: "results/\(e.key)/", with: ""), "name": r.name,
             "activation": GallerySite.format(r.activation, "%.4g"), "robust": GallerySite.robustness(r) ?? ""]
        }
        let diversity = curve?.last?.values["diversity"]
        let context: [String: Any] = [
            "image": m.imageFile, "batch": batch, "hasBatch": !batch.isEmpty,
            "batchNote": "\(batch.count) images of the objective, image k from seed \(e.spec.seed)+k, optimised together"
                + (diversity.map { "; weighted diversity terms at the end: " + GallerySite.format($0, "%.4g") } ?? ""),
            "alt": e.title, "summary": summary, "others": others, "hasOthers": !others.isEmpty, "objective": objectiveText(e) ?? "", "display": 448, "original": e.isInversion, "snapshots": snapshots, "plots": plots,
            "command": builder.command(e), "iterations": m.iterations,
            "strip": strip, "hasStrip": !strip.isEmpty, "stripNote": GallerySite.stripNote(maps, unit: e.unit),
            "seconds": GallerySite.format(m.seconds, "%.1f"), "seed": e.spec.seed, "configuration": configuration,
        ]
        try write(try page("result", title: e.title, root: "../../", crumb: [["href": "model-\(slug).html", "label": e.modelName]],
                           context: context), "results/\(e.key)/index.html")
    }

    /// An inline SVG polyline of a series (log scale when it spans decades of positive values).
    static func plot(_ name: String, _ series: [(Double, Double)]) -> [String: Any] {
        let width = 640.0, height = 180.0, pad = 18.0
        let finite = series.filter { $0.1.isFinite }
        let ys = finite.map(\.1)
        let logScale = (ys.min() ?? 0) > 0 && (ys.max() ?? 1) / Swift.max(ys.min() ?? 1, 1e-300) > 100
        func tr(_ v: Double) -> Double { logScale ? Foundation.log10(v) : v }
        let lo = ys.map(tr).min() ?? 0, hi = ys.map(tr).max() ?? 1
        let x0 = finite.first?.0 ?? 0, x1 = Swift.max(finite.last?.0 ?? 1, x0 + 1)
        let points = finite.map { p -> String in
            let x = pad + (p.0 - x0) / (x1 - x0) * (width - 2 * pad)
            let y = height - pad - (hi > lo ? (tr(p.1) - lo) / (hi - lo) : 0.5) * (height - 2 * pad)
            return String(format: "%.1f,%.1f", x, y)
        }.joined(separator: " ")
        return ["name": name + (logScale ? " (log scale)" : ""), "points": points, "width": Int(width), "height": Int(height),
                "top": String(format: "%.4g", ys.max() ?? 0), "bottom": String(format: "%.4g", ys.min() ?? 0),
                "bottomLabelY": Int(height - 4), "rightLabelX": Int(width - 4), "lastIteration": Int(x1)]
    }

    /// The last two components of a path ("x/cat.png" for "samples/x/cat.png").
    static func displayPath(_ path: String) -> String {
        let parts = path.split(separator: "/")
        return parts.suffix(2).joined(separator: "/")
    }

    /// Elements in first-seen order, without repeats.
    static func unique<T: Hashable>(_ list: [T]) -> [T] {
        var seen = Set<T>()
        return list.filter { seen.insert($0).inserted }
    }

    static func compact(_ n: Int) -> String {
        if n >= 1_000_000_000 { return String(format: "%.2fG", Double(n) / 1e9) }
        if n >= 1_000_000 { return String(format: "%.2fM", Double(n) / 1e6) }
        if n >= 10_000 { return String(format: "%.1fK", Double(n) / 1e3) }
        return n == 0 ? "–" : String(n)
    }
}

extension GalleryBuilder {
    func summary(modelPath: String, size: Int) throws -> [LayerSummary] {
        let net = try network(modelPath)
        let p = try Preprocessing.forModel(net.model)
        let (h, w) = net.inputSize(preprocessing: p)
        let fixed = net.imageInput?.shape.flatMap { $0.count == 4 ? $0[2] : nil } != nil
        if fixed && h != w { return try net.summarize(height: h, width: w) }
        return try layerRows(modelPath: modelPath, size: fixed ? h : size)
    }
}
