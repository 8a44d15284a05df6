import ArgumentParser
import DipvizGallery
import Foundation

struct Gallery: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compute the experiments a gallery spec lists (reusing finished ones) and write the static site.")

    @Argument(help: "A gallery spec (JSON); see gallery/default.json.")
    var spec: String

    @Option(help: "Output folder of the site.")
    var out: String

    @Option(help: "Iteration budget named in the spec (e.g. quick or full).")
    var budget = "quick"

    @Flag(help: "Only write the pages from the results already computed.")
    var renderOnly = false

    func run() throws {
        Interruption.install()
        let specURL = URL(fileURLWithPath: spec)
        let definition = try GallerySpec.load(path: spec)
        let builder = try GalleryBuilder(spec: definition, budget: budget, specDirectory: specURL.deletingLastPathComponent().path, output: out)
        let pending = renderOnly ? [] : builder.pending
        let total = builder.experiments.count
        print("gallery: \(total) results, \(total - builder.pending.count) reused, \(pending.count) to compute")
        let started = Date()
        var interrupted = false
        for (i, e) in pending.enumerated() {
            let elapsed = Date().timeIntervalSince(started)
            let eta = i > 0 ? ProgressLine.duration(elapsed / Double(i) * Double(pending.count - i)) : "?"
            let line = ProgressLine(label: "[\(i + 1)/\(pending.count), ETA \(eta)] \(e.modelName): \(e.title)")
            var control = DipvizVisualize.RunControl()
            control.progress = line.update
            if !line.enabled { print("[\(i + 1)/\(pending.count)] \(e.modelName): \(e.title)"); fflush(stdout) }
            let ending = try builder.run(e, control: control, shouldStop: { Interruption.isRequested })
            if ending == .interrupted { interrupted = true; break }
        }
        let index = try GallerySite(builder: builder, budget: budget).render()
        if interrupted {
            FileHandle.standardError.write(Data("interrupted: finished results are kept; run the same command again to continue\n".utf8))
            throw ExitCode(130)
        }
        print(String(format: "gallery: computed %d results in %.0f s; open %@", pending.count, Date().timeIntervalSince(started), index))
    }
}

import DipvizVisualize
