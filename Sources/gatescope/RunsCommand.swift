import ArgumentParser
import GateScopeFormat
import GateScopeStore

/// `gatescope runs DB`: the runs of a database with their sizes.
struct RunsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs",
        abstract: "List the recording runs of a database: id, name, status, model, Keras version, sizes, times.",
        discussion: """
        sequences, steps and rows are what is committed so far (steps = summed sequence lengths, \
        rows = gates rows), so a run being recorded shows its progress. The database is opened \
        read-only and can be listed while a recording is running.

        Examples:
          gatescope runs demo.db
          gatescope runs demo.db --format json
        """
    )

    @Argument(help: "The GateScope SQLite database (opened read-only).")
    var db: String

    @OptionGroup var output: OutputOptions

    func run() throws {
        try runReadCommand("runs") {
            let database = try ReadAccess.open(db)
            try RunListing.write(database, to: try output.makeWriter(database: db))
        }
    }
}
