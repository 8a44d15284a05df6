import DipvizPrior
import DipvizTensor
import Testing

@Suite("Engine")
struct EngineTests {
    /// A two-scale skip generator small enough for debug builds.
    static var smallSkip: SkipConfiguration {
        var cfg = SkipConfiguration()
        cfg.inputChannels = 4
        cfg.channelsDown = [4, 8]; cfg.channelsUp = [4, 8]; cfg.channelsSkip = [2, 2]
        cfg.kernelsDown = [3, 3]; cfg.kernelsUp = [3, 3]
        return cfg
    }

    @Test func seededGeneratorsRepeat() {
        let a = Tensor.normal([100], seed: 42), b = Tensor.normal([100], seed: 42), c = Tensor.normal([100], seed: 43)
        #expect(a.scalars == b.scalars)
        #expect(a.scalars != c.scalars)
        let u = Tensor.uniform([10_000], low: -2, high: 3, seed: 5).scalars
        #expect(u.allSatisfy { $0 >= -2 && $0 < 3 })
        let mean = u.reduce(0, +) / Float(u.count)
        #expect(abs(mean - 0.5) < 0.05)
        let n = Tensor.normal([20_000], mean: 1, std: 2, seed: 9).scalars
        let m = n.reduce(0, +) / Float(n.count)
        let sd = (n.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Float(n.count)).squareRoot()
        #expect(abs(m - 1) < 0.05 && abs(sd - 2) < 0.05)
    }

    @Test func pytorchDefaultInitialisationBounds() {
        var rng = SeededGenerator(seed: 1)
        let conv = Conv2d(inChannels: 8, outChannels: 4, kernel: 3, generator: &rng)
        let bound = 1 / Float(8 * 9).squareRoot()
        #expect(conv.weight.scalars.allSatisfy { abs($0) <= bound })
        #expect(conv.bias!.scalars.allSatisfy { abs($0) <= bound })
        #expect((conv.weight.scalars.map { abs($0) }.max() ?? 0) > bound * 0.9)
        let linear = Linear(inFeatures: 100, outFeatures: 3, generator: &rng)
        #expect(linear.weight.scalars.allSatisfy { abs($0) <= 0.1 })
    }

    /// A small conv net fitted to a target with Adam: the loss must fall at least 20-fold.
    @Test func tinyNetworkFitsATarget() throws {
        var rng = SeededGenerator(seed: 11)
        let net = Sequential([
            Conv2d(inChannels: 4, outChannels: 8, kernel: 3, options: Conv2dOptions(padding: 1), generator: &rng),
            BatchNorm2d(channels: 8),
            Lambda("act") { $0.leakyRelu(slope: 0.2) },
            Conv2d(inChannels: 8, outChannels: 3, kernel: 3, options: Conv2dOptions(padding: 1), generator: &rng),
            Lambda("sigmoid") { $0.sigmoid() },
        ])
        let z = Tensor.uniform([1, 4, 8, 8], low: 0, high: 0.1, generator: &rng)
        let target = Tensor.uniform([1, 3, 8, 8], low: 0.2, high: 0.8, generator: &rng)
        let adam = Adam(parameters: net.parameters, learningRate: 0.02)
        var first: Float = 0, last: Float = 0
        for i in 0..<150 {
            adam.zeroGrad()
            let loss = net(z).mseLoss(target)
            if i == 0 { first = loss.item }
            last = loss.item
            loss.backward()
            adam.step()
        }
        #expect(last < first / 20, "loss \(first) -> \(last)")
    }

    @Test func skipNetworkShapesAndDeterminism() throws {
        var cfg = EngineTests.smallSkip
        for down in Downsampling.allCases {
            for pad in [PaddingMode.zero, .reflect] {
                cfg.downsampling = down; cfg.padding = pad
                let a = try SkipNetwork.make(cfg, seed: 3), b = try SkipNetwork.make(cfg, seed: 3)
                let z = Tensor.uniform([1, 4, 16, 16], low: 0, high: 0.1, seed: 1)
                let ya = a(z), yb = b(z)
                #expect(ya.shape == [1, 3, 16, 16])
                #expect(ya.scalars == yb.scalars)
                #expect(ya.scalars.allSatisfy { $0 > 0 && $0 < 1 })
            }
        }
        cfg.kernelsUp = [3]
        #expect(throws: GeneratorError.self) { try SkipNetwork.make(cfg, seed: 0) }
    }

    /// The low-resolution decoder path must compute what concat -> upsample -> BN -> conv does.
    @Test func skipUpBlockPathsAgree() throws {
        var cfg = SkipConfiguration()
        cfg.inputChannels = 3
        cfg.channelsDown = [4, 6]; cfg.channelsUp = [4, 6]; cfg.channelsSkip = [2, 0]
        cfg.kernelsDown = [3, 3]; cfg.kernelsUp = [5, 3]
        let net = try SkipNetwork.make(cfg, seed: 4)
        let blocks = net.allLayers.compactMap { $0 as? SkipUpBlock }
        #expect(blocks.count == 2)
        let z = Tensor.uniform([1, 3, 8, 8], low: 0, high: 0.1, seed: 2)
        let initialBuffers = net.buffers.map { $0.detached() }
        func run(_ fast: Bool) -> ([Float], [[Float]], [Float]) {
            for (b, saved) in zip(net.buffers, initialBuffers) { b.copy(from: saved) }
            for b in blocks { b.allowsLowResolutionPath = fast }
            net.parameters.zeroGrad()
            let y = net(z)
            (y * y).sum().backward()
            return (y.scalars, net.parameters.map { $0.grad?.scalars ?? [] }, net.buffers.flatMap(\.scalars))
        }
        let literal = run(false), fast = run(true)
        for (a, b) in zip(literal.0, fast.0) { #expect(abs(a - b) < 1e-5) }
        for (ga, gb) in zip(literal.1, fast.1) {
            #expect(ga.count == gb.count)
            for (a, b) in zip(ga, gb) { #expect(abs(a - b) < 1e-3 * max(1, abs(a))) }
        }
        // Running statistics (unbiased variance over the upsampled count) agree too.
        for (a, b) in zip(literal.2, fast.2) { #expect(abs(a - b) < 1e-5) }
    }

    /// After the first steps of a fixed-shape loop, buffers come from the pool. Tests running in
    /// parallel share the pool and may take a buffer now and then, so some step must be free of
    /// new allocations rather than every one.
    @Test func steadyStateStepsAllocateNoBuffers() throws {
        let cfg = EngineTests.smallSkip
        let net = try SkipNetwork.make(cfg, seed: 1)
        let z = Tensor.uniform([1, 4, 16, 16], seed: 2), target = Tensor.uniform([1, 3, 16, 16], seed: 3)
        let adam = Adam(parameters: net.parameters)
        func step() { adam.zeroGrad(); let l = net(z).mseLoss(target); l.backward(); adam.step() }
        step(); step()
        var fewest = Int.max
        for _ in 0..<6 {
            let before = BufferPool.shared.systemAllocationsOnCurrentThread
            step()
            fewest = min(fewest, BufferPool.shared.systemAllocationsOnCurrentThread - before)
        }
        #expect(fewest == 0)
    }
}
