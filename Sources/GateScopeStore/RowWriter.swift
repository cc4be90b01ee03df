// The sink every read command streams its rows into; the formats (table, CSV, JSON) live in
// GateScopeFormat, next to the CLI that chooses them.

/// Receives one result set, row by row.
public protocol RowWriter: AnyObject {
    /// Called once, before any row. REALs in `float32Columns` (indices) are recorded Float32 gate
    /// values and print as the shortest decimal of that Float32; other REALs as the shortest decimal
    /// of the Double.
    func begin(columns: [String], float32Columns: Set<Int>) throws
    /// One row, values in column order.
    func write(_ row: [SQLiteValue]) throws
    /// Called once after the last row; flushes.
    func finish() throws
}

extension RowWriter {
    /// `begin` with no Float32 columns.
    public func begin(columns: [String]) throws { try begin(columns: columns, float32Columns: []) }
}

