/// Weights and settings of one GRU (one direction), in Keras's layout and gate order z, r, h.
public struct GRUSpec: Equatable, Sendable {
    public var name: String
    public var units: Int
    public var inputDim: Int
    public var activation: Activation
    public var recurrentActivation: Activation
    public var goBackwards: Bool
    public var returnSequences: Bool
    public var zeroOutputForMask: Bool
    /// Keras `reset_after`: the reset gate multiplies `h @ U_h + b_h` (True) or `h` itself (False).
    public var resetAfter: Bool
    public var kernel: Matrix           // [inputDim, 3*units]
    public var recurrentKernel: Matrix  // [units, 3*units]
    public var inputBias: [Float]?      // [3*units]
    /// [3*units], only with reset_after (Keras stores bias as [2, 3*units]: input row, recurrent row).
    public var recurrentBias: [Float]?

    /// Creates a spec, checking every weight shape against `units` and `inputDim`.
    public init(name: String, units: Int, inputDim: Int, activation: Activation, recurrentActivation: Activation,
                goBackwards: Bool, returnSequences: Bool, zeroOutputForMask: Bool, resetAfter: Bool,
                kernel: Matrix, recurrentKernel: Matrix, inputBias: [Float]?, recurrentBias: [Float]?) throws {
        try kernel.check(rows: inputDim, cols: 3 * units, layer: name, weight: "kernel")
        try recurrentKernel.check(rows: units, cols: 3 * units, layer: name, weight: "recurrent_kernel")
        for b in [inputBias, recurrentBias] {
            if let b, b.count != 3 * units {
                throw EngineError.weightShape(layer: name, weight: "bias", expected: [3 * units], got: [b.count])
            }
        }
        for a in [activation, recurrentActivation] where a.isAxisWise {
            throw EngineError.incompatible(layer: name, reason: "\(a.kerasName) cannot be a GRU activation")
        }
        self.name = name
        self.units = units
        self.inputDim = inputDim
        self.activation = activation
        self.recurrentActivation = recurrentActivation
        self.goBackwards = goBackwards
        self.returnSequences = returnSequences
        self.zeroOutputForMask = zeroOutputForMask
        self.resetAfter = resetAfter
        self.kernel = kernel
        self.recurrentKernel = recurrentKernel
        self.inputBias = inputBias
        self.recurrentBias = recurrentBias
    }

    /// Number of trainable values, as Keras counts them.
    public var parameterCount: Int {
        kernel.values.count + recurrentKernel.values.count + (inputBias?.count ?? 0) + (recurrentBias?.count ?? 0)
    }
}

/// Weights and settings of one SimpleRNN (one direction).
public struct SimpleRNNSpec: Equatable, Sendable {
    public var name: String
    public var units: Int
    public var inputDim: Int
    public var activation: Activation
    public var goBackwards: Bool
    public var returnSequences: Bool
    public var zeroOutputForMask: Bool
    public var kernel: Matrix           // [inputDim, units]
    public var recurrentKernel: Matrix  // [units, units]
    public var bias: [Float]?           // [units]

    /// Creates a spec, checking every weight shape against `units` and `inputDim`.
    public init(name: String, units: Int, inputDim: Int, activation: Activation, goBackwards: Bool,
                returnSequences: Bool, zeroOutputForMask: Bool, kernel: Matrix, recurrentKernel: Matrix, bias: [Float]?) throws {
        try kernel.check(rows: inputDim, cols: units, layer: name, weight: "kernel")
        try recurrentKernel.check(rows: units, cols: units, layer: name, weight: "recurrent_kernel")
        if let bias, bias.count != units {
            throw EngineError.weightShape(layer: name, weight: "bias", expected: [units], got: [bias.count])
        }
        if activation.isAxisWise {
            throw EngineError.incompatible(layer: name, reason: "\(activation.kerasName) cannot be a SimpleRNN activation")
        }
        self.name = name
        self.units = units
        self.inputDim = inputDim
        self.activation = activation
        self.goBackwards = goBackwards
        self.returnSequences = returnSequences
        self.zeroOutputForMask = zeroOutputForMask
        self.kernel = kernel
        self.recurrentKernel = recurrentKernel
        self.bias = bias
    }

    /// Number of trainable values, as Keras counts them.
    public var parameterCount: Int { kernel.values.count + recurrentKernel.values.count + (bias?.count ?? 0) }
}

/// The result of running one recurrent half over a batch.
struct RecurrentResult {
    /// [batch, time, units] in processing order (reversed for go_backwards), or empty.
    var sequence: [Float]
    /// [batch, units]: the output of the last processed step.
    var last: [Float]
    /// The states after the last step ([batch, units] each): h (and c for an LSTM).
    var states: [[Float]]
}

/// Keras's GRU and SimpleRNN over a batch, step by step (Keras `GRUCell.call`, `SimpleRNNCell.call`):
///
///   GRU, per step t (columns z, r, h):
///     x_z, x_r, x_h = x_t @ kernel + b_in                                  // [batch, 3u]
///     reset_after:  m = h_{t-1} @ U + b_rec;  z = ra(x_z + m_z)  r = ra(x_r + m_r)  n = a(x_h + r * m_h)
///     reset_before: z = ra(x_z + h @ U_z)  r = ra(x_r + h @ U_r)  n = a(x_h + (r * h) @ U_h)
///     h_t = z * h_{t-1} + (1 - z) * n
///   SimpleRNN:  h_t = a(x_t @ kernel + b + h_{t-1} @ U)
/// Masked steps keep the state; their output is the previous output (or zeros with zero_output_for_mask).
struct SmallRecurrentForward {
    enum Cell {
        case gru(GRUSpec, kernel: PackedMatrix, recurrent: PackedMatrix, recurrentZR: PackedMatrix?, recurrentH: PackedMatrix?)
        case simple(SimpleRNNSpec, kernel: PackedMatrix, recurrent: PackedMatrix)
    }
    let cell: Cell
    let batch: Int
    let time: Int

    /// Prepares the matrices of a GRU half.
    static func gru(_ s: GRUSpec, batch: Int, time: Int) -> SmallRecurrentForward {
        let u = s.units
        var zr: PackedMatrix? = nil, hPart: PackedMatrix? = nil
        if !s.resetAfter {
            // (r * h) @ U_h needs U_h on its own; h @ U_zr the other two column blocks.
            var a = [Float](), b = [Float]()
            for row in 0..<u {
                let r = Array(s.recurrentKernel.values[(row * 3 * u)..<((row + 1) * 3 * u)])
                a += r[0..<(2 * u)]
                b += r[(2 * u)...]
            }
            zr = PackedMatrix(Matrix(rows: u, cols: 2 * u, values: a))
            hPart = PackedMatrix(Matrix(rows: u, cols: u, values: b))
        }
        return SmallRecurrentForward(cell: .gru(s, kernel: PackedMatrix(s.kernel), recurrent: PackedMatrix(s.recurrentKernel),
                                                recurrentZR: zr, recurrentH: hPart), batch: batch, time: time)
    }

    /// Prepares the matrices of a SimpleRNN half.
    static func simple(_ s: SimpleRNNSpec, batch: Int, time: Int) -> SmallRecurrentForward {
        SmallRecurrentForward(cell: .simple(s, kernel: PackedMatrix(s.kernel), recurrent: PackedMatrix(s.recurrentKernel)),
                              batch: batch, time: time)
    }

    /// Runs on `x` [batch, time, inputDim] with `mask` [batch, time], from `initial` h ([batch, units]).
    func run(_ x: [Float], mask: [Bool]?, initial: [Float]?, zeroBeforeFirst: Bool = false, layerIndex: Int,
             observer: GateObserver?) throws -> RecurrentResult {
        let units: Int, goBackwards: Bool, returnSequences: Bool, zeroOutput: Bool, width: Int
        switch cell {
        case let .gru(s, _, _, _, _):
            (units, goBackwards, returnSequences, zeroOutput, width) = (s.units, s.goBackwards, s.returnSequences, s.zeroOutputForMask, 3 * s.units)
        case let .simple(s, _, _):
            (units, goBackwards, returnSequences, zeroOutput, width) = (s.units, s.goBackwards, s.returnSequences, s.zeroOutputForMask, s.units)
        }
        let u = units, batch = batch, time = time
        var h = initial ?? [Float](repeating: 0, count: batch * u)  // [batch, units]
        precondition(h.count == batch * u)
        var sequence = [Float](repeating: 0, count: returnSequences ? batch * time * u : 0)
        var last = [Float](repeating: 0, count: batch * u)
        guard batch > 0, time > 0 else { return RecurrentResult(sequence: sequence, last: h, states: [h]) }
        let cellKind: CellKind
        if case .gru = cell { cellKind = .gru } else { cellKind = .simpleRNN }
        let report = observer.map { $0.observedLayers?.contains(layerIndex) ?? true } ?? false

        // Buffers allocated once for the whole sequence.
        var xproj = [Float](repeating: 0, count: batch * time * width)  // [batch*time, width]
        var m = [Float](repeating: 0, count: batch * width)             // [batch, width] recurrent product
        var gates = [Float](repeating: 0, count: 3 * batch * u)         // z, r, n for a GRU, each [batch, units]
        var rh = [Float](repeating: 0, count: batch * u)                // r * h (reset_before)
        var mh = [Float](repeating: 0, count: batch * u)                // (r * h) @ U_h
        var active = [Bool](repeating: true, count: batch)
        // Keras 2 repeats zeros, not the initial state, for masked steps before a row's first active one.
        var seen = [Bool](repeating: !zeroBeforeFirst, count: batch)

        // Input projection of every (sequence, step) at once.
        x.withUnsafeBufferPointer { xp in
            xproj.withUnsafeMutableBufferPointer { xz in
                switch cell {
                case let .gru(s, kernel, _, _, _):
                    kernel.multiply(xp.baseAddress!, rows: batch * time, into: xz.baseAddress!)
                    if let b = s.inputBias { for r in 0..<(batch * time) { for k in 0..<width { xz[r * width + k] += b[k] } } }
                case let .simple(s, kernel, _):
                    kernel.multiply(xp.baseAddress!, rows: batch * time, into: xz.baseAddress!)
                    if let b = s.bias { for r in 0..<(batch * time) { for k in 0..<width { xz[r * width + k] += b[k] } } }
                }
            }
        }

        for k in 0..<time {
            let t = goBackwards ? time - 1 - k : k
            for b in 0..<batch { active[b] = mask?[b * time + t] ?? true }
            switch cell {
            case let .gru(s, _, recurrent, recurrentZR, recurrentH):
                let ra = s.recurrentActivation, a = s.activation
                h.withUnsafeBufferPointer { hp in
                    m.withUnsafeMutableBufferPointer { mp in
                        if s.resetAfter {
                            recurrent.multiply(hp.baseAddress!, rows: batch, into: mp.baseAddress!)
                        } else {
                            // Only z and r columns here: [batch, 2u] laid out with row stride 2u.
                            recurrentZR!.multiply(hp.baseAddress!, rows: batch, into: mp.baseAddress!)
                        }
                    }
                }
                let stride = s.resetAfter ? width : 2 * u
                for b in 0..<batch where active[b] {
                    let xr = (b * time + t) * width, mr = b * stride
                    for j in 0..<u {
                        var zin = xproj[xr + j] + m[mr + j]
                        var rin = xproj[xr + u + j] + m[mr + u + j]
                        if s.resetAfter, let rb = s.recurrentBias { zin += rb[j]; rin += rb[u + j] }
                        gates[b * u + j] = zin
                        gates[batch * u + b * u + j] = rin
                    }
                }
                ra.applyRows(&gates, offset: 0, count: 2 * batch * u, rowLength: u)
                if !s.resetAfter {
                    for i in 0..<(batch * u) { rh[i] = gates[batch * u + i] * h[i] }
                    rh.withUnsafeBufferPointer { rp in
                        mh.withUnsafeMutableBufferPointer { recurrentH!.multiply(rp.baseAddress!, rows: batch, into: $0.baseAddress!) }
                    }
                }
                for b in 0..<batch where active[b] {
                    let xr = (b * time + t) * width
                    for j in 0..<u {
                        let r = gates[batch * u + b * u + j]
                        let recurrentPart: Float
                        if s.resetAfter {
                            recurrentPart = r * (m[b * width + 2 * u + j] + (s.recurrentBias?[2 * u + j] ?? 0))
                        } else {
                            recurrentPart = mh[b * u + j]
                        }
                        gates[2 * batch * u + b * u + j] = xproj[xr + 2 * u + j] + recurrentPart
                    }
                }
                a.applyRows(&gates, offset: 2 * batch * u, count: batch * u, rowLength: u)
                for b in 0..<batch where active[b] {
                    for j in 0..<u {
                        let i = b * u + j
                        let z = gates[i], n = gates[2 * batch * u + i]
                        h[i] = z * h[i] + (1 - z) * n
                    }
                }
            case let .simple(s, _, recurrent):
                h.withUnsafeBufferPointer { hp in
                    m.withUnsafeMutableBufferPointer { recurrent.multiply(hp.baseAddress!, rows: batch, into: $0.baseAddress!) }
                }
                for b in 0..<batch where active[b] {
                    let xr = (b * time + t) * width
                    for j in 0..<u { m[b * u + j] += xproj[xr + j] }
                }
                s.activation.applyRows(&m, offset: 0, count: batch * u, rowLength: u)
                for b in 0..<batch where active[b] {
                    for j in 0..<u { h[b * u + j] = m[b * u + j] }
                }
            }
            // Output of this step, in processing order.
            for b in 0..<batch {
                if active[b] { seen[b] = true }
                let useZero = !active[b] && (zeroOutput || !seen[b])
                if returnSequences {
                    let o = (b * time + k) * u
                    for j in 0..<u { sequence[o + j] = useZero ? 0 : h[b * u + j] }
                }
                if k == time - 1 {
                    for j in 0..<u { last[b * u + j] = useZero ? 0 : h[b * u + j] }
                }
            }
            if report, let observer, active.contains(true) {
                let n = batch * u
                try gates.withUnsafeBufferPointer { gp in
                    try h.withUnsafeBufferPointer { hp in
                        try active.withUnsafeBufferPointer { ap in
                            let planes: [UnsafeBufferPointer<Float>]
                            if cellKind == .gru {
                                let g = gp.baseAddress!
                                planes = [UnsafeBufferPointer(start: g, count: n), UnsafeBufferPointer(start: g + n, count: n),
                                          UnsafeBufferPointer(start: g + 2 * n, count: n), hp]
                            } else {
                                planes = [hp]
                            }
                            try observer.observe(GateStep(layer: layerIndex, cell: cellKind, step: t, batchSize: batch,
                                                          units: u, active: ap, planes: planes))
                        }
                    }
                }
            }
        }
        return RecurrentResult(sequence: sequence, last: last, states: [h])
    }
}

extension Activation {
    /// Applies the activation in place to `count` values of `values` from `offset`, in rows of `rowLength`.
    func applyRows(_ values: inout [Float], offset: Int, count: Int, rowLength: Int) {
        values.withUnsafeMutableBufferPointer { p in
            apply(UnsafeMutableBufferPointer(rebasing: p[offset..<(offset + count)]), rowLength: rowLength)
        }
    }
}
