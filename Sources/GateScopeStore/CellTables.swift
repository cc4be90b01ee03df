import GateScopeEngine

// Where each cell's rows live (schema/003_cells.sql). Table and column names come from the cell
// descriptor, never from user text, so they can be put into SQL.
extension CellKind {
    /// The table of this cell's gate rows.
    public var table: String {
        switch self {
        case .lstm: return "gates"
        case .gru: return "gru_gates"
        case .simpleRNN: return "simple_rnn_gates"
        }
    }

    /// The view of this cell's rows with layer names, source ids and tokens.
    public var rowsView: String {
        switch self {
        case .lstm: return "gate_rows"
        case .gru: return "gru_gate_rows"
        case .simpleRNN: return "simple_rnn_gate_rows"
        }
    }

    /// `INSERT INTO table (run_id, seq_id, layer_id, step, unit, gates...) VALUES (?, ...)`.
    var insertSQL: String {
        "INSERT INTO \(table) (run_id, seq_id, layer_id, step, unit, \(planes.joined(separator: ", "))) VALUES ("
            + Array(repeating: "?", count: 5 + planes.count).joined(separator: ", ") + ")"
    }
}
