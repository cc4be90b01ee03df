import CSQLite
import CSQLiteChecksum
import Foundation

/// `gatescope check DB`: whether a database is whole. Three independent looks:
/// 1. every page of the file against its checksum (databases created with page checksums);
/// 2. SQLite's `PRAGMA integrity_check` (b-tree structure, indexes against tables);
/// 3. each run's rows against what the recorder counted as it committed (`runs.row_count`) and,
///    for complete runs, against the per-unit counts of `unit_summaries`.
public enum Integrity {
    /// One thing found wrong, one line.
    public struct Problem: Equatable, Sendable, CustomStringConvertible {
        /// "page", "sqlite" or "rows".
        public var kind: String
        public var message: String
        public var description: String { "\(kind): \(message)" }
    }

    /// What `check` found.
    public struct Report: Sendable {
        /// Pages read from the database file (0 when the file has no page checksums).
        public var pagesChecked: Int
        /// Whether the database carries page checksums (created by a gatescope that writes them).
        public var hasPageChecksums: Bool
        /// Runs whose rows were counted.
        public var runsChecked: Int
        public var problems: [Problem]
    }

    /// At most this many problems of one kind are listed (a wrecked file would list every page).
    static let problemsPerKind = 20

    /// Checks the database at `path` (opened read-only; works while a recording writes).
    public static func check(path: String) throws -> Report {
        var problems: [Problem] = []
        let (pages, hasChecksums) = try scanPages(path: path, problems: &problems)
        var runs = 0
        do {
            let db: Database
            do { db = try ReadAccess.open(path) } catch let error as DatabaseError where !isDamage(error) {
                throw StoreError(error.message)  // e.g. an older schema: not damage, a one-line refusal
            }
            try integrityCheck(db, problems: &problems)
            runs = try countRows(db, problems: &problems)
        } catch let error as DatabaseError where error.code == DatabaseError.pageChecksumMismatch {
            // Already listed page by page when the damage is in the file; in the WAL it is not.
            if !problems.contains(where: { $0.kind == "page" }) {
                problems.append(Problem(kind: "page", message: "a page in '\(path)-wal' does not match its checksum"))
            }
        } catch let error as DatabaseError {
            problems.append(Problem(kind: "sqlite", message: error.description))
        }
        return Report(pagesChecked: pages, hasPageChecksums: hasChecksums, runsChecked: runs, problems: problems)
    }

    /// SQLite's answers to a damaged file (as opposed to, say, a schema this version cannot read).
    static func isDamage(_ error: DatabaseError) -> Bool {
        [SQLITE_CORRUPT, SQLITE_NOTADB, SQLITE_IOERR, SQLITE_FORMAT].contains(error.primaryCode)
    }

    /// Reads the file page by page and verifies each page's checksum. Returns (pages, has checksums).
    static func scanPages(path: String, problems: inout [Problem]) throws -> (Int, Bool) {
        guard let file = FileHandle(forReadingAtPath: path) else {
            throw StoreError("cannot open '\(path)' to check it")
        }
        defer { try? file.close() }
        let header = (try? file.read(upToCount: 100)) ?? Data()
        guard header.count == 100, header.starts(with: Array("SQLite format 3\0".utf8)) else {
            throw StoreError("'\(path)' is not an SQLite database (its header is not SQLite's)")
        }
        let rawSize = Int(header[16]) << 8 | Int(header[17])
        let pageSize = rawSize == 1 ? 65536 : rawSize
        guard pageSize >= 512, pageSize <= 65536, pageSize & (pageSize - 1) == 0 else {
            problems.append(Problem(kind: "page", message: "the header's page size \(rawSize) is not a power of two in 512...65536"))
            return (0, false)
        }
        guard Int(header[20]) == Int(GATESCOPE_CHECKSUM_BYTES) else { return (0, false) }
        let fileSize = (try? file.seekToEnd()).map(Int.init) ?? 0
        try file.seek(toOffset: 0)
        if fileSize % pageSize != 0 {
            problems.append(Problem(kind: "page", message: "the file is \(fileSize) bytes, not a whole number of \(pageSize)-byte pages"))
        }
        // SQLite never writes the page holding byte 2^30 (its lock bytes).
        let lockPage = (1 << 30) / pageSize + 1
        let batch = max(1, (4 << 20) / pageSize)
        var page = 1
        var bad = 0
        while true {
            guard let chunk = try file.read(upToCount: batch * pageSize), !chunk.isEmpty else { break }
            chunk.withUnsafeBytes { raw in
                let base = raw.bindMemory(to: UInt8.self).baseAddress!
                for k in 0..<(chunk.count / pageSize) {
                    let number = page + k
                    if number != lockPage, gatescope_page_checksum_ok(base + k * pageSize, pageSize) == 0 {
                        bad += 1
                        if bad <= problemsPerKind {
                            problems.append(Problem(kind: "page", message: "page \(number) (bytes \(Int64(number - 1) * Int64(pageSize))...) does not match its checksum"))
                        }
                    }
                }
            }
            page += chunk.count / pageSize
        }
        if bad > problemsPerKind {
            problems.append(Problem(kind: "page", message: "\(bad - problemsPerKind) more pages do not match their checksums"))
        }
        return (page - 1, true)
    }

    static func integrityCheck(_ db: Database, problems: inout [Problem]) throws {
        let rows = try db.query("PRAGMA integrity_check(\(problemsPerKind))")
        while let row = try rows.nextRow() {
            let text = row[0].stringValue ?? ""
            if text != "ok" { problems.append(Problem(kind: "sqlite", message: text.replacingOccurrences(of: "\n", with: " "))) }
        }
    }

    /// Counts each run's rows per table and compares; returns the number of runs counted.
    static func countRows(_ db: Database, problems: inout [Problem]) throws -> Int {
        let runs = try ReadAccess.runs(db)
        for run in runs {
            let layers = try ReadAccess.layers(db, run: run.runID)
            var total: Int64 = 0
            for cell in Set(layers.map(\.cell)).sorted(by: { $0.table < $1.table }) {
                // Rows per layer and unit, from the table itself.
                let counted = try db.query("SELECT layer_id, unit, count(*) FROM \(cell.table) WHERE run_id = ? GROUP BY layer_id, unit", [run.runID])
                var rows: [Int64: [Int64: Int64]] = [:]
                while let row = try counted.nextRow() {
                    let n = row[2].int64Value ?? 0
                    rows[row[0].int64Value ?? -1, default: [:]][row[1].int64Value ?? -1] = n
                    total += n
                }
                // A summaries-only run counts values it never stored as rows.
                guard run.status == "complete", !run.summariesOnly else { continue }
                for layer in layers where layer.cell == cell {
                    // Every gate of a unit has the same n; the first is enough.
                    let summaries = try db.query("SELECT unit, n FROM unit_summaries WHERE run_id = ? AND layer_id = ? AND gate = ?",
                                                 [run.runID, layer.layerID, layer.gates[0].rawValue])
                    var mismatches = 0
                    while let row = try summaries.nextRow() {
                        let unit = row[0].int64Value ?? -1
                        let expected = row[1].int64Value ?? 0
                        let found = rows[layer.layerID]?[unit] ?? 0
                        if found != expected {
                            mismatches += 1
                            if mismatches <= 3 {
                                problems.append(Problem(kind: "rows", message: "run \(run.runID), layer \(layer.label), unit \(unit): \(found) rows in \(cell.table), the summaries count \(expected)"))
                            }
                        }
                    }
                    if mismatches > 3 {
                        problems.append(Problem(kind: "rows", message: "run \(run.runID), layer \(layer.label): \(mismatches - 3) more units whose rows differ from their summaries"))
                    }
                }
            }
            // The recorder's count covers committed sequences, so it holds for running runs too.
            if total != run.rows {
                problems.append(Problem(kind: "rows", message: "run \(run.runID): \(total) gate rows in the tables, the recorder committed \(run.rows)"))
            }
        }
        return runs.count
    }

    /// Rewrites the database at `path` with page checksums (8 reserve bytes per page) if it has
    /// none: a VACUUM, which needs free space for a copy of the file and no other connection.
    /// Returns false when it already has them.
    public static func addPageChecksums(path: String) throws -> Bool {
        let db = try Database(path: path, mode: .readWrite)
        guard try db.scalar("PRAGMA page_count")?.int64Value ?? 0 > 0 else { return false }
        let reserve = try db.reserveBytes()
        if reserve == Int32(GATESCOPE_CHECKSUM_BYTES) { return false }
        guard reserve == 0 else {
            throw StoreError("'\(path)' reserves \(reserve) bytes per page for something else; page checksums need 8 (dump and reload it)")
        }
        try rewriteEveryPage(db) { try db.reserveBytes(setting: Int32(GATESCOPE_CHECKSUM_BYTES)) }
        return true
    }

    /// Recomputes every page's checksum of the database at `path` (a VACUUM with verification
    /// off), for after a tool without gatescope's VFS wrote to it: such pages read as damaged.
    /// It also blesses real damage, so `check` first. Throws if the file has no page checksums.
    public static func rewritePageChecksums(path: String) throws {
        let db = try Database(path: path, mode: .readWrite, verifyChecksums: false)
        guard try db.reserveBytes() == Int32(GATESCOPE_CHECKSUM_BYTES) else {
            throw StoreError("'\(path)' has no page checksums to rewrite; add them with `gatescope migrate \(path) --checksums`")
        }
        try rewriteEveryPage(db) {}
    }

    /// VACUUM, which writes every page anew (through the checksum VFS). The reserve of a WAL
    /// database changes only through a VACUUM in rollback mode, so `prepare` runs in that mode.
    private static func rewriteEveryPage(_ db: Database, prepare: () throws -> Void) throws {
        try db.execute("PRAGMA journal_mode = DELETE")
        try prepare()
        try db.execute("VACUUM")
        try db.execute("PRAGMA journal_mode = WAL")
    }
}
