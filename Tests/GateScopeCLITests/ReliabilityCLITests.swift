import Foundation
import GateScopeStore
import Testing

// What happens to a recording when the file is damaged, two recorders meet, or the disk fills:
// each through the built binary, against an undamaged recording of the same input.

private enum Reliability {
    static let model = RecordCLI.fixtures + "/odd_units_relu/model.keras"  // LSTM(33), 4 features

    /// Records `in.npy` into `name` and checks it completed.
    static func record(_ dir: String, _ name: String, _ extra: [String] = []) throws {
        let out = try GateScopeCLI.run(["record", model, "in.npy", "--db", name, "--batch-size", "16", "--no-progress"] + extra, in: dir)
        #expect(out.status == 0, "\(out.stderr)")
    }

    /// Makes `db` look like a recording killed after `keep` sequences: the rows, sequences and
    /// bookkeeping of the first `keep` only, no summaries, status running (what kill -9 leaves).
    static func truncate(_ db: String, keep: Int) throws {
        let d = try Database(path: db, mode: .readWrite)
        try d.execute("""
            DELETE FROM gates WHERE seq_id >= \(keep);
            DELETE FROM sequences WHERE seq_id >= \(keep);
            DELETE FROM unit_summaries; DELETE FROM unit_pairs; DELETE FROM unit_h_moments; DELETE FROM unit_spans;
            UPDATE runs SET status = 'running', finished_at = NULL, recorded_sequences = \(keep),
                   recorded_steps = (SELECT sum(length) FROM sequences), row_count = (SELECT count(*) FROM gates);
            PRAGMA wal_checkpoint(TRUNCATE);
            """)
    }

    /// Writes everything into the database file (so an overwrite of the file is what readers see).
    static func checkpoint(_ db: String) throws {
        try Database(path: db, mode: .readWrite).execute("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    /// Overwrites 16 bytes at `offset` of `path` with `bytes`.
    static func overwrite(_ path: String, at offset: UInt64, with bytes: [UInt8]) throws {
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try h.seek(toOffset: offset)
        h.write(Data(bytes))
        try h.close()
    }

    static func oneLine(_ out: GateScopeCLI.Output) -> Bool {
        out.status == 1 && !out.signaled && out.stderr.split(separator: "\n").count == 1
    }
}

@Suite(.serialized) struct ReliabilityCLITests {
    /// Six seeded 16-byte overwrites: every export, stats and resume fails in one line or gives
    /// exactly the undamaged output.
    @Test func damagedDatabasesAreNeverReadAsWhole() throws {
        let dir = try GateScopeCLI.tempDir("damage")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try RecordCLI.writeInput(dir + "/in.npy", count: 200, time: 20, features: 4)  // 132,000 rows
        try Reliability.record(dir, "ref.db")
        try Reliability.checkpoint(dir + "/ref.db")
        let export = try GateScopeCLI.run(["export", "ref.db", "--run", "1", "--format", "csv"], in: dir)
        let stats = try GateScopeCLI.run(["stats", "ref.db", "--run", "1", "--format", "csv"], in: dir)
        #expect(export.status == 0 && stats.status == 0)
        try FileManager.default.copyItem(atPath: dir + "/ref.db", toPath: dir + "/partial.db")
        try Reliability.truncate(dir + "/partial.db", keep: 120)

        var state: UInt64 = 20261202
        func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 11 }
        var outcomes: [String] = []
        for trial in 0..<6 {
            let bytes = (0..<16).map { _ in UInt8(truncatingIfNeeded: next()) }
            for source in ["ref.db", "partial.db"] {
                let size = try FileManager.default.attributesOfItem(atPath: dir + "/" + source)[.size] as! UInt64
                let offset = next() % (size - 16)
                let damaged = "damaged\(trial)-\(source)"
                try? FileManager.default.removeItem(atPath: dir + "/" + damaged)
                try FileManager.default.copyItem(atPath: dir + "/" + source, toPath: dir + "/" + damaged)
                try Reliability.overwrite(dir + "/" + damaged, at: offset, with: bytes)
                if source == "ref.db" {
                    for (args, want) in [(["export", damaged, "--run", "1", "--format", "csv"], export.stdout),
                                         (["stats", damaged, "--run", "1", "--format", "csv"], stats.stdout)] {
                        let out = try GateScopeCLI.run(args, in: dir)
                        let ok = Reliability.oneLine(out) || (out.status == 0 && out.stdout == want)
                        #expect(ok, "trial \(trial) \(args[0]) after 16 bytes at \(offset): exit \(out.status), \(out.stdout.count) of \(want.count) chars, \(out.stderr.prefix(300))")
                        outcomes.append("\(args[0]) @\(offset): \(out.status == 0 ? "undamaged output" : "refused")")
                    }
                } else {
                    let resumed = try GateScopeCLI.run(["record", Reliability.model, "in.npy", "--db", damaged, "--resume", "1", "--no-progress"], in: dir)
                    if resumed.status == 0 {
                        let after = try GateScopeCLI.run(["export", damaged, "--run", "1", "--format", "csv"], in: dir)
                        #expect(after.status == 0 && after.stdout == export.stdout,
                                "trial \(trial): resume after 16 bytes at \(offset) succeeded but the export differs: \(after.stderr.prefix(300))")
                    } else {
                        #expect(Reliability.oneLine(resumed), "trial \(trial) resume @\(offset): exit \(resumed.status) \(resumed.stderr.prefix(300))")
                    }
                    outcomes.append("resume @\(offset): \(resumed.status == 0 ? "completed exactly" : "refused")")
                }
            }
        }
        print("damage trials: " + outcomes.joined(separator: "; "))
        // The checker finds what the readers refused, in one line per problem.
        let check = try GateScopeCLI.run(["check", "ref.db"], in: dir)
        #expect(check.status == 0 && check.stdout.hasPrefix("ref.db: ok: "), "\(check.stdout) \(check.stderr)")
    }

    /// `check` names a damaged page, exits 1, and reports a row count that disagrees.
    @Test func checkReportsDamagedPagesAndMissingRows() throws {
        let dir = try GateScopeCLI.tempDir("check")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try RecordCLI.writeInput(dir + "/in.npy", count: 60, time: 20, features: 4)
        try Reliability.record(dir, "g.db")
        try Reliability.checkpoint(dir + "/g.db")
        let ok = try GateScopeCLI.run(["check", "g.db"], in: dir)
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.range(of: #"^g\.db: ok: \d+ pages match their checksums, SQLite integrity check ok, rows of 1 run match their counts\n$"#, options: .regularExpression) != nil, "\(ok.stdout)")

        try FileManager.default.copyItem(atPath: dir + "/g.db", toPath: dir + "/bad.db")
        let pageSize: UInt64 = 16384
        try Reliability.overwrite(dir + "/bad.db", at: 5 * pageSize + 100, with: [UInt8](repeating: 0xAB, count: 16))
        let bad = try GateScopeCLI.run(["check", "bad.db"], in: dir)
        #expect(bad.status == 1)
        #expect(bad.stdout.hasPrefix("bad.db: page: page 6 (bytes 81920...) does not match its checksum\n"), "\(bad.stdout)")
        #expect(bad.stderr.hasPrefix("gatescope check: 'bad.db' is damaged ("), "\(bad.stderr)")

        // Rows deleted behind the recorder's back (a database written by something else).
        try FileManager.default.copyItem(atPath: dir + "/g.db", toPath: dir + "/short.db")
        try Database(path: dir + "/short.db", mode: .readWrite).execute("DELETE FROM gates WHERE seq_id = 7")
        let short = try GateScopeCLI.run(["check", "short.db"], in: dir)
        #expect(short.status == 1)
        #expect(short.stdout.contains("short.db: rows: run 1: 38940 gate rows in the tables, the recorder committed 39600\n"), "\(short.stdout)")
        // And resume refuses to build on it.
        try FileManager.default.copyItem(atPath: dir + "/g.db", toPath: dir + "/killed.db")
        try Reliability.truncate(dir + "/killed.db", keep: 30)
        try Database(path: dir + "/killed.db", mode: .readWrite).execute("DELETE FROM gates WHERE seq_id = 3")
        let resumed = try GateScopeCLI.run(["record", Reliability.model, "in.npy", "--db", "killed.db", "--resume", "1"], in: dir)
        #expect(resumed.status == 1)
        #expect(resumed.message == "gatescope record: run 1 is damaged: its tables hold 30 sequences and 19140 gate rows, the recorder committed 30 and 19800; not resuming (see `gatescope check`)", "\(resumed.stderr)")
        #expect(try RecordCLI.scalar(dir + "/killed.db", "SELECT status FROM runs") == .text("running"))
    }

    /// An older database gains page checksums through `migrate --checksums`, losing nothing.
    @Test func migrateAddsPageChecksumsToAnOlderDatabase() throws {
        let dir = try GateScopeCLI.tempDir("cksum")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let v1 = URL(fileURLWithPath: RecordCLI.fixtures).deletingLastPathComponent().appendingPathComponent("v1/v1.db").path
        try FileManager.default.copyItem(atPath: v1, toPath: dir + "/plain.db")
        try FileManager.default.copyItem(atPath: v1, toPath: dir + "/cksum.db")
        let old = try GateScopeCLI.run(["check", "plain.db"], in: dir)
        #expect(old.status == 1 && old.message.hasPrefix("gatescope check: 'plain.db' has schema version 1"), "\(old.stderr)")
        #expect(try GateScopeCLI.run(["migrate", "plain.db"], in: dir).status == 0)
        let plain = try GateScopeCLI.run(["check", "plain.db"], in: dir)
        #expect(plain.stdout.hasPrefix("plain.db: ok: no page checksums (created by an older gatescope)"), "\(plain.stdout)")
        let migrated = try GateScopeCLI.run(["migrate", "cksum.db", "--checksums"], in: dir)
        #expect(migrated.stdout == "cksum.db: schema version 1 -> 7\ncksum.db: page checksums added\n", "\(migrated.stdout) \(migrated.stderr)")
        let checked = try GateScopeCLI.run(["check", "cksum.db"], in: dir)
        #expect(checked.status == 0 && checked.stdout.contains(" pages match their checksums"), "\(checked.stdout)")
        let a = try GateScopeCLI.run(["export", "plain.db", "--run", "1", "--format", "csv"], in: dir)
        let b = try GateScopeCLI.run(["export", "cksum.db", "--run", "1", "--format", "csv"], in: dir)
        #expect(a.status == 0 && a.stdout == b.stdout && !a.stdout.isEmpty)
        let again = try GateScopeCLI.run(["migrate", "cksum.db", "--checksums"], in: dir)
        #expect(again.stdout.hasSuffix("cksum.db: page checksums already present\n"))

        // Another tool (Python's sqlite3, without gatescope's VFS) writes: its pages read as
        // damaged until `migrate --rewrite-checksums` stamps them anew, keeping its change.
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", "-c", "import sqlite3; c = sqlite3.connect('cksum.db'); c.execute(\"UPDATE runs SET name = 'renamed'\"); c.commit(); c.close()"]
        python.currentDirectoryURL = URL(fileURLWithPath: dir)
        try python.run()
        python.waitUntilExit()
        #expect(python.terminationStatus == 0)
        let stale = try GateScopeCLI.run(["runs", "cksum.db"], in: dir)
        #expect(stale.status == 1 && stale.message.contains("a page checksum does not match"), "\(stale.stderr)")
        let rewritten = try GateScopeCLI.run(["migrate", "cksum.db", "--rewrite-checksums"], in: dir)
        #expect(rewritten.stdout.hasPrefix("cksum.db: page checksums rewritten\n"), "\(rewritten.stdout) \(rewritten.stderr)")
        #expect(try GateScopeCLI.run(["check", "cksum.db"], in: dir).status == 0)
        let runs = try GateScopeCLI.run(["runs", "cksum.db", "--format", "csv", "--no-header"], in: dir)
        #expect(runs.stdout.hasPrefix("1,renamed,complete,"), "\(runs.stdout) \(runs.stderr)")
    }

    /// A second resume of a run another process writes is refused at once, naming it, and the
    /// first finishes exactly; the loser changes neither status nor summaries.
    @Test func secondResumeIsRefusedWhileTheFirstRuns() throws {
        let dir = try GateScopeCLI.tempDir("lock")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try RecordCLI.writeInput(dir + "/in.npy", count: 1500, time: 20, features: 4)  // 990,000 rows
        try Reliability.record(dir, "ref.db")
        try FileManager.default.copyItem(atPath: dir + "/ref.db", toPath: dir + "/g.db")
        try Reliability.truncate(dir + "/g.db", keep: 16)

        let first = try GateScopeCLI.start(["record", Reliability.model, "in.npy", "--db", "g.db", "--resume", "1", "--batch-size", "16", "--no-progress"], in: dir)
        // Wait until the first resume is writing (it took the lock before it read anything).
        var writing = false
        for _ in 0..<10000 {
            if let done = try? RecordCLI.scalar(dir + "/g.db", "SELECT recorded_sequences FROM runs")?.int64Value, done > 16 { writing = true; break }
            usleep(1000)
        }
        #expect(writing, "the first resume never committed")
        let second = try GateScopeCLI.run(["record", Reliability.model, "in.npy", "--db", "g.db", "--resume", "1", "--no-progress"], in: dir)
        let statusWhileFirstRuns = try RecordCLI.scalar(dir + "/g.db", "SELECT status FROM runs")
        let done = try GateScopeCLI.finish(first)
        #expect(second.status == 1)
        #expect(second.message == "gatescope record: run 1 is being recorded by process \(first.pid) (lock 'g.db-gatescope-lock'); wait for it to end or stop it before resuming", "\(second.stderr)")
        #expect(statusWhileFirstRuns == .text("running"))
        #expect(done.status == 0, "\(done.stderr)")
        #expect(try RecordCLI.scalar(dir + "/g.db", "SELECT status || ' ' || row_count FROM runs") == .text("complete 990000"))
        for table in ["gates", "sequences", "unit_summaries", "unit_pairs", "unit_spans"] {
            #expect(try RecordCLI.difference(dir + "/g.db", dir + "/ref.db", table: table) == 0, "\(table) differs")
        }
    }

    /// A tmpfs of `megabytes`, mounted for the test (needs root, as in CI); nil if it cannot be.
    static func smallFilesystem(megabytes: Int) -> String? {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gatescope-full-\(UUID().uuidString.prefix(8))").path
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", dir]
        mount.standardError = FileHandle.nullDevice
        guard (try? mount.run()) != nil else { return nil }
        mount.waitUntilExit()
        return mount.terminationStatus == 0 ? dir : nil
    }

    static func unmount(_ dir: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/umount")
        p.arguments = [dir]
        try? p.run()
        p.waitUntilExit()
        try? FileManager.default.removeItem(atPath: dir)
    }

    static let canMount: Bool = {
        guard getuid() == 0, let dir = smallFilesystem(megabytes: 1) else { return false }
        unmount(dir)
        return true
    }()

    /// The disk fills mid-run: the run ends failed with the error; once space is freed, a resume
    /// in place completes with exactly the rows of an undisturbed recording.
    @Test(.enabled(if: canMount, "needs root to mount a small tmpfs (CI runs as root)"))
    func diskFullFailsTheRunAndResumesInPlace() throws {
        let dir = try GateScopeCLI.tempDir("full")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try RecordCLI.writeInput(dir + "/in.npy", count: 300, time: 20, features: 4)  // 198,000 rows
        try Reliability.record(dir, "ref.db")
        let full = try #require(Self.smallFilesystem(megabytes: 64))
        defer { Self.unmount(full) }
        // Leave 6 MB free: the recording needs several times that.
        let ballast = full + "/ballast"
        #expect(FileManager.default.createFile(atPath: ballast, contents: Data(count: 58 << 20)))
        let db = full + "/g.db"
        let failed = try GateScopeCLI.run(["record", Reliability.model, dir + "/in.npy", "--db", db, "--batch-size", "16", "--no-progress"])
        #expect(failed.status == 1)
        #expect(failed.message.hasPrefix("gatescope record: database or disk is full"), "\(failed.stderr)")
        #expect(try RecordCLI.scalar(db, "SELECT status FROM runs") == .text("failed"))
        #expect(try RecordCLI.scalar(db, "SELECT error FROM runs")?.stringValue?.hasPrefix("database or disk is full") == true)
        let committed = try RecordCLI.scalar(db, "SELECT recorded_sequences FROM runs")?.int64Value ?? -1
        #expect(committed > 0 && committed < 300, "\(committed) sequences committed before the disk filled")

        try FileManager.default.removeItem(atPath: ballast)
        let resumed = try GateScopeCLI.run(["record", Reliability.model, dir + "/in.npy", "--db", db, "--resume", "1", "--no-progress"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(try RecordCLI.scalar(db, "SELECT status || ' ' || row_count FROM runs") == .text("complete 198000"))
        for table in ["gates", "sequences", "unit_summaries", "unit_pairs", "unit_spans"] {
            #expect(try RecordCLI.difference(db, dir + "/ref.db", table: table) == 0, "\(table) differs")
        }
    }
}
