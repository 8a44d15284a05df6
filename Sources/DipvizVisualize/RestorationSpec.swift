import DipvizImage
import DipvizPrior
import DipvizTensor
import Foundation

/// The restoration tasks of the Deep Image Prior paper (Ulyanov, Vedaldi & Lempitsky, CVPR
/// 2018, section 4).
public enum RestorationTaskKind: String, Codable, Sendable, CaseIterable {
    case denoise, superres, inpaint, jpeg, flash
}

/// The super-resolution forward model: the Lanczos kernel that the restored image is
/// downsampled with before it is compared with the low-resolution input (the Deep Image Prior
/// code's `KERNEL_TYPE`, `models/downsampler.py`).
public enum SuperresDownsampler: String, Codable, Sendable, CaseIterable {
    /// Support 2: the paper's notebook (`KERNEL_TYPE='lanczos2'`).
    case lanczos2
    /// Support 3: PIL's LANCZOS, the resize that makes the low-resolution input, both in
    /// `--degrade` and in the paper's code (`load_LR_HR_imgs_sr`), so that the data term
    /// compares like with like. The default: on the three 256 px bar crops it gains TV
    /// 0.2-0.3 dB over `lanczos2`, DIP's last output 0-0.1 dB (README, super-resolution).
    case lanczos3

    var support: Int { self == .lanczos2 ? 2 : 3 }
}

/// What is restored and how the observation came about.
public struct RestorationTask: Codable, Equatable, Sendable {
    public var kind: RestorationTaskKind
    /// Super-resolution factor (4 or 8, the paper's).
    public var factor: Int?
    /// Super-resolution's forward model; nil in a run.json written before it was recorded,
    /// which ran `lanczos2`.
    public var downsampler: SuperresDownsampler?
    /// Inpainting: a mask file (white known, black missing), or the fraction of pixels dropped
    /// at random (the mask is drawn from the seed).
    public var mask: FileReference?
    public var drop: Float?
    /// Flash/no-flash: the no-flash photo, which the output is fitted to; the flash photo
    /// (the input) is the generator's code.
    public var noFlash: FileReference?
    /// With `degrade`: noise standard deviation in 0...255 units (denoise), JPEG quality (jpeg).
    public var sigma: Float?
    public var quality: Int?

    enum CodingKeys: String, CodingKey { case kind, factor, downsampler, mask, drop, noFlash = "no_flash", sigma, quality }

    public init(kind: RestorationTaskKind, factor: Int? = nil, downsampler: SuperresDownsampler? = nil, mask: FileReference? = nil,
                drop: Float? = nil, noFlash: FileReference? = nil, sigma: Float? = nil, quality: Int? = nil) {
        self.kind = kind; self.factor = factor; self.downsampler = downsampler; self.mask = mask; self.drop = drop; self.noFlash = noFlash
        self.sigma = sigma; self.quality = quality
    }
}

public enum RestorationPriorKind: String, Codable, Sendable, CaseIterable {
    /// The paper's skip network for the task.
    case dip
    /// Heckel & Hand's Deep Decoder.
    case deepDecoder = "deep-decoder"
    /// Pixels with an isotropic total-variation penalty (the classical baseline).
    case tv
}

/// The prior and its optimiser settings.
public struct RestorationPrior: Codable, Equatable, Sendable {
    public var kind: RestorationPriorKind
    public var generator: PriorConfiguration?
    /// Adam's rate (generator weights, or pixels for tv).
    public var learningRate: Float
    /// Weight of the exponential average of outputs (the paper's `exp_weight`; 0: none).
    public var averaging: Float
    /// The tv prior's weight lambda of TV(x) against the mean squared data term.
    public var tvWeight: Float?

    enum CodingKeys: String, CodingKey { case kind, generator, learningRate = "learning_rate", averaging, tvWeight = "tv_weight" }

    public init(kind: RestorationPriorKind, generator: PriorConfiguration?, learningRate: Float, averaging: Float, tvWeight: Float? = nil) {
        self.kind = kind; self.generator = generator; self.learningRate = learningRate; self.averaging = averaging; self.tvWeight = tvWeight
    }
}

/// When the result is taken. `variance` needs no ground truth: the running (exponentially
/// weighted) variance of the outputs falls while the image forms and rises once the generator
/// starts fitting the corruption; the result is the output where it was lowest, and the run
/// stops `patience` iterations after that minimum (Wang, Li, Zhuang, Chen, Liang & Sun, "Early
/// Stopping for Deep Image Prior", TMLR 2023: their exponential-moving-variance variant).
/// `budget` runs every iteration and keeps the last output (the paper's fixed budgets).
public struct StoppingRule: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable, CaseIterable { case variance, budget }
    public var kind: Kind
    /// Weight of a new output in the moving mean and variance.
    public var decay: Float
    public var patience: Int

    public init(kind: Kind, decay: Float = 0.01, patience: Int = 500) { self.kind = kind; self.decay = decay; self.patience = patience }
}

/// A crop of the input (applied to every image of the task before anything else).
public struct CropBox: Codable, Equatable, Sendable {
    public var x: Int, y: Int, width: Int, height: Int
    public init(x: Int, y: Int, width: Int, height: Int) { self.x = x; self.y = y; self.width = width; self.height = height }

    /// `X,Y,W,H` or `X,Y,SIZE`.
    public static func parse(_ text: String) throws -> CropBox {
        let v = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard v.allSatisfy({ $0 != nil && $0! >= 0 }), v.count == 3 || v.count == 4 else {
            throw RunSpecError.invalid(field: "crop", message: "'\(text)' is not a crop; write X,Y,W,H or X,Y,SIZE with whole numbers >= 0")
        }
        return CropBox(x: v[0]!, y: v[1]!, width: v[2]!, height: v.count == 4 ? v[3]! : v[2]!)
    }
}

/// One restoration experiment: the restoration counterpart of `RunSpec`, which needs no model.
public struct RestorationSpec: Codable, Equatable, Sendable {
    public static let formatVersion = 1
    public var task: RestorationTask
    /// The corrupted image (or, with `degrade`, the clean photo the corruption is made from).
    public var input: FileReference
    /// Synthesise the corrupted image from `input` (seeded); the clean photo is the ground truth.
    public var degrade: Bool
    public var crop: CropBox?
    public var prior: RestorationPrior
    public var iterations: Int
    public var seed: UInt64
    public var snapshotEvery: Int
    public var stopping: StoppingRule

    enum CodingKeys: String, CodingKey {
        case task, input, degrade, crop, prior, iterations, seed, snapshotEvery = "snapshot_every", stopping
    }

    public var canonicalJSON: Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)) ?? Data()
    }

    /// The checkpoint and cache key.
    public var key: String {
        ContentHash.hex(ContentHash.of(canonicalJSON + Data("restoration format \(RestorationSpec.formatVersion)".utf8)))
    }

    public static let factors = [4, 8]

    public func validate() throws {
        func check(_ ok: Bool, _ field: String, _ message: @autoclosure () -> String) throws {
            if !ok { throw RunSpecError.invalid(field: field, message: message()) }
        }
        try check(RunSpec.iterationCounts.contains(iterations), "iterations", "\(iterations); valid: \(RunSpec.iterationCounts.lowerBound)...\(RunSpec.iterationCounts.upperBound)")
        try check(snapshotEvery >= 1, "snapshot-every", "\(snapshotEvery); valid: 1 or more")
        try check(!input.path.isEmpty, "input", "no image given")
        try check(prior.learningRate.isFinite && prior.learningRate > 0, "lr", "\(prior.learningRate); give a finite rate above 0")
        try check(prior.averaging.isFinite && prior.averaging >= 0 && prior.averaging < 1, "averaging", "\(prior.averaging); valid: 0 <= weight < 1")
        try check(stopping.decay.isFinite && stopping.decay > 0 && stopping.decay <= 1, "stop-decay", "\(stopping.decay); valid: 0 < decay <= 1")
        try check(stopping.patience >= 1, "patience", "\(stopping.patience); valid: 1 or more")
        if let c = crop { try check(c.width >= 8 && c.height >= 8 && c.width <= 8192 && c.height <= 8192, "crop", "\(c.width)x\(c.height); valid sides: 8...8192") }
        switch prior.kind {
        case .dip, .deepDecoder:
            guard let g = prior.generator else { throw RunSpecError.invalid(field: "prior", message: "the \(prior.kind.rawValue) prior needs a generator") }
            do { try g.validate() } catch { throw RunSpecError.invalid(field: "generator", message: "\(error)") }
            try check(prior.tvWeight == nil, "tv-weight", "applies to --prior tv only")
        case .tv:
            try check(prior.generator == nil, "prior", "the tv prior takes no generator")
            try check(prior.tvWeight.map { $0.isFinite && $0 >= 0 } ?? false, "tv-weight", "give a finite weight >= 0")
        }
        let t = task
        try check(t.kind == .superres || t.factor == nil, "factor", "applies to superres only")
        try check(t.kind == .superres || t.downsampler == nil, "downsampler", "applies to superres only")
        try check(t.kind == .inpaint || (t.mask == nil && t.drop == nil), "mask", "--mask and --drop apply to inpaint only")
        try check(t.kind == .flash || t.noFlash == nil, "no-flash", "applies to flash only")
        try check(t.sigma == nil || (t.kind == .denoise && degrade), "sigma", "applies to denoise with --degrade only")
        try check(t.quality == nil || (t.kind == .jpeg && degrade), "quality", "applies to jpeg with --degrade only")
        switch t.kind {
        case .denoise:
            if degrade { try check(t.sigma.map { $0.isFinite && $0 > 0 && $0 <= 255 } ?? false, "sigma", "give a noise level in 0 < sigma <= 255") }
        case .superres:
            try check(t.factor.map(RestorationSpec.factors.contains) ?? false, "factor", "\(t.factor.map(String.init) ?? "none"); valid: 4, 8")
        case .inpaint:
            try check((t.mask == nil) != (t.drop == nil), "mask", "give either --mask MASK.png or --drop FRACTION")
            if let d = t.drop { try check(d.isFinite && d > 0 && d < 1, "drop", "\(d); valid: 0 < fraction < 1") }
        case .jpeg:
            if degrade { try check(t.quality.map(JPEG.qualities.contains) ?? false, "quality", "give a JPEG quality in 1...100") }
        case .flash:
            try check(t.noFlash != nil, "no-flash", "give --no-flash IMAGE (the photo taken without flash)")
            try check(!degrade, "degrade", "flash/no-flash pairs are photographed, not synthesised")
        }
    }
}

/// What a user asked for; nil means the task's default (`RestorationSpec.resolve`).
public struct RestorationRequest: Sendable {
    public var task: RestorationTask
    public var input: String
    public var degrade = false
    public var crop: CropBox?
    public var prior: RestorationPriorKind = .dip
    public var iterations: Int?
    public var learningRate: Float?
    public var averaging: Float?
    public var regNoise: Float?
    public var tvWeight: Float?
    public var stopping: StoppingRule.Kind?
    public var patience: Int?
    public var seed: UInt64 = 0
    public var snapshotEvery: Int?
    public var mask: String?
    public var noFlash: String?

    public init(task: RestorationTask, input: String) { self.task = task; self.input = input }
}

extension RestorationSpec {
    /// Fills in the paper's per-task settings and validates.
    public static func resolve(_ r: RestorationRequest) throws -> RestorationSpec {
        var task = r.task
        if let m = r.mask { task.mask = try FileReference.make(m, what: "mask") }
        if let n = r.noFlash { task.noFlash = try FileReference.make(n, what: "no-flash photo") }
        if r.degrade && task.kind == .denoise && task.sigma == nil { task.sigma = 25 }
        if r.degrade && task.kind == .jpeg && task.quality == nil { task.quality = 10 }
        if task.kind == .superres && task.downsampler == nil { task.downsampler = .lanczos3 }
        let preset = RestorationPreset.of(task, prior: r.prior)
        var generator = preset.generator
        if let noise = r.regNoise {
            guard generator != nil else { throw RunSpecError.invalid(field: "reg-noise", message: "applies to the dip and deep-decoder priors only") }
            generator?.regNoiseStd = noise
        }
        if r.tvWeight != nil && r.prior != .tv { throw RunSpecError.invalid(field: "tv-weight", message: "applies to --prior tv only") }
        let prior = RestorationPrior(kind: r.prior, generator: generator, learningRate: r.learningRate ?? preset.learningRate,
                                     averaging: r.averaging ?? preset.averaging, tvWeight: r.prior == .tv ? (r.tvWeight ?? preset.tvWeight) : nil)
        let spec = RestorationSpec(task: task, input: try FileReference.make(r.input, what: "image"), degrade: r.degrade, crop: r.crop,
                                   prior: prior, iterations: r.iterations ?? preset.iterations, seed: r.seed,
                                   snapshotEvery: r.snapshotEvery ?? 100,
                                   stopping: StoppingRule(kind: r.stopping ?? preset.stopping, patience: r.patience ?? StoppingRule(kind: .variance).patience))
        try spec.validate()
        return spec
    }
}

/// The paper's settings per task (its notebooks: `denoising.ipynb`, `super-resolution.ipynb`,
/// `restoration.ipynb`, `inpainting.ipynb`, `flash-no-flash.ipynb`), Heckel & Hand's for the
/// Deep Decoder (`denoising.ipynb` of their supplement), and TV weights for the baseline.
struct RestorationPreset {
    var generator: PriorConfiguration?
    var learningRate: Float
    var averaging: Float
    var iterations: Int
    var stopping: StoppingRule.Kind
    var tvWeight: Float? = nil

    /// The skip network the paper uses for denoising, super-resolution, JPEG and random-pixel
    /// inpainting (`get_net(..., 'skip', skip_n33d=128, skip_n33u=128, skip_n11=4,
    /// num_scales=5, upsample_mode='bilinear')`): five levels of 128 channels, 3x3 kernels,
    /// 4-channel skips, strided downsampling, reflection padding, LeakyReLU, sigmoid output;
    /// 32 channels of uniform noise in [0, 0.1) as its code.
    static func skip128(regNoise: Float, upsampling: UpsamplingMode = .bilinear, skip: Int = 4, inputDepth: Int = 32) -> PriorConfiguration {
        var c = SkipConfiguration()
        c.channelsDown = [128, 128, 128, 128, 128]; c.channelsUp = c.channelsDown; c.channelsSkip = Array(repeating: skip, count: 5)
        c.kernelsDown = [3, 3, 3, 3, 3]; c.kernelsUp = c.kernelsDown
        c.downsampling = .stride; c.upsampling = upsampling; c.padding = .reflect
        return PriorConfiguration(architecture: .skip(c), input: .uniform, inputDepth: inputDepth, regNoiseStd: regNoise, netSize: nil)
    }

    static func of(_ task: RestorationTask, prior: RestorationPriorKind) -> RestorationPreset {
        switch prior {
        case .tv:
            // Weights of TV against the per-pixel mean squared error, chosen on a photo kept out
            // of the measurements (scikit-image's rocket, 128x128 at 200,100): denoising scales
            // with the noise level; super-resolution and inpainting observe their pixels
            // exactly, so a light weight only fills in what the data leaves open.
            let weight: Float
            switch task.kind {
            case .denoise: weight = 0.2 * (task.sigma ?? 25) / 25
            case .jpeg: weight = 0.08
            case .superres, .inpaint: weight = 0.004
            case .flash: weight = 0.01
            }
            return RestorationPreset(generator: nil, learningRate: 0.01, averaging: 0, iterations: 500, stopping: .budget, tvWeight: weight)
        case .deepDecoder:
            // Heckel & Hand's denoising setting: k = 128 channels, 5 layers, Adam 0.01, 1900 steps.
            var d = DeepDecoderConfiguration()
            d.channels = 128; d.layers = 5
            let g = PriorConfiguration(architecture: .deepDecoder(d), input: .uniform, inputDepth: 128, netSize: nil)
            return RestorationPreset(generator: g, learningRate: 0.01, averaging: 0, iterations: 1900, stopping: .budget)
        case .dip:
            switch task.kind {
            case .denoise:
                // F16: reg_noise_std = 1/30, LR 0.01, exp_weight 0.99; 3000 iterations in the
                // notebook, 1800 in the paper's figure 4 for sigma 25.
                return RestorationPreset(generator: skip128(regNoise: 1.0 / 30), learningRate: 0.01, averaging: 0.99, iterations: 1800, stopping: .variance)
            case .jpeg:
                // JPEG artefacts are removed with the denoising setting (paper, section 4).
                return RestorationPreset(generator: skip128(regNoise: 1.0 / 30), learningRate: 0.01, averaging: 0.99, iterations: 1800, stopping: .variance)
            case .superres:
                // x4: 2000 iterations, reg_noise_std 0.03; x8: 4000, 0.05. The notebook reports
                // the last output; the exponential average of outputs (0.99), which leaves the
                // optimisation as it is, scores 0.4-0.6 dB higher on the three 256 px bar crops
                // (README, super-resolution).
                let eight = task.factor == 8
                return RestorationPreset(generator: skip128(regNoise: eight ? 0.05 : 0.03), learningRate: 0.01, averaging: 0.99,
                                         iterations: eight ? 4000 : 2000, stopping: .budget)
            case .inpaint:
                if task.drop != nil {
                    // Random pixels (`restoration.ipynb`, barbara 50%): the same skip network with
                    // reg_noise_std 0.03. The notebook runs 11000 steps at LR 0.001; we take 0.01
                    // (its text-inpainting rate) for a quarter of the steps and smooth the jitter
                    // of the larger rate with the paper's exponential average of outputs (0.99):
                    // on the 128 px chelsea crop the average gains 0.6-1 dB over the last output
                    // and is within 0.1 dB of its 4000-step value at 3000 steps.
                    return RestorationPreset(generator: skip128(regNoise: 0.03), learningRate: 0.01, averaging: 0.99, iterations: 3000, stopping: .budget)
                }
                // Region and text masks (`inpainting.ipynb`, kate): 128-channel skips, nearest
                // upsampling, reg_noise_std 0.03, LR 0.01, 6000 iterations.
                return RestorationPreset(generator: skip128(regNoise: 0.03, upsampling: .nearest, skip: 128), learningRate: 0.01, averaging: 0,
                                         iterations: 6000, stopping: .budget)
            case .flash:
                // The flash photo is the code (3 channels), LR 0.1, no input noise, 600 steps. The
                // notebook upsamples the two finest levels with nearest, the others bilinearly;
                // here every level is bilinear.
                return RestorationPreset(generator: skip128(regNoise: 0, inputDepth: 3), learningRate: 0.1, averaging: 0, iterations: 600, stopping: .budget)
            }
        }
    }
}
