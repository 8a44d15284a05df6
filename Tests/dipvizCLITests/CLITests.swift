import Foundation
import Testing

/// Runs the built `dipviz` binary.
func runDipviz(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let binary = Bundle.main.bundleURL.appendingPathComponent("dipviz")
    let process = Process()
    process.executableURL = binary
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
}

@Suite("dipviz command line")
struct CLITests {
    @Test func benchListsItsCases() throws {
        let r = try runDipviz(["bench", "--list"])
        #expect(r.status == 0)
        #expect(r.stdout.split(separator: "\n") == ["sgemm_1024", "conv_fwd", "conv_bwd", "dip_step_256"])
    }

    @Test func benchPrintsOneJSONObjectPerCase() throws {
        let r = try runDipviz(["bench", "--cases", "sgemm_1024", "conv_fwd", "--repeats", "1"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 2)
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["case"] is String)
            #expect((object?["ms"] as? Double ?? 0) > 0)
            #expect((object?["gflops"] as? Double ?? 0) > 0)
            let core = object?["openblas_core"] as? String ?? ""
            #expect(core.count > 0)
        }
    }

    @Test func unknownCaseIsAnErrorNamingTheKnownOnes() throws {
        let r = try runDipviz(["bench", "--cases", "nope"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("unknown case nope"))
        #expect(r.stderr.contains("sgemm_1024"))
    }
}
