import Foundation
import Testing

/// `record --summaries-only`: the summaries, pair moments and spans of a full recording, no gate
/// rows. What reads summaries answers exactly as on the full recording; what needs rows says so
/// in one line and exits 1; such a run cannot be resumed.
@Suite struct SummariesOnlyCLITests {
    @Test func statsAndSummaryQueriesEqualAFullRecordingAndRowCommandsRefuse() throws {
        let dir = try GateScopeCLI.tempDir("summaries-only")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = try ShardCLITests.input(dir, lines: 30)
        let full = dir + "/full.db", only = dir + "/only.db"
        for (db, extra) in [(full, [String]()), (only, ["--summaries-only"])] {
            let out = try GateScopeCLI.run(ShardCLITests.recordArgs(input, db: db) + extra)
            #expect(out.status == 0, Comment(rawValue: out.message))
        }
        // Answered from the summaries (on the 1/1000 grid), the pair moments and the spans.
        for args in [["stats", "DB", "--format", "csv"], ["stats", "DB", "--low", "0.25", "--high", "0.75", "--format", "json"],
                     ["query", "DB", "integrators", "--format", "csv"], ["query", "DB", "unit-correlation", "-p", "limit=-1", "--format", "csv"],
                     ["query", "DB", "memory-spans", "-p", "threshold", "0.5", "--format", "csv"]] {
            let a = try GateScopeCLI.run(args.map { $0 == "DB" ? full : $0 })
            let b = try GateScopeCLI.run(args.map { $0 == "DB" ? only : $0 })
            #expect(a.status == 0 && b.status == 0, Comment(rawValue: "\(args): \(a.message) \(b.message)"))
            #expect(!a.stdout.isEmpty)
            #expect(a.stdout == b.stdout, Comment(rawValue: "\(args) differs"))
        }
        let runs = try GateScopeCLI.run(["runs", only, "--format", "csv"])
        #expect(runs.stdout.split(separator: "\n")[1].split(separator: ",", omittingEmptySubsequences: false)[7] == "0")  // rows
        // Row commands: one line, exit 1.
        let refused = "run 1 has summaries only (recorded with --summaries-only): "
        for (args, need) in [(["export", only], "export needs its gate rows"),
                             (["stats", only, "--full-scan"], "stats --full-scan needs its gate rows"),
                             (["stats", only, "--low", "0.1234"], "stats with thresholds off the 1/1000 grid needs its gate rows"),
                             (["plot", "heatmap", only, "--seq", "0", "--layer", "lstm1", "--gate", "f", "-o", dir + "/p.svg"], "a per-step plot needs its gate rows")] {
            let out = try GateScopeCLI.run(args)
            #expect(out.status == 1, Comment(rawValue: "\(args)"))
            #expect(out.stdout.isEmpty)
            #expect(out.message.hasSuffix(refused + need + "; record it again without --summaries-only"), Comment(rawValue: out.message))
            #expect(!out.message.contains("\n"))
        }
        let resume = try GateScopeCLI.run(ShardCLITests.recordArgs(input, db: only) + ["--resume", "1"])
        #expect(resume.status == 1)
        #expect(resume.message.hasSuffix("run 1 is already complete; nothing to resume"), Comment(rawValue: resume.message))
        let check = try GateScopeCLI.run(["check", only])
        #expect(check.status == 0, Comment(rawValue: check.stdout + check.message))
    }
}
