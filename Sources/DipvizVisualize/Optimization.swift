import DipvizImage
import DipvizTensor
import Foundation

/// One point of the loss curve.
public struct CurvePoint: Codable, Equatable, Sendable {
    public var iteration: Int
    public var loss: Double
    /// Objective-specific values (feature error, activation, ...).
    public var values: [String: Double]
}

/// How a run ended.
public enum RunEnding: String, Codable, Sendable {
    case finished
    case interrupted
    /// The loss became NaN or infinite; the last good image is kept.
    case diverged
}

/// Hooks and cadence of the optimisation loop.
public struct RunControl {
    public var curveEvery = 10
    public var snapshotEvery = 100
    /// Called with (iteration, iterations, loss) after every step (progress display).
    public var progress: ((Int, Int, Double) -> Void)?
    /// Called at every snapshot with the iteration and the clean image (saving files).
    public var snapshot: ((Int, Tensor) -> Void)?
    /// Polled between steps; true stops the run as interrupted.
    public var shouldStop: () -> Bool = { false }
    /// Where to keep a checkpoint (at every snapshot and when the run stops), for `resume`.
    public var checkpointDirectory: String?
    public init() {}
}

public struct RunRecord {
    public var image: Tensor
    public var curve: [CurvePoint]
    public var iterations: Int
    public var seconds: Double
    public var ending: RunEnding
    public var message: String?
}

/// The loop shared by inversion and maximisation: gradient step on the image's
/// parametrisation, curve, snapshots, interruption and divergence.
func optimize(_ p: ImageParametrization, iterations: Int, startIteration: Int = 0, curve initialCurve: [CurvePoint] = [],
              secondsBefore: Double = 0, startError: Double? = nil, control: RunControl,
              objective: (Tensor) throws -> (loss: Tensor, values: [String: Double])) throws -> RunRecord {
    var curve = initialCurve
    let started = Date()
    var lastGood = p.cleanImage()
    var ending = RunEnding.finished
    var message: String? = nil
    var t = startIteration
    while t < iterations {
        if control.shouldStop() { ending = .interrupted; break }
        p.zeroGrad()
        let x = p.image(iteration: t)
        var (loss, values) = try objective(x)
        if let r = p.regularizer(iteration: t) { loss = loss + r }
        let value = Double(loss.item)
        guard value.isFinite else {
            ending = .diverged
            message = "the loss became \(value) at iteration \(t); kept the image of iteration \(Swift.max(t - 1, 0))"
            break
        }
        loss.backward()
        p.step(iteration: t)
        t += 1
        if t % control.curveEvery == 0 || t == iterations || t == 1 {
            curve.append(CurvePoint(iteration: t, loss: value, values: values))
        }
        if t % control.snapshotEvery == 0 || t == iterations {
            let img = p.cleanImage()
            if img.scalars.allSatisfy({ $0.isFinite }) { lastGood = img }
            control.snapshot?(t, lastGood)
            if let dir = control.checkpointDirectory {
                try Checkpoint.save(directory: dir, state: p.state, iteration: t, curve: curve,
                                    seconds: secondsBefore + Date().timeIntervalSince(started), startError: startError)
            }
        }
        control.progress?(t, iterations, value)
    }
    if ending == .interrupted, let dir = control.checkpointDirectory {
        try Checkpoint.save(directory: dir, state: p.state, iteration: t, curve: curve,
                            seconds: secondsBefore + Date().timeIntervalSince(started), startError: startError)
    }
    let current = p.cleanImage()
    let result = ending != .diverged && current.scalars.allSatisfy({ $0.isFinite }) ? current : lastGood
    return RunRecord(image: result, curve: curve, iterations: t, seconds: Date().timeIntervalSince(started),
                     ending: ending, message: message)
}
