import CSQLite
import Foundation
import GateScopeEngine
import GateScopeInput
import GateScopeKeras
import Testing
@testable import GateScopeRecording
@testable import GateScopeFormat
@testable import GateScopeStore

/// Collects what a query writes, for checks without a file.
final class QueryCollectingWriter: RowWriter {
    var columns: [String] = []
    var float32: Set<Int> = []
    var rows: [[SQLiteValue]] = []
    var finished = false
    func begin(columns: [String], float32Columns: Set<Int>) throws {
        self.columns = columns
        float32 = float32Columns
    }
    func write(_ row: [SQLiteValue]) throws { rows.append(row) }
    func finish() throws { finished = true }
}

/// Fixture paths for the read-side tests.
enum QueryFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/keras")

    /// Records `case` with the real loader and recorder into `db`; returns the run id.
    static func record(_ name: String, into db: String, layers: [String]? = nil) throws -> Int64 {
        let dir = root.appendingPathComponent(name)
        let keras = dir.appendingPathComponent("model.keras").path
        let modelPath = FileManager.default.fileExists(atPath: keras) ? keras : dir.appendingPathComponent("model.h5").path
        let model = try KerasModelLoader.load(path: modelPath)
        var options = RecordOptions()
        options.layers = layers
        options.batchSize = 2
        return try Recorder.record(model: model, modelPath: modelPath, inputPath: dir.appendingPathComponent("input.npy").path,
                                   databasePath: db, options: options).runID
    }

    /// expected.npz values of one layer half: [gate][unit] -> unmasked values in (seq, step) order.
    static func expected(_ name: String, layer: String, direction: String) throws -> [Gate: [[Float]]] {
        let arrays = try NPZ.read(path: root.appendingPathComponent(name).appendingPathComponent("expected.npz").path)
        let mask = try arrays["mask__\(layer)"]!.bools()
        var out: [Gate: [[Float]]] = [:]
        for gate in Gate.of(.lstm) {
            let a = arrays["gates__\(layer)__\(direction)__\(gate.rawValue)"]!
            let (b, t, u) = (a.shape[0], a.shape[1], a.shape[2])
            let v = try a.floats()
            var perUnit = [[Float]](repeating: [], count: u)
            for s in 0..<b { for k in 0..<t where mask[s * t + k] { for j in 0..<u { perUnit[j].append(v[(s * t + k) * u + j]) } } }
            out[gate] = perUnit
        }
        return out
    }
}

@Suite struct QueryParsingTests {
    @Test func indexRanges() throws {
        let r = try IndexRanges.parse("0-7,12, 3")
        #expect(r.ranges == [0...7, 12...12, 3...3])
        #expect(r.contains(5) && r.contains(12) && !r.contains(8))
        #expect(r.description == "0-7,12,3")
        #expect(r.json == "[[0,7],[12,12],[3,3]]")
        for bad in ["", "a", "1-", "-1", "3-1", "1,,2", "1-2-3", "1.5"] {
            #expect(throws: StoreError.self, "\(bad)") { try IndexRanges.parse(bad, what: "unit") }
        }
        #expect(Export.merged(try IndexRanges.parse("5,0-2,3,9-10,8,4")) == [0...5, 8...10])
        #expect(Export.merged(try IndexRanges.parse("7,0-2")) == [0...2, 7...7])
    }

    @Test func layerFilters() throws {
        #expect(try LayerFilter.parse("bi") == LayerFilter(name: "bi"))
        #expect(try LayerFilter.parse("bi:bwd") == LayerFilter(name: "bi", direction: "bwd"))
        #expect(try LayerFilter.parse("a:b:fwd") == LayerFilter(name: "a:b", direction: "fwd"))
        #expect(try LayerFilter.parse("lstm_1") == LayerFilter(name: "lstm_1"))
        #expect(throws: StoreError.self) { try LayerFilter.parse("bi:up") }
        #expect(throws: StoreError.self) { try LayerFilter.parse("") }
    }

    @Test func gateLists() throws {
        #expect(try Gate.parseList("o,i,f") == [.i, .f, .o])
        #expect(try Gate.parseList(" H ") == [.h])
        #expect(throws: StoreError.self) { try Gate.parseList("i,i") }
        #expect(throws: StoreError.self) { try Gate.parseList("i,x") }
    }
}

@Suite struct QueryNamedQueryTests {
    @Test func headerGrammar() throws {
        let q = try NamedQuery.parse(name: "x", text: """
            -- name: demo
            -- description: Demo query.
            -- param: :run = latest   run id
            -- param: unit            unit index
            -- param: gate = h [i|f|g|o|c|h] which gate
            -- columns: a, b
            -- a free note: with a colon
            SELECT :run AS a, :unit AS b
            -- param: late = 1   not in the header any more
            """, source: "demo.sql")
        #expect(q.name == "demo" && q.description == "Demo query." && q.columns == ["a", "b"])
        #expect(q.parameters == [
            .init(name: "run", defaultValue: "latest", choices: nil, description: "run id"),
            .init(name: "unit", defaultValue: nil, choices: nil, description: "unit index"),
            .init(name: "gate", defaultValue: "h", choices: ["i", "f", "g", "o", "c", "h"], description: "which gate"),
        ])
        #expect(q.parameterSummary == "run=latest, unit (required), gate=h")
        #expect(throws: StoreError.self) { try NamedQuery.parse(name: "x", text: "-- param: a\n-- param: a\nSELECT 1", source: "x") }
        #expect(throws: StoreError.self) { try NamedQuery.parse(name: "x", text: "-- param: a =\nSELECT 1", source: "x") }
    }

    /// Every shipped query: documented, declared parameters, promised columns, read-only.
    @Test func builtInQueriesKeepTheirHeaderPromises() throws {
        let dir = makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = try Database(path: dir + "/empty.db")
        try Schema.migrate(db)
        // gs_mean, gs_std, gs_corr: what `gatescope query` registers on its connections.
        try SQLFunctions.register(on: db)
        let queries = NamedQuery.builtIn
        #expect(queries.map(\.name) == ["dead-units", "integrators", "memory-spans", "saturation", "top-tokens", "unit-correlation"])
        for q in queries {
            #expect(q.source == "queries/\(q.name).sql")
            #expect(!q.description.isEmpty && !q.description.contains("\n"))
            let statement = try db.prepare(q.sql)
            #expect(statement.isReadOnly, "\(q.name)")
            #expect(statement.columnNames == q.columns, "\(q.name)")
            let used = Set(statement.parameterNames.map { String($0!.dropFirst()) })
            #expect(used == Set(q.parameters.map(\.name)), "\(q.name): SQL uses \(used.sorted())")
            #expect(q.parameters.allSatisfy { !$0.description.isEmpty }, "\(q.name)")
            #expect(q.parameter("run")?.defaultValue == "latest", "\(q.name)")
            #expect(q.parameters.filter(\.isRequired).map(\.name) == (q.name == "top-tokens" ? ["unit"] : []))
        }
    }

    @Test func bindingTypes() {
        #expect(NamedQuery.bindable("12") == .integer(12))
        #expect(NamedQuery.bindable("-0.5") == .real(-0.5))
        #expect(NamedQuery.bindable("1e-3") == .real(0.001))
        #expect(NamedQuery.bindable("nan") == .text("nan"))
        #expect(NamedQuery.bindable("inf") == .text("inf"))
        #expect(NamedQuery.bindable("lstm_1") == .text("lstm_1"))
    }
}

@Suite struct QueryOutputTests {
    func render(_ format: OutputFormat, header: Bool = true, float32: Set<Int> = [], _ columns: [String], _ rows: [[SQLiteValue]]) throws -> String {
        let dir = makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/out"
        do {
            let writer = try format.makeWriter(sink: try OutputSink.file(path), header: header)
            try writer.begin(columns: columns, float32Columns: float32)
            for row in rows { try writer.write(row) }
            try writer.finish()
        }
        return try String(contentsOfFile: path, encoding: .utf8)
    }

    let tricky: [[SQLiteValue]] = [
        [.integer(1), .text("a,b"), .real(0.1), .null],
        [.integer(-22), .text("say \"hi\"\nbye"), .real(Double(Float(0.9))), .blob(Data([0, 255]))],
        [.integer(3), .text("\r\n"), .real(1e-7), .text("")],
    ]

    @Test func csvQuotesPerRFC4180() throws {
        let text = try render(.csv, float32: [2], ["id", "text", "x", "extra"], tricky)
        #expect(text == "id,text,x,extra\n1,\"a,b\",0.1,\n-22,\"say \"\"hi\"\"\nbye\",0.9,00ff\n3,\"\r\n\",1e-07,\n")
        let doubles = try render(.csv, header: false, ["x"], [[.real(Double(Float(0.9)))], [.real(0.1)]])
        #expect(doubles == "0.8999999761581421\n0.1\n")
        #expect(try render(.csv, ["a", "b"], []) == "a,b\n")
        #expect(try render(.csv, header: false, ["a"], []) == "")
    }

    @Test func jsonEscapes() throws {
        let text = try render(.json, float32: [2], ["id", "text", "x", "extra"], tricky)
        #expect(text == """
            [
            {"id": 1, "text": "a,b", "x": 0.1, "extra": null},
            {"id": -22, "text": "say \\"hi\\"\\nbye", "x": 0.9, "extra": "00ff"},
            {"id": 3, "text": "\\r\\n", "x": 1e-07, "extra": ""}
            ]

            """)
        let parsed = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [[String: Any]]
        #expect(parsed[1]["text"] as? String == "say \"hi\"\nbye")
        #expect(try render(.json, ["a"], []) == "[]\n")
        #expect(try render(.json, header: false, ["a", "b"], [[.integer(1), .real(.infinity)]]) == "[\n[1, null]\n]\n")
        #expect(JSONRowWriter.quote("\u{1}\t\\") == "\"\\u0001\\t\\\\\"")
    }

    @Test func tableAligns() throws {
        let text = try render(.table, float32: [2], ["id", "text", "x", "extra"], tricky)
        #expect(text == """
             id  text               x  extra
            ---  -------------  -----  -----
              1  a,b              0.1
            -22  say "hi"\\nbye    0.9  00ff
              3  \\r\\n           1e-07

            """)
        let noHeader = try render(.table, header: false, ["a", "b"], [[.text("x"), .real(1.0 / 3)], [.text("long"), .real(2)]])
        #expect(noHeader == "x     0.333333\nlong         2\n")
        // Widths come from the first rows; later rows stream with those widths.
        let dir = makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let writer = TableRowWriter(sink: try OutputSink.file(dir + "/t"), header: true, sampleSize: 2)
        try writer.begin(columns: ["v"])
        for v in ["a", "b", "ccc", "d"] { try writer.write([.text(v)]) }
        try writer.finish()
        #expect(try String(contentsOfFile: dir + "/t", encoding: .utf8) == "v\n-\na\nb\nccc\nd\n")
    }

    @Test func realsRoundTrip() {
        var rng = SplitMix(99)
        for _ in 0..<20_000 {
            let bits = UInt32(truncatingIfNeeded: rng.next())
            let f = Float(bitPattern: bits)
            guard f.isFinite else { continue }
            let text = ValueText.real(Double(f), float32: true)
            #expect(Float(text)!.bitPattern == f.bitPattern, "\(f)")
            let d = Double(bitPattern: rng.next())
            guard d.isFinite else { continue }
            #expect(Double(ValueText.real(d))!.bitPattern == d.bitPattern)
        }
        #expect(ValueText.real(Double(Float(0.9)), float32: true) == "0.9")
        #expect(ValueText.real(Double(Float(0.9))) == "0.8999999761581421")
        #expect(ValueText.roundedReal(2.0 / 3) == "0.666667")
        #expect(ValueText.roundedReal(1234567.0) == "1.23457e+06")
        #expect(ValueText.roundedReal(0.5) == "0.5")
    }
}

/// Stats and export on databases written by the real recorder from the Keras fixtures.
@Suite struct QueryRecordedTests {
    @Test(arguments: ["lstm_stacked_masked", "keras2_hard_sigmoid", "bidirectional"])
    func statsFromSummariesEqualFullScanAndExpected(caseName: String) throws {
        let dir = makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/rec.db"
        let run = try QueryFixtures.record(caseName, into: path)
        let db = try ReadAccess.open(path)
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: QueryFixtures.root
            .appendingPathComponent(caseName).appendingPathComponent("meta.json"))) as! [String: Any]
        var compared = 0, skipped = 0
        for (low, high) in [(0.1, 0.9), (0.25, 0.75), (0.0, 1.0), (0.1234, 0.8766)] {
            var options = Stats.Options()
            options.run = run
            options.low = low
            options.high = high
            let fast = try Stats.compute(db, options: options)
            options.fullScan = true
            let slow = try Stats.compute(db, options: options)
            options.scanPartitions = 3  // the parallel scan of big runs, on a small one
            let parallel = try Stats.compute(db, options: options)
            #expect(parallel.rows.count == slow.rows.count)
            for (a, b) in zip(parallel.rows, slow.rows) {
                #expect(a.n == b.n && a.leftCount == b.leftCount && a.rightCount == b.rightCount && a.min == b.min && a.max == b.max)
                #expect(abs(a.mean! - b.mean!) <= 1e-12 && abs(a.std! - b.std!) <= 1e-12)
            }
            let onGrid = low != 0.1234
            #expect(fast.source == (onGrid ? .summaries : .summariesAndScan))
            #expect(slow.source == .scan)
            #expect(fast.rows.count == slow.rows.count)
            for (a, b) in zip(fast.rows, slow.rows) {
                #expect(a.layer == b.layer && a.unit == b.unit && a.gate == b.gate && a.n == b.n)
                #expect(a.leftCount == b.leftCount && a.rightCount == b.rightCount)
                #expect(a.min == b.min && a.max == b.max)
                #expect(abs(a.mean! - b.mean!) <= 1e-12 && abs(a.std! - b.std!) <= 1e-12)
            }
            // Against expected.npz (engine values differ by <= 2e-5 + 1e-4|b|): counts are equal
            // whenever no value lies that close to a threshold.
            for entry in meta["layers"] as! [[String: Any]] {
                let name = entry["layer"] as! String, direction = entry["direction"] as! String
                let expected = try QueryFixtures.expected(caseName, layer: name, direction: direction)
                for row in fast.rows where row.layer.name == name && row.layer.direction == direction {
                    guard let (lt, rt) = Stats.thresholds(for: row.gate, low: low, high: high) else { continue }
                    let values = expected[row.gate]![row.unit].map(Double.init)
                    #expect(row.n == Int64(values.count))
                    let close = values.contains { abs($0 - lt) <= 2e-4 || abs($0 - rt) <= 2e-4 }
                    if close && !(row.gate.isSigmoid && (lt == 0 || rt == 1)) { skipped += 1; continue }
                    #expect(row.leftCount == Int64(values.filter { $0 < lt }.count), "\(name) \(row.unit) \(row.gate) < \(lt)")
                    #expect(row.rightCount == Int64(values.filter { $0 > rt }.count), "\(name) \(row.unit) \(row.gate) > \(rt)")
                    compared += 1
                }
            }
        }
        #expect(compared > 10 * max(1, skipped))
    }

    @Test func runningRunIsScannedAndExportStreamsInOrder() throws {
        let dir = makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/rec.db"
        let run = try QueryFixtures.record("bidirectional", into: path)
        do {
            let w = try Database(path: path, mode: .readWrite)
            try w.run("UPDATE runs SET status = 'running' WHERE run_id = ?", run)
        }
        let db = try ReadAccess.open(path)
        #expect(throws: StoreError.self) { try Stats.compute(db, options: Stats.Options()) }  // no complete run
        var options = Stats.Options()
        options.run = run
        options.gates = [.f]
        options.sort = .right
        options.top = 3
        let result = try Stats.compute(db, options: options)
        #expect(result.source == .scan && result.rows.count == 3)
        #expect(result.rows.map { $0.right! } == result.rows.map { $0.right! }.sorted(by: >))

        var export = Export.Options()
        export.run = run
        export.layers = [LayerFilter(name: "bi")]
        export.gates = [.h, .i]
        let writer = QueryCollectingWriter()
        let written = try Export.write(db, options: export, to: writer)
        #expect(writer.columns == ["run_id", "seq_id", "source_id", "layer", "direction", "step", "token", "unit", "i", "h"])
        #expect(writer.float32 == [8, 9] && writer.finished)
        #expect(written == Int64(writer.rows.count) && written > 0)
        let keys = writer.rows.map { row -> [Int64] in
            let layer: Int64 = row[4] == .text("fwd") ? 0 : 1
            return [row[1].int64Value!, layer, row[5].int64Value!, row[7].int64Value!]
        }
        #expect(keys == keys.sorted { $0.lexicographicallyPrecedes($1) })
        let stored = try count(db, "SELECT count(*) FROM gates WHERE run_id = ? AND layer_id IN (0, 1)", run)
        #expect(written == stored)

        export.long = true
        export.units = try IndexRanges.parse("1")
        export.steps = try IndexRanges.parse("2-3")
        let long = QueryCollectingWriter()
        try Export.write(db, options: export, to: long)
        #expect(long.columns.suffix(2) == ["gate", "value"] && long.float32 == [9])
        #expect(long.rows.allSatisfy { $0[7] == .integer(1) && [.integer(2), .integer(3)].contains($0[5]) })
        #expect(long.rows.map { $0[8] }.prefix(2) == [.text("i"), .text("h")])
    }
}
