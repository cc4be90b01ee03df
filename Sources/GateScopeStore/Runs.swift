import Foundation

/// The `runs` listing: one row per run with its size.
public enum RunListing {
    /// Column names of `rows(_:)`.
    public static let columns = ["run_id", "name", "status", "model", "keras_version", "sequences", "steps", "rows",
                                 "created_at", "finished_at", "error"]

    /// One row per run in id order. Sizes are what is committed so far (the recorder keeps them in
    /// `runs`, so nothing is counted): `steps` sums the sequence lengths, `rows` counts `gates` rows.
    public static func rows(_ db: Database) throws -> [[SQLiteValue]] {
        try ReadAccess.runs(db).map { run in
            [
                .integer(run.runID), run.name.map(SQLiteValue.text) ?? .null, .text(run.status),
                run.modelPath.map(SQLiteValue.text) ?? .null, run.kerasVersion.map(SQLiteValue.text) ?? .null,
                .integer(run.sequences), .integer(run.steps), .integer(run.rows),
                run.createdAt.map(SQLiteValue.text) ?? .null, run.finishedAt.map(SQLiteValue.text) ?? .null,
                run.error.map(SQLiteValue.text) ?? .null,
            ]
        }
    }

    /// Writes the listing to `writer`.
    public static func write(_ db: Database, to writer: RowWriter) throws {
        try writer.begin(columns: columns)
        for row in try rows(db) { try writer.write(row) }
        try writer.finish()
    }
}
