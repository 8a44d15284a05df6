import DipvizGallery
import DipvizVisualize
import Foundation
import Testing

@Suite("Per-model budgets")
struct ModelBudgetTests {
    static func spec(_ modelBudgets: String) throws -> GallerySpec {
        let json = """
        {"title": "T", "budgets": {"quick": {"size": 16, "dip_iterations": 4, "tv_iterations": 4}},
         "models": [{"name": "A", "path": "a.onnx", "inversion": {"images": ["p.png"], "layers": ["conv1"], "priors": ["tv"]}},
                    {"name": "B", "path": "b.onnx", \(modelBudgets) "inversion": {"images": ["p.png"], "layers": ["conv1"], "priors": ["tv"]}}]}
        """
        return try GallerySpec.decode(Data(json.utf8), name: "t.json")
    }

    @Test func aModelBudgetReplacesTheSpecsOfTheSameName() throws {
        let s = try ModelBudgetTests.spec(#""budgets": {"quick": {"size": 8, "dip_iterations": 2, "tv_iterations": 3}},"#)
        #expect(s.models[0].budget("quick", in: s)?.size == 16)
        #expect(s.models[1].budget("quick", in: s)?.size == 8 && s.models[1].budget("quick", in: s)?.tvIterations == 3)
    }

    @Test func badModelBudgetsAreNamed() throws {
        #expect { try ModelBudgetTests.spec(#""budgets": {"slow": {"size": 8, "dip_iterations": 2, "tv_iterations": 3}},"#) }
            throws: { "\($0)".contains("models[1].budgets.slow replaces no budget") }
        #expect { try ModelBudgetTests.spec(#""budgets": {"quick": {"size": 1, "dip_iterations": 2, "tv_iterations": 3}},"#) }
            throws: { "\($0)".contains("models[1].budgets.quick.size is 1") }
        #expect { try ModelBudgetTests.spec(#""budgets": {"quick": {"size": 8, "dip_iteration": 2, "tv_iterations": 3}},"#) }
            throws: { "\($0)".contains("unknown key 'dip_iteration' in models[1].budgets.quick") }
    }

    /// The default gallery gives VGG16 a budget of its own, with the same iterations for both priors.
    @Test func defaultGalleryComparesPriorsAtEqualBudgets() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("gallery/default.json").path
        let s = try GallerySpec.load(path: path)
        let vgg = try #require(s.models.first { $0.name == "VGG16" })
        #expect(vgg.inversion?.layers == ["conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3", "pool5"])
        for m in s.models { let b = try #require(m.budget("quick", in: s)); #expect(b.dipIterations == b.tvIterations, "\(m.name)") }
    }
}
