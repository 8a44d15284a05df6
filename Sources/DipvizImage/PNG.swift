import CPNG
import DipvizTensor
import Foundation

/// An 8-bit RGB image, rows top to bottom, pixels interleaved (R, G, B).
public struct RGBImage: Equatable, Sendable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "\(pixels.count) bytes for \(width)x\(height) RGB")
        self.width = width; self.height = height; self.pixels = pixels
    }
}

public enum ImageError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case notPNG(path: String, reason: String)
    case unwritable(path: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): return "cannot read \(path): \(reason)"
        case let .notPNG(path, reason): return "\(path) is not a readable PNG: \(reason)"
        case let .unwritable(path, reason): return "cannot write \(path): \(reason)"
        }
    }
}

/// PNG through libpng's simplified API: any bit depth, grey, RGB, RGBA and palette files read as
/// 8-bit RGB (16-bit samples are scaled to 8 bits; transparency is composited onto white).
public enum PNG {
    public static func read(path: String) throws -> RGBImage {
        // A FIFO or device given by mistake would block or never end: only regular files of a
        // sane size are read.
        if let why = FileErrors.notRegular(path) { throw ImageError.unreadable(path: path, reason: why) }
        var st = stat()
        if stat(path, &st) == 0, st.st_size > 1 << 30 {
            throw ImageError.unreadable(path: path, reason: "the file is \(st.st_size) bytes; PNGs up to 1 GiB are read")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ImageError.unreadable(path: path, reason: "no such file or not readable")
        }
        return try decode(data, name: path)
    }

    public static func decode(_ data: Data, name: String = "<memory>") throws -> RGBImage {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        let begun = data.withUnsafeBytes { raw in
            png_image_begin_read_from_memory(&image, raw.baseAddress, raw.count)
        }
        guard begun != 0 else { throw ImageError.notPNG(path: name, reason: message(of: &image)) }
        defer { png_image_free(&image) }
        // 16-bit samples without gAMA/sRGB chunks are sRGB-encoded like 8-bit ones: scale, do
        // not gamma-encode them as if they were linear light.
        image.flags |= UInt32(PNG_IMAGE_FLAG_16BIT_sRGB)
        image.format = UInt32(PNG_FORMAT_RGB)
        let width = Int(image.width), height = Int(image.height)
        guard width > 0, height > 0, width * height <= 1 << 28 else {
            throw ImageError.notPNG(path: name, reason: "image size \(width)x\(height)")
        }
        var pixels = [UInt8](repeating: 255, count: width * height * 3)
        var white = png_color(red: 255, green: 255, blue: 255)
        let finished = data.withUnsafeBytes { _ in
            pixels.withUnsafeMutableBytes { out in
                png_image_finish_read(&image, &white, out.baseAddress, Int32(width * 3), nil)
            }
        }
        guard finished != 0 else { throw ImageError.notPNG(path: name, reason: message(of: &image)) }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    public static func encode(_ img: RGBImage) throws -> Data {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(img.width)
        image.height = UInt32(img.height)
        image.format = UInt32(PNG_FORMAT_RGB)
        var size: Int = 0
        // First call measures, second writes.
        guard img.pixels.withUnsafeBytes({ png_image_write_to_memory(&image, nil, &size, 0, $0.baseAddress, Int32(img.width * 3), nil) }) != 0 else {
            throw ImageError.unwritable(path: "<memory>", reason: message(of: &image))
        }
        var out = Data(count: size)
        let ok = out.withUnsafeMutableBytes { dst in
            img.pixels.withUnsafeBytes { src in
                png_image_write_to_memory(&image, dst.baseAddress, &size, 0, src.baseAddress, Int32(img.width * 3), nil)
            }
        }
        guard ok != 0 else { throw ImageError.unwritable(path: "<memory>", reason: message(of: &image)) }
        return out.prefix(size)
    }

    public static func write(_ img: RGBImage, path: String) throws {
        let data = try encode(img)
        do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw ImageError.unwritable(path: path, reason: error.localizedDescription)
        }
    }

    private static func message(of image: inout png_image) -> String {
        withUnsafeBytes(of: &image.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
