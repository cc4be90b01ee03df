import ArgumentParser
import GateScopeFormat
import GateScopeStore

/// `gatescope query DB NAME|FILE.sql [-p key value]...`: named, documented read-only SQL.
struct QueryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Run a named SQL query (see --list) or your own FILE.sql, read-only, with bound parameters.",
        discussion: """
        Named queries ship inside the binary (source: queries/*.sql). Each file's header comment \
        documents it: `-- description:`, one `-- param: NAME [= DEFAULT] ...` per parameter and \
        `-- columns:`. Parameters are bound as SQL values (:name in the SQL), never pasted into it; \
        -p layer NAME:bwd also sets direction. run defaults to the latest complete run. Statements \
        that would write are refused, and the database is opened read-only anyway.

        integrators, dead-units, saturation, memory-spans and unit-correlation are answered from \
        what record stored (per-unit summaries, unit pairs, memory spans) when their thresholds \
        are on its grid; otherwise, and with --scan, their SQL scans the rows. Both give the same rows.

        Examples:
          gatescope query demo.db --list
          gatescope query demo.db integrators -p high 0.95 -p fraction 0.8
          gatescope query demo.db top-tokens -p layer lstm2 -p unit 12 -p gate f
          gatescope query demo.db my_query.sql -p run 2
        """
    )

    @Argument(help: "The GateScope SQLite database (opened read-only).")
    var db: String

    @Argument(help: "A named query (see --list) or a .sql file.")
    var query: String?

    @Option(name: .customShort("p"), parsing: .upToNextOption,
            help: ArgumentHelp("Bind parameter KEY to VALUE (repeatable): -p run 2 -p layer lstm1; write -p KEY=VALUE for a value starting with '-'.",
                               valueName: "key value"))
    var parameters: [String] = []

    /// `-p` words as name -> value: `NAME VALUE` pairs or single `NAME=VALUE` words.
    func parameterValues() throws -> [String: String] {
        var values: [String: String] = [:]
        var k = 0
        while k < parameters.count {
            var name = parameters[k], value: String
            if let eq = name.firstIndex(of: "=") {
                value = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
                k += 1
            } else {
                guard k + 1 < parameters.count else {
                    throw ValidationError("-p \(name) has no value: write -p \(name) VALUE (or -p \(name)=VALUE when VALUE starts with '-')")
                }
                value = parameters[k + 1]
                k += 2
            }
            if let first = name.first, ":@$".contains(first) { name.removeFirst() }
            guard !name.isEmpty else { throw ValidationError("-p needs a parameter name: -p NAME VALUE") }
            if values[name] != nil { throw ValidationError("-p \(name) is given twice; give each parameter once") }
            values[name] = value
        }
        return values
    }

    @Flag(help: "List the named queries with their description and parameters.")
    var list = false

    @Flag(help: "Run the query's SQL over the gate rows even where the stored summaries answer it (same rows, slower; for checking).")
    var scan = false

    @OptionGroup var output: OutputOptions

    func validate() throws {
        if list {
            if query != nil { throw ValidationError("give either a query or --list, not both") }
        } else if query == nil {
            throw ValidationError("name a query (see gatescope query \(db) --list) or give a FILE.sql")
        }
        _ = try parameterValues()
    }

    func run() throws {
        try runReadCommand("query") {
            if list {
                let writer = try output.makeWriter(database: db)
                try writer.begin(columns: ["name", "description", "parameters"])
                for q in NamedQuery.builtIn {
                    try writer.write([.text(q.name), .text(q.description), .text(q.parameterSummary)])
                }
                try writer.finish()
                return
            }
            let values = try parameterValues()
            let named = try NamedQuery.find(query!)
            let database = try ReadAccess.open(db)
            let rows = try named.run(on: database, values: values, scan: scan)
            // The first row is read before anything is written: a statement refused while it
            // runs (load_extension, ...) leaves stdout and -o untouched.
            let first = try rows.nextRow()
            let writer = try output.makeWriter(database: db)
            try writer.begin(columns: rows.columnNames)
            if let first {
                try writer.write(first)
                while let row = try rows.nextRow() { try writer.write(row) }
            }
            try writer.finish()
        }
    }
}
