import Foundation
import GateScopeEngine
import GateScopeInput
import GateScopeStore

// Support for the query CLI tests: the built `gatescope` binary, a database built from the Keras
// fixtures' expected.npz values (inserted through the schema, with the per-unit summaries the
// recorder would write), the independent expectations, and an RFC 4180 parser.

/// A temporary directory removed by the caller.
func queryTempDir(_ tag: String = #function) -> String {
    try! GateScopeCLI.tempDir("query" + tag)
}

/// The fixture values of one recorded layer half, straight from expected.npz.
struct FixtureLayer {
    var layerID: Int
    var name: String
    var direction: String
    var units: Int
    /// [gate][unit] -> values in (seq, step) order over unmasked steps.
    var values: [Gate: [[Float]]]
    /// (seq, step) of each value, same order as `values`.
    var positions: [(seq: Int, step: Int)]
    /// Full arrays for per-position lookups: [gate] -> [B * T * U], and the mask [B * T].
    var arrays: [Gate: [Float]]
    var mask: [Bool]
    var time: Int

    func value(_ gate: Gate, seq: Int, step: Int, unit: Int) -> Float {
        arrays[gate]![(seq * time + step) * units + unit]
    }
}

/// One run of the fixture database.
struct FixtureRun {
    var runID: Int64
    var caseName: String
    var status: String
    var layers: [FixtureLayer]
    var sequenceCount: Int
    /// seq -> source id text (with a comma, quotes and a newline).
    var sourceIDs: [String]
    /// (seq, step) -> token text, for token-input cases.
    var tokens: [Int: [String?]]
    var rows: Int

    func layer(_ name: String, _ direction: String) -> FixtureLayer? {
        layers.first { $0.name == name && $0.direction == direction }
    }
}

/// Tokens that CSV must quote and that JSON/table must escape.
let queryTrickyTokens = ["<pad>", "a,b", "say \"hi\"", "line\nbreak", "plain", "é,\"x\"\r\n", "tab\there", " lead"]

/// Builds a GateScope database from the Keras fixtures' expected.npz values.
enum QueryFixtureDB {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/keras")

    static let defaultCases = ["lstm_single", "bidirectional", "char_embedding", "lstm_stacked_masked", "keras2_hard_sigmoid"]

    /// Creates `path` with one complete run per case (run ids 1, 2, ... in order); cases listed in
    /// `running` get status 'running' and no summaries, as while a recording is in progress.
    static func build(at path: String, cases: [String] = defaultCases, running: Set<String> = []) throws -> [FixtureRun] {
        let db = try Database(path: path, mode: .readWriteCreate)
        try Schema.migrate(db)
        var runs: [FixtureRun] = []
        try db.transaction {
            for (index, name) in cases.enumerated() {
                runs.append(try insert(case: name, runID: Int64(index + 1), status: running.contains(name) ? "running" : "complete", into: db))
            }
        }
        return runs
    }

    static func insert(case name: String, runID: Int64, status: String, into db: Database) throws -> FixtureRun {
        let dir = fixtures.appendingPathComponent(name)
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("meta.json"))) as! [String: Any]
        let arrays = try NPZ.read(path: dir.appendingPathComponent("expected.npz").path)
        let x = arrays["x"]!
        let batch = x.shape[0], time = x.shape[1]
        let tokenInput = x.dtype.isInteger
        let tokenIDs = tokenInput ? try x.int64s() : []

        var layers: [FixtureLayer] = []
        for (layerID, entry) in (meta["layers"] as! [[String: Any]]).enumerated() {
            let layerName = entry["layer"] as! String, direction = entry["direction"] as! String
            let units = entry["units"] as! Int
            let mask = try arrays["mask__\(layerName)"]!.bools()
            var full: [Gate: [Float]] = [:]
            for gate in Gate.of(.lstm) { full[gate] = try arrays["gates__\(layerName)__\(direction)__\(gate.rawValue)"]!.floats() }
            var values: [Gate: [[Float]]] = [:]
            for gate in Gate.of(.lstm) { values[gate] = Array(repeating: [], count: units) }
            var positions: [(Int, Int)] = []
            for b in 0..<batch {
                for t in 0..<time where mask[b * time + t] {
                    positions.append((b, t))
                    for gate in Gate.of(.lstm) {
                        for u in 0..<units { values[gate]![u].append(full[gate]![(b * time + t) * units + u]) }
                    }
                }
            }
            layers.append(FixtureLayer(layerID: layerID, name: layerName, direction: direction, units: units,
                                       values: values, positions: positions, arrays: full, mask: mask, time: time))
        }

        let sourceIDs = (0..<batch).map { "\(name),\"\($0)\"\nend" }
        var tokens: [Int: [String?]] = [:]
        var rows = 0
        var steps = 0
        try db.run("""
            INSERT INTO runs (run_id, name, model_path, model_sha256, model_format, keras_version, input_path,
                              input_sha256, status, created_at, finished_at, tool_version, params,
                              sequence_count, recorded_sequences, recorded_steps, row_count)
            VALUES (?, ?, ?, 'sha', 'keras', ?, ?, 'sha', ?, '2025-01-01T00:00:00Z', ?, 'test', '{}', ?, 0, 0, 0)
            """, runID, name, "\(name)/model.keras", meta["keras_version"] as? String, "\(name)/input.npy", status,
                   status == "complete" ? "2025-01-01T00:01:00Z" : nil, batch)
        for layer in layers {
            try db.run("INSERT INTO layers (run_id, layer_id, name, direction, units, input_dim, activation, recurrent_activation) VALUES (?, ?, ?, ?, ?, 0, 'tanh', 'sigmoid')",
                       runID, layer.layerID, layer.name, layer.direction, layer.units)
        }
        let insertGate = try db.prepare("INSERT INTO gates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        let insertToken = try db.prepare("INSERT INTO tokens VALUES (?, ?, ?, ?, ?)")
        for b in 0..<batch {
            let length = time
            steps += length
            try db.run("INSERT INTO sequences VALUES (?, ?, ?, ?)", runID, b, length, sourceIDs[b])
            if tokenInput {
                var texts: [String?] = []
                for t in 0..<time {
                    let id = tokenIDs[b * time + t]
                    // Every fifth id has no vocab text: export then shows the id.
                    let text: String? = id % 5 == 4 ? nil : queryTrickyTokens[Int(id) % queryTrickyTokens.count]
                    texts.append(text)
                    try insertToken.bind([runID, b, t, id, text] as [SQLiteBindable?])
                    try insertToken.run()
                }
                tokens[b] = texts
            }
            for layer in layers {
                for t in 0..<time where layer.mask[b * time + t] {
                    for u in 0..<layer.units {
                        var args: [SQLiteBindable?] = [runID, b, layer.layerID, t, u]
                        for gate in Gate.of(.lstm) { args.append(layer.value(gate, seq: b, step: t, unit: u)) }
                        try insertGate.bind(args)
                        try insertGate.run()
                        rows += 1
                    }
                }
            }
        }
        try db.run("UPDATE runs SET recorded_sequences = ?, recorded_steps = ?, row_count = ? WHERE run_id = ?",
                   batch, steps, rows, runID)
        if status == "complete" {
            let insert = try db.prepare("INSERT INTO unit_summaries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            for layer in layers {
                for u in 0..<layer.units {
                    for gate in Gate.of(.lstm) {
                        var s = GateSummary(gate: gate)
                        for v in layer.values[gate]![u] { s.add(Double(v)) }
                        let empty = s.n == 0
                        try insert.bind([runID, layer.layerID, u, gate.rawValue, s.n,
                                         empty ? nil : s.mean, empty ? nil : s.m2, empty ? nil : s.min, empty ? nil : s.max,
                                         s.encodedHistogram(), s.encodedEdgeEqual(), s.sums.encoded()] as [SQLiteBindable?])
                        try insert.run()
                    }
                }
            }
        }
        return FixtureRun(runID: runID, caseName: name, status: status, layers: layers, sequenceCount: batch,
                          sourceIDs: sourceIDs, tokens: tokens, rows: rows)
    }
}

/// Independent saturation numbers from the fixture values.
enum QueryExpect {
    struct Stat {
        var n: Int
        var left: Int?
        var right: Int?
        var mean: Double
        var std: Double
        var min: Float
        var max: Float
    }

    static func stat(_ values: [Float], gate: Gate, low: Double, high: Double) -> Stat {
        let d = values.map(Double.init)
        let n = d.count
        let mean = d.reduce(0, +) / Double(n)
        let variance = d.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n)
        var left: Int?, right: Int?
        // Written out by name, independent of the cell descriptor the code under test uses.
        switch gate.rawValue {
        case "i", "f", "o", "z", "r":
            left = d.filter { $0 < low }.count
            right = d.filter { $0 > high }.count
        case "g", "h", "n":
            left = d.filter { $0 < -high }.count
            right = d.filter { $0 > high }.count
        default:
            break
        }
        return Stat(n: n, left: left, right: right, mean: mean, std: variance.squareRoot(),
                    min: values.min()!, max: values.max()!)
    }
}

/// An RFC 4180 parser (independent of the writer): quoted fields, doubled quotes, CR/LF inside quotes.
enum QueryCSV {
    static func parse(_ text: String) -> [[String]] {
        var rows: [[String]] = []
        var row: [String] = []
        var field = ""
        var quoted = false
        var scalars = Array(text.unicodeScalars)[...]
        var fieldStarted = false
        while let c = scalars.first {
            scalars = scalars.dropFirst()
            if quoted {
                if c == "\"" {
                    if scalars.first == "\"" {
                        field.unicodeScalars.append("\"")
                        scalars = scalars.dropFirst()
                    } else {
                        quoted = false
                    }
                } else {
                    field.unicodeScalars.append(c)
                }
                continue
            }
            switch c {
            case "\"" where !fieldStarted:
                quoted = true
                fieldStarted = true
            case ",":
                row.append(field)
                field = ""
                fieldStarted = false
            case "\r" where scalars.first == "\n":
                break
            case "\n":
                row.append(field)
                rows.append(row)
                row = []
                field = ""
                fieldStarted = false
            default:
                field.unicodeScalars.append(c)
                fieldStarted = true
            }
        }
        if fieldStarted || !row.isEmpty {
            row.append(field)
            rows.append(row)
        }
        return rows
    }

    /// Rows as dictionaries keyed by the header.
    static func records(_ text: String) -> (header: [String], rows: [[String: String]]) {
        let all = parse(text)
        guard let header = all.first else { return ([], []) }
        return (header, all.dropFirst().map { Dictionary(uniqueKeysWithValues: zip(header, $0)) })
    }
}
