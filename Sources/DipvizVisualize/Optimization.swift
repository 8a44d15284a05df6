import DipvizImage
import DipvizTensor
import Foundation

/// Hooks and cadence of the optimisation loop.
public struct RunControl {
    public var curveEvery = 10
    public var snapshotEvery = 100
    /// Called with (iteration, iterations, loss) after every step (progress display).
    public var progress: ((Int, Int, Double) -> Void)?
    /// Called at every snapshot with the iteration and the clean image (saving files).
    public var snapshot: ((Int, Tensor) throws -> Void)?
    /// Polled between steps; true stops the run as interrupted.
    public var shouldStop: () -> Bool = { false }
    /// Where to keep a checkpoint (at every snapshot and when the run stops), for a resume.
    public var checkpoint: String?
    /// `RunSpec.key`, written into checkpoints.
    public var specKey = ""
    /// Polled after every step; true ends the run as finished (a stopping rule's verdict).
    public var hasConverged: () -> Bool = { false }
    public init() {}
}

struct RunRecordOfLoop {
    var image: Tensor
    var curve: [CurvePoint]
    var iterations: Int
    var seconds: Double
    var ending: RunEnding
    var message: String?
}


/// The loop shared by inversion and maximisation: gradient step on the image's
/// parametrisation, curve, snapshots and checkpoints, interruption and divergence. A loss or
/// a state that stops being finite ends the run as `diverged`, keeping the last finite image
/// and the last finite checkpoint.
func optimize(_ p: ImageParametrization, iterations: Int, startIteration: Int = 0, curve initialCurve: [CurvePoint] = [],
              secondsBefore: Double = 0, startValue: Double? = nil, startValues: [Double]? = nil, control: RunControl,
              objective: (Tensor) throws -> (loss: Tensor, values: [String: Double])) throws -> RunRecordOfLoop {
    var curve = initialCurve
    let started = Date()
    var lastGood = p.cleanImage()
    var ending = RunEnding.finished
    var message: String? = nil
    var t = startIteration
    func elapsed() -> Double { secondsBefore + Date().timeIntervalSince(started) }
    func stateIsFinite() -> Bool { p.state.allSatisfy { s in (0..<s.count).allSatisfy { s.data[$0].isFinite } } }
    func saveCheckpoint() throws {
        guard let path = control.checkpoint else { return }
        try Checkpoint.save(path: path, specKey: control.specKey, state: p.state, iteration: t, curve: curve, seconds: elapsed(),
                            startValue: startValue, startValues: startValues)
    }
    while t < iterations {
        if control.shouldStop() { ending = .interrupted; break }
        p.zeroGrad()
        let x = p.image(iteration: t)
        var (loss, values) = try objective(x)
        if let r = p.regularizer(iteration: t) { loss = loss + r }
        let value = Double(loss.item)
        guard value.isFinite else {
            ending = .diverged
            message = "the loss became \(value) at iteration \(t + 1); kept the last finite image and checkpoint"
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
            guard img.scalars.allSatisfy({ $0.isFinite }), stateIsFinite() else {
                ending = .diverged
                message = "the parameters stopped being finite by iteration \(t); kept the last finite image and checkpoint"
                break
            }
            lastGood = img
            try control.snapshot?(t, img)
            if t < iterations { try saveCheckpoint() }
        }
        control.progress?(t, iterations, value)
        if control.hasConverged() { break }
    }
    if ending == .interrupted, stateIsFinite() { try saveCheckpoint() }
    let current = p.cleanImage()
    let result = ending != .diverged && current.scalars.allSatisfy({ $0.isFinite }) ? current : lastGood
    return RunRecordOfLoop(image: result, curve: curve, iterations: t, seconds: elapsed(), ending: ending, message: message)
}
