import COnnxProto
import CProtobufC
import DipvizTensor
import Foundation

// The only file that touches the generated protobuf-c code: it turns a ModelProto into
// `ONNXModel`, converting weights to engine tensors while the message is alive.

extension ONNXModel {
    /// Reads and decodes a model file; external data files are resolved next to it.
    public static func load(path: String) throws -> ONNXModel {
        let url = URL(fileURLWithPath: path)
        // A FIFO or device given as the model would block or never end: read regular files only.
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw ONNXError.unreadable(path: path, reason: FileErrors.describe(errno: errno))
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw ONNXError.unreadable(path: path, reason: FileErrors.kind(info.st_mode) + ", not a model file")
        }
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw ONNXError.unreadable(path: path, reason: FileErrors.describe(error))
        }
        return try decode(data, source: path, directory: url.deletingLastPathComponent().path)
    }

    public static func decode(_ data: Data, source: String = "<memory>", directory: String? = nil) throws -> ONNXModel {
        guard !data.isEmpty else { throw ONNXError.notONNX(path: source, reason: "the file is empty") }
        let message: UnsafeMutablePointer<Onnx__ModelProto>? = data.withUnsafeBytes { raw in
            onnx__model_proto__unpack(nil, raw.count, raw.bindMemory(to: UInt8.self).baseAddress)
        }
        guard let model = message else {
            throw ONNXError.notONNX(path: source, reason: "not a valid protobuf ModelProto (truncated or another format)")
        }
        defer { onnx__model_proto__free_unpacked(model, nil) }
        guard let graph = model.pointee.graph else {
            throw ONNXError.notONNX(path: source, reason: "the model has no graph")
        }
        var opsets: [String: Int] = [:]
        for i in 0..<model.pointee.n_opset_import {
            let o = model.pointee.opset_import[i]!.pointee
            opsets[string(o.domain)] = Int(o.version)
        }
        var metadata: [String: String] = [:]
        for i in 0..<model.pointee.n_metadata_props {
            let e = model.pointee.metadata_props[i]!.pointee
            metadata[string(e.key)] = string(e.value)
        }
        let reader = TensorReader(directory: directory, source: source)
        var decoded: ONNXGraph? = nil
        try ONNXError.located(source) { decoded = try decodeGraph(graph.pointee, reader: reader) }
        return ONNXModel(irVersion: Int(model.pointee.ir_version), opsets: opsets,
                         producer: string(model.pointee.producer_name), metadata: metadata,
                         graph: decoded!, source: source)
    }

    static func decodeGraph(_ g: Onnx__GraphProto, reader: TensorReader) throws -> ONNXGraph {
        var initializers: [String: ONNXValue] = [:]
        var types: [String: Int] = [:]
        for i in 0..<g.n_initializer {
            let t = g.initializer[i]!.pointee
            initializers[string(t.name)] = try reader.value(t)
            types[string(t.name)] = Int(t.data_type)
        }
        var nodes: [ONNXNode] = []
        nodes.reserveCapacity(g.n_node)
        for i in 0..<g.n_node {
            let n = g.node[i]!.pointee
            var attributes: [String: ONNXAttribute] = [:]
            for j in 0..<n.n_attribute {
                let a = n.attribute[j]!.pointee
                attributes[string(a.name)] = try attribute(a, reader: reader)
            }
            nodes.append(ONNXNode(name: string(n.name), opType: string(n.op_type), domain: string(n.domain),
                                  inputs: strings(n.input, n.n_input), outputs: strings(n.output, n.n_output),
                                  attributes: attributes))
        }
        return ONNXGraph(name: string(g.name), nodes: nodes, initializers: initializers, initializerTypes: types,
                         inputs: valueInfos(g.input, g.n_input), outputs: valueInfos(g.output, g.n_output),
                         valueInfo: valueInfos(g.value_info, g.n_value_info))
    }

    static func attribute(_ a: Onnx__AttributeProto, reader: TensorReader) throws -> ONNXAttribute {
        // Old exporters leave `type` unset; infer it from the field that is present.
        var type = a.has_type != 0 ? Int(a.type.rawValue) : 0
        if type == 0 {
            if a.n_ints > 0 { type = 7 } else if a.n_floats > 0 { type = 6 } else if a.n_strings > 0 { type = 8 }
            else if a.t != nil { type = 4 } else if a.has_s != 0 { type = 3 } else if a.has_f != 0 { type = 1 }
            else if a.has_i != 0 { type = 2 }
        }
        switch type {
        case 1: return .float(a.f)
        case 2: return .int(Int(a.i))
        case 3: return .string(bytesString(a.s))
        case 4:
            guard let t = a.t else { throw ONNXError.malformed("attribute '\(string(a.name))' is a tensor attribute without a tensor") }
            return .tensor(try reader.value(t.pointee))
        case 6: return .floats(Array(UnsafeBufferPointer(start: a.floats, count: a.n_floats)))
        case 7: return .ints(UnsafeBufferPointer(start: a.ints, count: a.n_ints).map { Int($0) })
        case 8: return .strings((0..<a.n_strings).map { bytesString(a.strings[$0]) })
        default: return .unsupported(type: type)
        }
    }

    static func valueInfos(_ p: UnsafeMutablePointer<UnsafeMutablePointer<Onnx__ValueInfoProto>?>?, _ n: Int) -> [ONNXValueInfo] {
        (0..<n).map { i in
            let v = p![i]!.pointee
            var elementType = 0
            var shape: [Int?]? = nil
            if let type = v.type, type.pointee.value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE,
               let tensorType = type.pointee.tensor_type {
                elementType = Int(tensorType.pointee.elem_type)
                if let s = tensorType.pointee.shape {
                    shape = (0..<s.pointee.n_dim).map { d in
                        let dim = s.pointee.dim[d]!.pointee
                        return dim.value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ? Int(dim.dim_value) : nil
                    }
                }
            }
            return ONNXValueInfo(name: string(v.name), elementType: elementType, shape: shape)
        }
    }

    static func string(_ p: UnsafeMutablePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }

    static func strings(_ p: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ n: Int) -> [String] {
        (0..<n).map { string(p![$0]) }
    }

    static func bytesString(_ b: ProtobufCBinaryData) -> String {
        guard b.len > 0, let d = b.data else { return "" }
        return String(decoding: UnsafeBufferPointer(start: d, count: b.len), as: UTF8.self)
    }
}

/// Converts TensorProto contents (typed fields, raw little-endian bytes, or external files).
struct TensorReader {
    let directory: String?
    let source: String

    func value(_ t: Onnx__TensorProto) throws -> ONNXValue {
        let name = ONNXModel.string(t.name)
        let dims = UnsafeBufferPointer(start: t.dims, count: t.n_dims).map { Int($0) }
        guard dims.allSatisfy({ $0 >= 0 }) else {
            throw ONNXError.malformed("tensor '\(name)' has negative dimensions \(dims); dimensions are 0 or more")
        }
        guard ONNXNetwork.dimensionsFit(dims) else {
            throw ONNXError.malformed("tensor '\(name)' has dimensions \(dims) whose product overflows 64 bits")
        }
        let type = Int(t.data_type)
        let width = try TensorReader.width(type, tensor: name)
        // Integer tensors become [Int] (8 bytes an element), everything else float32.
        let engineWidth = [6, 7, 12, 13].contains(type) ? 8 : 4
        try ONNXError.checkMemory(shape: dims, bytesPerElement: Swift.max(width, engineWidth),
                                  what: "tensor '\(name)' of shape \(dims)")
        let count = MemoryLimit.elements(dims)!
        var raw: UnsafeRawBufferPointer? = nil
        var external: Data? = nil
        if t.has_data_location != 0 && t.data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL {
            external = try readExternal(t, name: name, expectedBytes: count * width)
        } else if t.has_raw_data != 0 {
            raw = UnsafeRawBufferPointer(start: t.raw_data.data, count: t.raw_data.len)
        }
        if let external { return try external.withUnsafeBytes { try convert(name: name, type: type, dims: dims, count: count, raw: $0, t) } }
        return try convert(name: name, type: type, dims: dims, count: count, raw: raw, t)
    }

    /// Bytes per element of an ONNX data type as stored in a file.
    static func width(_ type: Int, tensor: String) throws -> Int {
        switch type {
        case 1, 6, 12: return 4
        case 2, 3, 9: return 1
        case 4, 5, 10, 16: return 2
        case 7, 11, 13: return 8
        default: throw ONNXError.unsupportedDataType(tensor: tensor, type: type)
        }
    }

    private func convert(name: String, type: Int, dims: [Int], count: Int, raw: UnsafeRawBufferPointer?,
                         _ t: Onnx__TensorProto) throws -> ONNXValue {
        let width = try TensorReader.width(type, tensor: name)
        if let raw {
            guard raw.count == count * width else {
                throw ONNXError.malformed("tensor '\(name)' holds \(raw.count) bytes, \(dims) of \(ONNXError.typeName(type)) needs \(count * width)")
            }
            return try fromBytes(name: name, type: type, dims: dims, count: count, raw)
        }
        // Typed fields: float_data (FLOAT), int32_data (8/16/32-bit ints, bool, float16 bits),
        // int64_data, double_data, uint64_data.
        func need(_ n: Int, _ field: String) throws {
            guard n == count else { throw ONNXError.malformed("tensor '\(name)' has \(n) values in \(field) for shape \(dims)") }
        }
        switch type {
        case 1:
            try need(t.n_float_data, "float_data")
            return .float(Tensor(shape: dims, scalars: Array(UnsafeBufferPointer(start: t.float_data, count: count))))
        case 11:
            try need(t.n_double_data, "double_data")
            return .float(Tensor(shape: dims, scalars: UnsafeBufferPointer(start: t.double_data, count: count).map { Float($0) }))
        case 7:
            try need(t.n_int64_data, "int64_data")
            return .ints(UnsafeBufferPointer(start: t.int64_data, count: count).map { Int($0) }, shape: dims)
        case 13:
            try need(t.n_uint64_data, "uint64_data")
            return .ints(UnsafeBufferPointer(start: t.uint64_data, count: count).map { Int(truncatingIfNeeded: $0) }, shape: dims)
        case 6, 12:
            try need(t.n_int32_data, "int32_data")
            return .ints(UnsafeBufferPointer(start: t.int32_data, count: count).map { Int($0) }, shape: dims)
        case 10, 16:
            try need(t.n_int32_data, "int32_data")
            let bits = UnsafeBufferPointer(start: t.int32_data, count: count)
            return .float(Tensor(shape: dims, scalars: bits.map { TensorReader.halfToFloat(UInt16(truncatingIfNeeded: $0), bfloat: type == 16) }))
        default:
            try need(t.n_int32_data, "int32_data")
            return .float(Tensor(shape: dims, scalars: UnsafeBufferPointer(start: t.int32_data, count: count).map { Float($0) }))
        }
    }

    private func fromBytes(name: String, type: Int, dims: [Int], count: Int, _ raw: UnsafeRawBufferPointer) throws -> ONNXValue {
        func floats(_ f: (Int) -> Float) -> ONNXValue {
            let t = Tensor(zeros: dims)
            for i in 0..<count { t.data[i] = f(i) }
            return .float(t)
        }
        switch type {
        case 1:
            let t = Tensor(zeros: dims)
            if count > 0 { memcpy(t.data, raw.baseAddress!, count * 4) }
            return .float(t)
        case 11: return floats { Float(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self)) }
        case 10: return floats { TensorReader.halfToFloat(raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self), bfloat: false) }
        case 16: return floats { TensorReader.halfToFloat(raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self), bfloat: true) }
        case 2: return floats { Float(raw[$0]) }
        case 3: return floats { Float(Int8(bitPattern: raw[$0])) }
        case 9: return floats { raw[$0] != 0 ? 1 : 0 }
        case 4: return floats { Float(raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) }
        case 5: return floats { Float(raw.loadUnaligned(fromByteOffset: $0 * 2, as: Int16.self)) }
        case 6: return .ints((0..<count).map { Int(raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }, shape: dims)
        case 12: return .ints((0..<count).map { Int(raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)) }, shape: dims)
        case 7: return .ints((0..<count).map { Int(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }, shape: dims)
        case 13: return .ints((0..<count).map { Int(truncatingIfNeeded: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) }, shape: dims)
        default: throw ONNXError.unsupportedDataType(tensor: name, type: type)
        }
    }

    /// Reads `expectedBytes` of a tensor's external data. Only a regular file inside the model's
    /// folder (after resolving links) is read: a model must not make dipviz read other files,
    /// block on a FIFO or stream a device without end.
    private func readExternal(_ t: Onnx__TensorProto, name: String, expectedBytes: Int) throws -> Data {
        func refuse(_ detail: String) -> ONNXError { .externalData(model: source, tensor: name, detail: detail) }
        var location = "", offset = 0, length: Int? = nil
        for i in 0..<t.n_external_data {
            let e = t.external_data[i]!.pointee
            let key = ONNXModel.string(e.key), value = ONNXModel.string(e.value)
            switch key {
            case "location": location = value
            case "offset", "length":
                guard let v = Int(value.trimmingCharacters(in: .whitespaces)), v >= 0 else {
                    throw refuse("has \(key) '\(value)'; it must be a whole number of bytes, 0 or more")
                }
                if key == "offset" { offset = v } else { length = v }
            default: break
            }
        }
        guard !location.isEmpty, !location.hasPrefix("/"), !location.split(separator: "/").contains("..") else {
            throw refuse("is at '\(location)'; a relative path inside the model's folder is required")
        }
        guard let directory else { throw refuse("cannot be read: the model was not read from a file") }
        let path = (directory as NSString).appendingPathComponent(location)
        guard let folder = TensorReader.resolved(directory) else { throw refuse("cannot be read: the model's folder is unreadable") }
        guard let file = TensorReader.resolved(path) else {
            throw refuse("is missing: \(path) (\(FileErrors.describe(errno: errno)))")
        }
        guard file.hasPrefix(folder.hasSuffix("/") ? folder : folder + "/") else {
            throw refuse("at '\(location)' leads outside the model's folder (to \(file)); only files inside it are read")
        }
        var info = stat()
        guard stat(file, &info) == 0 else { throw refuse("cannot be read: \(path) (\(FileErrors.describe(errno: errno)))") }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw refuse("at '\(location)' is \(FileErrors.kind(info.st_mode)); only regular files are read")
        }
        // O_NONBLOCK: should the file be swapped for a FIFO after the check, opening it must not hang.
        let fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw refuse("cannot be read: \(path) (\(FileErrors.describe(errno: errno)))") }
        defer { close(fd) }
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            throw refuse("at '\(location)' is not a regular file; only regular files are read")
        }
        let size = Int(info.st_size)
        guard offset <= size else {
            throw refuse("starts at byte \(offset) of '\(location)', which has \(size) bytes")
        }
        let available = size - offset
        if let length, length > available {
            throw refuse("needs bytes \(offset)..<\(offset + length) of '\(location)', which has \(size) bytes (truncated)")
        }
        let stored = length ?? available
        guard stored == expectedBytes else {
            throw refuse("has \(stored) bytes in '\(location)'; its shape and type need \(expectedBytes)")
        }
        var data = Data(count: expectedBytes)
        let done = data.withUnsafeMutableBytes { buffer -> Int in
            var done = 0
            while done < expectedBytes {
                let n = pread(fd, buffer.baseAddress! + done, expectedBytes - done, off_t(offset + done))
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                done += n
            }
            return done
        }
        guard done == expectedBytes else { throw refuse("is truncated: read \(done) of \(expectedBytes) bytes from '\(location)'") }
        return data
    }

    /// The absolute path with every link resolved, or nil (errno set) when it does not exist.
    static func resolved(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    static func halfToFloat(_ h: UInt16, bfloat: Bool) -> Float {
        if bfloat { return Float(bitPattern: UInt32(h) << 16) }
        return Float(Float16(bitPattern: h))
    }
}

extension ONNXValue {
    /// Decodes a serialized TensorProto (the `.pb` files of ONNX's test data).
    public static func decodeTensor(_ data: Data, source: String = "<memory>") throws -> (name: String, value: ONNXValue) {
        let message: UnsafeMutablePointer<Onnx__TensorProto>? = data.withUnsafeBytes { raw in
            onnx__tensor_proto__unpack(nil, raw.count, raw.bindMemory(to: UInt8.self).baseAddress)
        }
        guard let t = message else { throw ONNXError.notONNX(path: source, reason: "not a serialized TensorProto") }
        defer { onnx__tensor_proto__free_unpacked(t, nil) }
        let value = try TensorReader(directory: nil, source: source).value(t.pointee)
        return (ONNXModel.string(t.pointee.name), value)
    }
}

// MARK: - Encoding (for generated models: benchmarks, tests, exports)

/// Owns the C memory of a message under construction.
private final class Arena {
    private var blocks: [UnsafeMutableRawPointer] = []
    deinit { for b in blocks { b.deallocate() } }

    func make<T>(_ type: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
        let p = UnsafeMutablePointer<T>.allocate(capacity: Swift.max(count, 1))
        blocks.append(UnsafeMutableRawPointer(p))
        return p
    }

    func string(_ s: String) -> UnsafeMutablePointer<CChar> {
        let bytes = Array(s.utf8CString)
        let p = make(CChar.self, count: bytes.count)
        p.update(from: bytes, count: bytes.count)
        return p
    }

    func strings(_ list: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
        let p = make(UnsafeMutablePointer<CChar>?.self, count: list.count)
        for (i, s) in list.enumerated() { p[i] = string(s) }
        return p
    }

    func array<T>(_ values: [T]) -> UnsafeMutablePointer<T> {
        let p = make(T.self, count: values.count)
        if !values.isEmpty { p.initialize(from: values, count: values.count) }
        return p
    }
}

extension ONNXModel {
    /// Serialises the model as a ModelProto. Float weights are written straight from their
    /// tensors, without an intermediate copy.
    public func encode() throws -> Data {
        let arena = Arena()
        var tensors: [Tensor] = []  // kept alive until packing is done

        func tensorProto(_ name: String, _ value: ONNXValue) -> UnsafeMutablePointer<Onnx__TensorProto> {
            let t = arena.make(Onnx__TensorProto.self)
            onnx__tensor_proto__init(t)
            t.pointee.name = arena.string(name)
            t.pointee.n_dims = value.shape.count
            t.pointee.dims = arena.array(value.shape.map { Int64($0) })
            t.pointee.has_data_type = 1
            t.pointee.has_raw_data = 1
            switch value {
            case .float(let tensor):
                tensors.append(tensor)
                t.pointee.data_type = 1
                t.pointee.raw_data = ProtobufCBinaryData(len: tensor.count * 4, data: UnsafeMutableRawPointer(tensor.data).assumingMemoryBound(to: UInt8.self))
            case .ints(let values, _):
                t.pointee.data_type = 7
                let p = arena.array(values.map { Int64($0) })
                t.pointee.raw_data = ProtobufCBinaryData(len: values.count * 8, data: UnsafeMutableRawPointer(p).assumingMemoryBound(to: UInt8.self))
            }
            return t
        }

        func valueInfo(_ v: ONNXValueInfo) -> UnsafeMutablePointer<Onnx__ValueInfoProto>? {
            let info = arena.make(Onnx__ValueInfoProto.self)
            onnx__value_info_proto__init(info)
            info.pointee.name = arena.string(v.name)
            let type = arena.make(Onnx__TypeProto.self)
            onnx__type_proto__init(type)
            let tensorType = arena.make(Onnx__TypeProto__Tensor.self)
            onnx__type_proto__tensor__init(tensorType)
            tensorType.pointee.has_elem_type = 1
            tensorType.pointee.elem_type = Int32(v.elementType == 0 ? 1 : v.elementType)
            if let dims = v.shape {
                let shape = arena.make(Onnx__TensorShapeProto.self)
                onnx__tensor_shape_proto__init(shape)
                let list = arena.make(UnsafeMutablePointer<Onnx__TensorShapeProto__Dimension>?.self, count: dims.count)
                for (i, d) in dims.enumerated() {
                    let dim = arena.make(Onnx__TensorShapeProto__Dimension.self)
                    onnx__tensor_shape_proto__dimension__init(dim)
                    if let d {
                        dim.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
                        dim.pointee.dim_value = Int64(d)
                    } else {
                        dim.pointee.value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                        dim.pointee.dim_param = arena.string("d\(i)")
                    }
                    list[i] = dim
                }
                shape.pointee.n_dim = dims.count
                shape.pointee.dim = list
                tensorType.pointee.shape = shape
            }
            type.pointee.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE
            type.pointee.tensor_type = tensorType
            info.pointee.type = type
            return info
        }

        func attribute(_ name: String, _ a: ONNXAttribute) throws -> UnsafeMutablePointer<Onnx__AttributeProto>? {
            let p = arena.make(Onnx__AttributeProto.self)
            onnx__attribute_proto__init(p)
            p.pointee.name = arena.string(name)
            p.pointee.has_type = 1
            switch a {
            case .float(let f): p.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT; p.pointee.has_f = 1; p.pointee.f = f
            case .int(let i): p.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT; p.pointee.has_i = 1; p.pointee.i = Int64(i)
            case .string(let s):
                p.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING
                p.pointee.has_s = 1
                let bytes = Array(s.utf8)
                p.pointee.s = ProtobufCBinaryData(len: bytes.count, data: arena.array(bytes))
            case .floats(let fs):
                p.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS
                p.pointee.n_floats = fs.count; p.pointee.floats = arena.array(fs)
            case .ints(let values):
                p.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS
                p.pointee.n_ints = values.count; p.pointee.ints = arena.array(values.map { Int64($0) })
            case .tensor(let v):
                p.pointee.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR
                p.pointee.t = tensorProto(name, v)
            case .strings, .unsupported:
                throw ONNXError.malformed("attribute '\(name)' cannot be written")
            }
            return p
        }

        let graph = arena.make(Onnx__GraphProto.self)
        onnx__graph_proto__init(graph)
        graph.pointee.name = arena.string(self.graph.name)
        let nodeList = arena.make(UnsafeMutablePointer<Onnx__NodeProto>?.self, count: self.graph.nodes.count)
        for (i, n) in self.graph.nodes.enumerated() {
            let node = arena.make(Onnx__NodeProto.self)
            onnx__node_proto__init(node)
            node.pointee.name = arena.string(n.name)
            node.pointee.op_type = arena.string(n.opType)
            if !n.domain.isEmpty { node.pointee.domain = arena.string(n.domain) }
            node.pointee.n_input = n.inputs.count; node.pointee.input = arena.strings(n.inputs)
            node.pointee.n_output = n.outputs.count; node.pointee.output = arena.strings(n.outputs)
            let attrs = try n.attributes.sorted { $0.key < $1.key }.map { try attribute($0.key, $0.value) }
            node.pointee.n_attribute = attrs.count
            node.pointee.attribute = arena.array(attrs)
            nodeList[i] = node
        }
        graph.pointee.n_node = self.graph.nodes.count
        graph.pointee.node = nodeList
        let inits = self.graph.initializers.sorted { $0.key < $1.key }.map { Optional(tensorProto($0.key, $0.value)) }
        graph.pointee.n_initializer = inits.count
        graph.pointee.initializer = arena.array(inits)
        let inputs = self.graph.inputs.map(valueInfo), outputs = self.graph.outputs.map(valueInfo)
        graph.pointee.n_input = inputs.count; graph.pointee.input = arena.array(inputs)
        graph.pointee.n_output = outputs.count; graph.pointee.output = arena.array(outputs)

        let model = arena.make(Onnx__ModelProto.self)
        onnx__model_proto__init(model)
        model.pointee.has_ir_version = 1
        model.pointee.ir_version = Int64(irVersion)
        model.pointee.producer_name = arena.string(producer)
        model.pointee.graph = graph
        let opsetList: [UnsafeMutablePointer<Onnx__OperatorSetIdProto>?] = opsets.sorted { $0.key < $1.key }.map { domain, version in
            let o = arena.make(Onnx__OperatorSetIdProto.self)
            onnx__operator_set_id_proto__init(o)
            o.pointee.domain = arena.string(domain)
            o.pointee.has_version = 1
            o.pointee.version = Int64(version)
            return o
        }
        model.pointee.n_opset_import = opsetList.count
        model.pointee.opset_import = arena.array(opsetList)
        let props: [UnsafeMutablePointer<Onnx__StringStringEntryProto>?] = metadata.sorted { $0.key < $1.key }.map { key, value in
            let e = arena.make(Onnx__StringStringEntryProto.self)
            onnx__string_string_entry_proto__init(e)
            e.pointee.key = arena.string(key)
            e.pointee.value = arena.string(value)
            return e
        }
        model.pointee.n_metadata_props = props.count
        model.pointee.metadata_props = arena.array(props)

        let size = onnx__model_proto__get_packed_size(model)
        var data = Data(count: size)
        let written = data.withUnsafeMutableBytes { onnx__model_proto__pack(model, $0.bindMemory(to: UInt8.self).baseAddress) }
        withExtendedLifetime(tensors) {}
        guard written == size else { throw ONNXError.malformed("packing wrote \(written) of \(size) bytes") }
        return data
    }
}
