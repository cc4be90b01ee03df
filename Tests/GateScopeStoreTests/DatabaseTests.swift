import CSQLite
import Foundation
import Testing
@testable import GateScopeStore

@Suite struct DatabaseTests {
    @Test func errorCarriesCodeMessageAndSQL() throws {
        let db = try Database(path: ":memory:")
        try db.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT NOT NULL)")
        do {
            try db.run("INSERT INTO t (a, b) VALUES (?, ?)", 1, nil as String?)
            Issue.record("expected a NOT NULL failure")
        } catch let e as DatabaseError {
            #expect(e.primaryCode == SQLITE_CONSTRAINT)
            #expect(e.message.contains("NOT NULL constraint failed: t.b"))
            #expect(e.sql == "INSERT INTO t (a, b) VALUES (?, ?)")
            #expect(e.description.contains("INSERT INTO t (a, b)"))
            #expect(!e.description.contains("\n"))
        }
        #expect(throws: DatabaseError.self) { try db.prepare("SELEC nonsense") }
        do { _ = try db.prepare("SELECT * FROM missing") } catch let e as DatabaseError {
            #expect(e.message.contains("no such table: missing"))
            #expect(e.sql == "SELECT * FROM missing")
        }
    }

    @Test func bindingByIndexAndNameAndTypedColumns() throws {
        let db = try Database(path: ":memory:")
        try db.execute("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n)")
        let insert = try db.prepare("INSERT INTO t VALUES (:i, :r, :s, :b, :n)")
        #expect(insert.parameterNames == [":i", ":r", ":s", ":b", ":n"])
        try insert.bind(42, name: ":i")
        try insert.bind(2.5, name: "r")
        try insert.bind("héllo, \"world\"\n", name: ":s")
        try insert.bind(Data([0, 1, 255]), name: ":b")
        try insert.bind(nil, name: ":n")
        try insert.run()
        try insert.bind(Data(), name: ":b")  // empty blob stays a blob, not NULL
        try insert.run()
        #expect(throws: DatabaseError.self) { try insert.bind(1, name: ":nope") }

        let result = try db.query("SELECT i, r, s, b, n FROM t ORDER BY rowid")
        #expect(result.columnNames == ["i", "r", "s", "b", "n"])
        let rows = try result.allRows()
        #expect(rows.count == 2)
        #expect(rows[0][0] == .integer(42))
        #expect(rows[0]["r"] == .real(2.5))
        #expect(rows[0][2] == .text("héllo, \"world\"\n"))
        #expect(rows[0][3] == .blob(Data([0, 1, 255])))
        #expect(rows[0][4] == .null)
        #expect(rows[1][3] == .blob(Data()))
    }

    @Test func nanIsRefusedInsteadOfBecomingNull() throws {
        let db = try Database(path: ":memory:")
        try db.execute("CREATE TABLE t (x REAL)")
        let st = try db.prepare("INSERT INTO t VALUES (?)")
        #expect(throws: DatabaseError.self) { try st.bind(Double.nan, at: 1) }
        #expect(throws: DatabaseError.self) { try st.bind(Float.nan, at: 1) }
        try st.bind(Double.infinity, at: 1)  // infinities are stored faithfully
        try st.run()
        #expect(try db.scalar("SELECT x FROM t") == .real(.infinity))
    }

    @Test func onlyOneStatementPerPrepare() throws {
        let db = try Database(path: ":memory:")
        #expect(throws: DatabaseError.self) { try db.prepare("SELECT 1; SELECT 2") }
        _ = try db.prepare("SELECT 1; -- trailing comment\n")
        try db.execute("CREATE TABLE a (x); CREATE TABLE b (y); -- done")
        #expect(try db.tableExists("b"))
    }

    @Test func streamingResultSetAndTransactions() throws {
        let db = try Database(path: ":memory:")
        try db.execute("CREATE TABLE t (x INTEGER)")
        try db.transaction {
            let st = try db.prepare("INSERT INTO t VALUES (?)")
            for k in 0..<1000 { try st.bind([k]); try st.run() }
        }
        #expect(throws: DatabaseError.self) {
            try db.transaction {
                try db.run("INSERT INTO t VALUES (5000)")
                throw DatabaseError(message: "abort")
            }
        }
        #expect(try db.scalar("SELECT count(*) FROM t") == .integer(1000))
        var sum: Int64 = 0
        let rows = try db.query("SELECT x FROM t WHERE x >= :low", named: [":low": 10])
        try rows.forEachRow { sum += $0[0].int64Value! }
        #expect(sum == (10..<1000).reduce(0, +))
        // Sequence conformance
        #expect(try db.query("SELECT x FROM t LIMIT 3").map { $0[0] } == [.integer(0), .integer(1), .integer(2)])
    }

    @Test func readOnlyRefusesWritesAndMissingFiles() throws {
        let dir = makeTempDir()
        let path = dir + "/ro.db"
        do {
            let db = try Database(path: path)
            try db.execute("CREATE TABLE t (x)")
            #expect(try db.scalar("PRAGMA journal_mode") == .text("wal"))
        }
        let ro = try Database(path: path, mode: .readOnly)
        do { try ro.execute("INSERT INTO t VALUES (1)"); Issue.record("write succeeded") } catch let e as DatabaseError {
            #expect(e.primaryCode == SQLITE_READONLY)
        }
        #expect(try ro.prepare("SELECT * FROM t").isReadOnly)
        #expect(try !ro.prepare("DELETE FROM t").isReadOnly)
        #expect(throws: DatabaseError.self) { try Database(path: dir + "/missing.db", mode: .readOnly) }
        #expect(!FileManager.default.fileExists(atPath: dir + "/missing.db"))
        try "not a database at all, just text that is long enough to be a header".write(toFile: dir + "/junk.db", atomically: true, encoding: .utf8)
        #expect(throws: DatabaseError.self) { try Database(path: dir + "/junk.db", mode: .readOnly) }
    }
}

@Suite struct SchemaTests {
    @Test func freshDatabaseGetsTheWholeSchema() throws {
        let db = try Database(path: ":memory:")
        #expect(try Schema.migrate(db) == 0)
        #expect(try db.userVersion() == Schema.currentVersion)
        #expect(Schema.currentVersion >= 1)
        for table in ["runs", "layers", "sequences", "tokens", "gates", "unit_summaries", "gate_rows", "gate_values", "run_overview"] {
            #expect(try db.tableExists(table), "missing \(table)")
        }
        // gates is WITHOUT ROWID with the contract's primary key
        let sql = try db.scalar("SELECT sql FROM sqlite_master WHERE name = 'gates'")?.stringValue ?? ""
        #expect(sql.contains("WITHOUT ROWID"))
        #expect(sql.contains("PRIMARY KEY (run_id, seq_id, layer_id, step, unit)"))
        // Migrating again is a no-op.
        #expect(try Schema.migrate(db) == Schema.currentVersion)
        try Schema.checkReadable(db)
    }

    @Test func everyColumnIsDocumented() throws {
        // Each column line inside a CREATE TABLE of the schema files carries a `--` comment,
        // or the next line does (long definitions).
        for migration in Schema.migrations {
            let lines = migration.sql.components(separatedBy: "\n")
            var inTable = false
            for (k, line) in lines.enumerated() {
                let t = line.trimmingCharacters(in: .whitespaces)
                if t.hasPrefix("CREATE TABLE") { inTable = true; continue }
                if t.hasPrefix(")") { inTable = false; continue }
                guard inTable, !t.isEmpty, !t.hasPrefix("--"), !t.hasPrefix("PRIMARY KEY"), !t.hasPrefix("FOREIGN KEY") else { continue }
                guard let name = t.split(separator: " ").first, name.allSatisfy({ $0.isLetter || $0 == "_" || $0.isNumber }) else { continue }
                let documented = t.contains("--") || (k + 1 < lines.count && lines[k + 1].trimmingCharacters(in: .whitespaces).hasPrefix("--"))
                    || ["run_id", "seq_id", "layer_id", "step", "unit"].contains(String(name))  // documented in the header
                #expect(documented, "\(migration.name): column '\(name)' has no comment")
            }
        }
    }

    @Test("a version 1 database gains the layers' time axes and keeps every row")
    func version1MigratesToTimeAxes() throws {
        let dir = makeTempDir()
        let db = try Database(path: dir + "/v1.db")
        try Schema.migrate(db, migrations: Schema.migrations.filter { $0.version == 1 })
        try db.run("INSERT INTO runs (model_path, model_sha256, model_format, input_path, input_sha256, created_at, tool_version, params) VALUES ('m', 'x', 'keras', 'i', 'y', 'now', '0', '{}')")
        try db.run("INSERT INTO layers VALUES (1, 0, 'lstm', 'fwd', 1, 2, 'tanh', 'sigmoid')")
        try db.run("INSERT INTO sequences VALUES (1, 0, 1, NULL)")
        try db.run("INSERT INTO tokens VALUES (1, 0, 0, 5, 'a')")
        try db.run("INSERT INTO gates VALUES (1, 0, 0, 0, 0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)")
        #expect(try Schema.migrate(db) == 1)
        #expect(try db.userVersion() == Schema.currentVersion)
        #expect(try db.scalar("SELECT time_input || ':' || aligned FROM layers") == .text(":1"))
        #expect(try db.scalar("SELECT token || ' ' || h FROM gate_rows") == .text("a 0.6"))
    }

    @Test func olderDatabaseIsMigratedInOneTransaction() throws {
        let v1 = Schema.migrations.filter { $0.version == 1 }
        let v2 = Schema.Migration(version: 2, name: "002_test.sql", sql: "ALTER TABLE runs ADD COLUMN note TEXT; CREATE TABLE extra (x);")
        let dir = makeTempDir()
        let db = try Database(path: dir + "/old.db")
        try Schema.migrate(db, migrations: v1)
        try db.run("INSERT INTO runs (model_path, model_sha256, model_format, input_path, input_sha256, created_at, tool_version, params) VALUES ('m', 'x', 'keras', 'i', 'y', 'now', '0', '{}')")
        #expect(try Schema.migrate(db, migrations: v1 + [v2]) == 1)
        #expect(try db.userVersion() == 2)
        #expect(try db.tableExists("extra"))
        #expect(try db.scalar("SELECT count(*) FROM runs") == .integer(1))

        // A failing migration leaves the database as it was.
        let bad = Schema.Migration(version: 3, name: "003_bad.sql", sql: "CREATE TABLE more (x); INSERT INTO nowhere VALUES (1);")
        do { try Schema.migrate(db, migrations: v1 + [v2, bad]); Issue.record("bad migration succeeded") } catch let e as DatabaseError {
            #expect(e.message.contains("003_bad.sql"))
            #expect(e.sql?.contains("nowhere") == true)
        }
        #expect(try db.userVersion() == 2)
        #expect(try !db.tableExists("more"))
    }

    @Test func newerDatabaseIsRefused() throws {
        let dir = makeTempDir()
        let db = try Database(path: dir + "/new.db")
        try Schema.migrate(db)
        try db.execute("PRAGMA user_version = \(Schema.currentVersion + 1)")
        do { try Schema.migrate(db); Issue.record("newer schema accepted") } catch let e as DatabaseError {
            #expect(e.message.contains("newer than this gatescope supports"))
        }
        #expect(throws: DatabaseError.self) { try Schema.checkReadable(db) }
    }

    @Test func foreignDatabaseIsRefused() throws {
        let db = try Database(path: ":memory:")
        try db.execute("CREATE TABLE something (x)")
        do { try Schema.migrate(db); Issue.record("foreign database accepted") } catch let e as DatabaseError {
            #expect(e.message.contains("not a GateScope"))
        }
    }
}
