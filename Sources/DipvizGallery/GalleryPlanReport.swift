import Foundation

/// `--plan`'s table, or its JSON.
public enum GalleryPlanReport {
    struct Entry: Encodable {
        var key: String; var model: String; var title: String; var seconds: Double; var iterations: Int
        var macsPerStep: Double; var elementsPerStep: Double
        enum CodingKeys: String, CodingKey {
            case key, model, title, seconds, iterations, macsPerStep = "macs_per_step", elementsPerStep = "elements_per_step"
        }
    }
    struct Shard: Encodable { var shard: String; var seconds: Double; var results: [Entry] }
    struct Plan: Encodable {
        var cpus: Int; var spread: Double; var balanced: Bool; var shards: [Shard]
    }

    public static func json(_ plan: ShardPlan, builder: GalleryBuilder, cpus: Int) throws -> String {
        let loads = plan.loads
        let shards = try (0..<plan.count).map { s in
            Shard(shard: "\(s + 1)/\(plan.count)", seconds: (loads[s] * 10).rounded() / 10, results: try plan.members(s).map { i in
                let e = builder.experiments[i]
                let step = try builder.step(e)
                return Entry(key: e.key, model: e.modelName, title: e.title, seconds: (plan.costs[i] * 100).rounded() / 100,
                             iterations: e.iterations, macsPerStep: step.macs.rounded(), elementsPerStep: step.elements.rounded())
            })
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(Plan(cpus: cpus, spread: (plan.spread * 1e4).rounded() / 1e4, balanced: plan.isBalanced,
                                                        shards: shards)), as: UTF8.self)
    }

    public static func text(_ plan: ShardPlan, builder: GalleryBuilder, spec: String, budget: String, cpus: Int) -> String {
        let total = plan.costs.reduce(0, +)
        var lines = [String(format: "%@, budget %@: %d results, %.1f min on %d CPUs in one process", spec, budget,
                            builder.experiments.count, total / 60, cpus)]
        lines.append("shard  results  est. min  share   models")
        let loads = plan.loads
        for s in 0..<plan.count {
            let members = plan.members(s)
            var perModel: [String: Int] = [:]
            for i in members { perModel[builder.experiments[i].modelName, default: 0] += 1 }
            let models = builder.spec.models.map(\.name).filter { perModel[$0] != nil }.map { "\($0) \(perModel[$0]!)" }.joined(separator: ", ")
            lines.append(String(format: "%-6@ %7d  %8.1f  %5.1f%%  %@", "\(s + 1)/\(plan.count)", members.count, loads[s] / 60,
                                total > 0 ? loads[s] / total * 100 : 0, models))
        }
        lines.append(String(format: "spread %.1f%% (costliest vs cheapest shard; allowed %.0f%%): %@", plan.spread * 100,
                            ShardPlan.tolerance * 100, plan.isBalanced ? "balanced" : "not balanced"))
        return lines.joined(separator: "\n")
    }
}
