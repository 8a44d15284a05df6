import ArgumentParser
import DipvizONNX
import Foundation

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List a model's layers: names, shapes, parameters, MACs, receptive field and stride.")

    @OptionGroup var options: ModelOptions

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        let (net, preprocessing) = try options.load()
        let (h, w) = net.inputSize(preprocessing: preprocessing)
        let rows = try net.summarize(height: h, width: w)
        if json {
            struct Report: Encodable {
                let model: String, input: String, inputShape: [Int], preprocessing: Preprocessing, preprocessingOrigin: String
                let layers: [LayerSummary]
                enum CodingKeys: String, CodingKey {
                    case model, input, inputShape = "input_shape", preprocessing, preprocessingOrigin = "preprocessing_origin", layers
                }
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let report = Report(model: options.model, input: net.imageInput?.name ?? "", inputShape: [1, 3, h, w],
                                preprocessing: preprocessing, preprocessingOrigin: preprocessing.origin, layers: rows)
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        print("model \(options.model): input '\(net.imageInput?.name ?? "")' 1x3x\(h)x\(w), \(preprocessing.channelOrder.rawValue) 0..\(Int(preprocessing.scale)), mean \(preprocessing.mean), std \(preprocessing.std) (\(preprocessing.origin))")
        let header = ["layer", "tensor", "op", "output", "params", "MACs", "RF", "stride"]
        let table = rows.map { r in
            [r.aliases.isEmpty ? "-" : r.aliases.joined(separator: " "), r.tensor, r.op, r.shape.map(String.init).joined(separator: "x"),
             Inspect.compact(r.parameters), Inspect.compact(r.macs), r.receptiveField.map(String.init) ?? "all", String(r.stride)]
        }
        let widths = header.indices.map { i in ([header[i]] + table.map { $0[i] }).map(\.count).max()! }
        // Plain Swift padding and trimming: Foundation's regex and NSString padding per row made
        // a 100,000-layer table take seconds.
        func line(_ cells: [String]) -> String {
            var text = ""
            for (i, cell) in cells.enumerated() {
                if i > 0 { text += "  " }
                text += cell
                text += String(repeating: " ", count: Swift.max(0, widths[i] - cell.count))
            }
            while let last = text.last, last.isWhitespace { text.removeLast() }
            return text
        }
        var out = line(header) + "\n"
        for row in table { out += line(row); out += "\n" }
        print(out, terminator: "")
        // Totals stick at Int.max rather than trap on a hostile graph's sizes.
        func total(_ values: [Int]) -> Int {
            values.reduce(0) { let (v, overflow) = $0.addingReportingOverflow($1); return overflow ? Int.max : v }
        }
        print("total: \(Inspect.compact(total(rows.map(\.parameters)))) parameters, \(Inspect.compact(total(rows.map(\.macs)))) MACs")
    }

    static func compact(_ n: Int) -> String {
        if n == 0 { return "-" }
        if n >= 1_000_000_000 { return String(format: "%.2fG", Double(n) / 1e9) }
        if n >= 1_000_000 { return String(format: "%.2fM", Double(n) / 1e6) }
        if n >= 10_000 { return String(format: "%.1fK", Double(n) / 1e3) }
        return String(n)
    }
}
