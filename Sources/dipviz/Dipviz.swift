import ArgumentParser

@main
struct Dipviz: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dipviz",
        abstract: "Look inside image classifiers with Deep Image Prior pre-images and activation maximisation.",
        version: "0.1.0",
        subcommands: [Gallery.self, Notebook.self, Invert.self, Maximize.self, Run.self, Inspect.self, Classify.self, Eval.self, Bench.self]
    )
}
