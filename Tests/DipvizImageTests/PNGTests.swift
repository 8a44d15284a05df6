import DipvizImage
import DipvizTensor
import Foundation
import Testing

@Suite("PNG")
struct PNGTests {
    @Test func roundTripsThroughBytesAndTensors() throws {
        var px = [UInt8]()
        for y in 0..<5 { for x in 0..<7 { px += [UInt8(x * 30), UInt8(y * 50), UInt8((x + y) * 10)] } }
        let img = RGBImage(width: 7, height: 5, pixels: px)
        let data = try PNG.encode(img)
        #expect(Array(data.prefix(4)) == [0x89, 0x50, 0x4E, 0x47])
        let back = try PNG.decode(data)
        #expect(back == img)
        let t = img.tensor()
        #expect(t.shape == [1, 3, 5, 7])
        #expect(RGBImage(tensor: t) == img)
    }

    @Test func readsAndWritesFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dipviz-png-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let img = RGBImage(width: 2, height: 1, pixels: [255, 0, 0, 0, 0, 255])
        let path = dir.appendingPathComponent("a.png").path
        try PNG.write(img, path: path)
        #expect(try PNG.read(path: path) == img)
    }

    @Test func badInputIsATypedError() throws {
        #expect(throws: ImageError.self) { try PNG.decode(Data("not a png at all".utf8)) }
        #expect(throws: ImageError.self) { try PNG.read(path: "/nonexistent/file.png") }
        let truncated = try PNG.encode(RGBImage(width: 4, height: 4, pixels: [UInt8](repeating: 9, count: 48))).prefix(40)
        #expect(throws: ImageError.self) { try PNG.decode(Data(truncated)) }
    }
}
