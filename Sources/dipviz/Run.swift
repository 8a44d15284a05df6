import ArgumentParser
import DipvizONNX
import DipvizVisualize
import Foundation

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a saved run spec (a result folder's run.json, or a bare spec) into a new folder.",
        discussion: "Relative paths in the spec are taken from the current directory; the model and photos must have the hashes the spec records.")

    @Argument(help: "A run.json of a result folder, or a JSON run spec.")
    var spec: String

    @Option(help: "Output folder.")
    var out: String

    func validate() throws {
        if out.isEmpty { throw ValidationError("--out must name a folder") }
    }

    func run() throws {
        let spec = try Run.load(self.spec)
        try spec.validate()
        Interruption.install()
        let network = try ONNXNetwork(path: spec.model.file.path)
        let hash = try ContentHash.ofFile(spec.model.file.path, what: "model")
        guard hash == spec.model.file.hash else {
            throw RunSpecError.mismatch("the model \(spec.model.file.path) is not the one the spec was made with (hash \(spec.model.file.hash) then, \(hash) now)")
        }
        try spec.validate(network: network)
        let folder = try ResultFolder(path: out)
        try RunCommand.report(try Runner.run(spec, network: network, folder: folder, control: RunCommand.control("run")))
    }

    /// A run record (`run.json`) or a bare spec.
    static func load(_ path: String) throws -> RunSpec {
        if let record = try? ResultJSON.read(RunRecord.self, path: path, what: "run record") { return record.spec }
        return try ResultJSON.read(RunSpec.self, path: path, what: "run spec")
    }
}
