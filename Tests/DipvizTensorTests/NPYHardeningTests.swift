import DipvizTensor
import Foundation
import Testing

/// Hostile .npy files: every one is a typed `NPYError`, never a trap or an unbounded read.
@Suite("Hostile .npy files are typed errors")
struct NPYHardeningTests {
    /// A version-1 .npy file with the given header fields and body bytes.
    static func npy(shape: String, descr: String = "<f4", body: Data = Data(count: 16), version: UInt8 = 1) -> Data {
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
        header += String(repeating: " ", count: (64 - (10 + header.utf8.count + 1) % 64) % 64) + "\n"
        let length = header.utf8.count
        return Data([0x93] + Array("NUMPY".utf8) + [version, 0, UInt8(length & 0xFF), UInt8(length >> 8)]) + Data(header.utf8) + body
    }

    static func error(_ data: Data) -> Error? {
        do { _ = try Tensor.decodeNPY(data, name: "x.npy"); return nil } catch { return error }
    }

    @Test(arguments: [
        ("(4611686018427387904, 4611686018427387904)", "64-bit"),  // the product overflows
        ("(3037000500, 3037000500)", "64-bit"),                    // the product fits, times 4 bytes it does not
        ("(1000000, 1000000)", "truncated"),                       // far larger than the file
        ("(-1, 4)", "bad shape"),
        ("(99999999999999999999999,)", "bad shape"),               // not an Int
        (")(", "no shape"),                                         // a closing parenthesis first
    ])
    func hostileShapes(_ shape: String, _ wording: String) throws {
        let error = NPYHardeningTests.error(NPYHardeningTests.npy(shape: shape))
        let e = try #require(error as? NPYError, "\(shape): \(String(describing: error))")
        #expect(e.description.contains(wording), "\(shape): \(e)")
        #expect(e.description.contains("x.npy"))
    }

    @Test func truncatedFilesAreTypedErrors() throws {
        let whole = NPYHardeningTests.npy(shape: "(2, 2)")
        #expect(try Tensor.decodeNPY(whole).shape == [2, 2])
        for cut in [0, 5, 9, 11, 40, whole.count - 1] {
            #expect(NPYHardeningTests.error(whole.prefix(cut)) is NPYError, "cut at \(cut)")
        }
    }

    @Test func unknownFormatVersionIsRefused() throws {
        let error = NPYHardeningTests.error(NPYHardeningTests.npy(shape: "(2, 2)", version: 9))
        #expect((error as? NPYError)?.description.contains("version 9") == true, "\(String(describing: error))")
    }

    @Test func fifoIsRefusedWithoutBlocking() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dipviz-npy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let fifo = dir.appendingPathComponent("x.npy").path
        #expect(mkfifo(fifo, 0o600) == 0)
        // Release a reader that blocks, so that the old behaviour fails instead of hanging.
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: 4)
            let fd = open(fifo, O_WRONLY | O_NONBLOCK)
            if fd >= 0 { close(fd) }
        }
        let start = Date()
        let error: Error?
        do { _ = try Tensor.readNPY(path: fifo); error = nil } catch let e { error = e }
        #expect(Date().timeIntervalSince(start) < 2)
        #expect((error as? NPYError)?.description.contains("FIFO") == true, "\(String(describing: error))")
    }

    @Test func writeErrorsAreWordedWithoutFoundationDumps() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dipviz-missing-\(UUID().uuidString)/y.npy").path
        do {
            try Tensor(zeros: [2]).writeNPY(path: path)
            Issue.record("wrote into a missing folder")
        } catch let e as NPYError {
            #expect(e.description.contains("No such file or directory"), "\(e)")
            #expect(!e.description.contains("Domain") && !e.description.contains("NSCocoa"), "\(e)")
        }
    }
}
