import Testing
import Foundation
import DipvizTensor

struct FixtureArray: Decodable {
    let shape: [Int]
    let data: [Float]
    func tensor(requiresGrad: Bool = false) -> Tensor { Tensor(shape: shape, scalars: data, requiresGrad: requiresGrad) }
}

/// A JSON value for op parameters (numbers, strings, booleans, arrays of numbers).
enum Param: Decodable {
    case number(Double), string(String), bool(Bool), numbers([Double])
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else { self = .numbers(try c.decode([Double].self)) }
    }
}

struct OpCase: Decodable, CustomTestStringConvertible {
    let name: String
    let op: String
    let params: [String: Param]
    let inputs: [String: FixtureArray]
    let output: FixtureArray
    var testDescription: String { name }

    func int(_ k: String) -> Int { if case .number(let d) = params[k]! { return Int(d) }; fatalError("param \(k)") }
    func float(_ k: String) -> Float { if case .number(let d) = params[k]! { return Float(d) }; fatalError("param \(k)") }
    func bool(_ k: String) -> Bool { if case .bool(let b) = params[k]! { return b }; fatalError("param \(k)") }
    func string(_ k: String) -> String { if case .string(let s) = params[k]! { return s }; fatalError("param \(k)") }
    func ints(_ k: String) -> [Int] { if case .numbers(let a) = params[k]! { return a.map { Int($0) } }; fatalError("param \(k)") }
    func floats(_ k: String) -> [Float] { if case .numbers(let a) = params[k]! { return a.map { Float($0) } }; fatalError("param \(k)") }
}

enum Fixtures {
    static func url(_ name: String) -> URL {
        Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures")!
    }

    static let opCases: [OpCase] = {
        struct File: Decodable { let cases: [OpCase] }
        return try! JSONDecoder().decode(File.self, from: Data(contentsOf: url("ops"))).cases
    }()
}

