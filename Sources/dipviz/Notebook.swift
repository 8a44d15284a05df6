import ArgumentParser
import DipvizGallery
import Foundation

struct Notebook: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export result folders as a Jupyter notebook (nbformat 4) with the images and metrics embedded.")

    @Argument(help: "Result folders (of invert, maximize, or a gallery's results/).")
    var results: [String]

    @Option(help: "The notebook to write (.ipynb).")
    var out: String

    @Option(help: "Notebook title.")
    var title = "dipviz results"

    @Option(help: "Markdown introduction under the title.")
    var introduction = "Natural pre-images and activation maximisation computed with dipviz."

    func validate() throws {
        guard !results.isEmpty else { throw ValidationError("give at least one result folder") }
    }

    func run() throws {
        let cells = try NotebookExport.write(results: results, title: title, introduction: introduction, to: out)
        print("wrote \(out) (\(cells) cells from \(results.count) results)")
    }
}
