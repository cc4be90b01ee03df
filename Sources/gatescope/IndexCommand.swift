import ArgumentParser
import Foundation
import GateScopeFormat
import GateScopeStore

/// `gatescope index DB`: builds the optional access paths for per-unit reads and off-grid stats.
struct IndexCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index",
        abstract: "Build the unit index and sorted values, for fast per-unit reads and exact stats at any threshold.",
        discussion: """
        Creates an index on (run_id, layer_id, unit) of each gate table, so that export --units, \
        plot unit, query top-tokens and your own SQL with WHERE unit = ? seek instead of scanning, \
        and writes each complete run's values sorted per unit and gate, from which stats counts \
        thresholds off the 0.001 grid exactly without a scan. Recording never builds these; once \
        the index exists, later recordings keep it up to date, which costs them time (see README). \
        Runs already sorted are skipped, so rerunning after new recordings only adds what is new.

        Example:
          gatescope index big.db
        """
    )

    @Argument(help: "The GateScope SQLite database (opened read-write).")
    var db: String

    @Option(name: .customLong("run"), help: "Sort only this run's values (default: every complete run not sorted yet).")
    var runID: Int64?

    @Flag(help: "Do not print progress to stderr.")
    var noProgress = false

    func validate() throws {
        if let runID, runID < 1 { throw ValidationError("--run takes a run id (1 or more), got \(runID)") }
    }

    func run() throws {
        try runReadCommand("index") {
            let quiet = noProgress
            let result = try UnitIndex.build(path: db, runs: runID.map { [$0] }) { id in
                if !quiet { FileHandle.standardError.write(Data("sorting the values of run \(id)\n".utf8)) }
            }
            let mb = { (b: Int64) in String(format: "%.1f MB", Double(b) / 1e6) }
            let runs = result.sortedRuns.isEmpty ? "no run to sort" : "sorted run" + (result.sortedRuns.count > 1 ? "s " : " ") + result.sortedRuns.map(String.init).joined(separator: ", ")
            let indexes = result.createdIndexes.isEmpty ? "unit index present" : "unit index created"
            print("\(db): \(indexes), \(runs); \(mb(result.bytesBefore)) -> \(mb(result.bytesAfter)) in \(String(format: "%.1f", result.seconds)) s")
        }
    }
}
