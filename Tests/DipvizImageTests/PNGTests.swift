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

@Suite("PNG colour types and bit depths")
struct PNGVariantTests {
    struct Expected: Decodable { let width: Int, height: Int, rgb: [UInt8], grey: [UInt8] }
    static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
    static let expected = try! JSONDecoder().decode(Expected.self, from: Data(contentsOf: fixtures.appendingPathComponent("expected.json")))

    @Test(arguments: ["rgb8", "rgb16", "rgba8", "palette8"])
    func colour(_ name: String) throws {
        let img = try PNG.read(path: PNGVariantTests.fixtures.appendingPathComponent("\(name).png").path)
        #expect(img.width == 4 && img.height == 3)
        #expect(img.pixels == PNGVariantTests.expected.rgb)
    }

    @Test(arguments: ["grey8", "grey16", "greyalpha8"])
    func grey(_ name: String) throws {
        let img = try PNG.read(path: PNGVariantTests.fixtures.appendingPathComponent("\(name).png").path)
        #expect(img.pixels == PNGVariantTests.expected.grey.flatMap { [$0, $0, $0] })
    }

    @Test func transparencyCompositesOntoWhite() throws {
        let img = try PNG.read(path: PNGVariantTests.fixtures.appendingPathComponent("transparent.png").path)
        #expect(img.pixels.allSatisfy { $0 == 255 })
    }

    @Test func resizeFilters() throws {
        // A constant image stays constant under every filter; a box shrink averages exactly.
        let flat = RGBImage(width: 9, height: 7, pixels: [UInt8](repeating: 77, count: 9 * 7 * 3))
        for filter in ResizeFilter.allCases {
            #expect(flat.resized(width: 4, height: 5, filter: filter).pixels.allSatisfy { $0 == 77 }, "\(filter)")
            #expect(flat.resized(width: 20, height: 11, filter: filter).pixels.allSatisfy { $0 == 77 }, "\(filter)")
        }
        let stripes = RGBImage(width: 4, height: 1, pixels: [0, 0, 0, 200, 200, 200, 0, 0, 0, 200, 200, 200])
        #expect(stripes.resized(width: 2, height: 1, filter: .area).pixels == [100, 100, 100, 100, 100, 100])
        let cropped = RGBImage(width: 6, height: 2, pixels: (0..<36).map { UInt8($0) }).centreCropped(aspect: 1)
        #expect(cropped.width == 2 && cropped.height == 2)
    }
}
