import CSQLite
import Foundation
import GateScopeEngine

// Shared pieces of the read side (runs, stats, export, named queries): opening a database
// read-only, resolving runs and layers, and parsing the filters the CLI accepts.

extension Gate {
    /// True for the gates on [0, 1] (i, f, o, z, r); false for the signed ones (g, h, n) and c.
    public var isSigmoid: Bool { range == .unit }

    /// Parses `i,f,o` (any order, no repeats) into gates in `Gate.allCases` order.
    public static func parseList(_ text: String) throws -> [Gate] {
        var seen = Set<Gate>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let name = part.trimmingCharacters(in: .whitespaces).lowercased()
            guard let gate = Gate(rawValue: name) else {
                throw StoreError("unknown gate '\(name)': use a comma-separated list of \(Gate.allCases.map(\.rawValue).joined(separator: ", ")) (LSTM: i, f, g, o, c, h; GRU: z, r, n, h; SimpleRNN: h)")
            }
            guard seen.insert(gate).inserted else {
                throw StoreError("gate '\(name)' is listed twice")
            }
        }
        return allCases.filter(seen.contains)
    }
}

/// A layer filter as typed on the command line: `name`, `name:fwd` or `name:bwd`.
public struct LayerFilter: Equatable, Sendable, CustomStringConvertible {
    /// The Keras layer name.
    public var name: String
    /// `fwd` or `bwd`, or nil for both halves.
    public var direction: String?

    /// Creates a filter for layer `name`, optionally one direction.
    public init(name: String, direction: String? = nil) {
        self.name = name
        self.direction = direction
    }

    /// Parses `name`, `name:fwd` or `name:bwd`.
    public static func parse(_ text: String) throws -> LayerFilter {
        for direction in ["fwd", "bwd"] where text.hasSuffix(":" + direction) {
            let name = String(text.dropLast(direction.count + 1))
            if !name.isEmpty { return LayerFilter(name: name, direction: direction) }
        }
        if text.isEmpty {
            throw StoreError("empty layer name: use NAME, NAME:fwd or NAME:bwd")
        }
        if let colon = text.lastIndex(of: ":"), !text[text.index(after: colon)...].isEmpty,
           text[text.index(after: colon)...].allSatisfy({ $0.isLetter }) {
            let suffix = text[text.index(after: colon)...]
            throw StoreError("unknown direction '\(suffix)' in '\(text)': use NAME, NAME:fwd or NAME:bwd")
        }
        return LayerFilter(name: text)
    }

    public var description: String { direction.map { "\(name):\($0)" } ?? name }
}

/// A set of non-negative integers typed as ranges: `0-7,12`.
public struct IndexRanges: Equatable, Sendable, CustomStringConvertible {
    /// Closed ranges in the order given.
    public var ranges: [ClosedRange<Int>]

    /// Creates a set from closed ranges.
    public init(_ ranges: [ClosedRange<Int>]) { self.ranges = ranges }

    /// Parses `0-7,12` (what names the items, e.g. "unit", is used in messages).
    public static func parse(_ text: String, what: String = "index") throws -> IndexRanges {
        var ranges: [ClosedRange<Int>] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let item = part.trimmingCharacters(in: .whitespaces)
            let bounds = item.split(separator: "-", omittingEmptySubsequences: false)
            let numbers = bounds.map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard (1...2).contains(numbers.count), let lo = numbers.first!, let hi = numbers.last!, lo >= 0 else {
                throw StoreError("bad \(what) list '\(text)': use numbers >= 0 and ranges like 0-7,12")
            }
            guard lo <= hi else {
                throw StoreError("bad \(what) range '\(item)': the first number must not exceed the second")
            }
            ranges.append(lo...hi)
        }
        return IndexRanges(ranges)
    }

    /// True if `value` is in one of the ranges.
    public func contains(_ value: Int) -> Bool { ranges.contains { $0.contains(value) } }

    /// A JSON array of `[lo, hi]` pairs, for binding to SQL that reads it with `json_each`.
    public var json: String { "[" + ranges.map { "[\($0.lowerBound),\($0.upperBound)]" }.joined(separator: ",") + "]" }

    public var description: String {
        ranges.map { $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }
            .joined(separator: ",")
    }
}

/// One row of `runs`, with the sizes the `runs` command lists.
public struct RunInfo: Equatable, Sendable {
    public var runID: Int64
    /// Sequences, their summed lengths and `gates` rows committed so far (the recorder's bookkeeping).
    public var sequences: Int64
    public var steps: Int64
    public var rows: Int64
    public var name: String?
    public var status: String
    public var modelPath: String?
    public var kerasVersion: String?
    public var createdAt: String?
    public var finishedAt: String?
    public var error: String?
    /// Recorded with `--summaries-only`: summaries, pair moments and spans, no gate rows.
    public var summariesOnly = false

    /// Refuses, in one line, a command that needs gate rows on a summaries-only run.
    public func requireRows(for command: String) throws {
        guard summariesOnly else { return }
        throw StoreError("run \(runID) has summaries only (recorded with --summaries-only): \(command) needs its gate rows; record it again without --summaries-only")
    }
}

/// One recorded layer half (a row of `layers`).
public struct LayerInfo: Equatable, Sendable {
    public var layerID: Int64
    public var name: String
    public var direction: String
    public var units: Int
    /// The layer's cell: which table holds its rows and which gates it has.
    public var cell: CellKind = .lstm
    /// True when step t is step t of the first model input (and of its tokens).
    public var aligned: Bool = true
    /// Whether `unit_pairs` / `unit_spans` hold the layer's rows (`layers.pairs_stored` /
    /// `spans_stored`); nil for runs recorded before schema 6.
    public var pairsStored: Bool? = nil
    public var spansStored: Bool? = nil

    /// `name:direction`, as the CLI prints and accepts it.
    public var label: String { "\(name):\(direction)" }

    /// The layer's gates in plane order.
    public var gates: [Gate] { Gate.of(cell) }
}

/// Opening a database for reading and resolving what the user names in it.
public enum ReadAccess {
    /// Opens `path` with `SQLITE_OPEN_READONLY` (works while a recording writes in WAL mode) and
    /// checks that it is a GateScope database.
    public static func open(_ path: String) throws -> Database {
        let db = try Database(path: path, mode: .readOnly)
        // Belt and braces next to the read-only open: any write fails at prepare/step time.
        try db.execute("PRAGMA query_only = 1")
        if try db.userVersion() == 0, try db.scalar("SELECT count(*) FROM sqlite_master")?.int64Value == 0 {
            throw StoreError("'\(path)' is not a GateScope database (it is empty); create one with `gatescope record`")
        }
        try Schema.checkReadable(db)
        return db
    }

    /// Every run in id order.
    public static func runs(_ db: Database) throws -> [RunInfo] {
        let rows = try db.query("""
            SELECT run_id, name, status, model_path, keras_version, created_at, finished_at, error,
                   recorded_sequences, recorded_steps, row_count,
                   coalesce(json_extract(CASE WHEN json_valid(params) THEN params END, '$.summaries_only'), 0)
            FROM runs ORDER BY run_id
            """)
        var result: [RunInfo] = []
        while let row = try rows.nextRow() {
            result.append(RunInfo(runID: row[0].int64Value ?? 0,
                                  sequences: row[8].int64Value ?? 0, steps: row[9].int64Value ?? 0,
                                  rows: row[10].int64Value ?? 0, name: row[1].stringValue,
                                  status: row[2].stringValue ?? "", modelPath: row[3].stringValue,
                                  kerasVersion: row[4].stringValue, createdAt: row[5].stringValue,
                                  finishedAt: row[6].stringValue, error: row[7].stringValue,
                                  summariesOnly: (row[11].int64Value ?? 0) != 0))
        }
        return result
    }

    /// The run `id`, or the latest complete run when `id` is nil; a clear error if there is none.
    public static func run(_ db: Database, id: Int64?) throws -> RunInfo {
        let all = try runs(db)
        if let id {
            if let run = all.first(where: { $0.runID == id }) { return run }
            let known = all.isEmpty ? "the database has no runs" : "runs: " + describeIDs(all.map(\.runID))
            throw StoreError("no run \(id) in '\(db.path)' (\(known))")
        }
        if let run = all.last(where: { $0.status == "complete" }) { return run }
        if all.isEmpty {
            throw StoreError("'\(db.path)' has no runs yet; record one with `gatescope record`")
        }
        throw StoreError("'\(db.path)' has no complete run; pass --run ID (runs: \(describeIDs(all.map(\.runID))))")
    }

    /// The id of the latest complete run, or nil.
    public static func latestCompleteRunID(_ db: Database) throws -> Int64? {
        try db.scalar("SELECT max(run_id) FROM runs WHERE status = 'complete'")?.int64Value
    }

    /// The recorded layer halves of a run, in layer_id order.
    public static func layers(_ db: Database, run: Int64) throws -> [LayerInfo] {
        let rows = try db.query("SELECT layer_id, name, direction, units, cell, aligned, pairs_stored, spans_stored FROM layers WHERE run_id = ? ORDER BY layer_id", [run])
        var result: [LayerInfo] = []
        while let row = try rows.nextRow() {
            let name = row[1].stringValue ?? ""
            guard let cell = CellKind(rawValue: row[4].stringValue ?? "") else {
                throw DatabaseError(code: SQLITE_CORRUPT, message: "run \(run), layer '\(name)': unknown cell '\(row[4].stringValue ?? "NULL")'")
            }
            result.append(LayerInfo(layerID: row[0].int64Value ?? 0, name: name,
                                    direction: row[2].stringValue ?? "", units: Int(row[3].int64Value ?? 0),
                                    cell: cell, aligned: row[5].int64Value != 0,
                                    pairsStored: row[6].int64Value.map { $0 == 1 }, spansStored: row[7].int64Value.map { $0 == 1 }))
        }
        return result
    }

    /// The layer halves matching `filters` (all when empty); an unknown name is an error listing the known ones.
    public static func layers(_ db: Database, run: Int64, matching filters: [LayerFilter]) throws -> [LayerInfo] {
        let all = try layers(db, run: run)
        if filters.isEmpty { return all }
        var selected = Set<Int64>()
        for filter in filters {
            let hits = all.filter { $0.name == filter.name && (filter.direction == nil || $0.direction == filter.direction) }
            if hits.isEmpty {
                let known = all.isEmpty ? "it has no recorded layers" : "layers: " + all.map(\.label).joined(separator: ", ")
                throw StoreError("run \(run) has no layer '\(filter)' (\(known))")
            }
            selected.formUnion(hits.map(\.layerID))
        }
        return all.filter { selected.contains($0.layerID) }
    }

    /// `1-3, 5` style summary of ids for messages.
    static func describeIDs(_ ids: [Int64]) -> String {
        var parts: [String] = []
        var k = 0
        while k < ids.count {
            var j = k
            while j + 1 < ids.count, ids[j + 1] == ids[j] + 1 { j += 1 }
            parts.append(j > k ? "\(ids[k])-\(ids[j])" : "\(ids[k])")
            k = j + 1
        }
        return parts.joined(separator: ", ")
    }
}
