import CSQLite
import Foundation

/// The database schema: migrations from `schema/NNN_name.sql`, versioned with `PRAGMA user_version`.
public enum Schema {
    /// One migration script: running it brings a database to `version`.
    public struct Migration: Sendable, Equatable {
        public var version: Int
        public var name: String
        public var sql: String

        /// Creates a migration (tests use their own lists).
        public init(version: Int, name: String, sql: String) {
            self.version = version
            self.name = name
            self.sql = sql
        }
    }

    /// The migrations embedded from `schema/*.sql`, in version order.
    public static let migrations: [Migration] = {
        EmbeddedSQL.files
            .filter { $0.folder == "schema" }
            .compactMap { file -> Migration? in
                // NNN_name.sql: the leading number is the version the file migrates to.
                let digits = file.name.prefix { $0.isNumber }
                guard let version = Int(digits) else { return nil }
                return Migration(version: version, name: file.name, sql: file.text)
            }
            .sorted { $0.version < $1.version }
    }()

    /// The schema version this build writes and reads.
    public static var currentVersion: Int { migrations.last?.version ?? 0 }

    /// Brings a read-write database to the current version: creates the schema in a new (empty)
    /// file, migrates an older one in one transaction, refuses a newer one or a foreign database.
    /// Returns the version the database had before.
    @discardableResult
    public static func migrate(_ db: Database, migrations: [Migration] = Schema.migrations) throws -> Int {
        let target = migrations.last?.version ?? 0
        // IMMEDIATE: two recorders starting at once must not both create the schema.
        return try db.transaction(immediate: true) {
            let version = try db.userVersion()
            try checkVersion(version, db: db, target: target)
            for migration in migrations where migration.version > version {
                do {
                    try db.execute(migration.sql)
                } catch var e as DatabaseError {
                    e.message = "schema migration \(migration.name) failed: \(e.message)"
                    throw e
                }
                // user_version cannot be bound; the value is an integer we computed.
                try db.execute("PRAGMA user_version = \(migration.version)")
            }
            return version
        }
    }

    /// Migrates the existing database at `path` in place (one transaction; nothing is lost) and
    /// returns its version before and after. A missing file, a foreign or a newer database is an error.
    public static func upgrade(path: String) throws -> (from: Int, to: Int) {
        guard FileManager.default.fileExists(atPath: path) else {
            throw DatabaseError(code: SQLITE_CANTOPEN, message: "no database '\(path)'")
        }
        let db = try Database(path: path, mode: .readWrite)
        if try db.userVersion() == 0, try db.scalar("SELECT count(*) FROM sqlite_master")?.int64Value == 0 {
            throw StoreError("'\(path)' is not a GateScope database (it is empty)")
        }
        let before = try migrate(db)
        return (before, currentVersion)
    }

    /// For read-only use: the database must be a GateScope database at exactly the current version.
    public static func checkReadable(_ db: Database) throws {
        let version = try db.userVersion()
        try checkVersion(version, db: db, target: currentVersion)
        if version < currentVersion {
            throw DatabaseError(code: SQLITE_ERROR,
                                message: "'\(db.path)' has schema version \(version), this gatescope reads \(currentVersion): upgrade it in place with `gatescope migrate \(db.path)` (nothing is lost)")
        }
    }

    static func checkVersion(_ version: Int, db: Database, target: Int) throws {
        if version > target {
            throw DatabaseError(code: SQLITE_ERROR,
                                message: "'\(db.path)' has schema version \(version), newer than this gatescope supports (\(target)); use a newer gatescope")
        }
        if version == 0, try db.scalar("SELECT count(*) FROM sqlite_master")?.int64Value ?? 0 > 0 {
            throw DatabaseError(code: SQLITE_ERROR,
                                message: "'\(db.path)' is an SQLite database but not a GateScope one (it has tables and no schema version)")
        }
    }
}
