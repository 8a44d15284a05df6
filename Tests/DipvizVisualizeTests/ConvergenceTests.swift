@testable import DipvizVisualize
import Testing

@Suite("Convergence rule")
struct ConvergenceTests {
    static func curve(_ values: [Double]) -> [CurvePoint] {
        values.enumerated().map { CurvePoint(iteration: ($0.offset + 1) * 10, loss: $0.element, values: ["feature_error": $0.element]) }
    }

    @Test func stillImprovingComparesTheLastFifth() {
        // 10 points over 100 iterations: the window starts at iteration 80.
        #expect(Convergence.stillImproving(ConvergenceTests.curve([1, 0.8, 0.6, 0.5, 0.4, 0.35, 0.3, 0.3, 0.29, 0.29])) == false)
        #expect(Convergence.stillImproving(ConvergenceTests.curve([1, 0.8, 0.6, 0.5, 0.4, 0.35, 0.3, 0.3, 0.25, 0.2])) == true)
        #expect(Convergence.stillImproving(ConvergenceTests.curve([1])) == nil)
    }
}
