import ArgumentParser
import Foundation
import DipvizTensor

@main
struct Dipviz: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dipviz",
        abstract: "Look inside image classifiers with Deep Image Prior pre-images and activation maximisation.",
        version: "0.1.0",
        subcommands: [Gallery.self, Notebook.self, Invert.self, Maximize.self, Restore.self, Run.self, Inspect.self, Classify.self, Eval.self,
                      Bench.self, Doctor.self, Lpips.self]
    )

    /// OpenBLAS chose its kernels when it loaded, from a table of processors it knew when it was
    /// built; a newer processor gets generic ones. Correct that before any command runs.
    static func main() {
        if let warning = BLAS.selectCore().warning {
            FileHandle.standardError.write(Data((warning + "\n").utf8))
        }
        main(nil)
    }
}
