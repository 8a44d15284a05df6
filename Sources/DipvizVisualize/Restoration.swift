import DipvizImage
import DipvizPrior
import DipvizTensor
import Foundation

// A restoration folder holds, besides run.json, metrics.json, curve.json, snapshots/ and
// checkpoints/ as every run: image.png (the restored image), input.png (the observation that was
// fitted: noisy, low-resolution, masked, compressed or no-flash), ground-truth.png (with
// --degrade), mask.png (inpainting), bicubic.png (super-resolution) and flash.png (flash).

/// `run.json` of a restoration.
public struct RestorationRecord: Codable, Equatable, Sendable {
    public var formatVersion: Int
    /// Always `restoration`: tells this record from an `invert`/`maximize` one.
    public var kind: String
    public var spec: RestorationSpec
    public var workingDirectory: String

    enum CodingKeys: String, CodingKey { case formatVersion = "format_version", kind, spec, workingDirectory = "working_directory" }

    public init(spec: RestorationSpec, workingDirectory: String) {
        formatVersion = RunSpec.formatVersion; kind = "restoration"; self.spec = spec; self.workingDirectory = workingDirectory
    }
}

/// PSNR (dB), SSIM and LPIPS of an image against the ground truth.
public struct Fidelity: Codable, Equatable, Sendable {
    public var psnr: Double
    public var ssim: Double
    /// LPIPS v0.1 with AlexNet, LPIPS's default backbone (lower is closer); absent when the run
    /// had no LPIPS models (`lpipsModels`) or the image is under 32 pixels a side.
    public var lpips: Double?
    public init(psnr: Double, ssim: Double, lpips: Double? = nil) { self.psnr = psnr; self.ssim = ssim; self.lpips = lpips }
    public init(_ a: Tensor, _ b: Tensor, lpips model: LPIPS?) {
        psnr = ImageMetrics.psnr(a, b); ssim = ImageMetrics.ssim(a, b)
        lpips = a.shape[2] >= 32 && a.shape[3] >= 32 ? try? model?.distance(a, b) : nil
    }
}

/// `metrics.json` of a restoration.
public struct RestorationMetrics: Codable, Equatable, Sendable {
    public var formatVersion: Int
    public var specKey: String
    public var task: RestorationTaskKind
    public var prior: RestorationPriorKind
    public var ending: RunEnding
    public var message: String?
    public var seed: UInt64
    /// Iterations run (fewer than the budget when the stopping rule ended the run).
    public var iterations: Int
    public var seconds: Double
    public var secondsPerIteration: Double
    /// The rule that chose image.png, and the iteration whose output it is.
    public var stopRule: StoppingRule.Kind
    public var stopIteration: Int
    /// Where the outputs' moving variance was lowest (reported whatever the rule).
    public var varianceMinimumIteration: Int?
    /// image.png against the ground truth (with --degrade).
    public var result: Fidelity?
    /// The observation against the ground truth (denoise, inpaint, jpeg).
    public var input: Fidelity?
    /// Where the ground-truth PSNR of the outputs peaked, and the peak.
    public var bestIteration: Int?
    public var bestPSNR: Double?
    /// Baselines computed with the run (bicubic for super-resolution).
    public var baselines: [String: Fidelity]

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version", specKey = "spec_key", task, prior, ending, message, seed, iterations, seconds
        case secondsPerIteration = "seconds_per_iteration", stopRule = "stop_rule", stopIteration = "stop_iteration"
        case varianceMinimumIteration = "variance_minimum_iteration", result, input, bestIteration = "best_iteration"
        case bestPSNR = "best_psnr", baselines
    }
}

/// The observation, the forward model and what is known about the truth, built from a spec.
struct RestorationProblem {
    /// y: what the output is compared to, through `forward`.
    var observation: Tensor
    /// A: the degradation applied to the output before the comparison.
    var forward: (Tensor) -> Tensor
    var groundTruth: Tensor?
    var height: Int, width: Int
    /// The generator's code when the task gives one (flash: the flash photo).
    var code: RGBImage?
    /// Where the tv prior starts: the observation brought to the output's size.
    var start: Tensor
    /// Images written beside the result (input.png, mask.png, ...).
    var files: [String: RGBImage]
    var baselines: [String: Tensor]

    static func make(_ spec: RestorationSpec, workingDirectory: String?) throws -> RestorationProblem {
        func read(_ reference: FileReference, what: String) throws -> RGBImage {
            let path = reference.resolved(in: workingDirectory)
            try Runner.checkUnchanged(reference, path: path, what: what)
            var image = try JPEG.readImage(path: path)
            if let c = spec.crop {
                guard c.x + c.width <= image.width, c.y + c.height <= image.height else {
                    throw RunSpecError.invalid(field: "crop", message: "\(c.width)x\(c.height) at \(c.x),\(c.y) does not fit \(path) (\(image.width)x\(image.height))")
                }
                image = image.cropped(x: c.x, y: c.y, width: c.width, height: c.height)
            }
            return image
        }
        let task = spec.task
        var image = try read(spec.input, what: "image")
        let identity: (Tensor) -> Tensor = { $0 }
        switch task.kind {
        case .denoise, .jpeg:
            let observed = !spec.degrade ? image
                : task.kind == .denoise ? Degradation.noisy(image, sigma: task.sigma ?? 25, seed: spec.seed)
                : try JPEG.roundTrip(image, quality: task.quality ?? 10)
            let y = observed.tensor()
            return RestorationProblem(observation: y, forward: identity, groundTruth: spec.degrade ? image.tensor() : nil,
                                      height: image.height, width: image.width, start: y, files: ["input.png": observed], baselines: [:])
        case .superres:
            let f = task.factor ?? 4
            let low: RGBImage
            var truth: Tensor? = nil
            if spec.degrade {
                // Whole multiples of the factor, as the paper's `enforse_div32='CROP'` does.
                image = image.cropped(x: image.width % f / 2, y: image.height % f / 2, width: image.width / f * f, height: image.height / f * f)
                guard image.width >= 2 * f, image.height >= 2 * f else {
                    throw RunSpecError.invalid(field: "factor", message: "the image is too small for factor \(f)")
                }
                low = image.resized(width: image.width / f, height: image.height / f, filter: .lanczos)
                truth = image.tensor()
            } else {
                low = image
            }
            let h = low.height * f, w = low.width * f
            let bicubic = low.resized(width: w, height: h, filter: .bicubic)
            return RestorationProblem(observation: low.tensor(), forward: Degradation.downsampler(factor: f, support: (task.downsampler ?? .lanczos2).support), groundTruth: truth,
                                      height: h, width: w, start: bicubic.tensor(), files: ["input.png": low, "bicubic.png": bicubic],
                                      baselines: ["bicubic": bicubic.tensor()])
        case .inpaint:
            let mask: RGBImage
            if let m = task.mask {
                mask = try read(m, what: "mask")
                guard mask.width == image.width, mask.height == image.height else {
                    throw RunSpecError.invalid(field: "mask", message: "the mask is \(mask.width)x\(mask.height), the image \(image.width)x\(image.height); they must match")
                }
            } else {
                mask = Degradation.randomMask(width: image.width, height: image.height, drop: task.drop ?? 0.5, seed: spec.seed)
            }
            let m = Degradation.maskTensor(mask)
            let observed = Degradation.masked(image, mask: m)
            let y = observed.tensor()
            // The holes start grey for the tv prior.
            let start = y + (Tensor(shape: m.shape, repeating: 1) - m).scaled(by: 0.5)
            return RestorationProblem(observation: y, forward: { $0 * m }, groundTruth: spec.degrade ? image.tensor() : nil,
                                      height: image.height, width: image.width, start: start,
                                      files: ["input.png": observed, "mask.png": mask], baselines: [:])
        case .flash:
            guard let n = task.noFlash else { throw RunSpecError.invalid(field: "no-flash", message: "give --no-flash IMAGE") }
            let noFlash = try read(n, what: "no-flash photo")
            guard noFlash.width == image.width, noFlash.height == image.height else {
                throw RunSpecError.invalid(field: "no-flash", message: "the no-flash photo is \(noFlash.width)x\(noFlash.height), the flash photo \(image.width)x\(image.height); they must match")
            }
            let y = noFlash.tensor()
            return RestorationProblem(observation: y, forward: identity, groundTruth: nil, height: image.height, width: image.width,
                                      code: image, start: y, files: ["input.png": noFlash, "flash.png": image], baselines: [:])
        }
    }
}

extension RGBImage {
    func cropped(x: Int, y: Int, width w: Int, height h: Int) -> RGBImage {
        var out = [UInt8](repeating: 0, count: w * h * 3)
        for r in 0..<h {
            let src = ((y + r) * width + x) * 3
            out.replaceSubrange((r * w * 3)..<((r + 1) * w * 3), with: pixels[src..<(src + w * 3)])
        }
        return RGBImage(width: w, height: h, pixels: out)
    }
}

/// Pixels optimised by Adam against the data term plus lambda TV(x) (isotropic, beta = 1),
/// kept in 0...1: the classical TV-regularised restoration.
final class TVRestorationParametrization: AdamParametrization {
    let u: Tensor
    let adam: Adam
    let weight: Float

    init(start: Tensor, learningRate: Float, weight: Float) {
        u = Tensor(zeros: start.shape, requiresGrad: true)
        u.copy(from: start)
        adam = Adam(parameters: [u], learningRate: learningRate)
        self.weight = weight
    }

    func image(iteration t: Int) -> Tensor { u }
    func cleanImage() -> Tensor { u.detached() }
    /// lambda TV(x) / (number of values): on the scale of the mean squared data term.
    func regularizer(iteration t: Int) -> Tensor? { weight > 0 ? u.totalVariation(beta: 1).scaled(by: weight / Float(u.count)) : nil }
    func step(iteration t: Int) {
        adam.step()
        for i in 0..<u.count { u.data[i] = Swift.min(Swift.max(u.data[i], 0), 1) }
    }
    var state: [Tensor] { [u] + adam.firstMoments + adam.secondMoments }
}

/// What a restoration tracks across iterations, around the prior's parametrisation: the
/// exponential average of outputs (the paper's `out_avg`, bias-corrected), the outputs' moving mean and
/// variance (the ground-truth-free stopping rule), the output where that variance was lowest,
/// and the best ground-truth PSNR. All of it is part of the checkpointed state.
final class RestorationTracker: ImageParametrization {
    let inner: ImageParametrization
    let averaging: Float
    let decay: Float
    let average: Tensor, movingMean: Tensor, movingVariance: Tensor, atMinimum: Tensor
    /// [observations, minimum variance, its iteration, best PSNR, its iteration].
    let scalars: Tensor
    /// No minimum is taken before the moving statistics have seen this many outputs.
    let warmUp: Int

    init(_ inner: ImageParametrization, height: Int, width: Int, averaging: Float, decay: Float) {
        self.inner = inner; self.averaging = averaging; self.decay = decay
        let shape = [1, 3, height, width]
        average = Tensor(zeros: shape); movingMean = Tensor(zeros: shape); movingVariance = Tensor(zeros: shape); atMinimum = Tensor(zeros: shape)
        scalars = Tensor(shape: [5], scalars: [0, .greatestFiniteMagnitude, 0, -.greatestFiniteMagnitude, 0])
        warmUp = Int((2 / decay).rounded())
    }

    var observations: Int { Int(scalars.data[0]) }
    var varianceMinimumIteration: Int? { scalars.data[2] > 0 ? Int(scalars.data[2]) : nil }
    var bestIteration: Int? { scalars.data[4] > 0 ? Int(scalars.data[4]) : nil }
    var bestPSNR: Double? { bestIteration != nil ? Double(scalars.data[3]) : nil }

    /// The image reported at this point: the running average when averaging, else the output.
    func reported(_ output: Tensor) -> Tensor { averaging > 0 ? average : output }

    /// Takes in the output of iteration `t` (0-based); returns the scalar moving variance.
    /// `outputPSNR` is the output's own PSNR when the average is what is reported.
    func observe(_ output: Tensor, iteration t: Int, groundTruth: Tensor?) -> (variance: Double, psnr: Double?, outputPSNR: Double?) {
        let x = output.data, n = output.count
        let first = observations == 0
        // The paper's `out_avg` starts at the first output and then takes a weight of 1 - a for
        // each new one, which leaves the first (shapeless) output a weight of a^t: 13% after 200
        // iterations at 0.99, which cost the quick gallery up to 3 dB. Here each new output takes
        // (1 - a) / (1 - a^k), k outputs seen (Adam's bias correction): the same start (k = 1
        // takes the output whole) and the same weights within a^k, below 1e-4 after 1000
        // iterations, but no excess weight on the early outputs.
        let a = averaging, d = decay
        let weight = Float((1 - Double(a)) / (1 - pow(Double(a), Double(observations + 1))))
        var total = 0.0
        for i in 0..<n {
            if first { average.data[i] = x[i]; movingMean.data[i] = x[i]; movingVariance.data[i] = 0; continue }
            average.data[i] += weight * (x[i] - average.data[i])
            let delta = x[i] - movingMean.data[i]
            movingMean.data[i] += d * delta
            movingVariance.data[i] = (1 - d) * (movingVariance.data[i] + d * delta * delta)
            total += Double(movingVariance.data[i])
        }
        scalars.data[0] += 1
        let variance = total / Double(n)
        let shown = reported(output)
        if observations > warmUp, Float(variance) < scalars.data[1] {
            scalars.data[1] = Float(variance); scalars.data[2] = Float(t + 1)
            atMinimum.copy(from: shown)
        }
        var psnr: Double? = nil, outputPSNR: Double? = nil
        if let groundTruth {
            let p = ImageMetrics.psnr(shown, groundTruth)
            psnr = p
            if Float(p) > scalars.data[3] { scalars.data[3] = Float(p); scalars.data[4] = Float(t + 1) }
            if averaging > 0 { outputPSNR = ImageMetrics.psnr(output, groundTruth) }
        }
        return (variance, psnr, outputPSNR)
    }

    func image(iteration t: Int) -> Tensor { inner.image(iteration: t) }
    func cleanImage() -> Tensor { averaging > 0 && observations > 0 ? average.detached() : inner.cleanImage() }
    func regularizer(iteration t: Int) -> Tensor? { inner.regularizer(iteration: t) }
    func zeroGrad() { inner.zeroGrad() }
    func step(iteration t: Int) { inner.step(iteration: t) }
    var state: [Tensor] { inner.state + [average, movingMean, movingVariance, atMinimum, scalars] }
    var stepCount: Int { inner.stepCount }
    func restore(step: Int) { inner.restore(step: step) }
}

/// Runs a `RestorationSpec` into a result folder; a folder holding the same run continues it.
public enum Restoration {
    public struct Outcome {
        public var record: RestorationRecord
        public var metrics: RestorationMetrics
        public var folder: ResultFolder
    }

    /// Runs `spec` into `folder` (continuing what it holds). `lpipsModels`: the folder with
    /// AlexNet's features and LPIPS heads (`models/prepare` writes them), for LPIPS beside PSNR
    /// and SSIM; without it, or where the files are absent, the metrics have no LPIPS.
    /// `saveStart`: a file to receive the generator's code and weights before the first step
    /// (checkpoint format: a JSON header of shapes, then float32 tensors; the code first, then
    /// the network's parameters in order), so that another implementation can start from the
    /// same point (`bench/restore_torch.py --start`). Only a run that starts from iteration 0
    /// has it.
    public static func run(_ spec: RestorationSpec, folder: ResultFolder,
                           workingDirectory: String = FileManager.default.currentDirectoryPath,
                           control: RunControl = RunControl(), lpipsModels: String? = nil, saveStart: String? = nil) throws -> Outcome {
        let record = try folder.adopt(RestorationRecord(spec: spec, workingDirectory: workingDirectory), what: "restoration record",
                                      same: { $0.spec == spec }) {
            "\(folder.path) holds another restoration (\($0.kind == "restoration" ? "other settings" : "not a restoration")); choose another --out, or continue that run with --resume \(folder.path)"
        }
        return try execute(record, folder: folder, control: control, lpipsModels: lpipsModels, saveStart: saveStart)
    }

    /// Whether `directory/run.json` is a restoration's record.
    public static func isRestoration(_ directory: String) -> Bool {
        let path = (directory as NSString).appendingPathComponent("run.json")
        guard let data = FileManager.default.contents(atPath: path),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return false }
        return object["kind"] as? String == "restoration"
    }

    public static func resume(directory: String, control: RunControl = RunControl(), lpipsModels: String? = nil) throws -> Outcome {
        var st = stat()
        guard stat(directory, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { throw RunSpecError.file(path: directory, reason: "no such run folder") }
        guard isRestoration(directory) else {
            throw RunSpecError.file(path: directory, reason: "has no restoration run.json: not a folder written by dipviz restore")
        }
        let folder = try ResultFolder(path: directory)
        let record = try folder.read(RestorationRecord.self, name: "run.json", what: "restoration record")
        try record.spec.validate()
        return try execute(record, folder: folder, control: control, lpipsModels: lpipsModels)
    }

    /// The parametrisation of `spec`'s prior for `problem`.
    static func parametrization(_ spec: RestorationSpec, _ problem: RestorationProblem) throws -> ImageParametrization {
        let prior = spec.prior
        guard let generator = prior.generator else {
            return TVRestorationParametrization(start: problem.start, learningRate: prior.learningRate, weight: prior.tvWeight ?? 0)
        }
        let dip = try DeepImagePrior(generator, height: problem.height, width: problem.width, seed: spec.seed)
        if let code = problem.code {
            // The flash photo, edge-extended to the generator's size, replaces the noise code.
            guard dip.code.shape[1] == 3 else { throw RunSpecError.invalid(field: "generator", message: "the flash task's generator reads 3 channels (the flash photo)") }
            let t = code.tensor()
            let s = dip.outputSize, top = (s - code.height) / 2, left = (s - code.width) / 2
            dip.code.copy(from: t.padded(top: top, bottom: s - code.height - top, left: left, right: s - code.width - left, mode: .edge))
        }
        return DIPParametrization(prior: dip, learningRate: prior.learningRate, seed: spec.seed)
    }

    static func execute(_ record: RestorationRecord, folder: ResultFolder, control base: RunControl, lpipsModels: String?,
                        saveStart: String? = nil) throws -> Outcome {
        let spec = record.spec
        func noStart(_ why: String) -> RunSpecError {
            .invalid(field: "save-start", message: "\(why); the starting weights exist only before a run's first step (use a new --out)")
        }
        if saveStart != nil && spec.prior.generator == nil { throw noStart("the \(spec.prior.kind.rawValue) prior has no generator") }
        if folder.exists("metrics.json") {
            let previous = try folder.read(RestorationMetrics.self, name: "metrics.json", what: "metrics file")
            guard previous.specKey == spec.key else {
                throw RunSpecError.mismatch("\(folder.path)/run.json does not match the run its results came from (edited after the run was made); start a new run")
            }
            if previous.ending == .finished && folder.exists("image.png") {
                if saveStart != nil { throw noStart("\(folder.path) holds a finished run") }
                return Outcome(record: record, metrics: previous, folder: folder)
            }
            if previous.ending == .diverged {
                throw RunSpecError.mismatch("the run in \(folder.path) diverged (\(previous.message ?? "non-finite loss")); start a new run, e.g. with a smaller --lr")
            }
        }
        let problem = try RestorationProblem.make(spec, workingDirectory: record.workingDirectory)
        for (name, image) in problem.files.sorted(by: { $0.key < $1.key }) where !folder.exists(name) { try folder.writePNG(image, name: name) }
        if let truth = problem.groundTruth, !folder.exists("ground-truth.png") { try folder.writePNG(RGBImage(tensor: truth), name: "ground-truth.png") }

        let tracker = RestorationTracker(try parametrization(spec, problem), height: problem.height, width: problem.width,
                                         averaging: spec.prior.averaging, decay: spec.stopping.decay)
        let checkpointPath = folder.checkpoint("image")
        let resume = FileManager.default.fileExists(atPath: checkpointPath)
            ? try Checkpoint.load(path: checkpointPath, specKey: spec.key, iterations: spec.iterations) : nil
        let start = try resume?.restore(into: tracker) ?? 0
        if let saveStart {
            guard start == 0, let dip = (tracker.inner as? DIPParametrization)?.prior else { throw noStart("\(folder.path) holds a run at iteration \(start)") }
            try Checkpoint.save(path: saveStart, specKey: spec.key, state: [dip.code] + dip.parameters, iteration: 0, curve: [], seconds: 0, startValue: nil)
        }

        var control = base
        control.snapshotEvery = spec.snapshotEvery
        control.checkpoint = checkpointPath
        control.specKey = spec.key
        control.snapshot = { t, image in try folder.writeImage(image, name: String(format: "snapshots/iter-%06d.png", t)) }
        var lastIteration = start
        if spec.stopping.kind == .variance {
            let patience = spec.stopping.patience
            control.hasConverged = { tracker.varianceMinimumIteration.map { lastIteration - $0 >= patience } ?? false }
        }
        let y = problem.observation, truth = problem.groundTruth
        let loop = try optimize(tracker, iterations: spec.iterations, startIteration: start, curve: resume?.curve ?? [],
                                secondsBefore: resume?.seconds ?? 0, control: control) { x in
            let loss = problem.forward(x).mseLoss(y)
            let (variance, psnr, outputPSNR) = GradMode.withoutGrad { tracker.observe(x, iteration: tracker.observations, groundTruth: truth) }
            lastIteration = tracker.observations
            var values = ["variance": variance]
            if let psnr { values["psnr"] = psnr }
            if let outputPSNR { values["output_psnr"] = outputPSNR }
            return (loss, values)
        }
        var image = loop.image
        var stopIteration = loop.iterations
        if spec.stopping.kind == .variance, loop.ending != .diverged, let m = tracker.varianceMinimumIteration {
            image = tracker.atMinimum.detached(); stopIteration = m
        }
        try folder.writeImage(image, name: "image.png")
        try folder.writeJSON(CurveFile(curves: ["image": loop.curve]), name: "curve.json")
        let lpips = truth == nil ? nil : lpipsModels.flatMap { LPIPSCache.model(.alex, modelsDirectory: $0) }
        let metrics = RestorationMetrics(
            formatVersion: RunSpec.formatVersion, specKey: spec.key, task: spec.task.kind, prior: spec.prior.kind, ending: loop.ending,
            message: loop.message, seed: spec.seed, iterations: loop.iterations, seconds: loop.seconds,
            secondsPerIteration: loop.iterations > 0 ? loop.seconds / Double(loop.iterations) : 0,
            stopRule: spec.stopping.kind, stopIteration: stopIteration, varianceMinimumIteration: tracker.varianceMinimumIteration,
            result: truth.map { Fidelity(image, $0, lpips: lpips) },
            input: truth.flatMap { t in y.shape == t.shape ? Fidelity(y, t, lpips: lpips) : nil },
            bestIteration: tracker.bestIteration, bestPSNR: tracker.bestPSNR,
            baselines: truth.map { t in problem.baselines.mapValues { Fidelity($0, t, lpips: lpips) } } ?? [:])
        try folder.writeJSON(metrics, name: "metrics.json")
        if metrics.ending == .finished { try? FileManager.default.removeItem(atPath: checkpointPath) }
        return Outcome(record: record, metrics: metrics, folder: folder)
    }
}
