import ArgumentParser
import Foundation
import GateScopeStore

/// `gatescope check DB`: reports whether the database is whole, one line per problem.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check a database: page checksums, SQLite's integrity check, and each run's rows against its counts.",
        discussion: """
        Prints one line per problem and exits 1 if there is any, else one line saying what was \
        checked and exits 0. Opens the database read-only, so it can run while a recording writes.

        Example:
          gatescope check gates.db
        """
    )

    @Argument(help: "The GateScope SQLite database (opened read-only).")
    var db: String

    func run() throws {
        var report: Integrity.Report?
        try runReadCommand("check") { report = try Integrity.check(path: db) }
        guard let report else { return }
        for problem in report.problems { print("\(db): \(problem)") }
        if !report.problems.isEmpty {
            FileHandle.standardError.write(Data("gatescope check: '\(db)' is damaged (\(report.problems.count) problem\(report.problems.count == 1 ? "" : "s"))\n".utf8))
            throw ExitCode.failure
        }
        let pages = report.hasPageChecksums ? "\(report.pagesChecked) pages match their checksums" : "no page checksums (created by an older gatescope)"
        print("\(db): ok: \(pages), SQLite integrity check ok, rows of \(report.runsChecked) run\(report.runsChecked == 1 ? "" : "s") match their counts")
    }
}
