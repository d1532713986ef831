import Backbones
import XCTest

/// What the tests against real published weights share: loading a backbone whose weights
/// `scripts/setup` installs (skipped with the reason when they are not in the cache; any other
/// failure fails), and the relative L2 distance and cosine similarity they are compared by.
extension XCTestCase {
    func installedBackbone(_ name: String) throws -> LoadedBackbone {
        let spec = try Backbones.named(name)
        do { return try LoadedBackbone(spec) } catch let e as BackboneError {
            guard case .weightsNotFound = e else { throw e }
            throw XCTSkip("\(spec.displayName) weights not installed (run scripts/setup): \(e)")
        }
    }

    func relativeL2(_ a: ArraySlice<Float>, _ b: [Float]) -> Double {
        var num = 0.0, den = 0.0
        for (x, y) in zip(a, b) { num += Double(x - y) * Double(x - y); den += Double(y) * Double(y) }
        return (num / den).squareRoot()
    }

    func cosine(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
        let dot = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let na = a.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let nb = b.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        return dot / (na * nb)
    }
}
