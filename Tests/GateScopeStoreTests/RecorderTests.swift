import CSQLite
import Foundation
import GateScopeEngine
import GateScopeInput
import Testing
@testable import GateScopeRecording
@testable import GateScopeStore

@Suite struct RecorderTests {
    func record(_ model: Model, input: String, db: String, dir: String, _ configure: (inout RecordOptions) -> Void = { _ in }) throws -> RecordResult {
        var options = RecordOptions()
        configure(&options)
        return try Recorder.record(model: model, modelPath: writeModelFile(dir), inputPath: input, databasePath: db, options: options)
    }

    @Test func rowsAndValuesEqualADirectObserver() throws {
        let dir = makeTempDir()
        let model = stackedModel()
        let input = FeatureInput(lengths: [5, 3, 7, 1, 4, 6, 2], features: 3)
        try input.writeNPZ(dir + "/in.npz")
        let result = try record(model, input: dir + "/in.npz", db: dir + "/g.db", dir: dir) { $0.batchSize = 3; $0.name = "first" }
        #expect(result.completed)
        #expect(result.sequencesDone == 7 && result.sequencesTotal == 7)

        let db = try Database(path: dir + "/g.db", mode: .readOnly)
        let stored = try storedRows(db, run: result.runID)
        let reference = try referenceRows(model: model, sequences: input.sequences, features: 3, batchSize: 3)
        // One row per (seq, layer, step < length, unit): no padding rows without a mask layer.
        #expect(stored.count == input.lengths.reduce(0, +) * (5 + 4))
        #expect(Set(stored.keys) == Set(reference.keys))
        #expect(stored == reference)
        for key in stored.keys { #expect(key.step < input.lengths[key.seq]) }

        let run = try db.query("SELECT name, status, model_format, keras_version, sequence_count, recorded_sequences, recorded_steps, row_count, finished_at IS NOT NULL, json_extract(params, '$.batch_size'), length(model_sha256) FROM runs WHERE run_id = ?", [result.runID]).nextRow()!
        #expect(run.values == [.text("first"), .text("complete"), .text("test"), .text("3.0.0"), .integer(7), .integer(7),
                               .integer(28), .integer(Int64(stored.count)), .integer(1), .integer(3), .integer(64)])
        #expect(try db.query("SELECT seq_id, length, source_id FROM sequences WHERE run_id = ? ORDER BY seq_id", [result.runID]).allRows().map(\.values)
                == input.lengths.enumerated().map { [.integer(Int64($0)), .integer(Int64($1)), .text("s\($0)")] })
        #expect(try db.query("SELECT layer_id, name, direction, units, input_dim, activation, recurrent_activation FROM layers ORDER BY layer_id").allRows().map(\.values)
                == [[.integer(0), .text("lstm_a"), .text("fwd"), .integer(5), .integer(3), .text("tanh"), .text("sigmoid")],
                    [.integer(1), .text("lstm_b"), .text("fwd"), .integer(4), .integer(5), .text("tanh"), .text("sigmoid")]])
        #expect(try count(db, "SELECT count(*) FROM gate_rows WHERE run_id = ? AND layer = 'lstm_b' AND source_id = 's2'", result.runID) == 7 * 4)
        #expect(try count(db, "SELECT count(*) FROM tokens") == 0)

        // Summaries: one per (layer, unit, gate), equal to a summary computed from the stored rows.
        #expect(try count(db, "SELECT count(*) FROM unit_summaries WHERE run_id = ?", result.runID) == 9 * 6)
        let summaries = try GateSummary.load(from: db, runID: result.runID)
        for layer in 0..<2 {
            for unit in 0..<(layer == 0 ? 5 : 4) {
                for (column, gate) in Gate.of(.lstm).enumerated() {
                    var expected = GateSummary(gate: gate)
                    for key in stored.keys.sorted() where key.layer == layer && key.unit == unit { expected.add(Double(stored[key]![column])) }
                    #expect(summaries[UnitKey(layerID: layer, unit: unit)]?[gate] == expected)
                }
            }
        }
        // The same database takes a second run.
        let second = try record(model, input: dir + "/in.npz", db: dir + "/g.db", dir: dir) { $0.batchSize = 3 }
        #expect(second.runID == result.runID + 1)
    }

    @Test func batchesRampUpAndStillMatchTheEngine() throws {
        let dir = makeTempDir()
        let model = stackedModel()
        var rng = SplitMix(4)
        let input = FeatureInput(lengths: (0..<40).map { _ in rng.int(1..<6) }, features: 3)
        try input.writeNPZ(dir + "/in.npz")
        // Batches of 4, 8, 16, then 12 (the rest).
        let result = try record(model, input: dir + "/in.npz", db: dir + "/g.db", dir: dir) { $0.batchSize = 16 }
        let db = try Database(path: dir + "/g.db", mode: .readOnly)
        #expect(try db.scalar("SELECT json_extract(params, '$.batch_ramp_start') FROM runs") == .integer(4))
        #expect(try storedRows(db, run: result.runID) == referenceRows(model: model, sequences: input.sequences, features: 3, batchSize: 16))
    }

    @Test func everyInputFormatRecordsTheSameRows() throws {
        let dir = makeTempDir()
        let model = stackedModel()
        let input = FeatureInput(lengths: [3, 1, 4], features: 3)
        try input.writeNPZ(dir + "/in.npz")
        // The same sequences as .jsonl and .csv (float32 values print and parse back exactly).
        var jsonl = "", csv = "seq,step,a,b,c\n"
        for (b, s) in input.sequences.enumerated() {
            let steps = (0..<(s.count / 3)).map { t in (0..<3).map { "\(s[t * 3 + $0])" } }
            jsonl += "{\"id\": \"s\(b)\", \"x\": [\(steps.map { "[" + $0.joined(separator: ", ") + "]" }.joined(separator: ", "))]}\n"
            for (t, row) in steps.enumerated() { csv += "s\(b),\(t),\(row.joined(separator: ","))\n" }
        }
        try jsonl.write(toFile: dir + "/in.jsonl", atomically: true, encoding: .utf8)
        try csv.write(toFile: dir + "/in.csv", atomically: true, encoding: .utf8)
        var results: [[RowKey: [Float]]] = []
        for file in ["in.npz", "in.jsonl", "in.csv"] {
            let r = try record(model, input: dir + "/" + file, db: dir + "/g.db", dir: dir)
            let db = try Database(path: dir + "/g.db", mode: .readOnly)
            #expect(try db.query("SELECT group_concat(source_id) FROM sequences WHERE run_id = ?", [r.runID]).nextRow()?[0] == .text("s0,s1,s2"), "\(file)")
            results.append(try storedRows(db, run: r.runID))
        }
        #expect(results[0].count == 8 * 9)
        #expect(results[1] == results[0] && results[2] == results[0])

        // Text through a vocabulary, with --unknown for a character it lacks.
        let tokens = tokenModel(vocab: 6)
        try #"{"a": 1, "b": 2, "c": 3}"#.write(toFile: dir + "/vocab.json", atomically: true, encoding: .utf8)
        try "abc\nca?b\n".write(toFile: dir + "/in.txt", atomically: true, encoding: .utf8)
        #expect(throws: InputError.self) {
            try record(tokens, input: dir + "/in.txt", db: dir + "/t.db", dir: dir) { $0.vocabPath = dir + "/vocab.json" }
        }
        let r = try record(tokens, input: dir + "/in.txt", db: dir + "/t.db", dir: dir) { $0.vocabPath = dir + "/vocab.json"; $0.unknownID = 5 }
        let db = try Database(path: dir + "/t.db", mode: .readOnly)
        #expect(try db.query("SELECT group_concat(token_id) FROM tokens WHERE run_id = ?", [r.runID]).nextRow()?[0] == .text("1,2,3,3,1,5,2"))
        #expect(try db.query("SELECT json_extract(params, '$.unknown_id') FROM runs WHERE run_id = ?", [r.runID]).nextRow()?[0] == .integer(5))
        #expect(try count(db, "SELECT count(*) FROM gates") == 7 * 4)
    }

    @Test func maskedStepsHaveNoRows() throws {
        let dir = makeTempDir()
        let model = stackedModel(masking: true)
        // Full-length sequences (no lengths array) with all-zero steps that Masking masks.
        var input = FeatureInput(lengths: [6, 6, 6, 6], features: 3)
        let masked: Set<[Int]> = [[0, 5], [1, 2], [1, 3], [3, 0], [2, 4], [2, 5]]
        for m in masked { for j in 0..<3 { input.sequences[m[0]][m[1] * 3 + j] = 0 } }
        try input.writeNPZ(dir + "/in.npz", withLengths: false)
        let result = try record(model, input: dir + "/in.npz", db: dir + "/g.db", dir: dir) { $0.batchSize = 4 }
        let db = try Database(path: dir + "/g.db", mode: .readOnly)
        let stored = try storedRows(db, run: result.runID)
        #expect(stored.count == (24 - masked.count) * 9)
        for key in stored.keys { #expect(!masked.contains([key.seq, key.step])) }
        #expect(stored == (try referenceRows(model: model, sequences: input.sequences, features: 3, batchSize: 4)))
        #expect(try count(db, "SELECT sum(length) FROM sequences") == 24)
    }

    @Test func layersFilterStoresOnlyTheNamedLayers() throws {
        let dir = makeTempDir()
        let model = bidirectionalModel()
        let input = FeatureInput(lengths: [4, 2, 5], features: 2)
        try input.writeNPZ(dir + "/in.npz")
        let result = try record(model, input: dir + "/in.npz", db: dir + "/g.db", dir: dir) { $0.layers = ["bi:bwd", "back"] }
        let db = try Database(path: dir + "/g.db", mode: .readOnly)
        #expect(try db.query("SELECT layer_id, name, direction FROM layers").allRows().map(\.values)
                == [[.integer(1), .text("bi"), .text("bwd")], [.integer(2), .text("back"), .text("bwd")]])
        let stored = try storedRows(db, run: result.runID)
        let reference = try referenceRows(model: model, sequences: input.sequences, features: 2, batchSize: 64, layers: [1, 2])
        #expect(Set(stored.keys.map(\.layer)) == [1, 2])
        #expect(stored == reference)
        #expect(stored.count == 11 * (3 + 2))

        // Both halves by name; unknown names are refused before anything is written.
        let both = try record(model, input: dir + "/in.npz", db: dir + "/g.db", dir: dir) { $0.layers = ["bi"] }
        #expect(try count(db, "SELECT count(*) FROM layers WHERE run_id = ?", both.runID) == 2)
        do {
            _ = try record(model, input: dir + "/in.npz", db: dir + "/other.db", dir: dir) { $0.layers = ["nope"] }
            Issue.record("unknown layer accepted")
        } catch let e as RecordingError {
            #expect(e.message.contains("no recurrent layer 'nope'"))
            #expect(e.message.contains("bi:fwd"))
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/other.db"))
    }

    @Test func badInputIsRefusedBeforeAnythingIsWritten() throws {
        let dir = makeTempDir()
        let model = stackedModel()
        // NaN late in the input: nothing at all may be written, not even earlier sequences.
        var input = FeatureInput(lengths: Array(repeating: 4, count: 50), features: 3)
        input.sequences[42][2 * 3 + 1] = .nan
        try input.writeNPZ(dir + "/nan.npz")
        do {
            _ = try record(model, input: dir + "/nan.npz", db: dir + "/g.db", dir: dir) { $0.batchSize = 4 }
            Issue.record("NaN accepted")
        } catch let e as InputError {
            #expect(e.sequence == 42)
            #expect(e.step == 2)
            #expect(e.description.contains("NaN"))
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/g.db"))

        // An existing database gets no run either.
        let good = FeatureInput(lengths: [2], features: 3)
        try good.writeNPZ(dir + "/good.npz")
        _ = try record(model, input: dir + "/good.npz", db: dir + "/g.db", dir: dir)
        var inf = FeatureInput(lengths: [3, 3], features: 3)
        inf.sequences[1][0] = -.infinity
        try inf.writeNPZ(dir + "/inf.npz")
        #expect(throws: InputError.self) { try record(model, input: dir + "/inf.npz", db: dir + "/g.db", dir: dir) }

        // Wrong feature count.
        let wide = FeatureInput(lengths: [3, 3], features: 4)
        try wide.writeNPZ(dir + "/wide.npz")
        do {
            _ = try record(model, input: dir + "/wide.npz", db: dir + "/g.db", dir: dir)
            Issue.record("wrong feature count accepted")
        } catch let e as InputError {
            #expect(e.description.contains("expects 3 features per step, the input has 4"))
        }

        // Token id outside the Embedding.
        let tokens = NPYArray(int32s: [1, 2, 3, 4, 5, 6], shape: [2, 3])
        try NPY.write(tokens, to: dir + "/tokens.npy")
        do {
            _ = try record(tokenModel(vocab: 6), input: dir + "/tokens.npy", db: dir + "/g.db", dir: dir)
            Issue.record("token out of range accepted")
        } catch let e as InputError {
            #expect(e.sequence == 1 && e.step == 2)
            #expect(e.description.contains("outside the Embedding range 0..<6 of model 'tok'"))
        }
        let db = try Database(path: dir + "/g.db", mode: .readOnly)
        #expect(try count(db, "SELECT count(*) FROM runs") == 1)
    }

    @Test func tokenInputsGetTokenRows() throws {
        let dir = makeTempDir()
        let model = tokenModel(vocab: 6)
        try #"{"a": 1, "b": 2, ",": 3, "\"": 4, "\n": 5}"#.write(toFile: dir + "/vocab.json", atomically: true, encoding: .utf8)
        // Sequence 1 has a 0 (masked by mask_zero) at step 1; lengths cut sequence 2.
        let x = NPYArray(int32s: [1, 2, 3, 4,  5, 0, 1, 1,  2, 2, 0, 0], shape: [3, 4])
        try NPZ.write(["x": x, "lengths": NPYArray(int64s: [4, 4, 2], shape: [3])], to: dir + "/in.npz")
        let result = try record(model, input: dir + "/in.npz", db: dir + "/g.db", dir: dir) { $0.vocabPath = dir + "/vocab.json" }
        let db = try Database(path: dir + "/g.db", mode: .readOnly)
        #expect(try db.query("SELECT seq_id, step, token_id, token FROM tokens ORDER BY seq_id, step").allRows().map(\.values) == [
            [.integer(0), .integer(0), .integer(1), .text("a")], [.integer(0), .integer(1), .integer(2), .text("b")],
            [.integer(0), .integer(2), .integer(3), .text(",")], [.integer(0), .integer(3), .integer(4), .text("\"")],
            [.integer(1), .integer(0), .integer(5), .text("\n")], [.integer(1), .integer(1), .integer(0), .null],
            [.integer(1), .integer(2), .integer(1), .text("a")], [.integer(1), .integer(3), .integer(1), .text("a")],
            [.integer(2), .integer(0), .integer(2), .text("b")], [.integer(2), .integer(1), .integer(2), .text("b")],
        ])
        // 10 steps, one masked: 9 steps x 4 units.
        #expect(try count(db, "SELECT count(*) FROM gates WHERE run_id = ?", result.runID) == 9 * 4)
        #expect(try count(db, "SELECT count(*) FROM gates WHERE seq_id = 1 AND step = 1") == 0)
        #expect(try count(db, "SELECT count(*) FROM gate_rows WHERE token = 'a'") == 3 * 4)
    }

    @Test func aFailureMarksTheRunFailedAndKeepsCommittedSequences() throws {
        let dir = makeTempDir()
        let model = stackedModel()
        let input = FeatureInput(lengths: [3, 4, 2, 5, 3, 3], features: 3)
        try input.writeNPZ(dir + "/in.npz")
        do {
            let db = try Database(path: dir + "/g.db")
            try Schema.migrate(db)
            // A write error in the middle of the run (as a full disk would give).
            try db.execute("CREATE TRIGGER boom BEFORE INSERT ON gates WHEN NEW.seq_id = 3 BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")
        }
        do {
            _ = try record(model, input: dir + "/in.npz", db: dir + "/g.db", dir: dir) { $0.batchSize = 2; $0.commitRows = 1 }
            Issue.record("write error swallowed")
        } catch let e as DatabaseError {
            #expect(e.message.contains("disk on fire"))
            #expect(e.sql?.hasPrefix("INSERT INTO gates") == true)
        }
        let db = try Database(path: dir + "/g.db", mode: .readOnly)
        let row = try db.query("SELECT status, error, finished_at IS NOT NULL, recorded_sequences FROM runs").nextRow()!
        #expect(row[0] == .text("failed"))
        #expect(row[1].stringValue?.contains("disk on fire") == true)
        #expect(row[2] == .integer(1))
        #expect(row[3] == .integer(3))
        #expect(try count(db, "SELECT count(*) FROM sequences") == 3)
        #expect(try count(db, "SELECT count(*) FROM gates") == (3 + 4 + 2) * 9)
        #expect(try count(db, "SELECT count(*) FROM unit_summaries") == 0)
    }

    @Test func resumeAfterAnInterruptionEqualsAnUninterruptedRun() throws {
        let dir = makeTempDir()
        let model = stackedModel(masking: true)
        var rng = SplitMix(99)
        let input = FeatureInput(lengths: (0..<23).map { _ in rng.int(1..<9) }, features: 3)
        try input.writeNPZ(dir + "/in.npz")
        let modelPath = writeModelFile(dir)
        var options = RecordOptions()
        options.batchSize = 4
        options.commitRows = 40  // several commits per batch
        let full = try Recorder.record(model: model, modelPath: modelPath, inputPath: dir + "/in.npz", databasePath: dir + "/full.db", options: options)

        var stopping = options
        stopping.stopAfterBatches = 2
        let first = try Recorder.record(model: model, modelPath: modelPath, inputPath: dir + "/in.npz", databasePath: dir + "/part.db", options: stopping)
        #expect(!first.completed)
        #expect(first.sequencesDone == 8)
        do {
            let db = try Database(path: dir + "/part.db", mode: .readOnly)
            #expect(try db.query("SELECT status, recorded_sequences, error LIKE '%--resume%' FROM runs").nextRow()!.values == [.text("running"), .integer(8), .integer(1)])
            #expect(try count(db, "SELECT count(*) FROM unit_summaries") == 0)
            #expect(try count(db, "SELECT count(*) FROM gates WHERE seq_id >= 8") == 0)
        }
        // Simulate a kill in the middle of a transaction that never committed: leftovers of
        // uncommitted sequences (as a foreign writer might leave) are dropped on resume.
        do {
            let db = try Database(path: dir + "/part.db")
            try db.run("INSERT INTO gates VALUES (1, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0)")
        }
        var resume = RecordOptions()
        resume.resumeRunID = first.runID
        resume.stopAfterBatches = 1
        let second = try Recorder.record(model: model, modelPath: modelPath, inputPath: dir + "/in.npz", databasePath: dir + "/part.db", options: resume)
        #expect(!second.completed && second.sequencesDone == 12)
        resume.stopAfterBatches = nil
        let third = try Recorder.record(model: model, modelPath: modelPath, inputPath: dir + "/in.npz", databasePath: dir + "/part.db", options: resume)
        #expect(third.completed && third.runID == first.runID && third.sequencesDone == 23)

        let a = try Database(path: dir + "/full.db", mode: .readOnly)
        let b = try Database(path: dir + "/part.db", mode: .readOnly)
        #expect(try storedRows(b, run: third.runID) == storedRows(a, run: full.runID))
        func table(_ db: Database, _ sql: String) throws -> [[SQLiteValue]] { try db.query(sql).allRows().map(\.values) }
        for sql in ["SELECT * FROM sequences ORDER BY seq_id", "SELECT * FROM layers ORDER BY layer_id",
                    "SELECT * FROM unit_summaries ORDER BY layer_id, unit, gate",
                    "SELECT * FROM unit_h_moments ORDER BY layer_id, unit",
                    "SELECT * FROM unit_pairs ORDER BY layer_id, unit_a, unit_b",
                    "SELECT * FROM unit_spans ORDER BY layer_id, unit, k",
                    "SELECT status, recorded_sequences, recorded_steps, row_count, sequence_count, error FROM runs"] {
            #expect(try table(a, sql) == table(b, sql), "\(sql)")
        }
        #expect(try b.scalar("PRAGMA integrity_check") == .text("ok"))
        #expect(try count(a, "SELECT count(*) FROM unit_pairs") > 0 && count(a, "SELECT count(*) FROM unit_spans") > 0)

        // A complete run cannot be resumed; a different input or model is refused.
        #expect(throws: StoreError.self) {
            try Recorder.record(model: model, modelPath: modelPath, inputPath: dir + "/in.npz", databasePath: dir + "/part.db", options: resume)
        }
        stopping.stopAfterBatches = 1
        let other = try Recorder.record(model: model, modelPath: modelPath, inputPath: dir + "/in.npz", databasePath: dir + "/part.db", options: stopping)
        try FeatureInput(lengths: [2, 2], features: 3).writeNPZ(dir + "/other.npz")
        resume.resumeRunID = other.runID
        do {
            _ = try Recorder.record(model: model, modelPath: modelPath, inputPath: dir + "/other.npz", databasePath: dir + "/part.db", options: resume)
            Issue.record("different input accepted")
        } catch let e as RecordingError { #expect(e.message.contains("different input")) }
        do {
            _ = try Recorder.record(model: model, modelPath: writeModelFile(makeTempDir(), "other model"), inputPath: dir + "/in.npz",
                                    databasePath: dir + "/part.db", options: resume)
            Issue.record("different model accepted")
        } catch let e as RecordingError { #expect(e.message.contains("different model")) }
    }

    @Test func concurrentReaderSeesOnlyWholeSequences() throws {
        let dir = makeTempDir()
        let model = stackedModel(features: 4, units: (16, 16))
        var rng = SplitMix(5)
        let input = FeatureInput(lengths: (0..<300).map { _ in rng.int(5..<30) }, features: 4)
        try input.writeNPZ(dir + "/in.npz")
        // Create the run first so the reader can open the database.
        let path = dir + "/g.db"
        do { try Schema.migrate(Database(path: path)) }

        final class Observations: @unchecked Sendable {
            var checks = 0, partial = 0, problems: [String] = []
            var done = false
            let lock = NSLock()
        }
        let seen = Observations()
        let reader = Thread {
            do {
                let db = try Database(path: path, mode: .readOnly)
                while true {
                    seen.lock.lock(); let done = seen.done; seen.lock.unlock()
                    try db.execute("BEGIN")
                    let bad = try db.query("""
                        SELECT s.seq_id, s.length * 32, (SELECT count(*) FROM gates g WHERE g.run_id = s.run_id AND g.seq_id = s.seq_id)
                        FROM sequences s
                        """).allRows().filter { $0[1] != $0[2] }
                    let orphans = try db.scalar("SELECT count(*) FROM gates g WHERE NOT EXISTS (SELECT 1 FROM sequences s WHERE s.run_id = g.run_id AND s.seq_id = g.seq_id)")
                    let n = try db.scalar("SELECT count(*) FROM sequences")?.int64Value ?? 0
                    try db.execute("COMMIT")
                    seen.lock.lock()
                    seen.checks += 1
                    if n > 0 && n < 300 { seen.partial += 1 }
                    if !bad.isEmpty { seen.problems.append("incomplete sequences \(bad.map(\.description))") }
                    if orphans != .integer(0) { seen.problems.append("\(orphans!) rows of uncommitted sequences") }
                    seen.lock.unlock()
                    if done { break }
                }
            } catch {
                seen.lock.lock(); seen.problems.append("\(error)"); seen.lock.unlock()
            }
            seen.lock.lock(); seen.done = true; seen.lock.unlock()
        }
        reader.start()
        var options = RecordOptions()
        options.batchSize = 16
        options.commitRows = 300
        let result = try Recorder.record(model: model, modelPath: writeModelFile(dir), inputPath: dir + "/in.npz", databasePath: path,
                                         options: options, progress: { _ in usleep(200) })
        seen.lock.lock(); seen.done = true; seen.lock.unlock()
        while true {
            seen.lock.lock(); let finished = seen.done && seen.checks > 0; seen.lock.unlock()
            if finished { break }
            usleep(1000)
        }
        usleep(100_000)
        #expect(result.completed)
        seen.lock.lock(); defer { seen.lock.unlock() }
        #expect(seen.problems.isEmpty, "\(seen.problems.prefix(3))")
        #expect(seen.partial > 0, "the reader never saw the run in progress (\(seen.checks) checks)")
    }

    @Test func smallBufferBudgetSplitsBatchesWithTheSameRows() throws {
        let dir = makeTempDir()
        let model = stackedModel()
        let input = FeatureInput(lengths: [9, 2, 8, 8, 3, 1, 7], features: 3)
        try input.writeNPZ(dir + "/in.npz")
        let big = try record(model, input: dir + "/in.npz", db: dir + "/a.db", dir: dir)
        // 9 units * 6 gates * 4 bytes = 216 bytes per step: ~2 sequences of 8 steps per batch.
        let small = try record(model, input: dir + "/in.npz", db: dir + "/b.db", dir: dir) { $0.bufferBudgetBytes = 216 * 17 }
        let a = try storedRows(Database(path: dir + "/a.db", mode: .readOnly), run: big.runID)
        let b = try storedRows(Database(path: dir + "/b.db", mode: .readOnly), run: small.runID)
        #expect(a.count == b.count && a.count == 38 * 9)
        #expect(Set(a.keys) == Set(b.keys))
        for (key, v) in a { for g in 0..<6 { #expect(abs(v[g] - b[key]![g]) <= 1e-5, "\(key)") } }
    }
}
