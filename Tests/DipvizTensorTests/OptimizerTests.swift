import DipvizTensor
import Foundation
import Testing

struct OptimizerCase: Decodable, CustomTestStringConvertible {
    let name: String, kind: String, steps: Int
    let params: [String: Param]
    let expected: [Float]
    var testDescription: String { name }
    func value(_ k: String) -> Float { if case .number(let d) = params[k]! { return Float(d) }; return 0 }
    func flag(_ k: String) -> Bool { if case .bool(let b) = params[k]! { return b }; return false }
}

struct OptimizerFixture: Decodable {
    let p0: [Float], c: [Float], d: [Float]
    let cases: [OptimizerCase]
    static let loaded = try! JSONDecoder().decode(OptimizerFixture.self, from: Data(contentsOf: Fixtures.url("optimizers")))
}

@Suite("Optimisers follow PyTorch's update rules")
struct OptimizerTests {
    @Test(arguments: OptimizerFixture.loaded.cases)
    func updates(_ k: OptimizerCase) {
        let f = OptimizerFixture.loaded
        let p = Tensor(shape: [6], scalars: f.p0, requiresGrad: true)
        let c = Tensor(shape: [6], scalars: f.c), d = Tensor(shape: [6], scalars: f.d)
        let opt: Optimizer
        if k.kind == "adam" {
            opt = Adam(parameters: [p], learningRate: k.value("lr"), beta1: k.value("b1"), beta2: k.value("b2"),
                       epsilon: k.value("eps"), weightDecay: k.value("wd"), decoupledWeightDecay: k.flag("decoupled"),
                       amsgrad: k.flag("ams"))
        } else {
            opt = SGD(parameters: [p], learningRate: k.value("lr"), momentum: k.value("mom"), dampening: k.value("damp"),
                      weightDecay: k.value("wd"), nesterov: k.flag("nesterov"))
        }
        for _ in 0..<k.steps {
            opt.zeroGrad()
            ((p * p * c).scaled(by: 0.5) + p * d).sum().backward()
            opt.step()
        }
        for (a, b) in zip(p.scalars, k.expected) { #expect(abs(a - b) < 1e-4, "\(k.name): \(a) vs \(b)") }
    }

    @Test func schedules() {
        #expect(LearningRateSchedule.constant.rate(base: 0.1, step: 50) == 0.1)
        #expect(abs(LearningRateSchedule.step(every: 10, factor: 0.5).rate(base: 1, step: 25) - 0.25) < 1e-7)
        #expect(abs(LearningRateSchedule.multiStep(milestones: [5, 8], factor: 0.1).rate(base: 1, step: 8) - 0.01) < 1e-7)
        #expect(abs(LearningRateSchedule.exponential(factor: 0.9).rate(base: 1, step: 2) - 0.81) < 1e-6)
        let cosine = LearningRateSchedule.cosine(total: 100, minimum: 0.001)
        #expect(abs(cosine.rate(base: 0.1, step: 0) - 0.1) < 1e-7)
        #expect(abs(cosine.rate(base: 0.1, step: 50) - 0.0505) < 1e-6)
        #expect(abs(cosine.rate(base: 0.1, step: 100) - 0.001) < 1e-7)
        #expect(abs(LearningRateSchedule.warmup(steps: 4).rate(base: 1, step: 1) - 0.5) < 1e-7)
        // apply() reads the optimiser's own step count: after two steps, halving every step gives 1/4.
        let p = Tensor(zeros: [1], requiresGrad: true)
        let sgd = SGD(parameters: [p], learningRate: 1)
        for _ in 0..<2 {
            sgd.zeroGrad()
            p.sum().backward()
            sgd.step()
        }
        #expect(sgd.stepCount == 2)
        LearningRateSchedule.step(every: 1, factor: 0.5).apply(to: sgd, base: 1)
        #expect(sgd.learningRate == 0.25)
    }
}
