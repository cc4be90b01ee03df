import ArgumentParser
import GateScopeFormat
import GateScopeStore

/// `gatescope migrate DB`: brings a database written by an older gatescope to this schema version.
struct MigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Upgrade a database written by an older gatescope to this version's schema, in place.",
        discussion: """
        The read commands open databases read-only, so they refuse an older schema; this runs the \
        numbered migrations of schema/ in one transaction. Nothing is lost: every run, row and \
        summary reads back as before (an interrupted migration changes nothing). `record` into \
        the database migrates it too.

        Example:
          gatescope migrate old.db
        """
    )

    @Argument(help: "The GateScope SQLite database (opened read-write).")
    var db: String

    @Flag(help: "Also rewrite the file with page checksums if it has none (a VACUUM: needs free space for a copy and no recording running).")
    var checksums = false

    @Flag(help: "Recompute every page checksum after another tool wrote to the database (its pages then read as damaged). This also blesses real damage: run `gatescope check` first.")
    var rewriteChecksums = false

    func run() throws {
        try runReadCommand("migrate") {
            // First: until the checksums are rewritten, stale pages cannot even be read to migrate.
            if rewriteChecksums {
                try Integrity.rewritePageChecksums(path: db)
                print("\(db): page checksums rewritten")
            }
            let (from, to) = try Schema.upgrade(path: db)
            print(from == to ? "\(db): schema version \(to), nothing to do" : "\(db): schema version \(from) -> \(to)")
            if checksums {
                print(try Integrity.addPageChecksums(path: db) ? "\(db): page checksums added" : "\(db): page checksums already present")
            }
        }
    }
}
