import CSQLite
import CSQLiteChecksum
import Foundation

/// The one error type of GateScopeStore: a failed SQLite call (result code, message, SQL) or a
/// problem GateScope detects itself before SQLite sees it (then `code` is a SQLite-style code).
/// A request the store cannot answer, in one line: a run, layer, unit, sequence or gate that the
/// database does not have, shards that do not fit together, a query that would write. Not an
/// SQLite failure (that is `DatabaseError`).
public struct StoreError: Error, CustomStringConvertible, Equatable, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public struct DatabaseError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The SQLite extended result code (`SQLITE_ERROR`, `SQLITE_BUSY`, ...).
    public var code: Int32
    /// What went wrong, one line.
    public var message: String
    /// The SQL statement involved, if any.
    public var sql: String?

    /// Creates an error; `code` defaults to `SQLITE_ERROR`.
    public init(code: Int32 = SQLITE_ERROR, message: String, sql: String? = nil) {
        self.code = code
        // SQLite says only "disk I/O error" when the checksum VFS refuses a page.
        self.message = code == DatabaseError.pageChecksumMismatch
            ? "a page checksum does not match: the database is damaged (`gatescope check` lists the damage)"
            : message
        self.sql = sql
    }

    /// `SQLITE_IOERR_DATA`: the checksum VFS read a page whose checksum does not match.
    public static let pageChecksumMismatch: Int32 = SQLITE_IOERR | (32 << 8)

    /// The primary result code (`code & 0xff`), e.g. `SQLITE_CONSTRAINT` for any constraint failure.
    public var primaryCode: Int32 { code & 0xff }

    /// SQLite's English name of the result code, e.g. "constraint failed".
    public var codeName: String { String(cString: sqlite3_errstr(code)) }

    public var description: String {
        var text = message.replacingOccurrences(of: "\n", with: " ")
        if let sql {
            // One line, and short enough to read: the statement is context, not the message.
            var flat = sql.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
            if flat.count > 160 { flat = String(flat.prefix(157)) + "..." }
            text += " (SQLite \(codeName), code \(code); SQL: \(flat))"
        }
        return text
    }
}

/// One SQLite value, as stored.
public enum SQLiteValue: Equatable, Sendable, CustomStringConvertible {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob(Data)

    /// A short human form (blobs as `x'..'` hex), for messages and debugging.
    public var description: String {
        switch self {
        case .null: return "NULL"
        case let .integer(v): return String(v)
        case let .real(v): return String(v)
        case let .text(s): return s
        case let .blob(d): return "x'" + d.map { String(format: "%02x", $0) }.joined() + "'"
        }
    }

    /// The integer value, or nil.
    public var int64Value: Int64? { if case let .integer(v) = self { return v }; return nil }
    /// The numeric value (integer or real), or nil.
    public var doubleValue: Double? {
        switch self {
        case let .integer(v): return Double(v)
        case let .real(v): return v
        default: return nil
        }
    }
    /// The text value, or nil.
    public var stringValue: String? { if case let .text(s) = self { return s }; return nil }
    /// True for NULL.
    public var isNull: Bool { self == .null }
}

/// Anything that can be bound to a statement parameter.
public protocol SQLiteBindable {
    /// The value to bind.
    var sqliteValue: SQLiteValue { get }
}

extension Int: SQLiteBindable { public var sqliteValue: SQLiteValue { .integer(Int64(self)) } }
extension Int64: SQLiteBindable { public var sqliteValue: SQLiteValue { .integer(self) } }
extension Int32: SQLiteBindable { public var sqliteValue: SQLiteValue { .integer(Int64(self)) } }
extension Double: SQLiteBindable { public var sqliteValue: SQLiteValue { .real(self) } }
extension Float: SQLiteBindable { public var sqliteValue: SQLiteValue { .real(Double(self)) } }
extension String: SQLiteBindable { public var sqliteValue: SQLiteValue { .text(self) } }
extension Data: SQLiteBindable { public var sqliteValue: SQLiteValue { .blob(self) } }
extension Bool: SQLiteBindable { public var sqliteValue: SQLiteValue { .integer(self ? 1 : 0) } }
extension SQLiteValue: SQLiteBindable { public var sqliteValue: SQLiteValue { self } }
extension Optional: SQLiteBindable where Wrapped: SQLiteBindable {
    public var sqliteValue: SQLiteValue { self?.sqliteValue ?? .null }
}

/// An open SQLite connection (not thread-safe: use one per thread).
public final class Database {
    /// How to open the file.
    public enum Mode: Sendable {
        /// Read-write, creating the file if missing.
        case readWriteCreate
        /// Read-write; the file must exist.
        case readWrite
        /// `SQLITE_OPEN_READONLY`: every write fails.
        case readOnly
    }

    /// The raw `sqlite3*` handle, for calls this wrapper does not cover.
    public let handle: OpaquePointer
    /// The file path as opened.
    public let path: String
    public let mode: Mode

    /// Opens `path`; read-write connections switch to WAL. Foreign keys on, busy timeout set.
    /// `pageSize` (a power of two, 512...65536) applies only to a new, empty database.
    /// `verifyChecksums: false` reads pages whose checksums do not match (see `Integrity.rewritePageChecksums`).
    public init(path: String, mode: Mode = .readWriteCreate, busyTimeoutMilliseconds: Int32 = 5000, pageSize: Int? = nil,
                verifyChecksums: Bool = true) throws {
        var flags: Int32 = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI
        switch mode {
        case .readWriteCreate: flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
        case .readWrite: flags |= SQLITE_OPEN_READWRITE
        case .readOnly: flags |= SQLITE_OPEN_READONLY
        }
        if mode != .readWriteCreate, path != ":memory:", !FileManager.default.fileExists(atPath: path) {
            throw DatabaseError(code: SQLITE_CANTOPEN, message: "no database at '\(path)'")
        }
        // Every connection goes through the checksum VFS: pages of databases created with
        // checksums are verified on each read, so a damaged page fails instead of being read.
        let registered = gatescope_checksum_vfs_register()
        guard registered == SQLITE_OK else {
            throw DatabaseError(code: registered, message: "cannot register the page checksum VFS")
        }
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(path, &db, flags, GATESCOPE_CHECKSUM_VFS_NAME)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_close_v2(db)
            throw DatabaseError(code: rc, message: "cannot open database '\(path)': \(message)")
        }
        self.handle = db
        self.path = path
        self.mode = mode
        sqlite3_extended_result_codes(db, 1)
        do {
            try check(sqlite3_busy_timeout(db, busyTimeoutMilliseconds), sql: nil)
            // Before the first page is read (opening reads only the 100-byte header).
            if !verifyChecksums { try execute("PRAGMA gatescope_checksum_verification = off") }
            try execute("PRAGMA foreign_keys = ON")
            if mode != .readOnly {
                if let pageSize {
                    guard pageSize >= 512, pageSize <= 65536, pageSize & (pageSize - 1) == 0 else {
                        throw DatabaseError(code: SQLITE_MISUSE, message: "page size \(pageSize) is not a power of two in 512...65536")
                    }
                    // Must precede WAL: the page size of a WAL database is fixed. No-op on an existing file.
                    try execute("PRAGMA page_size = \(pageSize)")
                }
                // A new database reserves 8 bytes per page for its checksum (set before the first
                // page is written; an existing database keeps what it has).
                if path != ":memory:", !path.isEmpty, try scalar("PRAGMA page_count")?.int64Value == 0 {
                    try reserveBytes(setting: Int32(GATESCOPE_CHECKSUM_BYTES))
                }
                // WAL: readers in other processes see committed transactions while a run is written.
                let journal = try scalar("PRAGMA journal_mode = WAL")?.stringValue?.lowercased()
                if journal != "wal", path != ":memory:", !path.isEmpty {
                    throw DatabaseError(message: "cannot switch '\(path)' to WAL mode (journal_mode is \(journal ?? "unknown"))",
                                        sql: "PRAGMA journal_mode = WAL")
                }
                // Under WAL, NORMAL is crash-safe (a power loss may drop the last commits, never corrupt).
                try execute("PRAGMA synchronous = NORMAL")
            } else {
                // A file that is not a database fails here, not in the middle of a query.
                _ = try scalar("SELECT count(*) FROM sqlite_master")
            }
        } catch var e as DatabaseError {
            sqlite3_close_v2(db)
            e.message = "'\(path)': \(e.message)"
            throw e
        }
    }

    /// The bytes the main database reserves at the end of each page (8: page checksums), before
    /// `setting` (a new value, which takes effect on an empty database or at the next VACUUM).
    @discardableResult
    func reserveBytes(setting value: Int32? = nil) throws -> Int32 {
        var reserve = value ?? -1  // -1 asks without changing it
        try check(sqlite3_file_control(handle, "main", SQLITE_FCNTL_RESERVE_BYTES, &reserve), sql: nil)
        return reserve
    }

    deinit {
        // close_v2 defers the close until every statement is finalized.
        sqlite3_close_v2(handle)
    }

    /// Throws a `DatabaseError` for any result code that is not OK/ROW/DONE.
    @inline(__always)
    func check(_ rc: Int32, sql: String?) throws {
        if rc != SQLITE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE {
            throw DatabaseError(code: rc, message: String(cString: sqlite3_errmsg(handle)), sql: sql)
        }
    }

    /// Prepares exactly one statement; more than one statement in `sql` is an error.
    public func prepare(_ sql: String) throws -> Statement {
        let (statement, rest) = try prepareFirst(sql)
        guard let statement else {
            throw DatabaseError(code: SQLITE_MISUSE, message: "no SQL statement to run", sql: sql)
        }
        if !rest.isEmpty, try prepareFirst(rest).0 != nil {
            throw DatabaseError(code: SQLITE_MISUSE, message: "more than one SQL statement where one was expected", sql: sql)
        }
        return statement
    }

    /// Prepares the first statement of `sql` (nil if there is only whitespace/comments) and returns the rest.
    func prepareFirst(_ sql: String) throws -> (Statement?, String) {
        var stmt: OpaquePointer?
        var rest = ""
        var text = ""
        try sql.withCString { base in
            var tail: UnsafePointer<CChar>?
            let rc = sqlite3_prepare_v2(handle, base, -1, &stmt, &tail)
            if rc != SQLITE_OK {
                sqlite3_finalize(stmt)
                throw DatabaseError(code: rc, message: String(cString: sqlite3_errmsg(handle)), sql: sql)
            }
            if let tail {
                rest = String(cString: tail)
                let used = tail - base
                text = String(decoding: UnsafeRawBufferPointer(start: base, count: used).bindMemory(to: UInt8.self), as: UTF8.self)
            }
        }
        guard let stmt else { return (nil, rest) }
        return (Statement(database: self, handle: stmt, sql: text.trimmingCharacters(in: .whitespacesAndNewlines)), rest)
    }

    /// Runs every statement in `sql` (e.g. a migration script), discarding any rows.
    public func execute(_ sql: String) throws {
        var remaining = sql
        while true {
            let (statement, rest) = try prepareFirst(remaining)
            guard let statement else { return }
            while try statement.step() {}
            remaining = rest
        }
    }

    /// Runs one statement with positional bindings, discarding rows; returns the number of changed rows.
    @discardableResult
    public func run(_ sql: String, _ arguments: SQLiteBindable...) throws -> Int {
        let statement = try prepare(sql)
        try statement.bind(arguments)
        while try statement.step() {}
        return changes
    }

    /// The first column of the first row (nil when there is no row).
    public func scalar(_ sql: String, _ arguments: SQLiteBindable...) throws -> SQLiteValue? {
        let statement = try prepare(sql)
        try statement.bind(arguments)
        guard try statement.step() else { return nil }
        return statement.value(at: 0)
    }

    /// Prepares `sql` and streams its rows; bind with `arguments` (positional) or `named` (`":run"` -> value).
    public func query(_ sql: String, _ arguments: [SQLiteBindable] = [], named: [String: SQLiteBindable] = [:]) throws -> ResultSet {
        let statement = try prepare(sql)
        try statement.bind(arguments)
        for (name, value) in named { try statement.bind(value, name: name) }
        return ResultSet(statement: statement)
    }

    /// Runs `body` in a transaction: committed if it returns, rolled back if it throws.
    /// `immediate` takes the write lock at once (no deadlock-prone upgrade from a read lock).
    public func transaction<T>(immediate: Bool = true, _ body: () throws -> T) throws -> T {
        try execute(immediate ? "BEGIN IMMEDIATE" : "BEGIN")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            if !isAutocommit { try? execute("ROLLBACK") }
            throw error
        }
    }

    /// Starts a transaction (`BEGIN IMMEDIATE` by default).
    public func begin(immediate: Bool = true) throws { try execute(immediate ? "BEGIN IMMEDIATE" : "BEGIN") }
    /// Commits the open transaction.
    public func commit() throws { try execute("COMMIT") }
    /// Rolls the open transaction back; does nothing outside a transaction.
    public func rollback() throws { if !isAutocommit { try execute("ROLLBACK") } }

    /// False while a transaction is open.
    public var isAutocommit: Bool { sqlite3_get_autocommit(handle) != 0 }
    /// The rowid of the last successful INSERT on this connection.
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }
    /// Rows changed by the last INSERT/UPDATE/DELETE.
    public var changes: Int { Int(sqlite3_changes(handle)) }

    /// `PRAGMA user_version`.
    public func userVersion() throws -> Int {
        Int(try scalar("PRAGMA user_version")?.int64Value ?? 0)
    }

    /// True if a table or view named `name` exists.
    public func tableExists(_ name: String) throws -> Bool {
        try scalar("SELECT 1 FROM sqlite_master WHERE type IN ('table','view') AND name = ?", name) != nil
    }

    /// The version of the SQLite library in use, e.g. "3.40.1".
    public static var sqliteVersion: String { String(cString: sqlite3_libversion()) }
}

/// A prepared statement; finalized when released.
public final class Statement {
    /// The raw `sqlite3_stmt*`.
    public let handle: OpaquePointer
    /// The SQL text of this one statement.
    public let sql: String
    /// Keeps the connection open while the statement lives.
    public let database: Database

    init(database: Database, handle: OpaquePointer, sql: String) {
        self.database = database
        self.handle = handle
        self.sql = sql
    }

    deinit { sqlite3_finalize(handle) }

    @inline(__always)
    func check(_ rc: Int32) throws {
        if rc != SQLITE_OK { try fail(rc) }
    }

    func fail(_ rc: Int32) throws -> Never {
        throw DatabaseError(code: rc, message: String(cString: sqlite3_errmsg(database.handle)), sql: sql)
    }

    // MARK: binding

    /// Number of parameters (`?`, `?NNN`, `:name`, `@name`, `$name`).
    public var parameterCount: Int { Int(sqlite3_bind_parameter_count(handle)) }

    /// Parameter names with their prefix (e.g. ":run"), in index order; nil for anonymous `?`.
    public var parameterNames: [String?] {
        (0..<parameterCount).map { k in sqlite3_bind_parameter_name(handle, Int32(k + 1)).map { String(cString: $0) } }
    }

    /// Binds `value` to parameter `index` (1-based). A NaN double is refused (SQLite would store NULL).
    public func bind(_ value: SQLiteBindable?, at index: Int) throws {
        let i = Int32(index)
        switch value?.sqliteValue ?? .null {
        case .null: try check(sqlite3_bind_null(handle, i))
        case let .integer(v): try check(sqlite3_bind_int64(handle, i, v))
        case let .real(v): try bindDouble(v, at: i)
        case let .text(s): try check(sqlite3_bind_text(handle, i, s, -1, gatescope_sqlite_transient()))
        case let .blob(d):
            if d.isEmpty {
                try check(sqlite3_bind_zeroblob(handle, i, 0))  // empty blob, not NULL
            } else {
                try d.withUnsafeBytes { p in
                    try check(sqlite3_bind_blob(handle, i, p.baseAddress, Int32(p.count), gatescope_sqlite_transient()))
                }
            }
        }
    }

    /// Binds a double; NaN is an error because SQLite silently stores it as NULL.
    @inline(__always)
    public func bindDouble(_ value: Double, at index: Int32) throws {
        if value.isNaN {
            throw DatabaseError(code: SQLITE_MISMATCH, message: "refusing to bind NaN to parameter \(index) (SQLite would store NULL)", sql: sql)
        }
        let rc = sqlite3_bind_double(handle, index, value)
        if rc != SQLITE_OK { try fail(rc) }
    }

    /// Binds an integer (hot-path variant without the enum).
    @inline(__always)
    public func bindInt64(_ value: Int64, at index: Int32) throws {
        let rc = sqlite3_bind_int64(handle, index, value)
        if rc != SQLITE_OK { try fail(rc) }
    }

    /// Binds to a named parameter, e.g. `":run"` (the prefix may be omitted: `"run"` finds `:run`, `@run`, `$run`).
    public func bind(_ value: SQLiteBindable?, name: String) throws {
        guard let index = parameterIndex(name) else {
            throw DatabaseError(code: SQLITE_RANGE, message: "the SQL has no parameter named '\(name)'", sql: sql)
        }
        try bind(value, at: index)
    }

    /// The 1-based index of a named parameter, or nil.
    public func parameterIndex(_ name: String) -> Int? {
        let candidates = name.first.map { ":@$".contains($0) } == true ? [name] : [":" + name, "@" + name, "$" + name]
        for candidate in candidates {
            let i = sqlite3_bind_parameter_index(handle, candidate)
            if i > 0 { return Int(i) }
        }
        return nil
    }

    /// Binds `values` to parameters 1...n.
    public func bind(_ values: [SQLiteBindable?]) throws {
        if !values.isEmpty && values.count != parameterCount {
            throw DatabaseError(code: SQLITE_RANGE, message: "\(values.count) values for \(parameterCount) parameters", sql: sql)
        }
        for (k, v) in values.enumerated() { try bind(v, at: k + 1) }
    }

    /// Binds every `name -> value` pair.
    public func bind(named values: [String: SQLiteBindable?]) throws {
        for (name, value) in values { try bind(value, name: name) }
    }

    /// Sets every parameter back to NULL.
    public func clearBindings() throws { try check(sqlite3_clear_bindings(handle)) }

    // MARK: stepping

    /// Advances: true when a row is available, false when done.
    @inline(__always)
    @discardableResult
    public func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        // The error message belongs to the step; reset would replace it, so capture first.
        let message = String(cString: sqlite3_errmsg(database.handle))
        sqlite3_reset(handle)
        throw DatabaseError(code: rc, message: message, sql: sql)
    }

    /// Makes the statement ready to run again (bindings are kept).
    @inline(__always)
    public func reset() throws {
        // reset returns the last step's error again; that error was already reported by step.
        _ = sqlite3_reset(handle)
    }

    /// Steps to completion, then resets (for INSERT/UPDATE/DELETE).
    @inline(__always)
    public func run() throws {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_DONE || rc == SQLITE_ROW {
            sqlite3_reset(handle)
            return
        }
        let message = String(cString: sqlite3_errmsg(database.handle))
        sqlite3_reset(handle)
        throw DatabaseError(code: rc, message: message, sql: sql)
    }

    /// True if the statement cannot change the database (`sqlite3_stmt_readonly`).
    public var isReadOnly: Bool { sqlite3_stmt_readonly(handle) != 0 }

    // MARK: columns

    /// Number of result columns.
    public var columnCount: Int { Int(sqlite3_column_count(handle)) }

    /// Result column names.
    public var columnNames: [String] {
        (0..<columnCount).map { String(cString: sqlite3_column_name(handle, Int32($0))) }
    }

    /// True if column `index` (0-based) of the current row is NULL.
    public func isNull(at index: Int) -> Bool { sqlite3_column_type(handle, Int32(index)) == SQLITE_NULL }
    /// Column `index` as an integer (SQLite's conversion rules apply).
    public func int64(at index: Int) -> Int64 { sqlite3_column_int64(handle, Int32(index)) }
    /// Column `index` as an Int.
    public func int(at index: Int) -> Int { Int(sqlite3_column_int64(handle, Int32(index))) }
    /// Column `index` as a double.
    public func double(at index: Int) -> Double { sqlite3_column_double(handle, Int32(index)) }
    /// Column `index` as text (nil for NULL).
    public func string(at index: Int) -> String? {
        let i = Int32(index)
        guard let p = sqlite3_column_text(handle, i) else { return nil }
        let n = Int(sqlite3_column_bytes(handle, i))
        return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }
    /// Column `index` as bytes (nil for NULL).
    public func data(at index: Int) -> Data? {
        let i = Int32(index)
        if sqlite3_column_type(handle, i) == SQLITE_NULL { return nil }
        guard let p = sqlite3_column_blob(handle, i) else { return Data() }
        return Data(bytes: p, count: Int(sqlite3_column_bytes(handle, i)))
    }

    /// Column `index` with its stored type.
    public func value(at index: Int) -> SQLiteValue {
        let i = Int32(index)
        switch sqlite3_column_type(handle, i) {
        case SQLITE_INTEGER: return .integer(sqlite3_column_int64(handle, i))
        case SQLITE_FLOAT: return .real(sqlite3_column_double(handle, i))
        case SQLITE_TEXT: return .text(string(at: index) ?? "")
        case SQLITE_BLOB: return .blob(data(at: index) ?? Data())
        default: return .null
        }
    }
}

/// One row of a `ResultSet`: values in column order.
public struct Row: Sendable, CustomStringConvertible {
    /// The values, one per column.
    public let values: [SQLiteValue]
    /// The column names, shared by all rows of a result.
    public let columnNames: [String]

    /// The value in column `index`.
    public subscript(index: Int) -> SQLiteValue { values[index] }
    /// The value in the first column named `name`, or nil if there is no such column.
    public subscript(name: String) -> SQLiteValue? {
        columnNames.firstIndex(of: name).map { values[$0] }
    }

    public var description: String { values.map(\.description).joined(separator: "|") }
}

/// The rows of a query, read one at a time (constant memory whatever the size).
public final class ResultSet: IteratorProtocol, Sequence {
    /// The underlying statement.
    public let statement: Statement
    /// Result column names.
    public let columnNames: [String]
    /// The error that ended iteration through `Sequence` (`for row in result`), if any.
    public private(set) var error: DatabaseError?
    private var finished = false

    init(statement: Statement) {
        self.statement = statement
        self.columnNames = statement.columnNames
    }

    /// The next row, nil when done; throws on a SQLite error.
    public func nextRow() throws -> Row? {
        guard !finished else { return nil }
        guard try statement.step() else {
            finished = true
            return nil
        }
        let n = columnNames.count
        var values: [SQLiteValue] = []
        values.reserveCapacity(n)
        for k in 0..<n { values.append(statement.value(at: k)) }
        return Row(values: values, columnNames: columnNames)
    }

    /// `Sequence` conformance: stops on error and keeps it in `error` (prefer `nextRow()` or `forEach`).
    public func next() -> Row? {
        do { return try nextRow() } catch {
            self.error = error as? DatabaseError ?? DatabaseError(message: "\(error)", sql: statement.sql)
            finished = true
            return nil
        }
    }

    /// Calls `body` for every remaining row, rethrowing SQLite errors.
    public func forEachRow(_ body: (Row) throws -> Void) throws {
        while let row = try nextRow() { try body(row) }
    }

    /// All remaining rows (for small results).
    public func allRows() throws -> [Row] {
        var rows: [Row] = []
        while let row = try nextRow() { rows.append(row) }
        return rows
    }
}
