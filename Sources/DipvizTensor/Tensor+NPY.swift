import Foundation

public enum NPYError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case invalid(path: String, reason: String)
    case unwritable(path: String, reason: String)
    case tooLarge(AllocationError)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): return "cannot read \(path): \(reason)"
        case let .invalid(path, reason): return "\(path) is not a supported .npy file: \(reason)"
        case let .unwritable(path, reason): return "cannot write \(path): \(reason)"
        case let .tooLarge(e): return e.description
        }
    }
}

/// NumPy's .npy format: little-endian float32/float64/int64/int32 arrays in C order are read
/// (as float32); float32 is written.
extension Tensor {
    public static func readNPY(path: String) throws -> Tensor {
        // A FIFO would block and a device may never end: only regular files are read.
        if let why = FileErrors.notRegular(path) { throw NPYError.unreadable(path: path, reason: why) }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw NPYError.unreadable(path: path, reason: FileErrors.describe(error))
        }
        return try decodeNPY(data, name: path)
    }

    public static func decodeNPY(_ data: Data, name: String = "<memory>") throws -> Tensor {
        let bytes = [UInt8](data)
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1...5]) == Array("NUMPY".utf8) else {
            throw NPYError.invalid(path: name, reason: "missing the NUMPY magic string")
        }
        let major = bytes[6]
        guard (1...3).contains(major) else {
            throw NPYError.invalid(path: name, reason: "format version \(major) (supported: 1, 2, 3)")
        }
        let headerLength: Int, start: Int
        if major == 1 {
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8; start = 10
        } else {
            guard bytes.count >= 12 else { throw NPYError.invalid(path: name, reason: "truncated header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24; start = 12
        }
        guard start + headerLength <= bytes.count else { throw NPYError.invalid(path: name, reason: "truncated header") }
        let header = String(decoding: bytes[start..<(start + headerLength)], as: UTF8.self)
        func field(_ key: String) -> String? {
            guard let r = header.range(of: "'\(key)':") else { return nil }
            return String(header[r.upperBound...]).trimmingCharacters(in: .whitespaces)
        }
        guard let descr = field("descr").flatMap({ $0.split(separator: "'").first.map(String.init) }) else {
            throw NPYError.invalid(path: name, reason: "no dtype in header")
        }
        if let order = field("fortran_order"), order.hasPrefix("True") {
            throw NPYError.invalid(path: name, reason: "Fortran-ordered arrays are not supported; save with C order")
        }
        guard let shapeText = field("shape"), let open = shapeText.firstIndex(of: "("),
              let close = shapeText[open...].firstIndex(of: ")") else {
            throw NPYError.invalid(path: name, reason: "no shape in header")
        }
        let dims = try shapeText[shapeText.index(after: open)..<close].split(separator: ",").map { part -> Int in
            guard let d = Int(part.trimmingCharacters(in: .whitespaces)), d >= 0 else {
                throw NPYError.invalid(path: name, reason: "bad shape \(shapeText)")
            }
            return d
        }
        let width: Int
        switch descr {
        case "<f4", "<i4": width = 4
        case "<f8", "<i8": width = 8
        default: throw NPYError.invalid(path: name, reason: "dtype \(descr) (supported: <f4, <f8, <i4, <i8)")
        }
        // The header's shape is checked against the file before anything is allocated.
        let body = start + headerLength
        guard let count = MemoryLimit.elements(dims), case let (needed, false) = count.multipliedReportingOverflow(by: width) else {
            throw NPYError.invalid(path: name, reason: "shape \(dims) has more elements than a 64-bit size can count")
        }
        guard bytes.count - body >= needed else {
            throw NPYError.invalid(path: name, reason: "\(bytes.count - body) data bytes for \(dims) of \(descr), which needs \(needed) (truncated?)")
        }
        do { try MemoryLimit.check(shape: dims, what: "\(name) (\(dims))") } catch let e as AllocationError { throw NPYError.tooLarge(e) }
        let t = Tensor(zeros: dims)
        bytes.withUnsafeBytes { raw in
            let p = UnsafeRawBufferPointer(rebasing: raw[body...])
            for i in 0..<count {
                switch descr {
                case "<f4": t.data[i] = p.loadUnaligned(fromByteOffset: i * 4, as: Float.self)
                case "<f8": t.data[i] = Float(p.loadUnaligned(fromByteOffset: i * 8, as: Double.self))
                case "<i4": t.data[i] = Float(p.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))
                default: t.data[i] = Float(p.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))
                }
            }
        }
        return t
    }

    public func encodeNPY() -> Data {
        let shapeText = shape.isEmpty ? "()" : shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeText), }"
        // Pad so the data starts on a 64-byte boundary; the header ends with a newline.
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let length = UInt16(header.utf8.count)
        data.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
        data.append(contentsOf: Array(header.utf8))
        data.append(UnsafeBufferPointer(start: self.data, count: count))
        return data
    }

    public func writeNPY(path: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw NPYError.unwritable(path: path, reason: "it is a directory; give a file name such as out.npy")
        }
        do { try encodeNPY().write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw NPYError.unwritable(path: path, reason: FileErrors.describe(error))
        }
    }
}
