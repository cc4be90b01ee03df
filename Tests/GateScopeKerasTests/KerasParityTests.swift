import Foundation
import GateScopeEngine
import GateScopeKeras
import Testing

/// Every fixture model, loaded from the file Keras wrote, must reproduce Keras's gates and output.
@Suite("Keras fixtures: gates and predict output match Keras")
struct KerasParityTests {
    @Test("fixture cases are present")
    func fixturesPresent() {
        #expect(Fixtures.modelCases.count >= 9, "expected at least the 5 shared cases (9 model files) under \(Fixtures.keras.path)")
    }

    @Test("gates and y match expected.npz", arguments: Fixtures.modelCases)
    func matchesKeras(_ c: ModelCase) throws {
        let model = try KerasModelLoader.load(path: c.modelPath)
        let input = try TestNPY.read(path: c.dir.appendingPathComponent("input.npy").path)
        let expected = try TestNPZ.read(path: c.dir.appendingPathComponent("expected.npz").path)
        let metaData = try Data(contentsOf: c.dir.appendingPathComponent("meta.json"))
        let meta = try #require(try JSONSerialization.jsonObject(with: metaData) as? [String: Any])
        let metaLayers = try #require(meta["layers"] as? [[String: Any]])
        #expect(model.format == (c.file.hasSuffix(".keras") ? "keras" : "h5"))
        if let v = meta["keras_version"] as? String { #expect(model.kerasVersion == v) }

        let observer = RecordingObserver()
        let y = try model.forward(sequenceBatch(input), observer: observer)
        var report: [String] = []

        // y = model.predict(x)
        let yExp = try #require(expected["y"])
        #expect(y.shape == yExp.shape, "\(c): y shape \(y.shape) vs Keras \(yExp.shape)")
        if y.shape == yExp.shape {
            var cmp = Comparison()
            for (a, b) in zip(y.values, yExp.values) { cmp.add(a, b) }
            report.append("y max|diff| \(String(format: "%.2e", cmp.maxAbs)) \(cmp.ok ? "OK" : "FAIL")")
            #expect(cmp.ok, "\(c): y differs from Keras: max |diff| \(cmp.maxAbs), worst tolerance ratio \(cmp.worstRatio)")
        }

        // Every recurrent half in meta.json, matched by name + direction.
        #expect(model.recurrentLayers.count == metaLayers.count, "\(c): \(model.recurrentLayers.count) recurrent halves, meta.json lists \(metaLayers.count)")
        var matched = Set<Int>()
        for m in metaLayers {
            let name = try #require(m["layer"] as? String), dir = try #require(m["direction"] as? String)
            let info = try #require(model.recurrentLayers.first { $0.name == name && $0.direction.rawValue == dir },
                                    "\(c): no recurrent layer \(name) \(dir) in \(model.recurrentLayers.map { "\($0.name) \($0.direction)" })")
            matched.insert(info.index)
            #expect(info.units == m["units"] as? Int)
            for (q, gate) in ["i", "f", "g", "o", "c", "h"].enumerated() {
                let exp = try #require(expected["gates__\(name)__\(dir)__\(gate)"])
                let (batch, time, units) = (exp.shape[0], exp.shape[1], exp.shape[2])
                #expect(units == info.units)
                var cmp = Comparison()
                var missing = 0, unexpected = 0
                for b in 0..<batch {
                    for t in 0..<time {
                        let base = (b * time + t) * units
                        let masked = exp.values[base].isNaN
                        let row = observer.rows[.init(layer: info.index, sequence: b, step: t)]
                        if masked {
                            if row != nil { unexpected += 1 }
                            continue
                        }
                        guard let row else { missing += 1; continue }
                        for j in 0..<units { cmp.add(row[q][j], exp.values[base + j]) }
                    }
                }
                #expect(missing == 0, "\(c): \(name) \(dir): \(missing) unmasked steps were not reported")
                #expect(unexpected == 0, "\(c): \(name) \(dir): \(unexpected) masked steps were reported")
                #expect(cmp.ok, "\(c): \(name) \(dir) \(gate): max |diff| \(cmp.maxAbs), worst tolerance ratio \(cmp.worstRatio)")
                report.append("\(name) \(dir) \(gate) max|diff| \(String(format: "%.2e", cmp.maxAbs)) \(cmp.ok ? "OK" : "FAIL")")
            }
        }
        let strays = Set(observer.rows.keys.map(\.layer)).subtracting(matched)
        #expect(strays.isEmpty, "\(c): steps reported for recurrent layers \(strays) that meta.json does not list")
        #expect(observer.duplicates.isEmpty, "\(c): \(observer.duplicates.count) steps reported twice")
        print("[\(c)] " + report.joined(separator: "; "))
    }
}
