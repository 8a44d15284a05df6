import DipvizTensor
import Foundation

/// An ONNX model as dipviz reads it: the graph, its weights, operator sets and metadata.
public struct ONNXModel {
    public var irVersion: Int
    /// Operator set version by domain ("" is the default ai.onnx domain).
    public var opsets: [String: Int]
    public var producer: String
    public var metadata: [String: String]
    public var graph: ONNXGraph
    /// Where the model was read from (for error messages and external data).
    public var source: String

    public var defaultOpset: Int { opsets[""] ?? opsets["ai.onnx"] ?? 1 }

    public init(irVersion: Int = 8, opsets: [String: Int] = ["": 13], producer: String = "dipviz", metadata: [String: String] = [:],
                graph: ONNXGraph, source: String = "<memory>") {
        self.irVersion = irVersion; self.opsets = opsets; self.producer = producer; self.metadata = metadata
        self.graph = graph; self.source = source
    }
}

public struct ONNXValueInfo: Equatable, Sendable {
    public var name: String
    public var elementType: Int
    /// Dimensions; nil where symbolic or unknown.
    public var shape: [Int?]?

    public init(name: String, elementType: Int = 1, shape: [Int?]?) {
        self.name = name; self.elementType = elementType; self.shape = shape
    }
}

public struct ONNXGraph {
    public var name: String
    public var nodes: [ONNXNode]
    /// Weights and constants by name, already in engine form.
    public var initializers: [String: ONNXValue]
    /// ONNX element type of each initializer (8-bit integers are widened to float in `initializers`).
    public var initializerTypes: [String: Int]
    public var inputs: [ONNXValueInfo]
    public var outputs: [ONNXValueInfo]
    public var valueInfo: [ONNXValueInfo]

    public init(name: String, nodes: [ONNXNode], initializers: [String: ONNXValue] = [:], initializerTypes: [String: Int] = [:],
                inputs: [ONNXValueInfo], outputs: [ONNXValueInfo], valueInfo: [ONNXValueInfo] = []) {
        self.name = name; self.nodes = nodes; self.initializers = initializers; self.initializerTypes = initializerTypes
        self.inputs = inputs; self.outputs = outputs; self.valueInfo = valueInfo
    }

    /// Graph inputs that are not initializers: what the caller feeds.
    public var dataInputs: [ONNXValueInfo] { inputs.filter { initializers[$0.name] == nil } }
}

public struct ONNXNode {
    public var name: String
    public var opType: String
    public var domain: String
    public var inputs: [String]
    public var outputs: [String]
    public var attributes: [String: ONNXAttribute]

    public init(name: String = "", opType: String, domain: String = "", inputs: [String], outputs: [String],
                attributes: [String: ONNXAttribute] = [:]) {
        self.name = name; self.opType = opType; self.domain = domain; self.inputs = inputs; self.outputs = outputs
        self.attributes = attributes
    }
}

public enum ONNXAttribute {
    case float(Float)
    case int(Int)
    case string(String)
    case tensor(ONNXValue)
    case floats([Float])
    case ints([Int])
    case strings([String])
    case unsupported(type: Int)
}

/// A runtime value: float data lives in engine tensors (float16/double/8- and 16-bit integers
/// are widened to float32); 32/64-bit integers, used for shapes and indices, stay integers.
public enum ONNXValue {
    case float(Tensor)
    case ints([Int], shape: [Int])

    public var shape: [Int] {
        switch self {
        case .float(let t): return t.shape
        case .ints(_, let s): return s
        }
    }
}

/// Everything that can go wrong while reading or running a model, worded for the user.
public enum ONNXError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case notONNX(path: String, reason: String)
    case malformed(String)
    case unsupportedOperator(op: String, node: String, domain: String, opset: Int)
    case unsupportedAttribute(op: String, node: String, detail: String)
    case unsupportedDataType(tensor: String, type: Int)
    case missingInput(node: String, input: String)
    case shapeMismatch(op: String, node: String, detail: String)
    case unknownTensor(name: String, valid: [String])
    case inputMismatch(String)
    /// External tensor data that is refused or unreadable (model file, tensor, why).
    case externalData(model: String, tensor: String, detail: String)
    /// A size from the file over the memory limit (or overflowing).
    case tooLarge(AllocationError)
    /// A classify request on a model whose output is not one score per class.
    case notAClassifier(model: String, detail: String)
    /// An error raised while reading or building the model in `file`.
    indirect case inFile(String, ONNXError)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): return "cannot read \(path): \(reason)"
        case let .notONNX(path, reason): return "\(path) is not an ONNX model: \(reason)"
        case let .malformed(s): return "malformed model: \(s)"
        case let .unsupportedOperator(op, node, domain, opset):
            return "unsupported operator \(domain.isEmpty ? "" : domain + ".")\(op) (node '\(node)', opset \(opset))"
        case let .unsupportedAttribute(op, node, detail): return "\(op) node '\(node)': \(detail)"
        case let .unsupportedDataType(tensor, type): return "tensor '\(tensor)' has unsupported data type \(ONNXError.typeName(type))"
        case let .missingInput(node, input): return "node '\(node)' needs '\(input)', which nothing produces"
        case let .shapeMismatch(op, node, detail): return "\(op) node '\(node)': \(detail)"
        case let .unknownTensor(name, valid):
            let shown = valid.prefix(60).joined(separator: ", ")
            return "no layer or tensor named '\(name)'; valid names: \(shown)\(valid.count > 60 ? ", ..." : "")"
        case let .inputMismatch(s): return s
        case let .externalData(model, tensor, detail): return "\(model): external data of tensor '\(tensor)' \(detail)"
        case let .tooLarge(e): return e.description
        case let .notAClassifier(model, detail): return "\(model) is not a classifier: \(detail)"
        case let .inFile(file, e): return "\(file): \(e.description)"
        }
    }

    /// The error without the file it was raised in.
    public var underlying: ONNXError {
        if case let .inFile(_, e) = self { return e.underlying }
        return self
    }

    /// Names the file an error comes from, unless it already does (or there is no file).
    static func located(_ file: String, _ body: () throws -> Void) throws {
        let named = !(file == "<memory>" || file.isEmpty)
        do { try body() } catch let e as ONNXError {
            switch e {
            case .inFile, .unreadable, .notONNX, .externalData, .notAClassifier: throw e
            default: throw named ? ONNXError.inFile(file, e) : e
            }
        } catch let e as AllocationError {
            throw named ? ONNXError.inFile(file, .tooLarge(e)) : ONNXError.tooLarge(e)
        }
    }

    /// `MemoryLimit.check` with the answer as an `ONNXError`.
    @discardableResult
    static func checkMemory(shape: [Int], bytesPerElement: Int = 4, what: String) throws -> Int {
        do { return try MemoryLimit.check(shape: shape, bytesPerElement: bytesPerElement, what: what) } catch let e as AllocationError {
            throw ONNXError.tooLarge(e)
        }
    }

    static func typeName(_ t: Int) -> String {
        let names = [0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
                     8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64",
                     15: "COMPLEX128", 16: "BFLOAT16"]
        return names[t] ?? "type \(t)"
    }
}
