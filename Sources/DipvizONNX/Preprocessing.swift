import DipvizImage
import DipvizTensor
import Foundation

/// How images are fed to a model: channel order, pixel range, mean and standard deviation per
/// input channel, and input size. Read from the model's `dipviz.preprocess` metadata (JSON in
/// these field names), else recognised from the graph.
public struct Preprocessing: Codable, Equatable, Sendable {
    public enum ChannelOrder: String, Codable, Sendable, CaseIterable { case rgb = "RGB", bgr = "BGR" }

    public var channelOrder: ChannelOrder
    /// Pixel values span 0...scale (1 or 255) before mean subtraction.
    public var scale: Float
    /// In the scaled range, in the model's channel order.
    public var mean: [Float]
    public var std: [Float]
    /// [height, width]; nil when the graph fixes it or any size works.
    public var inputSize: [Int]?
    /// Where these settings came from (not stored in metadata).
    public var origin: String = "metadata"

    enum CodingKeys: String, CodingKey {
        case channelOrder = "channel_order", scale, mean, std, inputSize = "input_size"
    }

    public init(channelOrder: ChannelOrder, scale: Float, mean: [Float], std: [Float], inputSize: [Int]? = nil, origin: String) {
        self.channelOrder = channelOrder; self.scale = scale; self.mean = mean; self.std = std
        self.inputSize = inputSize; self.origin = origin
    }

    /// BVLC Caffe models (AlexNet, CaffeNet, GoogLeNet, SqueezeNet of the model zoo): BGR, 0..255,
    /// minus the ImageNet channel means.
    public static let caffe = Preprocessing(channelOrder: .bgr, scale: 255, mean: [104, 117, 123], std: [1, 1, 1], origin: "caffe preset")
    /// torchvision and most later exports: RGB in 0..1, ImageNet mean and standard deviation.
    public static let torchvision = Preprocessing(channelOrder: .rgb, scale: 1, mean: [0.485, 0.456, 0.406],
                                                  std: [0.229, 0.224, 0.225], origin: "torchvision preset")

    public static let metadataKey = "dipviz.preprocess"

    /// The model's own metadata when present, else a preset recognised from the graph.
    public static func forModel(_ model: ONNXModel) throws -> Preprocessing {
        if let json = model.metadata[metadataKey] {
            do {
                var p = try JSONDecoder().decode(Preprocessing.self, from: Data(json.utf8))
                p.origin = "metadata"
                try p.validate()
                return p
            } catch let e as ONNXError {
                throw model.source == "<memory>" ? e : ONNXError.inFile(model.source, e)
            } catch {
                let e = ONNXError.malformed("metadata \(metadataKey) \(Preprocessing.explain(error)); valid: \(validJSON)")
                throw model.source == "<memory>" ? e : ONNXError.inFile(model.source, e)
            }
        }
        let producer = model.producer.lowercased()
        let inputName = model.graph.dataInputs.first?.name ?? ""
        if producer.contains("pytorch") { return torchvision }
        let caffeLike = producer.contains("caffe") || ["data", "data_0"].contains(inputName)
            || model.graph.nodes.contains { $0.opType == "LRN" }
        return caffeLike ? caffe : torchvision
    }

    public func validate() throws {
        guard mean.count == 3, std.count == 3, std.allSatisfy({ $0 > 0 && $0.isFinite }), mean.allSatisfy(\.isFinite),
              scale > 0, scale.isFinite else {
            throw ONNXError.inputMismatch("preprocessing (\(Preprocessing.metadataKey) or options) needs 3 finite means, 3 positive finite standard deviations and a positive scale; "
                + "got mean \(mean), std \(std), scale \(scale)")
        }
        if let s = inputSize {
            guard s.count == 2, !s.contains(where: { $0 <= 0 }) else {
                throw ONNXError.inputMismatch("preprocessing input_size must be [height, width] of positive numbers, got \(s)")
            }
            // Images are resized to this size: it must fit in memory as a 3-channel float tensor.
            try ONNXError.checkMemory(shape: [1, 3, s[0], s[1]], what: "input_size \(s[0])x\(s[1])")
        }
    }

    static let validJSON = #"{"channel_order": "RGB" or "BGR", "scale": 1 or 255, "mean": [3 numbers], "std": [3 numbers], "input_size": [height, width] (optional)}"#

    /// A JSON decoding failure in a few words (never the raw DecodingError dump).
    static func explain(_ error: Error) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            return keys.isEmpty ? "the value" : "'" + keys.joined(separator: ".").replacingOccurrences(of: ".[", with: "[") + "'"
        }
        switch error {
        case DecodingError.keyNotFound(let key, _): return "lacks '\(key.stringValue)'"
        case DecodingError.typeMismatch(let type, let context): return "has the wrong type for \(path(context)) (expected \(name(type)))"
        case DecodingError.valueNotFound(let type, let context): return "has null for \(path(context)) (expected \(name(type)))"
        case DecodingError.dataCorrupted(let context):
            if context.codingPath.isEmpty { return "is not valid JSON" }
            return "has an invalid value for \(path(context))"
        default: return "is not valid preprocessing JSON"
        }
    }

    private static func name(_ type: Any.Type) -> String {
        switch type {
        case is Float.Type, is Double.Type: return "a number"
        case is Int.Type: return "a whole number"
        case is String.Type: return "a string"
        case is [Float].Type, is [Int].Type: return "a list of numbers"
        default: return "\(type)".lowercased()
        }
    }

    /// An RGB image tensor [N, 3, H, W] in 0...1 to model input.
    public func apply(_ rgb: Tensor) -> Tensor {
        let ordered = channelOrder == .rgb ? rgb
            : Tensor.concat([rgb.slice(axis: 1, start: 2, end: 3), rgb.slice(axis: 1, start: 1, end: 2),
                             rgb.slice(axis: 1, start: 0, end: 1)], axis: 1)
        let m = Tensor(shape: [1, 3, 1, 1], scalars: mean), s = Tensor(shape: [1, 3, 1, 1], scalars: std.map { 1 / $0 })
        return (ordered.scaled(by: scale) - m) * s
    }

    /// Model input back to an RGB tensor in 0...1 (not clamped).
    public func invert(_ input: Tensor) -> Tensor {
        let m = Tensor(shape: [1, 3, 1, 1], scalars: mean), s = Tensor(shape: [1, 3, 1, 1], scalars: std)
        let scaled = (input * s + m).scaled(by: 1 / scale)
        return channelOrder == .rgb ? scaled
            : Tensor.concat([scaled.slice(axis: 1, start: 2, end: 3), scaled.slice(axis: 1, start: 1, end: 2),
                             scaled.slice(axis: 1, start: 0, end: 1)], axis: 1)
    }
}

extension ONNXNetwork {
    /// Spatial input size: fixed by the graph, else the preprocessing's, else 224.
    public func inputSize(preprocessing: Preprocessing) -> (height: Int, width: Int) {
        if let shape = imageInput?.shape, shape.count == 4, let h = shape[2], let w = shape[3], h > 0, w > 0 { return (h, w) }
        if let s = preprocessing.inputSize { return (s[0], s[1]) }
        return (224, 224)
    }

    /// An image resized to the input size and preprocessed: the tensor to feed.
    public func prepare(_ image: RGBImage, preprocessing: Preprocessing, filter: ResizeFilter = .bicubic) -> Tensor {
        let (h, w) = inputSize(preprocessing: preprocessing)
        return preprocessing.apply(image.resized(width: w, height: h, filter: filter).tensor())
    }
}
