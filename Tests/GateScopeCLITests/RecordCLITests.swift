import Foundation
import GateScopeInput
import GateScopeStore
import Testing

// CLI tests of `gatescope record`: output contract, one-line errors, and crash safety with a real
// SIGKILL / SIGINT of the built binary followed by --resume.

enum RecordCLI {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/keras").path

    /// Random float sequences [count, time, features] without all-zero steps.
    static func writeInput(_ path: String, count: Int, time: Int, features: Int, nanAt: (Int, Int)? = nil) throws {
        var state: UInt64 = 12345
        var x = [Float](repeating: 0, count: count * time * features)
        for k in x.indices {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            x[k] = Float(Int64(bitPattern: state >> 11) % 2000 - 1000) / 700 + 0.0001
        }
        if let (seq, step) = nanAt { x[(seq * time + step) * features] = .nan }
        try NPY.write(floats: x, shape: [count, time, features], to: path)
    }

    static func scalar(_ db: String, _ sql: String) throws -> SQLiteValue? {
        try Database(path: db, mode: .readOnly).scalar(sql)
    }

    /// Rows of table `table` in `a` that are not in `b` plus the reverse (0 = identical).
    static func difference(_ a: String, _ b: String, table: String, runA: Int = 1, runB: Int = 1) throws -> Int64 {
        let db = try Database(path: a, mode: .readOnly)
        try db.execute("ATTACH DATABASE 'file:\(b)?mode=ro' AS other")
        let cols = try db.query("SELECT * FROM \(table) LIMIT 0").columnNames.filter { $0 != "run_id" }.joined(separator: ", ")
        let one = "SELECT \(cols) FROM main.\(table) WHERE run_id = \(runA)"
        let two = "SELECT \(cols) FROM other.\(table) WHERE run_id = \(runB)"
        let x = try db.scalar("SELECT count(*) FROM (\(one) EXCEPT \(two))")?.int64Value ?? -1
        let y = try db.scalar("SELECT count(*) FROM (\(two) EXCEPT \(one))")?.int64Value ?? -1
        return x + y
    }
}

@Suite(.serialized) struct RecordCLITests {
    let model = RecordCLI.fixtures + "/odd_units_relu/model.keras"  // LSTM(33), 4 features

    @Test func recordPrintsTheRunIdLastAndIsQuietWithoutATerminal() throws {
        let dir = try GateScopeCLI.tempDir("record")
        let fixture = RecordCLI.fixtures + "/lstm_stacked_masked"
        let first = try GateScopeCLI.run(["record", fixture + "/model.keras", fixture + "/input.npy", "--db", "g.db", "--name", "a"], in: dir)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.split(separator: "\n").last == "run 1")
        #expect(first.stderr.isEmpty)
        let second = try GateScopeCLI.run(["record", fixture + "/model.h5", fixture + "/input.npy", "--db", "g.db", "--layers", "summary", "--batch-size", "1"], in: dir)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stdout.split(separator: "\n").last == "run 2")
        let db = try Database(path: dir + "/g.db", mode: .readOnly)
        #expect(try db.scalar("SELECT group_concat(status) FROM runs") == .text("complete,complete"))
        #expect(try db.scalar("SELECT json_extract(params, '$.batch_size') FROM runs WHERE run_id = 2") == .integer(1))
        #expect(try db.scalar("SELECT count(DISTINCT layer_id) FROM gates WHERE run_id = 2") == .integer(1))
        #expect(try db.scalar("SELECT count(*) FROM unit_summaries WHERE run_id = 1") == .integer((12 + 6) * 6))
    }

    @Test(arguments: [
        (["record", "missing.keras", "in.npy", "--db", "g.db"], "missing.keras"),
        (["record", "MODEL", "nan.npy", "--db", "g.db"], "sequence 3, step 2: NaN"),
        (["record", "MODEL", "in.npy", "--db", "g.db", "--layers", "nope"], "no recurrent layer 'nope'"),
        (["record", "MODEL", "in.npy", "--db", "g.db", "--batch-size", "0"], "--batch-size"),
        (["record", "MODEL", "in.bin", "--db", "g.db"], "unsupported input format"),
        (["record", "MODEL", "in.npy", "--db", "g.db", "--resume", "7"], "no run 7"),
    ])
    func badInputGivesOneLineAndWritesNothing(args: [String], message: String) throws {
        let dir = try GateScopeCLI.tempDir("record")
        try RecordCLI.writeInput(dir + "/in.npy", count: 4, time: 3, features: 4)
        try RecordCLI.writeInput(dir + "/nan.npy", count: 5, time: 3, features: 4, nanAt: (3, 2))
        _ = FileManager.default.createFile(atPath: dir + "/in.bin", contents: Data([1, 2, 3]))
        if args.contains("--resume") { _ = try GateScopeCLI.run(["record", model, "in.npy", "--db", "g.db"], in: dir) }
        let out = try GateScopeCLI.run(args.map { $0 == "MODEL" ? model : $0 }, in: dir)
        #expect(out.status != 0)
        #expect(out.stderr.contains(message), "\(out.stderr)")
        #expect(out.stderr.split(separator: "\n").count == 1, "\(out.stderr)")
        #expect(out.stdout.isEmpty)
        if !args.contains("--resume") {
            let runs = FileManager.default.fileExists(atPath: dir + "/g.db") ? try RecordCLI.scalar(dir + "/g.db", "SELECT count(*) FROM runs") : .integer(0)
            #expect(runs == .integer(0))
        }
    }

    @Test func sigkillThenResumeGivesTheRowsOfAnUninterruptedRun() throws {
        let dir = try GateScopeCLI.tempDir("record")
        try RecordCLI.writeInput(dir + "/in.npy", count: 600, time: 20, features: 4)  // 396,000 rows
        let reference = try GateScopeCLI.run(["record", model, "in.npy", "--db", "ref.db", "--batch-size", "16"], in: dir)
        #expect(reference.status == 0, "\(reference.stderr)")

        let started = try GateScopeCLI.start(["record", model, "in.npy", "--db", "g.db", "--batch-size", "16"], in: dir)
        // Kill it once some sequences are committed but not all.
        var killedAt: Int64 = -1
        for _ in 0..<6000 {
            if FileManager.default.fileExists(atPath: dir + "/g.db"),
               let done = try? RecordCLI.scalar(dir + "/g.db", "SELECT recorded_sequences FROM runs WHERE run_id = 1")?.int64Value,
               done >= 16 {
                kill(started.pid, SIGKILL)
                killedAt = done
                break
            }
            usleep(2000)
        }
        let killed = try GateScopeCLI.finish(started)
        #expect(killed.signaled && killed.status == SIGKILL, "exit \(killed.status)")
        #expect(killedAt >= 16 && killedAt < 600, "not killed mid-run (\(killedAt))")
        #expect(try RecordCLI.scalar(dir + "/g.db", "PRAGMA integrity_check") == .text("ok"))
        #expect(try RecordCLI.scalar(dir + "/g.db", "SELECT status FROM runs") == .text("running"))
        // What a reader sees after the kill is whole sequences only.
        #expect(try RecordCLI.scalar(dir + "/g.db", "SELECT count(*) FROM gates") == .integer(33 * 20 * (try RecordCLI.scalar(dir + "/g.db", "SELECT count(*) FROM sequences")!.int64Value!)))

        let resumed = try GateScopeCLI.run(["record", model, "in.npy", "--db", "g.db", "--resume", "1"], in: dir)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout.split(separator: "\n").last == "run 1")
        #expect(try RecordCLI.scalar(dir + "/g.db", "SELECT status || ' ' || row_count FROM runs") == .text("complete 396000"))
        for table in ["gates", "sequences", "layers", "unit_summaries"] {
            #expect(try RecordCLI.difference(dir + "/g.db", dir + "/ref.db", table: table) == 0, "\(table) differs")
        }
        #expect(try RecordCLI.scalar(dir + "/g.db", "PRAGMA integrity_check") == .text("ok"))
    }

    @Test func sigintStopsCleanlyAndLeavesTheRunResumable() throws {
        let dir = try GateScopeCLI.tempDir("record")
        try RecordCLI.writeInput(dir + "/in.npy", count: 400, time: 20, features: 4)
        let started = try GateScopeCLI.start(["record", model, "in.npy", "--db", "g.db", "--batch-size", "8", "--name", "ctrl-c"], in: dir)
        for _ in 0..<6000 {
            if FileManager.default.fileExists(atPath: dir + "/g.db"),
               let done = try? RecordCLI.scalar(dir + "/g.db", "SELECT recorded_sequences FROM runs WHERE run_id = 1")?.int64Value,
               done >= 8 {
                break
            }
            usleep(2000)
        }
        kill(started.pid, SIGINT)
        let out = try GateScopeCLI.finish(started)
        let done = try RecordCLI.scalar(dir + "/g.db", "SELECT recorded_sequences FROM runs")?.int64Value ?? 0
        if done < 400 {
            #expect(out.status == 130, "\(out.stderr)")
            #expect(out.stderr.contains("--resume 1"), "\(out.stderr)")
            #expect(out.stdout.split(separator: "\n").last == "run 1")
            #expect(try RecordCLI.scalar(dir + "/g.db", "SELECT status FROM runs") == .text("running"))
            let resumed = try GateScopeCLI.run(["record", model, "in.npy", "--db", "g.db", "--resume", "1"], in: dir)
            #expect(resumed.status == 0, "\(resumed.stderr)")
        }
        #expect(try RecordCLI.scalar(dir + "/g.db", "SELECT status || ' ' || name || ' ' || row_count FROM runs") == .text("complete ctrl-c \(400 * 20 * 33)"))
        #expect(try RecordCLI.scalar(dir + "/g.db", "PRAGMA integrity_check") == .text("ok"))
    }
}
