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
}

public struct ONNXValueInfo: Equatable, Sendable {
    public var name: String
    public var elementType: Int
    /// Dimensions; nil where symbolic or unknown.
    public var shape: [Int?]?
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
    case shapeMismatch(node: String, detail: String)
    case unknownTensor(name: String, valid: [String])
    case inputMismatch(String)

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
        case let .shapeMismatch(node, detail): return "node '\(node)': \(detail)"
        case let .unknownTensor(name, valid):
            let shown = valid.prefix(60).joined(separator: ", ")
            return "no layer or tensor named '\(name)'; valid names: \(shown)\(valid.count > 60 ? ", ..." : "")"
        case let .inputMismatch(s): return s
        }
    }

    static func typeName(_ t: Int) -> String {
        let names = [0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
                     8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64",
                     15: "COMPLEX128", 16: "BFLOAT16"]
        return names[t] ?? "type \(t)"
    }
}
