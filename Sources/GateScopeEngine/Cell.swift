/// How a recorded value saturates: the range `stats`, the summaries' histograms and the plots use.
public enum GateRange: String, Sendable, Codable {
    /// A sigmoid-like gate on [0, 1]: left = value < low, right = value > high.
    case unit
    /// A tanh-like value on [-1, 1]: left = value < -high, right = value > high.
    case signed
    /// No fixed range (a cell state): moments only, no saturation.
    case unbounded

    /// The histogram grid in thousandths (`lo*1000 ... hi*1000`), nil when unbounded.
    public var grid: ClosedRange<Int>? {
        switch self {
        case .unit: return 0...1000
        case .signed: return -1000...1000
        case .unbounded: return nil
        }
    }

    /// The (left, right) saturation thresholds for the user's `low` and `high`, nil when unbounded.
    public func thresholds(low: Double, high: Double) -> (left: Double, right: Double)? {
        switch self {
        case .unit: return (low, high)
        case .signed: return (-high, high)
        case .unbounded: return nil
        }
    }
}

/// One value a cell reports per step and unit: its name (also its database column), meaning and range.
public struct GateDescriptor: Sendable, Hashable {
    public let name: String
    public let meaning: String
    public let range: GateRange
}

/// The recurrent cells the engine runs. Each case is described once, here: the gates a step
/// reports (`gates`), in the order the engine's `GateStep.planes` give them and storage keeps them.
/// Everything downstream (recorder buffers, INSERTs, summaries, stats, export, plots, queries)
/// derives from this table instead of knowing the letters.
public enum CellKind: String, Sendable, Codable, CaseIterable {
    case lstm
    case gru
    case simpleRNN = "simple_rnn"

    /// The values of one step, in plane order.
    public var gates: [GateDescriptor] {
        switch self {
        case .lstm:
            return [
                GateDescriptor(name: "i", meaning: "input gate, recurrent_activation(x W_i + h_prev U_i + b_i)", range: .unit),
                GateDescriptor(name: "f", meaning: "forget gate, recurrent_activation(x W_f + h_prev U_f + b_f)", range: .unit),
                GateDescriptor(name: "g", meaning: "candidate, activation(x W_c + h_prev U_c + b_c)", range: .signed),
                GateDescriptor(name: "o", meaning: "output gate, recurrent_activation(x W_o + h_prev U_o + b_o)", range: .unit),
                GateDescriptor(name: "c", meaning: "cell state after the step, f*c_prev + i*g", range: .unbounded),
                GateDescriptor(name: "h", meaning: "hidden state after the step, o*activation(c)", range: .signed),
            ]
        case .gru:
            return [
                GateDescriptor(name: "z", meaning: "update gate, recurrent_activation(x W_z + h_prev U_z + b_z); high keeps the state", range: .unit),
                GateDescriptor(name: "r", meaning: "reset gate, recurrent_activation(x W_r + h_prev U_r + b_r)", range: .unit),
                GateDescriptor(name: "n", meaning: "candidate, activation(x W_h + r*(h_prev U_h) + b_h) (reset_after) or activation(x W_h + (r*h_prev) U_h + b_h)", range: .signed),
                GateDescriptor(name: "h", meaning: "hidden state after the step, z*h_prev + (1-z)*n", range: .signed),
            ]
        case .simpleRNN:
            return [
                GateDescriptor(name: "h", meaning: "hidden state after the step, activation(x W + h_prev U + b)", range: .signed),
            ]
        }
    }

    /// The gate names in plane order: lstm i f g o c h; gru z r n h; simple_rnn h.
    public var planes: [String] { gates.map(\.name) }

    /// Position of gate `name` among this cell's planes, or nil if the cell has no such gate.
    public func planeIndex(of name: String) -> Int? { gates.firstIndex { $0.name == name } }

    /// The gate that says the unit keeps its state when high (LSTM f, GRU z); nil for SimpleRNN.
    public var memoryGate: String? {
        switch self {
        case .lstm: return "f"
        case .gru: return "z"
        case .simpleRNN: return nil
        }
    }

    /// The framework class name ("LSTM", "GRU", "SimpleRNN").
    public var className: String {
        switch self {
        case .lstm: return "LSTM"
        case .gru: return "GRU"
        case .simpleRNN: return "SimpleRNN"
        }
    }
}
