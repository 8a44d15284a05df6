import DipvizImage
import DipvizONNX
import DipvizTensor
import DipvizVisualize
import Foundation

/// What a unit responds to without a dataset: its activation map on each sample photo of the
/// gallery, beside the photo. One forward pass per photo and (model, layer) gives every unit's
/// map. Each unit's maps share one colour scale, from its lowest to its highest value over the
/// photos, so the maps of one unit compare with each other (not across units).
struct ActivationMaps {
    struct Photo {
        /// The photo's file name without extension (its caption).
        var name: String
        /// Site-relative path of the photo at the working size.
        var src: String
    }

    struct Map {
        var photo: Photo
        /// Site-relative path of the heatmap PNG.
        var src: String
        var maximum: Float
    }

    var layer: String
    var photos: [Photo]
    /// Per unit, its map on each photo (in photo order).
    var maps: [Int: [Map]]
    /// Per unit, the value range its colours span.
    var ranges: [Int: (Float, Float)]

    static let note = "Activation map of the unit on each sample photo at \(minimumSize) px or the model's input size (nearest-neighbour upscaled; dark: the unit's lowest value over these photos, bright: its highest; colours are scaled per unit)."
    /// The smallest size the photos are read at.
    static let minimumSize = 224

    /// Heatmap colours (a perceptually ordered dark-to-bright ramp, like matplotlib's inferno).
    static let ramp: [(Float, Float, Float)] = [(0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164)]

    static func colour(_ v: Float) -> (UInt8, UInt8, UInt8) {
        let x = Swift.min(Swift.max(v.isFinite ? v : 0, 0), 1) * Float(ramp.count - 1)
        let i = Swift.min(Int(x), ramp.count - 2), f = x - Float(i)
        let a = ramp[i], b = ramp[i + 1]
        func mix(_ p: Float, _ q: Float) -> UInt8 { UInt8((p + (q - p) * f).rounded()) }
        return (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    }

    /// A map [h, w] as a heatmap of (value - lo) / (hi - lo), each value a block of at least
    /// `side` / max(h, w) pixels.
    static func heatmap(_ values: [Float], height h: Int, width w: Int, lo: Float, hi: Float, side: Int = 96) -> RGBImage {
        let k = Swift.max(1, Int((Double(side) / Double(Swift.max(h, w))).rounded(.up)))
        var pixels = [UInt8](repeating: 0, count: h * k * w * k * 3)
        for y in 0..<(h * k) {
            for x in 0..<(w * k) {
                let v = values[(y / k) * w + x / k]
                let (r, g, b) = colour(hi > lo ? (v - lo) / (hi - lo) : 0)
                let o = (y * w * k + x) * 3
                pixels[o] = r; pixels[o + 1] = g; pixels[o + 2] = b
            }
        }
        return RGBImage(width: w * k, height: h * k, pixels: pixels)
    }
}

extension GallerySite {
    /// The sample photos of a model: its inversion photos, else every photo the gallery inverts.
    func samplePhotos(_ model: GallerySpec.Model) -> [String] {
        let own = GallerySite.unique(builder.experiments.filter { $0.modelName == model.name }.compactMap(\.image))
        return own.isEmpty ? GallerySite.unique(builder.experiments.compactMap(\.image)) : own
    }

    /// The activation maps of `units` at `layer` on the sample photos of `model`, written into
    /// the site under activations/; nil when there are no photos or the layer cannot be read.
    func activationMaps(model: GallerySpec.Model, slug: String, layer: String, units: [Int]) -> ActivationMaps? {
        let mine = builder.experiments.filter { $0.modelName == model.name && !$0.isInversion }
        guard let first = mine.first(where: { $0.unit != nil }) else { return nil }
        let photos = samplePhotos(model)
        guard !photos.isEmpty, let net = try? builder.network(first.modelPath),
              let preprocessing = try? first.spec.model.preprocessing ?? Preprocessing.forModel(net.model) else { return nil }
        let probe = Probe(network: net, preprocessing: preprocessing)
        // The photos at the classifier's usual input size at least (224, or a fixed input's
        // own): a quick budget's 64 or 128 px leaves deep layers a map of a few pixels.
        let size = Swift.max(first.spec.size, ActivationMaps.minimumSize)
        let folder = "activations/\(slug)/\(GallerySite.slug(layer))"
        let photoSlugs = GallerySite.uniqueSlugs(photos) { (($0 as NSString).lastPathComponent as NSString).deletingPathExtension }
        var shown: [ActivationMaps.Photo] = []
        var features: [Tensor] = []
        for path in photos {
            // One forward pass per photo serves every unit of the layer.
            guard let picture = try? PNG.read(path: path).centreCropped(aspect: 1).resized(width: size, height: size),
                  let f = try? GradMode.withoutGrad({ try probe.features(picture.tensor(), layers: [layer]) }).first,
                  f.shape.count == 4, f.shape[0] == 1 else { continue }
            let photo = ActivationMaps.Photo(name: ((path as NSString).lastPathComponent as NSString).deletingPathExtension,
                                             src: "activations/\(slug)/photo-\(photoSlugs[path]!).png")
            guard (try? writeIfChanged(PNG.encode(picture), photo.src)) != nil else { continue }
            shown.append(photo)
            features.append(f)
        }
        guard let shape = features.first?.shape else { return nil }
        let (channels, h, w) = (shape[1], shape[2], shape[3])
        var result = ActivationMaps(layer: layer, photos: shown, maps: [:], ranges: [:])
        for unit in units where unit >= 0 && unit < channels {
            let values = features.map { f in (0..<(h * w)).map { f.data[unit * h * w + $0] } }
            let lo = values.flatMap { $0 }.min() ?? 0, hi = values.flatMap { $0 }.max() ?? 0
            result.ranges[unit] = (lo, hi)
            var maps: [ActivationMaps.Map] = []
            for (photo, v) in zip(shown, values) {
                let src = "\(folder)/unit-\(unit)-\(photo.src.dropFirst("activations/\(slug)/photo-".count))"
                guard (try? writeIfChanged(PNG.encode(ActivationMaps.heatmap(v, height: h, width: w, lo: lo, hi: hi)), src)) != nil else { continue }
                maps.append(ActivationMaps.Map(photo: photo, src: src, maximum: v.max() ?? 0))
            }
            result.maps[unit] = maps
        }
        return result
    }

    /// Writes `data` to the site-relative `relative` atomically, unless the file already holds it.
    func writeIfChanged(_ data: Data, _ relative: String) throws {
        let path = (builder.output as NSString).appendingPathComponent(relative)
        if let old = FileManager.default.contents(atPath: path), old == data { return }
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try AtomicFile.write(data, to: path)
    }

    /// The strip of `unit` for a page at `root` (the path back to the site's top).
    static func strip(_ maps: ActivationMaps?, unit: Int?, root: String) -> [[String: Any]] {
        guard let maps, let unit, let list = maps.maps[unit] else { return [] }
        return list.map { m in
            ["photo": root + m.photo.src, "map": root + m.src, "name": m.photo.name, "unit": "\(maps.layer) unit \(unit)",
             "max": GallerySite.format(Double(m.maximum), "%.3g")]
        }
    }

    /// The caption of a unit's strip: the scale its colours span.
    static func stripNote(_ maps: ActivationMaps?, unit: Int?) -> String {
        guard let maps, let unit, let (lo, hi) = maps.ranges[unit] else { return "" }
        return ActivationMaps.note + " Scale of \(maps.layer) unit \(unit): \(GallerySite.format(Double(lo), "%.3g")) to \(GallerySite.format(Double(hi), "%.3g"))."
    }
}
