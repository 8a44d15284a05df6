import DipvizONNX
import DipvizPrior
import DipvizVisualize
import Foundation

/// What a result costs to compute, estimated before running it: the classifier's
/// multiply-accumulates per step up to the deepest layer the objective reads, the generator's
/// (DIP), the element-wise work of both, times the iterations. The rates are fitted to the
/// default gallery's quick run on two cores (AVX2; the 56 results' times in
/// notebooks-export/): 621 s measured, 625 s estimated, DIP results within 30% each, TV ones
/// estimated about 1.4 times too long. Seconds scale inversely with the CPUs given.
public struct CostModel: Sendable {
    /// Multiply-accumulates per second one core sustains in a training step (forward and both
    /// gradients counted as three passes).
    public var macsPerCoreSecond = 2.0e10
    /// Element-wise values (normalisation, activations, pooling, padding, the optimiser) per
    /// second and core: memory-bound and touched several times each, so far slower than a MAC.
    public var elementsPerCoreSecond = 1.0e8
    /// Loading, metrics and PNG writing per result.
    public var overheadSeconds = 0.2

    public init() {}

    /// The work of one step: MACs and element-wise values.
    public struct Step: Sendable, Equatable {
        public var macs: Double
        public var elements: Double
    }

    /// Seconds on `cpus` cores for `iterations` steps of `step`.
    public func seconds(_ step: Step, iterations: Int, cpus: Int) -> Double {
        let oneCore = Double(iterations) * (3 * step.macs / macsPerCoreSecond + 3 * step.elements / elementsPerCoreSecond) + overheadSeconds
        return oneCore / Double(Swift.max(cpus, 1))
    }
}

extension GalleryBuilder {
    /// The per-step work of `e`: the classifier up to its deepest layer at the working size,
    /// plus the generator for DIP, plus the image itself (the TV regularisers, the jitter).
    public func step(_ e: Experiment) throws -> CostModel.Step {
        let rows = try layerRows(modelPath: e.modelPath, size: e.spec.size)
        var deepest = Set<String>()
        let net = try network(e.modelPath)
        switch e.spec.objective {
        case .inversion(let inv): deepest = Set(try inv.layers.map { try net.resolve($0) })
        case .maximization(let m): if let l = m.layer { deepest = [try net.resolve(l)] }
        }
        var macs = 0.0, elements = 0.0
        for row in rows {
            macs += Double(row.macs)
            elements += Double(row.shape.reduce(1, *))
            if deepest.contains(row.tensor) { break }
        }
        if let g = e.spec.prior.generator {
            let work = g.estimatedForwardWork(size: e.spec.size)
            macs += work.macs
            elements += work.elements
        }
        elements += Double(3 * e.spec.size * e.spec.size) * 4
        return CostModel.Step(macs: macs, elements: elements)
    }

    /// Estimated seconds of every experiment on `cpus` cores, in experiment order.
    public func estimatedSeconds(cpus: Int, model: CostModel = CostModel()) throws -> [Double] {
        try experiments.map { model.seconds(try step($0), iterations: $0.iterations, cpus: cpus) }
    }

    /// The layer summaries of a model at a working size, computed once per pair.
    func layerRows(modelPath: String, size: Int) throws -> [LayerSummary] {
        let cacheKey = "\(size) \(modelPath)"
        if let rows = summaries[cacheKey] { return rows }
        let net = try network(modelPath)
        let rows = try net.summarize(height: size, width: size)
        summaries[cacheKey] = rows
        return rows
    }
}

/// Experiments cut into shards of about equal estimated cost: longest-processing-time-first
/// (each result, costliest first, to the shard with the least so far), then moves and swaps
/// between the costliest and the cheapest shard while that narrows the gap. Deterministic:
/// ties go to the earlier experiment and the lower shard, so every array task computes the
/// same plan from the same spec.
public struct ShardPlan: Sendable, Equatable {
    /// The estimated cost of each experiment (any unit; seconds in practice).
    public let costs: [Double]
    /// The shard (0-based) of each experiment.
    public let assignment: [Int]
    public let count: Int

    /// The largest relative difference allowed between shards.
    public static let tolerance = 0.10

    public init(costs: [Double], shards count: Int) {
        precondition(count >= 1)
        self.costs = costs
        self.count = count
        var assignment = [Int](repeating: 0, count: costs.count)
        var loads = [Double](repeating: 0, count: count)
        let order = costs.indices.sorted { costs[$0] != costs[$1] ? costs[$0] > costs[$1] : $0 < $1 }
        for i in order {
            let target = loads.indices.min { loads[$0] != loads[$1] ? loads[$0] < loads[$1] : $0 < $1 }!
            assignment[i] = target
            loads[target] += costs[i]
        }
        // Greedy leaves the last, smallest results to even things out, which is not enough when
        // a few results dominate: try the single move or swap that narrows the gap the most.
        for _ in 0..<(4 * costs.count + 16) {
            let high = loads.indices.max { loads[$0] != loads[$1] ? loads[$0] < loads[$1] : $0 > $1 }!
            let low = loads.indices.min { loads[$0] != loads[$1] ? loads[$0] < loads[$1] : $0 < $1 }!
            let gap = loads[high] - loads[low]
            guard gap > 0 else { break }
            var best: (delta: Double, from: Int, to: Int?)? = nil
            let inHigh = costs.indices.filter { assignment[$0] == high }
            let inLow = costs.indices.filter { assignment[$0] == low }
            for i in inHigh {
                // Moving i from high to low: the new gap is |gap - 2 c_i|.
                let moved = abs(gap - 2 * costs[i])
                if moved < gap - 1e-12, best.map({ moved < $0.delta }) ?? true { best = (moved, i, nil) }
                for j in inLow where costs[j] < costs[i] {
                    let swapped = abs(gap - 2 * (costs[i] - costs[j]))
                    if swapped < gap - 1e-12, best.map({ swapped < $0.delta }) ?? true { best = (swapped, i, j) }
                }
            }
            guard let b = best else { break }
            assignment[b.from] = low
            loads[high] -= costs[b.from]; loads[low] += costs[b.from]
            if let j = b.to {
                assignment[j] = high
                loads[low] -= costs[j]; loads[high] += costs[j]
            }
        }
        self.assignment = assignment
    }

    /// The experiments (indices, in experiment order) of shard `index` (0-based).
    public func members(_ index: Int) -> [Int] { assignment.indices.filter { assignment[$0] == index } }

    public var loads: [Double] {
        var l = [Double](repeating: 0, count: count)
        for (i, s) in assignment.enumerated() { l[s] += costs[i] }
        return l
    }

    /// (costliest - cheapest) / costliest shard; 0 for one shard.
    public var spread: Double {
        let l = loads
        guard let hi = l.max(), let lo = l.min(), hi > 0 else { return 0 }
        return (hi - lo) / hi
    }

    public var isBalanced: Bool { spread <= ShardPlan.tolerance }

    /// Why the shards cannot be balanced, when a single result costs more than an average
    /// share (then some shard holds more than its share whatever the cut), else nil.
    public var imbalanceReason: String? {
        let total = costs.reduce(0, +)
        guard count > 1, let largest = costs.max(), total > 0 else { return nil }
        let share = total / Double(count)
        if largest > share {
            let most = Swift.max(1, Int((total / largest).rounded(.down)))
            return String(format: "the costliest result (%.1f min) exceeds an average share (%.1f min), so %d shards cannot be balanced within %.0f%%; use at most %d",
                          largest / 60, share / 60, count, ShardPlan.tolerance * 100, most)
        }
        guard !isBalanced else { return nil }
        return String(format: "the results are too coarse for %d shards (spread %.0f%%, allowed %.0f%%); use fewer shards",
                      count, spread * 100, ShardPlan.tolerance * 100)
    }
}
