/// A recurrent layer as ONNX's LSTM, GRU and RNN ops and PyTorch's nn.LSTM / nn.GRU layers
/// define it: one or two directions over the same input, every output step returned.
///
/// Inputs (batch first, whatever the framework's layout; the importer transposes):
///   x [batch, time, features]; then, if the op was built with them:
///   lengths [batch] (float sequence lengths: steps past a length are not computed),
///   h0 [batch, directions, outSize], c0 [batch, directions, units] (LSTM).
/// Outputs: y [batch, time, directions, outSize] (zero past a sequence's length),
///   h_n [batch, directions, outSize], and c_n [batch, directions, units] for an LSTM.
public struct FrameworkRecurrentOp: Op {
    /// One cell per direction: [forward], [backward] (ONNX "reverse") or [forward, backward].
    public let directions: [RecurrentCell]
    public let hasLengths: Bool
    public let hasInitialH: Bool
    public let hasInitialC: Bool
    /// "LSTM", "GRU", "RNN" (ONNX) or "nn.LSTM" ...: shown by inspect.
    public let className: String
    let prepared: [PreparedCell]

    /// Checks that the directions fit together.
    public init(className: String, directions: [RecurrentCell], hasLengths: Bool, hasInitialH: Bool, hasInitialC: Bool) throws {
        guard let first = directions.first, directions.count <= 2,
              directions.allSatisfy({ $0.kind == first.kind && $0.inputDim == first.inputDim && $0.outSize == first.outSize && $0.units == first.units }) else {
            throw incompatible("one or two directions of the same cell, input and size are needed")
        }
        if directions.count == 2, directions[0].goBackwards || !directions[1].goBackwards {
            throw incompatible("a bidirectional layer runs forward, then backward")
        }
        if hasInitialC, first.kind != .lstm { throw incompatible("only an LSTM has an initial cell state") }
        self.className = className
        self.directions = directions
        self.hasLengths = hasLengths
        self.hasInitialH = hasInitialH
        self.hasInitialC = hasInitialC
        prepared = directions.map { PreparedCell($0) }
    }

    var cell: RecurrentCell { directions[0] }
    public var parameterCount: Int { directions.reduce(0) { $0 + $1.parameterCount } }
    public var recurrentHalves: [RecurrentHalf] { directions.map(\.half) }
    public var details: [String] {
        var d = cell.settings.filter { $0 != "return_sequences" && $0 != "go_backwards" }
        d.append(directions.count == 2 ? "bidirectional" : (cell.goBackwards ? "reverse" : "forward"))
        if hasLengths { d.append("sequence_lens") }
        return d
    }
    public var lengthSafe: Bool { true }

    public func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        let want = 1 + (hasLengths ? 1 : 0) + (hasInitialH ? 1 : 0) + (hasInitialC ? 1 : 0)
        guard inputs.count == want else { throw incompatible("takes \(want) inputs, got \(inputs.count)") }
        let x = inputs[0]
        guard x.rank == 2, x.dtype == .float32 else {
            throw incompatible("needs float [batch, time, features] input, got \(shapeText([nil] + x.shape)) \(x.dtype.rawValue)")
        }
        guard x.features == cell.inputDim else {
            throw incompatible("the weights expect \(cell.inputDim) input features, the input has \(x.features.map(String.init) ?? "an unknown number")")
        }
        var k = 1
        if hasLengths {
            guard inputs[k].rank == 0 else { throw incompatible("sequence lengths must be [batch], got \(shapeText([nil] + inputs[k].shape))") }
            k += 1
        }
        let d = directions.count, out = cell.outSize, u = cell.units
        if hasInitialH {
            guard inputs[k].shape == [d, out] else { throw incompatible("initial h must be (None, \(d), \(out)), got \(shapeText([nil] + inputs[k].shape))") }
            k += 1
        }
        if hasInitialC {
            guard inputs[k].shape == [d, u] else { throw incompatible("initial c must be (None, \(d), \(u)), got \(shapeText([nil] + inputs[k].shape))") }
        }
        let y = TensorInfo(shape: [x.shape[0], d, out], masked: x.masked || hasLengths, time: x.time)
        let states = [TensorInfo(shape: [d, out])] + (cell.kind == .lstm ? [TensorInfo(shape: [d, u])] : [])
        return [y] + states
    }

    public func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        let x = inputs[0], batch = x.shape[0], time = x.shape[1]
        let d = directions.count, out = cell.outSize, u = cell.units
        var k = 1
        // Steps past a sequence's length, and steps the input's own mask hides, are not computed.
        var mask = masks[0]
        if hasLengths {
            let lengths = inputs[k].values
            k += 1
            var m = mask ?? [Bool](repeating: true, count: batch * time)
            for b in 0..<batch {
                let n = lengths[b]
                guard n >= 0, n <= Float(time), n == n.rounded() else {
                    throw EngineError.badInput("sequence \(b): length \(n) outside 0...\(time)")
                }
                for t in Int(n)..<time { m[b * time + t] = false }
            }
            mask = m
        }
        if hasInitialH, inputs[k].shape != [batch, d, out] {
            throw EngineError.badInput("initial h has shape \(inputs[k].shape), expected [\(batch), \(d), \(out)] for \(batch) sequences")
        }
        let h0 = hasInitialH ? inputs[k].values : nil
        if hasInitialH { k += 1 }
        if hasInitialC, inputs[k].shape != [batch, d, u] {
            throw EngineError.badInput("initial c has shape \(inputs[k].shape), expected [\(batch), \(d), \(u)] for \(batch) sequences")
        }
        let c0 = hasInitialC ? inputs[k].values : nil

        var y = [Float](repeating: 0, count: batch * time * d * out)   // [batch, time, d, out]
        var hn = [Float](repeating: 0, count: batch * d * out)         // [batch, d, out]
        var cn = [Float](repeating: 0, count: batch * d * u)           // [batch, d, units]
        for (di, cell) in directions.enumerated() {
            func slice(_ v: [Float]?, size: Int) -> [Float]? {
                guard let v else { return nil }
                var s = [Float](repeating: 0, count: batch * size)
                for b in 0..<batch { for j in 0..<size { s[b * size + j] = v[(b * d + di) * size + j] } }
                return s
            }
            var initial: [[Float]]? = nil
            if h0 != nil || c0 != nil {
                initial = [slice(h0, size: out) ?? [Float](repeating: 0, count: batch * out)]
                if cell.kind == .lstm { initial!.append(slice(c0, size: u) ?? [Float](repeating: 0, count: batch * u)) }
            }
            let r = try prepared[di].run(x.values, batch: batch, time: time, mask: mask, initial: initial,
                                         layerIndex: context.recurrentBase + di, context: context)
            // r.sequence is in processing order; y is in input order, zero where nothing was computed.
            for b in 0..<batch {
                for step in 0..<time {
                    let t = cell.goBackwards ? time - 1 - step : step
                    guard mask?[b * time + t] ?? true else { continue }
                    let src = (b * time + step) * out, dst = ((b * time + t) * d + di) * out
                    for j in 0..<out { y[dst + j] = r.sequence[src + j] }
                }
                for j in 0..<out { hn[(b * d + di) * out + j] = r.states[0][b * out + j] }
                if cell.kind == .lstm { for j in 0..<u { cn[(b * d + di) * u + j] = r.states[1][b * u + j] } }
            }
        }
        // The steps that were computed travel on as the output's mask (a next layer skips the rest).
        var outs = [Output(Tensor(shape: [batch, time, d, out], values: y), mask: mask),
                    Output(Tensor(shape: [batch, d, out], values: hn))]
        if cell.kind == .lstm { outs.append(Output(Tensor(shape: [batch, d, u], values: cn))) }
        return outs
    }
}

/// `[batch, time, directions, size]` -> `[batch, time, directions*size]` (forward then backward
/// per step, as PyTorch concatenates them), keeping the mask: what feeds a stacked layer.
public struct MergeDirectionsOp: Op {
    public init() {}
    public var className: String { "(directions concatenated)" }
    public var lengthSafe: Bool { true }

    public func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        guard let x = inputs.first, inputs.count == 1, x.rank == 3, let d = x.shape[1], let h = x.shape[2] else {
            throw incompatible("needs one (None, time, directions, size) input")
        }
        return [TensorInfo(shape: [x.shape[0], d * h], masked: x.masked, time: x.time)]
    }

    public func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        let x = inputs[0]
        return [Output(Tensor(shape: [x.shape[0], x.shape[1], x.shape[2] * x.shape[3]], values: x.values), mask: masks[0])]
    }
}

/// Final states of stacked layers side by side: `[batch, directions, size]` each ->
/// `[batch, layers*directions, size]` (PyTorch's h_n / c_n order, batch first). No time axis,
/// so sequences of any lengths may share a batch.
public struct StackStatesOp: Op {
    public init() {}
    public var className: String { "(states stacked)" }
    public var lengthSafe: Bool { true }

    public func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        guard let first = inputs.first, first.rank == 2, inputs.allSatisfy({ $0.rank == 2 && $0.shape[1] == first.shape[1] }) else {
            throw incompatible("needs (None, directions, size) states of one size")
        }
        let rows = inputs.reduce(0) { $0 + ($1.shape[0] ?? 0) }
        return [TensorInfo(shape: [rows, first.shape[1]])]
    }

    public func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        let batch = inputs[0].shape[0], size = inputs[0].shape[2]
        let rows = inputs.reduce(0) { $0 + $1.shape[1] }
        var out = [Float](repeating: 0, count: batch * rows * size)
        for b in 0..<batch {
            var r = 0
            for t in inputs {
                let d = t.shape[1]
                for k in 0..<d { for j in 0..<size { out[(b * rows + r + k) * size + j] = t.values[(b * d + k) * size + j] } }
                r += d
            }
        }
        return [Output(Tensor(shape: [batch, rows, size], values: out))]
    }
}
