import Foundation
import GateScopeEngine

/// Test fixture locations, found from this file's path (never the working directory).
enum Fixtures {
    /// The package root: Tests/GateScopeKerasTests/<this file> -> ../../
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let bad = packageRoot.appendingPathComponent("Tests/Fixtures/bad")

    /// Tests/Fixtures/keras, or the shared originals while the project copy is not there yet.
    static let keras: URL = {
        let local = packageRoot.appendingPathComponent("Tests/Fixtures/keras")
        if !caseNames(in: local).isEmpty { return local }
        return URL(fileURLWithPath: "/work/shared/fixtures/keras")
    }()

    static func caseNames(in dir: URL) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { FileManager.default.fileExists(atPath: dir.appendingPathComponent("\($0)/expected.npz").path) }.sorted()
    }

    /// Every (case, model file) pair present: model.keras and model.h5 where each exists.
    static let modelCases: [ModelCase] = caseNames(in: keras).flatMap { name in
        ["model.keras", "model.h5"].compactMap { file in
            FileManager.default.fileExists(atPath: keras.appendingPathComponent("\(name)/\(file)").path)
                ? ModelCase(caseName: name, file: file) : nil
        }
    }

    static func badPath(_ name: String) -> String { bad.appendingPathComponent(name).path }
}

/// One model file of one fixture case.
struct ModelCase: Sendable, CustomStringConvertible {
    let caseName: String
    let file: String
    var description: String { "\(caseName)/\(file)" }
    var dir: URL { Fixtures.keras.appendingPathComponent(caseName) }
    var modelPath: String { dir.appendingPathComponent(file).path }
}

/// Keeps every reported step: (recurrent layer, sequence, step) -> i, f, g, o, c, h.
final class RecordingObserver: GateObserver {
    struct Key: Hashable { let layer: Int, sequence: Int, step: Int }
    var rows: [Key: [[Float]]] = [:]
    var duplicates: [Key] = []

    func observe(_ s: GateStep) throws {
        for b in 0..<s.batchSize where s.active[b] {
            let key = Key(layer: s.layer, sequence: b, step: s.step)
            let r = (b * s.units)..<((b + 1) * s.units)
            if rows[key] != nil { duplicates.append(key) }
            rows[key] = [Array(s.i[r]), Array(s.f[r]), Array(s.g[r]), Array(s.o[r]), Array(s.c[r]), Array(s.h[r])]
        }
    }
}

/// Largest differences between computed and expected values, llm.c style.
struct Comparison {
    var maxAbs: Double = 0
    /// Worst (|a-b|) / (2e-5 + 1e-4*|b|): > 1 fails the tolerance.
    var worstRatio: Double = 0
    var count = 0

    mutating func add(_ a: Float, _ b: Double) {
        let d = abs(Double(a) - b)
        maxAbs = max(maxAbs, a.isNaN ? .infinity : d)
        worstRatio = max(worstRatio, a.isNaN ? .infinity : d / (2e-5 + 1e-4 * abs(b)))
        count += 1
    }

    var ok: Bool { worstRatio <= 1 }
}

/// Builds the engine input from input.npy.
func sequenceBatch(_ input: TestArray) -> SequenceBatch {
    if input.shape.count == 2 {
        return SequenceBatch(tokens: input.values.map { Int32($0) }, batchSize: input.shape[0], time: input.shape[1])
    }
    return SequenceBatch(features: input.values.map { Float($0) }, batchSize: input.shape[0], time: input.shape[1],
                         featureDim: input.shape[2])
}
