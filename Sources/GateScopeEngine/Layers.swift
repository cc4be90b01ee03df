/// A dense row-major Float32 matrix, the unit weights are stored in.
public struct Matrix: Equatable, Sendable {
    public var rows: Int
    public var cols: Int
    /// [rows, cols], row-major
    public var values: [Float]

    /// Throws `EngineError.weightShape` naming the layer and weight unless the matrix is `[rows, cols]`.
    func check(rows: Int, cols: Int, layer: String, weight: String) throws {
        guard self.rows == rows, self.cols == cols else {
            throw EngineError.weightShape(layer: layer, weight: weight, expected: [rows, cols], got: [self.rows, self.cols])
        }
    }

    /// Wraps `values` as a `[rows, cols]` matrix; the count must match.
    public init(rows: Int, cols: Int, values: [Float]) {
        precondition(values.count == rows * cols, "matrix \(rows)x\(cols) needs \(rows * cols) values, got \(values.count)")
        self.rows = rows
        self.cols = cols
        self.values = values
    }
}

/// Weights and settings of one LSTM (one direction), in Keras's layout and gate order i, f, c, o.
public struct LSTMSpec: Equatable, Sendable {
    public var name: String
    public var units: Int
    public var inputDim: Int
    public var activation: Activation
    public var recurrentActivation: Activation
    public var goBackwards: Bool
    public var returnSequences: Bool
    /// Keras's `zero_output_for_mask`: masked steps output zeros instead of the previous output.
    public var zeroOutputForMask: Bool
    public var kernel: Matrix           // [inputDim, 4*units]
    public var recurrentKernel: Matrix  // [units, 4*units]
    public var bias: [Float]?           // [4*units], nil when use_bias=False

    /// Creates a spec, checking every weight shape against `units` and `inputDim`.
    public init(name: String, units: Int, inputDim: Int, activation: Activation, recurrentActivation: Activation,
                goBackwards: Bool, returnSequences: Bool, zeroOutputForMask: Bool,
                kernel: Matrix, recurrentKernel: Matrix, bias: [Float]?) throws {
        try kernel.check(rows: inputDim, cols: 4 * units, layer: name, weight: "kernel")
        try recurrentKernel.check(rows: units, cols: 4 * units, layer: name, weight: "recurrent_kernel")
        if let bias, bias.count != 4 * units {
            throw EngineError.weightShape(layer: name, weight: "bias", expected: [4 * units], got: [bias.count])
        }
        for a in [activation, recurrentActivation] where a.isAxisWise {
            throw EngineError.incompatible(layer: name, reason: "\(a.kerasName) cannot be an LSTM activation")
        }
        self.name = name
        self.units = units
        self.inputDim = inputDim
        self.activation = activation
        self.recurrentActivation = recurrentActivation
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

/// A layer of a single chain, for building small models by hand (tests, benchmarks); importers build
/// `Graph`s. Layers that do nothing at inference are `.identity`.
public enum LayerKind: Equatable, Sendable {
    /// The model input; `featureDim` is nil for token-id input.
    case input(featureDim: Int?)
    /// Token ids -> vectors; `maskZero` makes id 0 a masked step.
    case embedding(embeddings: Matrix, maskZero: Bool)  // [inputDim, outputDim]
    /// Masks steps whose features all equal `maskValue`, and zeroes them.
    case masking(maskValue: Float)
    case lstm(LSTMSpec)
    case bidirectional(forward: LSTMSpec, backward: LSTMSpec, merge: MergeMode)
    /// Dense on the last axis (also TimeDistributed(Dense)).
    case dense(kernel: Matrix, bias: [Float]?, activation: Activation)  // kernel [inputDim, units]
    case activation(Activation)
    /// Dropout, noise and regularization layers: no-ops at inference.
    case identity
}

/// One layer of a chain model, with the Keras name and class it came from.
public struct Layer: Equatable, Sendable {
    public var name: String
    /// The Keras class, e.g. "LSTM", "TimeDistributed(Dense)".
    public var className: String
    public var kind: LayerKind

    /// Creates a layer.
    public init(name: String, className: String, kind: LayerKind) {
        self.name = name
        self.className = className
        self.kind = kind
    }

    /// Number of trainable values, as Keras's `count_params`.
    public var parameterCount: Int {
        switch kind {
        case let .embedding(e, _): return e.values.count
        case let .lstm(s): return s.parameterCount
        case let .bidirectional(f, b, _): return f.parameterCount + b.parameterCount
        case let .dense(k, b, _): return k.values.count + (b?.count ?? 0)
        case .input, .masking, .activation, .identity: return 0
        }
    }
}

/// Direction in which a recorded LSTM half walks the sequence.
public enum Direction: String, Sendable, Codable {
    /// Left to right.
    case fwd
    /// Right to left (`go_backwards`, or a Bidirectional's backward half).
    case bwd
}

