import Foundation
import GateScopeInput
import GateScopeKeras
import Testing
@testable import GateScopeRecording
@testable import GateScopeStore

/// Every Keras fixture's model files, as "case/model.keras" or "case/model.h5".
let fixtureRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/keras").path

func fixtureModels() -> [String] {
    let cases = ((try? FileManager.default.contentsOfDirectory(atPath: fixtureRoot)) ?? []).sorted()
    return cases.flatMap { name in
        ["model.keras", "model.h5"].map { "\(name)/\($0)" }
            .filter { FileManager.default.fileExists(atPath: "\(fixtureRoot)/\($0)") }
    }
}

@Suite struct FixtureRecordTests {
    @Test func fixturesArePresent() {
        #expect(fixtureModels().count >= 5, "no fixtures under \(fixtureRoot)")
    }

    @Test(arguments: fixtureModels())
    func recordingMatchesKeras(_ modelFile: String) throws {
        let folder = fixtureRoot + "/" + modelFile.split(separator: "/")[0]
        let dir = makeTempDir(modelFile)
        let model = try KerasModelLoader.load(path: fixtureRoot + "/" + modelFile)
        var options = RecordOptions()
        options.batchSize = 2  // several batches, padded differently than Keras's single batch
        let result = try Recorder.record(model: model, modelPath: fixtureRoot + "/" + modelFile, inputPath: folder + "/input.npy",
                                         databasePath: dir + "/g.db", options: options)
        #expect(result.completed)

        let expected = try NPZ.read(path: folder + "/expected.npz")
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/meta.json"))) as! [String: Any]
        let metaLayers = meta["layers"] as! [[String: Any]]
        let db = try Database(path: dir + "/g.db", mode: .readOnly)
        let layers = try db.query("SELECT layer_id, name, direction, units FROM layers WHERE run_id = ? ORDER BY layer_id", [result.runID]).allRows()
        #expect(layers.count == metaLayers.count)
        let stored = try storedRows(db, run: result.runID)

        var expectedRows = 0
        for (k, layer) in layers.enumerated() {
            let name = layer[1].stringValue!, direction = layer[2].stringValue!, units = Int(layer[3].int64Value!)
            #expect(name == metaLayers[k]["layer"] as? String && direction == metaLayers[k]["direction"] as? String)
            let layerID = Int(layer[0].int64Value!)
            let gates = try ["i", "f", "g", "o", "c", "h"].map { q -> [Float] in
                guard let a = expected["gates__\(name)__\(direction)__\(q)"] else {
                    throw DatabaseError(message: "\(modelFile): no expected gates for \(name) \(direction) \(q)")
                }
                return try a.floats()
            }
            let shape = expected["gates__\(name)__\(direction)__i"]!.shape  // [batch, time, units]
            #expect(shape[2] == units)
            for b in 0..<shape[0] {
                for t in 0..<shape[1] {
                    for u in 0..<units {
                        let idx = (b * shape[1] + t) * units + u
                        let key = RowKey(seq: b, layer: layerID, step: t, unit: u)
                        if gates[0][idx].isNaN {
                            #expect(stored[key] == nil, "\(modelFile): row for masked \(name):\(direction) seq \(b) step \(t)")
                            continue
                        }
                        expectedRows += 1
                        guard let row = stored[key] else {
                            Issue.record("\(modelFile): missing row \(name):\(direction) seq \(b) step \(t) unit \(u)")
                            continue
                        }
                        for g in 0..<6 {
                            let want = gates[g][idx], got = row[g]
                            #expect(abs(got - want) <= 2e-5 + 1e-4 * abs(want),
                                    "\(modelFile): \(name):\(direction) seq \(b) step \(t) unit \(u) gate \(g): \(got) vs \(want)")
                        }
                    }
                }
            }
        }
        #expect(stored.count == expectedRows, "\(modelFile): \(stored.count) rows, expected \(expectedRows)")
        #expect(try count(db, "SELECT row_count FROM runs WHERE run_id = ?", result.runID) == Int64(expectedRows))
    }
}
