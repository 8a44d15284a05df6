import CJPEG
import DipvizTensor
import Foundation

/// JPEG through libjpeg: the restoration task's compression (encode at a quality, decode back)
/// and JPEG inputs. libjpeg's fatal errors come back as `ImageError`, never an exit.
public enum JPEG {
    /// Largest image decoded (pixels), as for PNG: a hostile header cannot ask for terabytes.
    public static let maximumPixels = 1 << 28

    public static let qualities = 1...100

    public static func encode(_ image: RGBImage, quality: Int) throws -> Data {
        precondition(qualities.contains(quality), "JPEG quality \(quality)")
        var out: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = image.pixels.withUnsafeBufferPointer { px in
            dipviz_jpeg_encode(px.baseAddress, Int32(image.width), Int32(image.height), Int32(quality), &out, &size, &message, 256)
        }
        defer { free(out) }
        guard status == 0, let out else { throw ImageError.unwritable(path: "<jpeg>", reason: String(cString: message)) }
        return Data(bytes: out, count: Int(size))
    }

    public static func decode(_ data: Data, name: String = "<memory>") throws -> RGBImage {
        var width: Int32 = 0, height: Int32 = 0
        var pixels: UnsafeMutablePointer<UInt8>? = nil
        var message = [CChar](repeating: 0, count: 256)
        let status = data.withUnsafeBytes { raw in
            dipviz_jpeg_decode(raw.bindMemory(to: UInt8.self).baseAddress, UInt(raw.count), maximumPixels, &width, &height, &pixels, &message, 256)
        }
        defer { free(pixels) }
        guard status == 0, let pixels, width > 0, height > 0 else {
            throw ImageError.unreadable(path: name, reason: "not a readable JPEG: \(String(cString: message))")
        }
        return RGBImage(width: Int(width), height: Int(height), pixels: Array(UnsafeBufferPointer(start: pixels, count: Int(width) * Int(height) * 3)))
    }

    /// The image after compression at `quality` and decompression: the JPEG task's degradation.
    public static func roundTrip(_ image: RGBImage, quality: Int) throws -> RGBImage {
        try decode(try encode(image, quality: quality))
    }

    /// Reads a PNG or a JPEG file (told apart by their signatures).
    public static func readImage(path: String) throws -> RGBImage {
        if let why = FileErrors.notRegular(path) { throw ImageError.unreadable(path: path, reason: why) }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw ImageError.unreadable(path: path, reason: "no such file or not readable") }
        let head = handle.readData(ofLength: 3)
        try? handle.close()
        guard head.starts(with: [0xFF, 0xD8, 0xFF]) else { return try PNG.read(path: path) }
        var st = stat()
        if stat(path, &st) == 0, st.st_size > 1 << 30 {
            throw ImageError.unreadable(path: path, reason: "the file is \(st.st_size) bytes; images up to 1 GiB are read")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw ImageError.unreadable(path: path, reason: "not readable") }
        return try decode(data, name: path)
    }
}
