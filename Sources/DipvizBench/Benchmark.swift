import Foundation
import DipvizTensor
import DipvizPrior
import DipvizONNX
import DipvizVisualize

/// One benchmark line: the median of repeated timings of a case.
public struct BenchmarkResult: Codable, Sendable {
    public let `case`: String
    public let ms: Double
    /// Median processor time (user + system, all threads) of one call: steadier than `ms` on a
    /// loaded machine, and `cpu_ms / ms` says how many cores the case kept busy.
    public let cpu_ms: Double
    public let gflops: Double
    /// The case's peak resident memory in MB (the process high-water mark, reset before the
    /// case is set up; Linux only, else 0).
    public let peak_rss_mb: Double
    /// The engine's vector kernels (portable, avx2, avx512).
    public let kernels: String
    /// The arithmetic of the classifiers' convolutions (fp32, bf16).
    public let precision: String
    public let repeats: Int
    public let openblas_core: String
    /// How that core was chosen: detected by OpenBLAS, selected by dipviz, or set by the user.
    public let openblas_choice: String
    public let threads: Int
    public let detail: String?
}

public struct BenchmarkCase: Sendable {
    public let name: String
    public let detail: String?
    /// Returns the closure to time and the floating-point operations of one call (for the
    /// GFLOP/s figure); set-up work happens here, outside the timing.
    public let prepare: @Sendable () throws -> (body: () -> Void, flops: Double)

    init(name: String, flops: Double, detail: String?, prepare: @escaping @Sendable () throws -> () -> Void) {
        self.name = name
        self.detail = detail
        self.prepare = { (try prepare(), flops) }
    }

    init(name: String, detail: String?, prepare: @escaping @Sendable () throws -> (body: () -> Void, flops: Double)) {
        self.name = name
        self.detail = detail
        self.prepare = prepare
    }
}

/// A case that cannot run here (a missing model); reported, not failed.
public struct BenchmarkSkip: Error { public let reason: String }

public enum Benchmarks {
    /// The arithmetic of the convolutions of the classifiers the cases set up (bench --precision).
    @TaskLocal static var classifierPrecision = ConvPrecision.fp32

    /// Times `c`, whose classifier (if it has one) runs its convolutions with `precision`
    /// (checked to run here by the caller).
    public static func run(_ c: BenchmarkCase, repeats: Int, warmup: Int = 1, precision: ConvPrecision = .fp32) throws -> BenchmarkResult {
        BufferPool.shared.trim()
        ResidentMemory.resetPeak()
        let (body, flops) = try $classifierPrecision.withValue(precision) { try c.prepare() }
        for _ in 0..<warmup { body() }
        var times: [Double] = [], cpuTimes: [Double] = []
        for _ in 0..<Swift.max(repeats, 1) {
            let t0 = DispatchTime.now().uptimeNanoseconds, c0 = processorSeconds()
            body()
            cpuTimes.append((processorSeconds() - c0) * 1e3)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
        let median = Self.median(times)
        return BenchmarkResult(case: c.name, ms: (median * 1000).rounded() / 1000,
                               cpu_ms: (Self.median(cpuTimes) * 1000).rounded() / 1000,
                               gflops: ((flops / (median / 1000) / 1e9) * 10).rounded() / 10,
                               peak_rss_mb: (Double(ResidentMemory.peakBytes) / 1e5).rounded() / 10,
                               kernels: VectorKernels.active.description, precision: precision.rawValue,
                               repeats: times.count, openblas_core: BLAS.coreName,
                               openblas_choice: BLAS.coreReport?.summary ?? "as OpenBLAS loaded (no selection ran)",
                               threads: Parallel.workerCount, detail: c.detail)
    }

    static func median(_ values: [Double]) -> Double {
        let v = values.sorted()
        return v.count % 2 == 1 ? v[v.count / 2] : (v[v.count / 2 - 1] + v[v.count / 2]) / 2
    }

    /// Processor time of the whole process (all threads), in seconds.
    static func processorSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    public static var all: [BenchmarkCase] {
        [sgemm1024, convForward, convBackward, dipStep256, alexnetForward224, vgg16Forward224, onnxLoadVGG16,
         dipInvertAlexNet, tvInvertAlexNet, dipMaximizeSqueezeNet] + growth
    }

    /// A case's classifier, with the convolution precision of the run.
    static func classifier(_ model: ONNXModel) throws -> ONNXNetwork {
        let net = try ONNXNetwork(model: model)
        net.convolutionPrecision = classifierPrecision
        return net
    }

    /// The structure's weights as constants, as they are when read from a file: the graph
    /// builder makes them trainable, which would add weight gradients to every step.
    static func frozen(_ model: ONNXModel) -> ONNXModel {
        for case .float(let t) in model.graph.initializers.values { t.requiresGrad = false }
        return model
    }

    /// One optimisation step of a run (the loop's body), timed alone.
    static func step<P>(_ make: @escaping @Sendable () throws -> P, _ run: @escaping @Sendable (P, RunControl) throws -> Void) -> (() -> Void) {
        let state = try? make()
        return {
            guard let state else { return }
            var control = RunControl()
            control.snapshotEvery = 1 << 30
            try? run(state, control)
        }
    }

    public static let dipInvertAlexNet = inversion(.dip, model: "alexnet", layer: "conv5", size: 224)
    public static let tvInvertAlexNet = inversion(.tv, model: "alexnet", layer: "conv5", size: 224)

    /// How a DIP inversion step grows with the image (the thread count is the process's:
    /// run with DIPVIZ_THREADS=1 for one core), and VGG16's deepest convolution at 224.
    public static let growth: [BenchmarkCase] = [128, 384, 512].map { inversion(.dip, model: "alexnet", layer: "conv5", size: $0) }
        + [inversion(.dip, model: "vgg16", layer: "conv5_3", size: 224)]

    /// The convolutional part of torchvision's AlexNet or VGG16 (random constant weights), for
    /// any input size: the classifier head of the full structures fixes the input at 224.
    static func features(_ model: String) -> ONNXModel {
        var b = ONNXGraphBuilder(seed: 0)
        if model == "vgg16" {
            for (channels, count) in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)] {
                for _ in 0..<count { b.conv(channels, kernel: 3, pad: 1); b.relu() }
                b.maxPool(2, stride: 2)
            }
        } else {
            b.conv(64, kernel: 11, stride: 4, pad: 2); b.relu(); b.maxPool(3, stride: 2)
            b.conv(192, kernel: 5, pad: 2); b.relu(); b.maxPool(3, stride: 2)
            for channels in [384, 256, 256] { b.conv(channels, kernel: 3, pad: 1); b.relu() }
            b.maxPool(3, stride: 2)
        }
        return frozen(b.model(name: model, inputShape: [1, 3, nil, nil]))
    }

    /// One inversion step of `model` (torchvision structure, random constant weights) at
    /// `layer`: the generator of the `inversion` preset (DIP) or the image itself (TV) is
    /// optimised; GFLOP counts the convolutions and linear layers as the PyTorch harness does
    /// (forward, input gradients, and the generator's weight gradients).
    static func inversion(_ prior: PriorKind, model: String, layer: String, size: Int) -> BenchmarkCase {
        let name = "\(prior == .dip ? "dip" : "tv")_invert_\(model)_\(layer)_\(size)"
        let detail = prior == .dip
            ? "one DIP inversion step, `inversion` preset generator (cropped to \(size)) + \(model) to \(layer) + MSE + backward + Adam"
            : "one TV inversion step (Mahendran & Vedaldi regularisers, jitter) at \(size) through \(model) to \(layer)"
        return BenchmarkCase(name: name, detail: detail) {
            let probe = Probe(network: try classifier(features(model)), preprocessing: .torchvision)
            var classifierMacs = 0.0
            for row in try probe.network.summarize(height: size, width: size) {
                classifierMacs += Double(row.macs)
                if row.alias == layer || row.aliases.contains(layer) { break }
            }
            // Forward and input gradient through the classifier.
            var flops = 4 * classifierMacs
            let generator = PriorConfiguration.inversion.fitted(toImageSize: size)
            if prior == .dip, case .skip(let skip) = generator.architecture {
                flops += dipStepFlops(size: generator.generatedSize(forImage: size), configuration: skip)
            }
            let x0 = Tensor.uniform([1, 3, size, size], seed: 3)
            let spec = stepSpec(.inversion(InversionObjective(image: FileReference(path: "<memory>", hash: ""), layers: [layer])),
                                prior: prior, size: size, generator: .inversion, learningRate: 1e-3)
            let step = try Runner.stepper(spec, probe: probe, photo: x0)
            return ({ try? step() }, flops)
        }
    }

    /// A run spec for a step benchmark: the model is in memory, so its file reference is a label.
    static func stepSpec(_ objective: Objective, prior kind: PriorKind, size: Int, generator: PriorConfiguration, learningRate: Float) -> RunSpec {
        var prior = PriorSpec(kind: kind)
        if kind == .dip { prior.generator = generator.fitted(toImageSize: size); prior.learningRate = learningRate } else { prior.tv = TVSettings() }
        return RunSpec(model: ModelSource(file: FileReference(path: "<memory>", hash: "")), objective: objective, prior: prior,
                       size: size, iterations: 1_000_000, seed: 0, snapshotEvery: 1_000_000)
    }

    /// The SqueezeNet committed in models/ (DIPVIZ_SQUEEZENET names another file).
    public static let dipMaximizeSqueezeNet = BenchmarkCase(
        name: "dip_maximize_squeezenet_227", flops: 0,
        detail: "one DIP class-maximisation step, `maximization` preset, SqueezeNet v1.0 at 227; gflops not counted") {
        let path = ProcessInfo.processInfo.environment["DIPVIZ_SQUEEZENET"] ?? "models/squeezenet1.0-dc.onnx"
        guard FileManager.default.fileExists(atPath: path) else { throw BenchmarkSkip(reason: "no SqueezeNet at \(path) (set DIPVIZ_SQUEEZENET)") }
        let net = try classifier(ONNXModel.load(path: path))
        let probe = Probe(network: net, preprocessing: try Preprocessing.forModel(net.model))
        let spec = stepSpec(.maximization(MaximizationObjective(layer: nil, targets: [.classScore(index: 100, score: .logit)])),
                            prior: .dip, size: 227, generator: .maximization, learningRate: 1e-2)
        let step = try Runner.stepper(spec, probe: probe, photo: nil)
        return { try? step() }
    }

    /// One Deep Image Prior step at 256x256

    public static let sgemm1024 = BenchmarkCase(name: "sgemm_1024", flops: 2 * pow(1024, 3), detail: "1024x1024 row-major") {
        let a = Tensor.uniform([1024, 1024], seed: 1), b = Tensor.uniform([1024, 1024], seed: 2)
        let c = Tensor(zeros: [1024, 1024])
        return {
            BLAS.sgemm(transposeA: false, transposeB: false, m: 1024, n: 1024, k: 1024,
                       a: a.data, lda: 1024, b: b.data, ldb: 1024, beta: 0, c: c.data, ldc: 1024)
        }
    }

    static let convFlops = 2.0 * 128 * 128 * 9 * 64 * 64

    public static let convForward = BenchmarkCase(name: "conv_fwd", flops: convFlops, detail: "1x128x64x64, 128->128 3x3 pad 1") {
        let x = Tensor.uniform([1, 128, 64, 64], seed: 1)
        let w = Tensor.uniform([128, 128, 3, 3], low: -0.03, high: 0.03, seed: 2)
        let b = Tensor.uniform([128], seed: 3)
        return { _ = GradMode.withoutGrad { x.conv2d(weight: w, bias: b, options: Conv2dOptions(padding: 1)) } }
    }

    public static let convBackward = BenchmarkCase(name: "conv_bwd", flops: 2 * convFlops,
                                                   detail: "gradients of input, weight and bias; forward not timed") {
        let x = Tensor.uniform([1, 128, 64, 64], seed: 1)
        x.requiresGrad = true
        let w = Tensor.uniform([128, 128, 3, 3], low: -0.03, high: 0.03, seed: 2)
        w.requiresGrad = true
        let b = Tensor.uniform([128], seed: 3)
        b.requiresGrad = true
        let seed = Tensor.uniform([1, 128, 64, 64], seed: 4)
        let y = x.conv2d(weight: w, bias: b, options: Conv2dOptions(padding: 1))
        return {
            x.grad = nil; w.grad = nil; b.grad = nil
            y.backward(seed: seed, retainGraph: true)
        }
    }

    /// Inference of a full torchvision classifier (random weights) through the ONNX runtime.
    static func classifierForward(_ name: String, _ make: @escaping @Sendable () -> ONNXModel) -> BenchmarkCase {
        BenchmarkCase(name: name, detail: "batch 1, 3x224x224, features and classifier, no gradient") {
            let net = try classifier(frozen(make()))
            let macs = try net.summarize(height: 224, width: 224).reduce(0) { $0 + $1.macs }
            let x = Tensor.uniform([1, 3, 224, 224], seed: 1)
            return ({ _ = try? GradMode.withoutGrad { try net(x) } }, 2 * Double(macs))
        }
    }

    public static let alexnetForward224 = classifierForward("alexnet_fwd_224") { TorchvisionStructures.alexnet() }
    public static let vgg16Forward224 = classifierForward("vgg16_fwd_224") { TorchvisionStructures.vgg16() }

    /// Loading a full VGG16 file (528 MiB of float32 weights), written once by the benchmark.
    public static let onnxLoadVGG16 = BenchmarkCase(name: "onnx_load_vgg16", flops: 0,
                                                    detail: "parse + convert weights + fold; the RSS it holds is printed to stderr") {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dipviz-bench-vgg16.onnx").path
        if !FileManager.default.fileExists(atPath: path) {
            try TorchvisionStructures.vgg16().encode().write(to: URL(fileURLWithPath: path))
        }
        BufferPool.shared.trim()
        let weightBytes = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        return {
            BufferPool.shared.trim()
            let before = residentBytes()
            let net = try? ONNXNetwork(path: path)
            let held = residentBytes() - before
            FileHandle.standardError.write(Data(String(format: "onnx_load_vgg16: file %.0f MB, held after load %.0f MB (%.2fx)\n",
                                                         Double(weightBytes) / 1e6, Double(held) / 1e6,
                                                         Double(held) / Double(max(weightBytes, 1))).utf8))
            withExtendedLifetime(net) {}
        }
    }

    /// Resident set size from /proc (Linux); 0 elsewhere.
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
    }

    /// One Deep Image Prior step at 256x256: skip generator forward, MSE loss, backward, Adam.
    public static let dipStep256 = BenchmarkCase(name: "dip_step_256", flops: dipStepFlops(size: 256),
                                                 detail: "skip 32->3, [16,32,64,128,128,128], skip 4, k [7,7,5,5,3,3], avg-pool down, nearest up, BN, LeakyReLU 0.2, sigmoid; forward+backward+Adam; gflops = nominal 45.8 GFLOP of the direct formulation per second (pooling folded into convs and upsampled convs at low resolution compute less)") {
        let (step, _) = try dipStep(size: 256)
        return step
    }

    /// The timed step and the generator's parameter count.
    public static func dipStep(size: Int, configuration: SkipConfiguration = SkipConfiguration()) throws -> (() -> Void, Int) {
        let net = try SkipNetwork.make(configuration, seed: 0)
        var rng = SeededGenerator(seed: 1)
        let z = Tensor.uniform([1, configuration.inputChannels, size, size], low: 0, high: 0.1, generator: &rng)
        let target = Tensor.uniform([1, configuration.outputChannels, size, size], generator: &rng)
        let adam = Adam(parameters: net.parameters, learningRate: 1e-3)
        let step = {
            adam.zeroGrad()
            let loss = net(z).mseLoss(target)
            loss.backward()
            adam.step()
        }
        return (step, net.parameterCount)
    }

    /// Multiply-adds x 2 of forward (convolutions), plus backward (input and weight gradients,
    /// except the input gradient of convolutions that read the noise directly).
    public static func dipStepFlops(size: Int, configuration cfg: SkipConfiguration = SkipConfiguration()) -> Double {
        var total = 0.0
        var inputDepth = cfg.inputChannels
        var res = size
        func conv(_ cin: Int, _ cout: Int, _ k: Int, at r: Int, readsNoise: Bool) {
            let f = 2.0 * Double(cin * cout * k * k) * Double(r * r)
            total += f * (readsNoise ? 2 : 3)
        }
        for i in 0..<cfg.scales {
            let first = i == 0
            let downRes = cfg.downsampling == .stride ? res / 2 : res
            if cfg.channelsSkip[i] > 0 { conv(inputDepth, cfg.channelsSkip[i], cfg.kernelSkip, at: res, readsNoise: first) }
            conv(inputDepth, cfg.channelsDown[i], cfg.kernelsDown[i], at: downRes, readsNoise: first)
            conv(cfg.channelsDown[i], cfg.channelsDown[i], cfg.kernelsDown[i], at: res / 2, readsNoise: false)
            let k = i == cfg.scales - 1 ? cfg.channelsDown[i] : cfg.channelsUp[i + 1]
            conv(cfg.channelsSkip[i] + k, cfg.channelsUp[i], cfg.kernelsUp[i], at: res, readsNoise: false)
            if cfg.pointwiseUp { conv(cfg.channelsUp[i], cfg.channelsUp[i], 1, at: res, readsNoise: false) }
            inputDepth = cfg.channelsDown[i]
            res /= 2
        }
        conv(cfg.channelsUp[0], cfg.outputChannels, 1, at: size, readsNoise: false)
        return total
    }
}

/// The process's resident-memory high-water mark (Linux: VmHWM, reset through clear_refs).
public enum ResidentMemory {
    /// Starts a new high-water mark at the current resident size.
    public static func resetPeak() {
        guard let f = fopen("/proc/self/clear_refs", "w") else { return }
        fputs("5", f)
        fclose(f)
    }

    /// VmHWM in bytes; 0 where /proc does not say.
    public static var peakBytes: Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let digits = line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
            return digits * 1024
        }
        return 0
    }
}
