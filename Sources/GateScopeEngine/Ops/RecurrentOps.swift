/// The weights of one recurrent half, whichever cell it is.
public enum RecurrentCell: Equatable, Sendable {
    case lstm(LSTMSpec)
    case gru(GRUSpec)
    case simpleRNN(SimpleRNNSpec)
    /// An LSTM of ONNX or PyTorch with peepholes, clip, coupled gates, own activations or a projection.
    case generalLSTM(GeneralLSTMSpec)

    public var kind: CellKind {
        switch self {
        case .lstm, .generalLSTM: return .lstm
        case .gru: return .gru
        case .simpleRNN: return .simpleRNN
        }
    }
    public var units: Int {
        switch self {
        case let .lstm(s): return s.units
        case let .gru(s): return s.units
        case let .simpleRNN(s): return s.units
        case let .generalLSTM(s): return s.units
        }
    }
    public var inputDim: Int {
        switch self {
        case let .lstm(s): return s.inputDim
        case let .gru(s): return s.inputDim
        case let .simpleRNN(s): return s.inputDim
        case let .generalLSTM(s): return s.inputDim
        }
    }
    public var goBackwards: Bool {
        switch self {
        case let .lstm(s): return s.goBackwards
        case let .gru(s): return s.goBackwards
        case let .simpleRNN(s): return s.goBackwards
        case let .generalLSTM(s): return s.goBackwards
        }
    }
    public var returnSequences: Bool {
        switch self {
        case let .lstm(s): return s.returnSequences
        case let .gru(s): return s.returnSequences
        case let .simpleRNN(s): return s.returnSequences
        case .generalLSTM: return true
        }
    }
    public var activation: Activation {
        switch self {
        case let .lstm(s): return s.activation
        case let .gru(s): return s.activation
        case let .simpleRNN(s): return s.activation
        case let .generalLSTM(s): return s.cellActivation
        }
    }
    /// The gate activation (SimpleRNN has none; its activation is reported).
    public var recurrentActivation: Activation {
        switch self {
        case let .lstm(s): return s.recurrentActivation
        case let .gru(s): return s.recurrentActivation
        case let .simpleRNN(s): return s.activation
        case let .generalLSTM(s): return s.gateActivation
        }
    }
    /// The size of the state a step returns and feeds back (PyTorch proj_size, else units).
    public var outSize: Int {
        if case let .generalLSTM(s) = self { return s.outSize }
        return units
    }
    /// States the cell carries: h, c for an LSTM; h otherwise.
    public var stateCount: Int { kind == .lstm ? 2 : 1 }
    public var parameterCount: Int {
        switch self {
        case let .lstm(s): return s.parameterCount
        case let .gru(s): return s.parameterCount
        case let .simpleRNN(s): return s.parameterCount
        case let .generalLSTM(s): return s.parameterCount
        }
    }
    var half: RecurrentHalf {
        RecurrentHalf(cell: kind, direction: goBackwards ? .bwd : .fwd, units: units, inputDim: inputDim,
                      activation: activation, recurrentActivation: recurrentActivation)
    }
    var settings: [String] {
        var d = ["units=\(units)"]
        if returnSequences { d.append("return_sequences") }
        if goBackwards { d.append("go_backwards") }
        switch self {
        case let .lstm(s): if s.bias == nil { d.append("use_bias=false") }
        case let .gru(s):
            d.append("reset_after=\(s.resetAfter ? "true" : "false")")
            if s.inputBias == nil { d.append("use_bias=false") }
        case let .simpleRNN(s): if s.bias == nil { d.append("use_bias=false") }
        case let .generalLSTM(s):
            if s.peepholes != nil { d.append("peepholes") }
            if let c = s.clip { d.append("clip=\(c)") }
            if s.inputForget { d.append("input_forget") }
            if let p = s.projection { d.append("proj_size=\(p.cols)") }
            if s.bias == nil { d.append("bias=false") }
        }
        return d
    }
}

/// The recurrent cell's matrices, packed once per model.
final class PreparedCell: @unchecked Sendable {  // immutable after init
    let cell: RecurrentCell
    let lstm: LSTMWeights?
    let general: GeneralLSTMForward?
    /// Keras 2 outputs zeros, not the initial state, at masked steps before a sequence's first active step.
    let zeroBeforeFirst: Bool
    init(_ cell: RecurrentCell, zeroBeforeFirst: Bool = false) {
        self.cell = cell
        self.zeroBeforeFirst = zeroBeforeFirst
        if case let .lstm(s) = cell { lstm = LSTMWeights(s) } else { lstm = nil }
        if case let .generalLSTM(s) = cell { general = GeneralLSTMForward(s) } else { general = nil }
    }

    /// Runs the half on `x` [batch, time, inputDim]; `initial` holds its states or nil for zeros.
    func run(_ x: [Float], batch: Int, time: Int, mask: [Bool]?, initial: [[Float]]?,
             layerIndex: Int, context: OpContext) throws -> RecurrentResult {
        switch cell {
        case let .lstm(s):
            let r = try LSTMForward(spec: s, weights: lstm!, batch: batch, time: time,
                                    threads: LSTMForward.threadCount(context.threads, batch: batch))
                .run(x, mask: mask, initial: initial, zeroBeforeFirst: zeroBeforeFirst, layerIndex: layerIndex, observer: context.observer,
                     threadBudget: context.threadBudget)
            return RecurrentResult(sequence: r.sequence, last: r.last, states: [r.finalH, r.finalC])
        case let .gru(s):
            return try SmallRecurrentForward.gru(s, batch: batch, time: time)
                .run(x, mask: mask, initial: initial?[0], zeroBeforeFirst: zeroBeforeFirst, layerIndex: layerIndex, observer: context.observer)
        case let .simpleRNN(s):
            return try SmallRecurrentForward.simple(s, batch: batch, time: time)
                .run(x, mask: mask, initial: initial?[0], zeroBeforeFirst: zeroBeforeFirst, layerIndex: layerIndex, observer: context.observer)
        case .generalLSTM:
            return try general!.run(x, batch: batch, time: time, mask: mask, initial: initial, layerIndex: layerIndex, observer: context.observer)
        }
    }
}

/// Shape checks shared by plain and bidirectional recurrent layers.
private func recurrentInput(_ x: TensorInfo, inputDim: Int) throws -> TensorInfo {
    guard x.rank == 2 else {
        throw incompatible("a recurrent layer needs [batch, time, features] input, got \(shapeText([nil] + x.shape))")
    }
    guard x.dtype == .float32 else { throw incompatible("a recurrent layer cannot take token ids; put an Embedding first") }
    guard x.features == inputDim else {
        throw incompatible("the kernel expects \(inputDim) input features, the input has \(x.features.map(String.init) ?? "an unknown number")")
    }
    return x
}

/// Collects the initial states given as inputs 1...: each [batch, units].
private func initialStates(_ inputs: [Tensor], from: Int, count: Int, units: [Int], batch: Int) throws -> [[[Float]]?] {
    guard inputs.count > from else { return units.map { _ in nil } }
    var out: [[[Float]]?] = []
    var k = from
    for u in units {
        var states: [[Float]] = []
        for _ in 0..<count {
            let s = inputs[k]
            guard s.shape == [batch, u] else {
                throw EngineError.badInput("initial state \(k - from + 1) has shape \(s.shape), expected [\(batch), \(u)]")
            }
            states.append(s.values)
            k += 1
        }
        out.append(states)
    }
    return out
}

/// Keras LSTM, GRU or SimpleRNN layer: inputs `[x, state...]`, outputs `[y, state...]` with return_state.
public struct RecurrentOp: Op {
    public let cell: RecurrentCell
    public let returnState: Bool
    let prepared: PreparedCell

    /// Wraps one cell's weights; `kerasMajor` 2 keeps Keras 2's zeros at leading masked steps.
    public init(cell: RecurrentCell, returnState: Bool, kerasMajor: Int = 3) {
        self.cell = cell
        self.returnState = returnState
        prepared = PreparedCell(cell, zeroBeforeFirst: kerasMajor < 3)
    }

    public var className: String { cell.kind.className }
    public var parameterCount: Int { cell.parameterCount }
    public var recurrentHalves: [RecurrentHalf] { [cell.half] }
    public var details: [String] { cell.settings + (returnState ? ["return_state"] : []) }
    public var lengthSafe: Bool { true }

    public func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        guard let first = inputs.first else { throw incompatible("no input") }
        let x = try recurrentInput(first, inputDim: cell.inputDim)
        let states = inputs.count - 1
        guard states == 0 || states == cell.stateCount else {
            throw incompatible("\(cell.kind.className) takes \(cell.stateCount) initial state tensor(s), got \(states)")
        }
        for s in inputs.dropFirst() where s.shape != [cell.units] {
            throw incompatible("an initial state has shape \(shapeText([nil] + s.shape)), expected (None, \(cell.units))")
        }
        let y = cell.returnSequences
            ? TensorInfo(shape: [x.shape[0], cell.units], masked: x.masked, time: x.time)
            : TensorInfo(shape: [cell.units])
        return [y] + (returnState ? Array(repeating: TensorInfo(shape: [cell.units]), count: cell.stateCount) : [])
    }

    public func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        let x = inputs[0], batch = x.shape[0], time = x.shape[1], u = cell.units
        let initial = try initialStates(inputs, from: 1, count: cell.stateCount, units: [u], batch: batch)[0]
        let r = try prepared.run(x.values, batch: batch, time: time, mask: masks[0], initial: initial,
                                 layerIndex: context.recurrentBase, context: context)
        // Keras passes the mask on unchanged (not reversed, even for go_backwards).
        let y = cell.returnSequences ? Output(Tensor(shape: [batch, time, u], values: r.sequence), mask: masks[0])
                                     : Output(Tensor(shape: [batch, u], values: r.last))
        return [y] + (returnState ? r.states.map { Output(Tensor(shape: [batch, u], values: $0)) } : [])
    }
}

/// How a Bidirectional layer combines its two halves (`none` gives both as separate outputs).
public enum MergeMode: String, Sendable {
    case concat, sum, ave, mul, none
}

/// Keras Bidirectional around an LSTM, GRU or SimpleRNN: outputs the merged sequence (two
/// outputs with merge_mode None), then with return_state the forward states and the backward ones.
public struct BidirectionalOp: Op {
    public let forward: RecurrentCell
    public let backward: RecurrentCell
    public let merge: MergeMode
    public let returnState: Bool
    let prepared: [PreparedCell]

    /// Checks that the halves fit together.
    public init(forward: RecurrentCell, backward: RecurrentCell, merge: MergeMode, returnState: Bool, kerasMajor: Int = 3) throws {
        guard forward.kind == backward.kind, forward.returnSequences == backward.returnSequences,
              forward.goBackwards != backward.goBackwards, forward.inputDim == backward.inputDim else {
            throw incompatible("the two halves must be the same cell with the same input and return_sequences, and opposite go_backwards")
        }
        if merge != .concat && merge != .none && forward.units != backward.units {
            throw incompatible("merge_mode \(merge.rawValue) needs halves of equal units")
        }
        self.forward = forward
        self.backward = backward
        self.merge = merge
        self.returnState = returnState
        prepared = [PreparedCell(forward, zeroBeforeFirst: kerasMajor < 3), PreparedCell(backward, zeroBeforeFirst: kerasMajor < 3)]
    }

    public var className: String { "Bidirectional(\(forward.kind.className))" }
    public var parameterCount: Int { forward.parameterCount + backward.parameterCount }
    public var recurrentHalves: [RecurrentHalf] { [forward.half, backward.half] }
    public var lengthSafe: Bool { true }
    public var details: [String] {
        var d = ["merge_mode=\(merge == .none ? "None" : merge.rawValue)"] + forward.settings
        if returnState { d.append("return_state") }
        if backward.units != forward.units || backward.activation != forward.activation {
            d.append("backward: units=\(backward.units) \(backward.activation.kerasName)/\(backward.recurrentActivation.kerasName)")
        }
        return d
    }

    public func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        guard let first = inputs.first else { throw incompatible("no input") }
        let x = try recurrentInput(first, inputDim: forward.inputDim)
        let states = inputs.count - 1
        guard states == 0 || states == 2 * forward.stateCount else {
            throw incompatible("Bidirectional(\(forward.kind.className)) takes \(2 * forward.stateCount) initial state tensors, got \(states)")
        }
        func out(_ units: Int) -> TensorInfo {
            forward.returnSequences ? TensorInfo(shape: [x.shape[0], units], masked: x.masked, time: x.time) : TensorInfo(shape: [units])
        }
        var outs: [TensorInfo]
        switch merge {
        case .concat: outs = [out(forward.units + backward.units)]
        case .none: outs = [out(forward.units), out(backward.units)]
        default: outs = [out(forward.units)]
        }
        if returnState {
            outs += Array(repeating: TensorInfo(shape: [forward.units]), count: forward.stateCount)
            outs += Array(repeating: TensorInfo(shape: [backward.units]), count: backward.stateCount)
        }
        return outs
    }

    public func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        let x = inputs[0], batch = x.shape[0], time = x.shape[1]
        let initial = try initialStates(inputs, from: 1, count: forward.stateCount, units: [forward.units, backward.units], batch: batch)
        let rf = try prepared[0].run(x.values, batch: batch, time: time, mask: masks[0], initial: initial[0],
                                     layerIndex: context.recurrentBase, context: context)
        let rb = try prepared[1].run(x.values, batch: batch, time: time, mask: masks[0], initial: initial[1],
                                     layerIndex: context.recurrentBase + 1, context: context)
        let seq = forward.returnSequences
        let rows = seq ? batch * time : batch
        // Keras flips the backward half's sequence back to input order before merging.
        let a = seq && forward.goBackwards ? flipTime(rf.sequence, batch: batch, time: time, dim: forward.units) : (seq ? rf.sequence : rf.last)
        let b = seq && backward.goBackwards ? flipTime(rb.sequence, batch: batch, time: time, dim: backward.units) : (seq ? rb.sequence : rb.last)
        let mask = seq ? masks[0] : nil
        func shape(_ units: Int) -> [Int] { seq ? [batch, time, units] : [batch, units] }
        var outs: [Output]
        switch merge {
        case .concat:
            let uf = forward.units, ub = backward.units, w = uf + ub
            var out = [Float](repeating: 0, count: rows * w)  // [rows, uf + ub]: fwd then bwd
            for r in 0..<rows {
                for j in 0..<uf { out[r * w + j] = a[r * uf + j] }
                for j in 0..<ub { out[r * w + uf + j] = b[r * ub + j] }
            }
            outs = [Output(Tensor(shape: shape(w), values: out), mask: mask)]
        case .sum: outs = [Output(Tensor(shape: shape(forward.units), values: zip(a, b).map { $0 + $1 }), mask: mask)]
        case .ave: outs = [Output(Tensor(shape: shape(forward.units), values: zip(a, b).map { ($0 + $1) / 2 }), mask: mask)]
        case .mul: outs = [Output(Tensor(shape: shape(forward.units), values: zip(a, b).map { $0 * $1 }), mask: mask)]
        case .none:
            outs = [Output(Tensor(shape: shape(forward.units), values: a), mask: mask),
                    Output(Tensor(shape: shape(backward.units), values: b), mask: mask)]
        }
        if returnState {
            outs += rf.states.map { Output(Tensor(shape: [batch, forward.units], values: $0)) }
            outs += rb.states.map { Output(Tensor(shape: [batch, backward.units], values: $0)) }
        }
        return outs
    }
}

/// Reverses the time axis of `[batch, time, dim]`.
func flipTime(_ v: [Float], batch: Int, time: Int, dim: Int) -> [Float] {
    var out = v
    for b in 0..<batch {
        for t in 0..<time {
            let src = (b * time + t) * dim, dst = (b * time + (time - 1 - t)) * dim
            for j in 0..<dim { out[dst + j] = v[src + j] }
        }
    }
    return out
}
