import DipvizGallery
import DipvizVisualize
import Foundation

extension Gallery {
    /// A restoration gallery (gallery/restoration.json): computes its runs in the work folder,
    /// continuing unfinished ones, and writes the page.
    func runRestoration() throws {
        let budget = full ? "full" : self.budget
        let definition = try RestorationGallerySpec.load(path: spec)
        let gallery = try RestorationGallery(spec: definition, budget: budget, specDirectory: (spec as NSString).deletingLastPathComponent,
                                             output: out, work: workFolder)
        var control = RunControl()
        control.shouldStop = { Interruption.isRequested }
        let started = Date()
        let index = renderOnly ? try gallery.render(try gallery.experiments())
            : try gallery.build(control: control) { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }
        print(String(format: "wrote %@ (%.0f s)", index, Date().timeIntervalSince(started)))
    }
}
