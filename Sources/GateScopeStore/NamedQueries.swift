import CSQLite
import GateScopeEngine
import Foundation

/// A documented read-only SQL query: one of `queries/*.sql` (embedded in the binary) or a user's file.
///
/// The header is the run of `--` comment lines at the top of the file; these lines have meaning:
///
///     -- name: integrators
///     -- description: One line saying what the rows are.
///     -- param: run = latest      run id (default: the latest complete run)
///     -- param: unit              unit index (no default: required)
///     -- param: gate = h          [i|f|g|o|c|h] allowed values in brackets, then the description
///     -- columns: run_id, layer, unit, ...
///
/// `param` lines read `NAME [= DEFAULT] [[A|B|...]] DESCRIPTION`. A default of `NULL` binds SQL NULL;
/// the default `latest` of `run` is the latest complete run. A value `NAME:fwd`/`NAME:bwd` for
/// `layer` also sets `direction`. Values are bound (integer, real or text, whichever parses),
/// never pasted into the SQL. Other comment lines are free notes.
public struct NamedQuery: Sendable {
    /// One declared parameter.
    public struct Parameter: Sendable, Equatable {
        /// Name without the `:` prefix.
        public var name: String
        /// The default as written (`NULL` for SQL NULL); nil when the parameter is required.
        public var defaultValue: String?
        /// Allowed values, if the header restricts them.
        public var choices: [String]?
        /// What the parameter means.
        public var description: String
        /// The kind of value it takes: declared as `NAME:int`, `NAME:real` or `NAME:text`, else
        /// that of a numeric default; nil accepts anything.
        public var type: ValueType? = nil

        /// True when the caller must give a value.
        public var isRequired: Bool { defaultValue == nil }
    }

    /// What a parameter value must parse as.
    public enum ValueType: String, Sendable, Equatable {
        case int, real, text
    }

    /// The query's name (the file name without `.sql`).
    public var name: String
    /// One line.
    public var description: String
    /// Declared parameters in header order.
    public var parameters: [Parameter]
    /// Result columns the header promises (empty if it does not say).
    public var columns: [String]
    /// The whole file text, header included (comments are fine in SQL).
    public var sql: String
    /// Where it came from: `queries/NAME.sql` (embedded) or the file path.
    public var source: String

    /// Parses the header of `text`; `name` is used when the header has no `name:` line.
    public static func parse(name: String, text: String, source: String) throws -> NamedQuery {
        var query = NamedQuery(name: name, description: "", parameters: [], columns: [], sql: text, source: source)
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            guard line.hasPrefix("--") else { break }
            let body = line.dropFirst(2).trimmingCharacters(in: .whitespaces)
            guard let colon = body.firstIndex(of: ":") else { continue }
            let key = body[..<colon].lowercased()
            let value = body[body.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            switch key {
            case "name": query.name = value
            case "description": query.description = value
            case "columns":
                query.columns = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            case "param":
                let parameter = try parseParameter(value, source: source)
                if query.parameters.contains(where: { $0.name == parameter.name }) {
                    throw StoreError("\(source): parameter '\(parameter.name)' is declared twice")
                }
                query.parameters.append(parameter)
            default: continue
            }
        }
        return query
    }

    static func parseParameter(_ text: String, source: String) throws -> Parameter {
        var rest = Substring(text)
        func token() -> Substring {
            rest = rest.drop(while: { $0 == " " || $0 == "\t" })
            let word = rest.prefix(while: { $0 != " " && $0 != "\t" })
            rest = rest.dropFirst(word.count)
            return word
        }
        var name = token()
        if name.hasPrefix(":") || name.hasPrefix("@") || name.hasPrefix("$") { name = name.dropFirst() }
        var declared: ValueType? = nil
        if let colon = name.firstIndex(of: ":") {
            guard let t = ValueType(rawValue: String(name[name.index(after: colon)...])) else {
                throw StoreError("\(source): bad header line 'param: \(text)': a type is :int, :real or :text")
            }
            declared = t
            name = name[..<colon]
        }
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
            throw StoreError("\(source): bad header line 'param: \(text)': expected NAME [= DEFAULT] DESCRIPTION")
        }
        var parameter = Parameter(name: String(name), defaultValue: nil, choices: nil, description: "")
        let save = rest
        if token() == "=" {
            let value = token()
            guard !value.isEmpty else {
                throw StoreError("\(source): parameter '\(name)' has '=' but no default")
            }
            parameter.defaultValue = String(value)
            if declared == nil, value != "NULL", value != "latest" {
                if Int64(value) != nil { declared = .int } else if Double(value) != nil { declared = .real }
            }
        } else {
            rest = save
        }
        rest = rest.drop(while: { $0 == " " || $0 == "\t" })
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            parameter.choices = rest[rest.index(after: rest.startIndex)..<close].split(separator: "|").map(String.init)
            rest = rest[rest.index(after: close)...]
        }
        parameter.description = rest.trimmingCharacters(in: .whitespaces)
        parameter.type = declared
        return parameter
    }

    /// The named queries shipped in `queries/`, sorted by name.
    public static var builtIn: [NamedQuery] {
        EmbeddedSQL.files.filter { $0.folder == "queries" && $0.name.hasSuffix(".sql") }
            .compactMap { file in
                try? parse(name: String(file.name.dropLast(4)), text: file.text, source: "queries/\(file.name)")
            }
            .sorted { $0.name < $1.name }
    }

    /// A built-in query by name, or a `.sql` file when `nameOrPath` ends in `.sql` or names a path.
    public static func find(_ nameOrPath: String) throws -> NamedQuery {
        let looksLikeFile = nameOrPath.hasSuffix(".sql") || nameOrPath.contains("/")
        if !looksLikeFile, let query = builtIn.first(where: { $0.name == nameOrPath }) { return query }
        if looksLikeFile || FileManager.default.fileExists(atPath: nameOrPath) {
            guard FileManager.default.fileExists(atPath: nameOrPath) else {
                throw DatabaseError(code: SQLITE_CANTOPEN, message: "no SQL file '\(nameOrPath)'")
            }
            let text: String
            do {
                text = try String(contentsOfFile: nameOrPath, encoding: .utf8)
            } catch {
                throw DatabaseError(code: SQLITE_CANTOPEN, message: "cannot read SQL file '\(nameOrPath)' (is it UTF-8 text?)")
            }
            let stem = URL(fileURLWithPath: nameOrPath).deletingPathExtension().lastPathComponent
            return try parse(name: stem, text: text, source: nameOrPath)
        }
        let names = builtIn.map(\.name).joined(separator: ", ")
        throw StoreError("unknown query '\(nameOrPath)' (named queries: \(names); or give a FILE.sql)")
    }

    /// The declared parameter `name`, if any.
    public func parameter(_ name: String) -> Parameter? { parameters.first { $0.name == name } }

    /// Prepares the query on `db`, binds `values` (name -> text as typed) over the header defaults,
    /// and returns the rows. Refuses statements that could write.
    public func prepare(on db: Database, values: [String: String]) throws -> ResultSet {
        try bind(on: db, values: values).result
    }

    /// The query's rows: for a shipped query whose answer recording stored (per-unit summaries,
    /// pairs, spans), read from there; otherwise, or with `scan`, by running the SQL. Both give
    /// the same rows.
    public func run(on db: Database, values: [String: String], scan: Bool = false) throws -> QueryRows {
        let (result, bound) = try bind(on: db, values: values)
        if !scan, source == "queries/\(name).sql", let rows = try StoredAnswers.rows(of: name, bound: bound, db: db) {
            return QueryRows(columnNames: result.columnNames, stored: rows)
        }
        if case let .integer(id)? = bound["run"], CellKind.allCases.contains(where: { sql.contains($0.table) }) {
            try ReadAccess.run(db, id: id).requireRows(for: "\(label)\(scan ? " with --scan" : "")")
        }
        return QueryRows(result: result)
    }

    /// The prepared, bound statement and the values bound to each parameter.
    func bind(on db: Database, values: [String: String]) throws -> (result: ResultSet, bound: [String: SQLiteValue]) {
        // gs_mean, gs_std and gs_corr, which the shipped queries use, on whatever connection this is.
        try SQLFunctions.register(on: db)
        let statement = try db.prepare(sql)
        guard statement.isReadOnly, statement.columnCount > 0 else {
            throw DatabaseError(code: SQLITE_READONLY,
                                message: "\(label) does not only read (it would change the database or returns no rows); only read-only queries run",
                                sql: statement.sql)
        }
        var names: [String] = []
        for (k, raw) in statement.parameterNames.enumerated() {
            guard let raw, raw.count > 1 else {
                throw StoreError("\(label): parameter \(k + 1) has no name; write :name instead of ? so it can be given with -p name VALUE")
            }
            names.append(String(raw.dropFirst()))
        }
        let known = Set(names).union(parameters.map(\.name))
        var given = values
        // `layer` accepts NAME:fwd / NAME:bwd like the other commands.
        if let layer = given["layer"], known.contains("direction"), let filter = try? LayerFilter.parse(layer),
           let direction = filter.direction {
            if let explicit = given["direction"], explicit != direction {
                throw StoreError("-p layer \(layer) and -p direction \(explicit) disagree; give the direction once")
            }
            given["layer"] = filter.name
            given["direction"] = direction
        }
        for key in given.keys.sorted() where !known.contains(key) {
            let list = known.isEmpty ? "it takes none" : "parameters: " + orderedNames(names).joined(separator: ", ")
            throw StoreError("\(label) has no parameter '\(key)' (\(list))")
        }

        var bound: [String: SQLiteValue] = [:]
        for name in names where bound[name] == nil {
            let declared = parameter(name)
            guard let text = given[name] ?? declared?.defaultValue else {
                let what = declared.map { $0.description.isEmpty ? "" : " (\($0.description))" } ?? ""
                throw StoreError("\(label) needs parameter '\(name)'\(what): pass -p \(name) VALUE")
            }
            if let choices = declared?.choices, text.uppercased() != "NULL", !choices.contains(text) {
                throw StoreError("\(label): '\(text)' is not a valid \(name); use one of \(choices.joined(separator: ", "))")
            }
            bound[name] = try value(of: name, text: text, db: db)
        }
        // A named layer must exist in the chosen run: a typo should not look like an empty result.
        // The same for a unit beyond every selected layer (as export's --units says it).
        if case let .integer(run)? = bound["run"] {
            var filters: [LayerFilter] = []
            if case let .text(layer)? = bound["layer"] {
                var filter = LayerFilter(name: layer)
                if case let .text(direction)? = bound["direction"] { filter.direction = direction }
                filters = [filter]
            }
            let layers = try ReadAccess.layers(db, run: run, matching: filters)
            if case let .integer(unit)? = bound["unit"], let widest = layers.map(\.units).max(), unit < 0 || unit >= widest {
                throw StoreError("run \(run) has no unit \(unit) in \(layers.map(\.label).joined(separator: ", ")) (units 0-\(widest - 1))")
            }
        }
        for (name, value) in bound { try statement.bind(value, name: ":" + name) }
        return (ResultSet(statement: statement), bound)
    }

    /// `query 'name'` or `query file 'x.sql'`, for messages.
    var label: String { source.hasPrefix("queries/") ? "query '\(name)'" : "SQL file '\(source)'" }

    /// Parameter names in header order, then undeclared ones in SQL order.
    private func orderedNames(_ sqlNames: [String]) -> [String] {
        var result = parameters.map(\.name)
        for name in sqlNames where !result.contains(name) { result.append(name) }
        return result
    }

    /// The value to bind for `text`: NULL, the resolved run, an integer, a real, or text.
    private func value(of name: String, text: String, db: Database) throws -> SQLiteValue {
        if text.uppercased() == "NULL" { return .null }
        if name == "run" {
            if text == "latest" {
                let run = try ReadAccess.run(db, id: nil)
                return .integer(run.runID)
            }
            guard let id = Int64(text) else {
                throw StoreError("\(label): run must be a run id or 'latest', not '\(text)'")
            }
            return .integer(try ReadAccess.run(db, id: id).runID)
        }
        // Names stay text even when they look like numbers (a layer called "2").
        if name == "layer" || name == "direction" { return .text(text) }
        switch parameters.first(where: { $0.name == name })?.type {
        case .int?:
            guard let v = Int64(text) else { throw StoreError("\(label): parameter '\(name)' takes an integer, got '\(text.prefix(40))'") }
            return .integer(v)
        case .real?:
            guard let v = Double(text), v.isFinite else { throw StoreError("\(label): parameter '\(name)' takes a number, got '\(text.prefix(40))'") }
            return .real(v)
        case .text?:
            return .text(text)
        case nil:
            return NamedQuery.bindable(text)
        }
    }

    /// Integer if `text` is one, else a finite real if it is one, else the text itself.
    public static func bindable(_ text: String) -> SQLiteValue {
        if let v = Int64(text) { return .integer(v) }
        if text.contains(where: \.isNumber), let v = Double(text), v.isFinite { return .real(v) }
        return .text(text)
    }

    /// One line of `--list`: how to pass the parameters.
    public var parameterSummary: String {
        parameters.map { p in
            var s = p.name
            if let d = p.defaultValue { s += "=" + d } else { s += " (required)" }
            return s
        }.joined(separator: ", ")
    }
}

/// The rows of a named query: from its statement, or answered from stored summaries.
public final class QueryRows {
    /// Where the rows come from.
    public enum Source: String, Sendable {
        /// `unit_summaries`, `unit_pairs` or `unit_spans`.
        case stored
        /// The query's SQL, over the gate rows.
        case scan
    }

    public let columnNames: [String]
    public let source: Source
    private let result: ResultSet?
    private var stored: IndexingIterator<[[SQLiteValue]]>?

    init(result: ResultSet) {
        self.result = result
        columnNames = result.columnNames
        source = .scan
    }

    init(columnNames: [String], stored rows: [[SQLiteValue]]) {
        result = nil
        self.columnNames = columnNames
        stored = rows.makeIterator()
        source = .stored
    }

    /// The next row's values, nil when done.
    public func nextRow() throws -> [SQLiteValue]? {
        if let result { return try result.nextRow()?.values }
        return stored?.next()
    }
}
