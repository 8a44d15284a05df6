import DipvizONNX
import DipvizPrior
import DipvizTensor
import Foundation

extension RunSpec {
    /// The `dipviz` arguments that build exactly this spec, ending with `--out out`; nil when
    /// flags cannot express it (a custom generator or TV schedule, or a path that would read as
    /// an option): `reproduceArguments` then falls back to `dipviz run RUN.json`.
    public func commandArguments(out: String) -> [String]? {
        let paths = [model.file.path] + {
            switch objective {
            case .inversion(let inv): return [inv.image.path]
            case .maximization(let m): return m.reference.map { [$0.path] } ?? []
            }
        }()
        guard paths.allSatisfy({ !$0.hasPrefix("-") }) else { return nil }
        var args: [String]
        var inversion = false
        switch objective {
        case .inversion(let inv):
            guard inv.layers.allSatisfy({ !$0.contains(",") && !$0.isEmpty }) else { return nil }
            args = ["invert", model.file.path, inv.image.path, "--layer", inv.layers.joined(separator: ",")]
            inversion = true
        case .maximization(let m):
            args = ["maximize", model.file.path]
            if let e = m.expression {
                guard m.targets.count == 1, !e.text.hasPrefix("-") else { return nil }
                args += ["--objective", e.text]
            } else if case let .classScore(index, score)? = m.targets.first {
                guard m.targets.count == 1, m.layer == nil else { return nil }
                args += ["--class", String(index), "--score", score.rawValue]
            } else {
                guard let layer = m.layer, !layer.hasPrefix("-") else { return nil }
                let units = m.targets.compactMap(\.unit)
                guard units.count == m.targets.count, let first = units.first, let last = units.last, last >= first,
                      units == Array(first...last) else { return nil }
                args += ["--layer", layer, "--unit", first == last ? "\(first)" : "\(first)-\(last)"]
                switch m.targets[0] {
                case .channel(_, let window):
                    guard m.targets.allSatisfy({ if case .channel(_, window) = $0 { return true }; return false }) else { return nil }
                    if window != 1 { args += ["--window", "\(window)"] }
                case let .neuron(_, y, x):
                    guard m.targets.allSatisfy({ if case .neuron(_, y, x) = $0 { return true }; return false }) else { return nil }
                    if let y, let x { args += ["--at", "\(y),\(x)"] } else { args.append("--neuron") }
                case .classScore, .expression: return nil
                }
            }
            if case .reach(let v) = m.goal { args += ["--target-value", "\(v)"] }
            if m.jitter != 0 { args += ["--jitter", "\(m.jitter)"] }
            if let r = m.reference { args += ["--reference", r.path] }
            if m.targets.count > 1 && m.batch != true { args.append("--one-at-a-time") }
            if let n = m.images { args += ["--images", "\(n)"] }
            if m.transforms != .standard { args += ["--transforms", m.transforms?.argument ?? "none"] }
        }
        args += ["--prior", prior.kind.rawValue]
        guard let priorArguments = prior.behaviour.commandArguments(prior, standardPreset: inversion ? "inversion" : "maximization", size: size) else {
            return nil
        }
        args += priorArguments
        if let p = model.preprocessing {
            args += ["--channel-order", p.channelOrder.rawValue, "--pixel-scale", "\(p.scale)",
                     "--mean", p.mean.map { "\($0)" }.joined(separator: ","), "--std", p.std.map { "\($0)" }.joined(separator: ",")]
            if let s = p.inputSize, s.count == 2 { args += ["--input-size", "\(s[0])x\(s[1])"] }
        }
        if convolutionPrecision != .fp32 { args += ["--precision", convolutionPrecision.rawValue] }
        args += ["--size", "\(size)", "--iterations", "\(iterations)", "--seed", "\(seed)", "--snapshot-every", "\(snapshotEvery)",
                 "--out", out]
        return args
    }

    /// The arguments that rerun exactly this spec: the flags when they can express it, else
    /// `run RUN_JSON` (the run record beside the result).
    public func reproduceArguments(out: String, runRecord: String) -> [String] {
        commandArguments(out: out) ?? ["run", runRecord, "--out", out]
    }
}

/// Text for shells: every argument that is not plainly safe is single-quoted, so names with
/// spaces, quotes, `$( )`, backticks or `;` arrive as one argument and run nothing.
public enum Shell {
    static let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=,+@%".unicodeScalars)

    public static func quote(_ s: String) -> String {
        if !s.isEmpty, s.unicodeScalars.allSatisfy({ safe.contains($0) }) { return s }
        return "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// `program` and `arguments` as one shell command line.
    public static func line(_ program: String = "dipviz", _ arguments: [String]) -> String {
        ([program] + arguments).map(quote).joined(separator: " ")
    }

    /// The same for a Jupyter `!` line: IPython expands `$name` and `{expr}` before the shell
    /// sees the line, and reads `$$`, `{{` and `}}` as literal characters.
    public static func ipythonLine(_ program: String = "dipviz", _ arguments: [String]) -> String {
        line(program, arguments).replacingOccurrences(of: "$", with: "$$")
            .replacingOccurrences(of: "{", with: "{{").replacingOccurrences(of: "}", with: "}}")
    }
}
