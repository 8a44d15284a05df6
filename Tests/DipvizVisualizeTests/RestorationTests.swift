@testable import DipvizVisualize
import DipvizImage
import DipvizPrior
import DipvizTensor
import Foundation
import Testing

/// A parametrisation that never changes, for feeding a `RestorationTracker` outputs by hand.
private final class ZeroImage: ImageParametrization {
    let shape: [Int]
    init(side: Int) { shape = [1, 3, side, side] }
    func image(iteration t: Int) -> Tensor { Tensor(zeros: shape) }
    func cleanImage() -> Tensor { Tensor(zeros: shape) }
    func regularizer(iteration t: Int) -> Tensor? { nil }
    func zeroGrad() {}
    func step(iteration t: Int) {}
    var state: [Tensor] { [] }
    var stepCount: Int { 0 }
    func restore(step: Int) {}
}

@Suite("restoration")
struct RestorationTests {
    /// A smooth 8-bit test photo with some structure.
    static func photo(width: Int = 32, height: Int = 32) -> RGBImage {
        var px = [UInt8]()
        for y in 0..<height { for x in 0..<width { px += [UInt8((x * 37 + y * 11) % 256), UInt8((y * 23) % 256), UInt8(255 - (x * 5) % 256)] } }
        return RGBImage(width: width, height: height, pixels: px)
    }

    static func folder() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dipviz-restore-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func lanczosKernelsMatchTheReferenceCode() {
        // Values from bench/restore_torch.py's lanczos(4, support) (the DIP code's kernels, phase 1/2).
        let k2 = Degradation.lanczosKernel(factor: 4, support: 2)
        #expect(k2.count == 16 * 16)
        let expected2: [(Int, Int, Float)] = [(7, 6, 0.04389477), (7, 7, 0.05746142), (7, 8, 0.05746142), (7, 9, 0.04389477),
                                              (0, 0, 1.14e-06), (0, 7, -0.00025538)]
        for (i, j, v) in expected2 { #expect(Swift.abs(k2[i * 16 + j] - v) < 1e-6, "k2[\(i),\(j)] = \(k2[i * 16 + j]), expected \(v)") }
        let k3 = Degradation.lanczosKernel(factor: 4, support: 3)
        #expect(k3.count == 24 * 24)
        let expected3: [(Int, Int, Float)] = [(11, 10, 0.04668724), (11, 11, 0.05936398), (12, 13, 0.04668724),
                                              (0, 0, 2.12e-07), (0, 11, 0.00011222), (11, 3, 0.00124852)]
        for (i, j, v) in expected3 { #expect(Swift.abs(k3[i * 24 + j] - v) < 1e-6, "k3[\(i),\(j)] = \(k3[i * 24 + j]), expected \(v)") }
        for k in [k2, k3] { #expect(Swift.abs(k.reduce(0, +) - 1) < 1e-5) }
    }

    @Test func downsamplerKeepsConstantsAndHasExactGradients() throws {
        for support in [2, 3] {
            let down = Degradation.downsampler(factor: 4, support: support)
            let constant = Tensor(shape: [1, 3, 16, 16], repeating: 0.3)
            let y = down(constant)
            #expect(y.shape == [1, 3, 4, 4])
            #expect(y.scalars.allSatisfy { Swift.abs($0 - 0.3) < 1e-5 })
            var rng = SeededGenerator(seed: 5)
            let x = Tensor.uniform([1, 3, 16, 16], generator: &rng)
            let target = Tensor.uniform([1, 3, 4, 4], generator: &rng)
            try checkGradient("lanczos\(support) downsampler", x) { down($0).mseLoss(target) }
        }
    }

    /// The lanczos3 forward model is the degradation itself: away from the borders (where PIL
    /// renormalises the cut kernel and the downsampler replicates pixels) it reproduces the
    /// Lanczos resize that `--degrade` makes the low-resolution input with, to its 8-bit
    /// rounding; the paper's lanczos2 does not.
    @Test func lanczos3DownsamplerIsTheDegradingResize() {
        for factor in [4, 8] {
            let side = 12 * factor
            let image = RestorationTests.photo(width: side, height: side)
            let low = image.resized(width: 12, height: 12, filter: .lanczos).tensor()
            func interiorError(_ support: Int) -> Float {
                let y = Degradation.downsampler(factor: factor, support: support)(image.tensor())
                #expect(y.shape == [1, 3, 12, 12])
                var worst: Float = 0
                for c in 0..<3 { for i in 3..<9 { for j in 3..<9 {
                    let k = (c * 12 + i) * 12 + j
                    worst = Swift.max(worst, Swift.abs(y.data[k] - low.data[k]))
                } } }
                return worst
            }
            let matched = interiorError(3), paper = interiorError(2)
            #expect(matched <= 0.51 / 255, "x\(factor): lanczos3 against the resize: \(matched * 255) levels")
            #expect(paper > 2 / 255, "x\(factor): lanczos2 against the resize: \(paper * 255) levels")
        }
    }

    @Test func lanczosResizeMatchesPIL() {
        // PIL Image.resize((3, 2), Image.LANCZOS) of this 12x8 image.
        var px = [UInt8]()
        for y in 0..<8 { for x in 0..<12 {
            let v = (x * 37 + y * 11) % 256, flipped = (x * 37 + (7 - y) * 11) % 256
            px += [UInt8(v), UInt8(flipped), UInt8(255 - v)]
        } }
        let small = RGBImage(width: 12, height: 8, pixels: px).resized(width: 3, height: 2, filter: .lanczos)
        let pil: [UInt8] = [88, 133, 167, 151, 128, 104, 100, 136, 155, 133, 88, 122, 128, 151, 127, 136, 100, 119]
        #expect(zip(small.pixels, pil).allSatisfy { Swift.abs(Int($0) - Int($1)) <= 1 }, "\(small.pixels)")
    }

    @Test func degradationsAreSeededAndHaveTheirStatistics() throws {
        let image = RestorationTests.photo(width: 64, height: 64)
        let a = Degradation.noisy(image, sigma: 25, seed: 1), b = Degradation.noisy(image, sigma: 25, seed: 1)
        #expect(a == b)
        #expect(a != Degradation.noisy(image, sigma: 25, seed: 2))
        let mid = zip(a.pixels, image.pixels).filter { $0.1 > 80 && $0.1 < 175 }.map { Double(Int($0.0) - Int($0.1)) }
        let std = (mid.map { $0 * $0 }.reduce(0, +) / Double(mid.count)).squareRoot()
        #expect(std > 22 && std < 28, "noise std \(std)")
        let mask = Degradation.randomMask(width: 64, height: 64, drop: 0.5, seed: 3)
        let kept = Degradation.maskTensor(mask)
        let fraction = kept.scalars.reduce(0, +) / Float(kept.count)
        #expect(fraction > 0.44 && fraction < 0.56, "kept \(fraction)")
        #expect(mask == Degradation.randomMask(width: 64, height: 64, drop: 0.5, seed: 3))
        // JPEG: quality 90 is close to the photo, quality 5 is not; damaged data is an error.
        var smooth = [UInt8]()
        for y in 0..<64 { for x in 0..<64 { smooth += [UInt8(x * 4), UInt8(y * 4), UInt8(128 + (x - y) / 2)] } }
        let gradient = RGBImage(width: 64, height: 64, pixels: smooth)
        let good = try JPEG.roundTrip(gradient, quality: 90), bad = try JPEG.roundTrip(gradient, quality: 5)
        let goodPSNR = ImageMetrics.psnr(good.tensor(), gradient.tensor()), badPSNR = ImageMetrics.psnr(bad.tensor(), gradient.tensor())
        #expect(goodPSNR > 35 && goodPSNR > badPSNR + 5, "quality 90: \(goodPSNR) dB, quality 5: \(badPSNR) dB")
        #expect(throws: ImageError.self) { try JPEG.decode(Data([0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3])) }
    }

    @Test func trackerTakesTheOutputWhereTheVarianceBottomsOut() {
        let tracker = RestorationTracker(ZeroImage(side: 2), height: 2, width: 2, averaging: 0, decay: 0.2)
        // Outputs jump by an amplitude that shrinks until iteration 60, then grows again.
        var rng = SeededGenerator(seed: 9)
        for t in 0..<120 {
            let amplitude = 0.01 + Float(Swift.abs(t - 60)) / 60
            let x = Tensor(shape: [1, 3, 2, 2], scalars: (0..<12).map { _ in amplitude * (rng.nextUnitFloat() - 0.5) })
            _ = tracker.observe(x, iteration: t, groundTruth: nil)
        }
        let m = tracker.varianceMinimumIteration ?? 0
        #expect(m > 50 && m < 80, "minimum at \(m)")
        #expect(tracker.observations == 120)
    }

    /// The reported average is the bias-corrected exponential average, written out literally:
    /// sum over j of (1 - a) a^(k-j) x_j / (1 - a^k): the first output is taken whole, and keeps
    /// no weight of a^(k-1) as in an average started at it (which this fails from k = 2).
    @Test func averageIsTheBiasCorrectedExponentialAverage() {
        let a = 0.9
        let tracker = RestorationTracker(ZeroImage(side: 1), height: 1, width: 1, averaging: Float(a), decay: 0.2)
        var rng = SeededGenerator(seed: 4)
        var outputs = [[Float]]()
        for k in 1...40 {
            let x = (0..<3).map { _ in rng.nextUnitFloat() }
            outputs.append(x)
            _ = tracker.observe(Tensor(shape: [1, 3, 1, 1], scalars: x), iteration: k - 1, groundTruth: nil)
            for c in 0..<3 {
                var sum = 0.0
                for (j, o) in outputs.enumerated() { sum += (1 - a) * pow(a, Double(k - 1 - j)) * Double(o[c]) }
                let expected = sum / (1 - pow(a, Double(k)))
                #expect(Swift.abs(Double(tracker.cleanImage().data[c]) - expected) < 1e-5, "output \(k), channel \(c)")
            }
        }
    }

    @Test func specsRefuseWhatATaskCannotTake() throws {
        let dir = try RestorationTests.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/p.png"
        try PNG.write(RestorationTests.photo(), path: path)
        func resolve(_ task: RestorationTask, degrade: Bool = true) throws -> RestorationSpec {
            var r = RestorationRequest(task: task, input: path); r.degrade = degrade
            return try RestorationSpec.resolve(r)
        }
        #expect(throws: RunSpecError.self) { try resolve(RestorationTask(kind: .superres, factor: 3)) }
        #expect(throws: RunSpecError.self) { try resolve(RestorationTask(kind: .inpaint)) }
        #expect(throws: RunSpecError.self) { try resolve(RestorationTask(kind: .inpaint, drop: 1.5)) }
        #expect(throws: RunSpecError.self) { try resolve(RestorationTask(kind: .denoise, factor: 4)) }
        #expect(throws: RunSpecError.self) { try resolve(RestorationTask(kind: .flash)) }
        let d = try resolve(RestorationTask(kind: .denoise))
        #expect(d.task.sigma == 25 && d.prior.averaging == 0.99 && d.stopping.kind == .variance)
        let s = try resolve(RestorationTask(kind: .superres, factor: 8))
        #expect(s.iterations == 4000 && s.prior.generator?.regNoiseStd == 0.05 && s.task.downsampler == .lanczos3)
        #expect(try resolve(RestorationTask(kind: .superres, factor: 4, downsampler: .lanczos2)).task.downsampler == .lanczos2)
        #expect(throws: RunSpecError.self) { try resolve(RestorationTask(kind: .denoise, downsampler: .lanczos3)) }
        // A run.json from before the downsampler was recorded ran lanczos2: it reads as nil.
        let old = try JSONDecoder().decode(RestorationTask.self, from: Data(#"{"kind": "superres", "factor": 4}"#.utf8))
        #expect(old.downsampler == nil)
        let i = try resolve(RestorationTask(kind: .inpaint, drop: 0.5))
        #expect(i.iterations == 3000 && i.prior.averaging == 0.99 && i.stopping.kind == .budget)
    }

    /// A small generator and few iterations: the library path of `dipviz restore`.
    static func spec(_ task: RestorationTask, input: String, iterations: Int, prior: RestorationPriorKind = .dip) throws -> RestorationSpec {
        var r = RestorationRequest(task: task, input: input)
        r.degrade = true; r.prior = prior; r.iterations = iterations; r.snapshotEvery = 2; r.seed = 4
        var s = try RestorationSpec.resolve(r)
        if prior == .dip { s.prior.generator = smallGenerator; s.prior.generator?.regNoiseStd = 0.03 }
        return s
    }

    @Test func everyTaskRestoresAndAResumedRunEqualsAnUninterruptedOne() throws {
        let dir = try RestorationTests.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/p.png"
        try PNG.write(RestorationTests.photo(), path: path)
        for task in [RestorationTask(kind: .denoise), RestorationTask(kind: .superres, factor: 4), RestorationTask(kind: .inpaint, drop: 0.5),
                     RestorationTask(kind: .jpeg)] {
            let spec = try RestorationTests.spec(task, input: path, iterations: 6)
            let whole = try Restoration.run(spec, folder: try ResultFolder(path: dir + "/\(task.kind)-whole"))
            #expect(whole.metrics.ending == .finished && whole.metrics.iterations == 6)
            #expect(whole.metrics.result != nil, "\(task.kind): no PSNR against the ground truth")
            if task.kind == .superres { #expect(whole.metrics.baselines["bicubic"] != nil) }
            // Averaging: the curve has the average's PSNR and the output's own beside it.
            #expect(spec.prior.averaging > 0)
            let values = try RestorationTests.lastCurveValues(dir + "/\(task.kind)-whole")
            #expect(values["psnr"] != nil && values["output_psnr"] != nil && values["psnr"] != values["output_psnr"], "\(task.kind): \(values)")
            // Stopped after 3 iterations, then continued: the same image.
            var stop = RunControl(); var steps = 0
            stop.shouldStop = { steps += 1; return steps > 3 }
            // The folder's lock is released when the first process (here: its ResultFolder) ends.
            let ending = try Restoration.run(spec, folder: try ResultFolder(path: dir + "/\(task.kind)-part"), control: stop).metrics.ending
            #expect(ending == .interrupted)
            let rest = try Restoration.resume(directory: dir + "/\(task.kind)-part")
            #expect(rest.metrics.ending == .finished)
            let a = try Data(contentsOf: URL(fileURLWithPath: dir + "/\(task.kind)-whole/image.png"))
            let b = try Data(contentsOf: URL(fileURLWithPath: dir + "/\(task.kind)-part/image.png"))
            #expect(a == b, "\(task.kind): resumed run differs")
        }
        // TV fits the observation and beats the noisy input on a smooth photo.
        let tv = try Restoration.run(try RestorationTests.spec(RestorationTask(kind: .denoise), input: path, iterations: 60, prior: .tv),
                                     folder: try ResultFolder(path: dir + "/tv"))
        #expect((tv.metrics.result?.psnr ?? 0) > (tv.metrics.input?.psnr ?? 99), "TV: \(tv.metrics)")
        let tvValues = try RestorationTests.lastCurveValues(dir + "/tv")
        #expect(tvValues["psnr"] != nil && tvValues["output_psnr"] == nil, "TV does not average: \(tvValues)")
    }

    /// Flash/no-flash: the flash photo is the generator's code and the no-flash photo the target;
    /// there is no ground truth, so no PSNR, and the fit improves.
    @Test func flashRestoresTowardsTheNoFlashPhoto() throws {
        let dir = try RestorationTests.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let flash = RestorationTests.photo()
        try PNG.write(flash, path: dir + "/flash.png")
        try PNG.write(RGBImage(width: flash.width, height: flash.height, pixels: flash.pixels.map { $0 / 2 + 20 }), path: dir + "/dark.png")
        var r = RestorationRequest(task: RestorationTask(kind: .flash), input: dir + "/flash.png")
        r.noFlash = dir + "/dark.png"; r.iterations = 20; r.snapshotEvery = 10; r.seed = 1
        var spec = try RestorationSpec.resolve(r)
        #expect(spec.prior.generator?.inputDepth == 3 && spec.prior.learningRate == 0.1)
        var small = smallGenerator
        small.inputDepth = 3
        spec.prior.generator = small
        let run = try Restoration.run(spec, folder: try ResultFolder(path: dir + "/run"))
        #expect(run.metrics.ending == .finished && run.metrics.result == nil && run.metrics.input == nil)
        for name in ["image.png", "input.png", "flash.png"] { #expect(FileManager.default.fileExists(atPath: dir + "/run/" + name), "\(name)") }
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/run/curve.json"))) as? [String: Any]
        let losses = (((json?["curves"] as? [String: Any])?["image"] as? [[String: Any]]) ?? []).compactMap { $0["loss"] as? Double }
        #expect(losses.count >= 2 && losses.last! < losses[0] / 2, "losses \(losses)")
    }

    /// The values of the last point of a run's curve.json.
    static func lastCurveValues(_ folder: String) throws -> [String: Double] {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/curve.json"))) as? [String: Any]
        let points = (json?["curves"] as? [String: Any])?["image"] as? [[String: Any]]
        return (points?.last?["values"] as? [String: Double]) ?? [:]
    }

    @Test func theStartFileHoldsTheCodeAndWeightsBeforeTheFirstStep() throws {
        let dir = try RestorationTests.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/p.png"
        try PNG.write(RestorationTests.photo(), path: path)
        let spec = try RestorationTests.spec(RestorationTask(kind: .superres, factor: 4), input: path, iterations: 3)
        let start = dir + "/start.ckpt"
        _ = try Restoration.run(spec, folder: try ResultFolder(path: dir + "/run"), saveStart: start)
        let saved = try Checkpoint.load(path: start, specKey: spec.key, iterations: spec.iterations)
        let fresh = try DeepImagePrior(spec.prior.generator!, height: 32, width: 32, seed: spec.seed)
        let expected = [fresh.code] + fresh.parameters
        #expect(saved.iteration == 0 && saved.tensors.count == expected.count)
        // Equal to a fresh prior of the same seed, so written before any step moved the weights.
        for (a, b) in zip(saved.tensors, expected) { #expect(a.shape == b.shape && a.scalars == b.scalars) }
        // A finished run, or a prior without a generator, has no start to give.
        #expect(throws: RunSpecError.self) { try Restoration.run(spec, folder: try ResultFolder(path: dir + "/run"), saveStart: dir + "/again.ckpt") }
        let tv = try RestorationTests.spec(RestorationTask(kind: .denoise), input: path, iterations: 3, prior: .tv)
        #expect(throws: RunSpecError.self) { try Restoration.run(tv, folder: try ResultFolder(path: dir + "/tv"), saveStart: dir + "/tv.ckpt") }
        #expect(!FileManager.default.fileExists(atPath: dir + "/again.ckpt") && !FileManager.default.fileExists(atPath: dir + "/tv.ckpt"))
    }
}
