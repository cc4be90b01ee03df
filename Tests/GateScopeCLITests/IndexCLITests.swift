import Foundation
import Testing

/// `gatescope index`: after it, per-unit reads and off-grid stats take the new access paths and
/// print exactly what they printed before; recording into an indexed database keeps working.
@Suite(.serialized) struct IndexCLITests {
    @Test func indexedReadsEqualScans() throws {
        let dir = try GateScopeCLI.tempDir("index")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = try ShardCLITests.input(dir, lines: 30)
        let db = dir + "/g.db"
        let rec = try GateScopeCLI.run(ShardCLITests.recordArgs(input, db: db))
        try #require(rec.status == 0, Comment(rawValue: rec.message))
        let reads: [[String]] = [
            ["export", db, "--layer", "lstm2", "--units", "5", "--format", "csv"],
            ["export", db, "--units", "0,7-9", "--seq", "2-6", "--format", "csv"],
            ["stats", db, "--low", "0.1234", "--high", "0.8766", "--format", "csv"],
            ["stats", db, "--low", "0.3", "--high", "0.7", "--format", "csv"],
            ["query", db, "top-tokens", "-p", "unit", "5", "-p", "layer", "lstm2", "--format", "csv"],
        ]
        let before = try reads.map { try GateScopeCLI.run($0) }
        for (args, out) in zip(reads, before) { #expect(out.status == 0, Comment(rawValue: "\(args): \(out.message)")) }
        #expect(before[0].stdout.split(separator: "\n").count > 100)

        let index = try GateScopeCLI.run(["index", db, "--no-progress"])
        #expect(index.status == 0, Comment(rawValue: index.message))
        #expect(index.stdout.hasPrefix("\(db): unit index created, sorted run 1; "))
        let again = try GateScopeCLI.run(["index", db, "--no-progress"])
        #expect(again.stdout.hasPrefix("\(db): unit index present, no run to sort; "))
        for (args, old) in zip(reads, before) {
            let new = try GateScopeCLI.run(args)
            #expect(new.status == 0 && new.stdout == old.stdout, Comment(rawValue: "\(args) differs after index"))
        }

        // A new run recorded into the indexed database is read the same way once sorted too.
        let second = try GateScopeCLI.run(ShardCLITests.recordArgs(input, db: db))
        try #require(second.status == 0, Comment(rawValue: second.message))
        let offGrid = ["stats", db, "--run", "2", "--low", "0.1234", "--high", "0.8766", "--format", "csv"]
        let scanned = try GateScopeCLI.run(offGrid)
        #expect(try GateScopeCLI.run(["index", db, "--no-progress"]).stdout.hasPrefix("\(db): unit index present, sorted run 2; "))
        let sorted = try GateScopeCLI.run(offGrid)
        #expect(sorted.stdout == scanned.stdout && !sorted.stdout.isEmpty)
        #expect(sorted.stdout.replacingOccurrences(of: "\n2,", with: "\n1,") == before[2].stdout)

        let bad = try GateScopeCLI.run(["index", db, "--run", "9"])
        #expect(bad.status == 1 && bad.message.contains("has no run 9"))
    }
}
