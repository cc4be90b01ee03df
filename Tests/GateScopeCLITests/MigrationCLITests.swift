import Foundation
import Testing

/// A database written by the release before schema version 2 (Tests/Fixtures/v1, made by
/// scripts/make_v1_fixture.sh with that release's binary) is refused read-only with a hint,
/// migrates in place with `gatescope migrate`, and then every read command prints exactly what
/// that release printed on it.
@Suite struct MigrationCLITests {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/v1")

    static let reads: [(file: String, args: [String])] = [
        ("stats.csv", ["stats", "DB", "--format", "csv"]),
        ("stats_offgrid.csv", ["stats", "DB", "--format", "csv", "--low", "0.1234", "--high", "0.8766"]),
        ("export.csv", ["export", "DB", "--format", "csv"]),
        ("export_long.csv", ["export", "DB", "--format", "csv", "--long", "--seq", "1"]),
        ("saturation.csv", ["query", "DB", "saturation", "--format", "csv"]),
        ("dead_units.csv", ["query", "DB", "dead-units", "-p", "threshold", "0.5", "--format", "csv"]),
        ("top_tokens.csv", ["query", "DB", "top-tokens", "-p", "unit", "1", "--format", "csv"]),
    ]

    @Test func version1DatabaseMigratesAndReadsBackIdentically() throws {
        let tmp = try GateScopeCLI.tempDir("v1migrate")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let db = tmp + "/v1.db"
        try FileManager.default.copyItem(atPath: Self.dir.appendingPathComponent("v1.db").path, toPath: db)

        let before = try GateScopeCLI.run(["stats", db])
        #expect(before.status == 1)
        #expect(before.message == "gatescope stats: '\(db)' has schema version 1, this gatescope reads 7: upgrade it in place with `gatescope migrate \(db)` (nothing is lost)")

        let migrate = try GateScopeCLI.run(["migrate", db])
        #expect(migrate.status == 0, Comment(rawValue: migrate.message))
        #expect(migrate.stdout == "\(db): schema version 1 -> 7\n")
        let again = try GateScopeCLI.run(["migrate", db])
        #expect(again.stdout == "\(db): schema version 7, nothing to do\n")

        for (file, args) in Self.reads {
            let out = try GateScopeCLI.run(args.map { $0 == "DB" ? db : $0 })
            #expect(out.status == 0, Comment(rawValue: "\(args): \(out.message)"))
            let want = try String(contentsOf: Self.dir.appendingPathComponent(file), encoding: .utf8)
            #expect(!want.isEmpty && want.split(separator: "\n").count > 1, "\(file) holds no rows")
            if file == "saturation.csv" {
                // Since schema 6 the query's std is gs_std, the exact population std that stats
                // prints; that release's SQL computed sqrt(E[x^2] - E[x]^2) in doubles, which
                // cancels. Every other column is as that release printed it; std agrees to the
                // rounding error of the old formula.
                let got = out.stdout.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
                let old = want.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
                #expect(got.count == old.count)
                for (a, b) in zip(got, old) {
                    #expect(a.count == 12 && b.count == 12 && Array(a[0..<9]) == Array(b[0..<9]) && Array(a[10...]) == Array(b[10...]))
                    if let x = Double(a[9]), let y = Double(b[9]) {
                        #expect(abs(x - y) <= 1e-12 * Swift.max(abs(y), 1e-3), "std \(x) vs \(y)")
                    } else {
                        #expect(a[9] == b[9])
                    }
                }
                continue
            }
            #expect(out.stdout == want, "\(args.joined(separator: " ")) differs from the release that wrote the database")
        }
    }

    @Test func migrateRefusesWhatIsNotAGateScopeDatabase() throws {
        let tmp = try GateScopeCLI.tempDir("v1migratebad")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let missing = try GateScopeCLI.run(["migrate", tmp + "/none.db"])
        #expect(missing.status == 1)
        #expect(missing.message == "gatescope migrate: no database '\(tmp)/none.db'")
        #expect(!FileManager.default.fileExists(atPath: tmp + "/none.db"))
    }
}
