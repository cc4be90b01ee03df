/// Keras Embedding: token ids `[batch, ...]` -> vectors `[batch, ..., outputDim]`; mask_zero masks id 0.
public struct EmbeddingOp: Op {
    public let embeddings: Matrix  // [inputDim, outputDim]
    public let maskZero: Bool

    /// Wraps an embedding table.
    public init(embeddings: Matrix, maskZero: Bool) {
        self.embeddings = embeddings
        self.maskZero = maskZero
    }

    public var className: String { "Embedding" }
    public var parameterCount: Int { embeddings.values.count }
    public var details: [String] { ["input_dim=\(embeddings.rows)", "output_dim=\(embeddings.cols)"] + (maskZero ? ["mask_zero"] : []) }
    public var lengthSafe: Bool { true }

    public func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        guard inputs.count == 1 else { throw incompatible("Embedding takes one input") }
        let x = inputs[0]
        guard x.dtype == .int32 else {
            throw incompatible("Embedding needs token ids, got float features \(shapeText([nil] + x.shape))")
        }
        return [TensorInfo(shape: x.shape + [embeddings.cols], masked: maskZero || x.masked, time: x.time)]
    }

    public func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        let x = inputs[0], d = embeddings.cols
        let time = x.shape.count > 1 ? x.shape[1] : 1
        var out = [Float](repeating: 0, count: x.values.count * d)
        var mask: [Bool]? = maskZero ? [Bool](repeating: true, count: x.values.count) : nil
        let lengthMask = masks[0]
        for (pos, v) in x.values.enumerated() {
            if let lengthMask, !lengthMask[pos] { mask?[pos] = false; continue }  // padding past a sequence's length
            guard v >= 0, v < Float(embeddings.rows), v == v.rounded() else {
                throw EngineError.badInput("layer '\(context.node)': token id \(v) at sequence \(pos / time), step \(pos % time) is outside 0..<\(embeddings.rows)")
            }
            let id = Int(v)
            if maskZero && id == 0 { mask?[pos] = false }
            let src = id * d
            for j in 0..<d { out[pos * d + j] = embeddings.values[src + j] }
        }
        return [Output(Tensor(shape: x.shape + [d], values: out), mask: mask ?? lengthMask)]
    }
}

/// Keras Masking: masks steps whose features all equal `maskValue`, and zeroes them.
public struct MaskingOp: Op {
    public let maskValue: Float
    /// Wraps a mask value.
    public init(maskValue: Float) { self.maskValue = maskValue }
    public var className: String { "Masking" }
    public var details: [String] { ["mask_value=\(maskValue)"] }
    public var lengthSafe: Bool { true }

    public func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        guard inputs.count == 1, inputs[0].rank >= 2, inputs[0].dtype == .float32 else {
            throw incompatible("Masking needs [batch, time, features] float input")
        }
        return [inputs[0].with(shape: inputs[0].shape, masked: true)]
    }

    public func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        var x = inputs[0].values
        let steps = inputs[0].shape[0] * inputs[0].shape[1]
        let dim = steps == 0 ? 0 : x.count / steps
        var m = [Bool](repeating: false, count: steps)
        for pos in 0..<steps {
            let base = pos * dim
            var keep = false
            for j in 0..<dim where x[base + j] != maskValue { keep = true; break }
            if let lengths = masks[0], !lengths[pos] { keep = false }
            m[pos] = keep
            if !keep { for j in 0..<dim { x[base + j] = 0 } }
        }
        return [Output(Tensor(shape: inputs[0].shape, values: x), mask: m)]
    }
}

/// Keras Dense on the last axis (any rank), with its activation; passes the mask on.
public struct DenseOp: Op {
    public let kernel: Matrix  // [inputDim, units]
    public let bias: [Float]?  // [units]
    public let activation: Activation
    let packed: PackedMatrix

    /// Checks the bias against the kernel.
    public init(kernel: Matrix, bias: [Float]?, activation: Activation) throws {
        if let bias, bias.count != kernel.cols {
            throw EngineError.weightShape(layer: "", weight: "bias", expected: [kernel.cols], got: [bias.count])
        }
        self.kernel = kernel
        self.bias = bias
        self.activation = activation
        packed = PackedMatrix(kernel)
    }

    public var className: String { "Dense" }
    public var parameterCount: Int { kernel.values.count + (bias?.count ?? 0) }
    public var details: [String] { ["units=\(kernel.cols)"] + (bias == nil ? ["use_bias=false"] : []) + ["activation=\(activation.kerasName)"] }
    public var lengthSafe: Bool { true }

    public func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        guard inputs.count == 1, let x = inputs.first, x.rank >= 1, x.dtype == .float32 else {
            throw incompatible("Dense needs one float input with a feature axis")
        }
        guard x.features == kernel.rows else {
            throw incompatible("Dense kernel expects \(kernel.rows) inputs, the previous layer gives \(x.features.map(String.init) ?? "an unknown number")")
        }
        return [x.with(shape: Array(x.shape.dropLast()) + [kernel.cols])]
    }

    public func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        let x = inputs[0], rows = x.values.count / kernel.rows, n = kernel.cols
        var out = [Float](repeating: 0, count: rows * n)  // [rows, units]
        x.values.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { packed.multiply(xp.baseAddress!, rows: rows, into: $0.baseAddress!) }
        }
        if let bias { for r in 0..<rows { for j in 0..<n { out[r * n + j] += bias[j] } } }
        out.withUnsafeMutableBufferPointer { activation.apply($0, rowLength: n) }
        return [Output(Tensor(shape: Array(x.shape.dropLast()) + [n], values: out), mask: masks[0])]
    }
}

/// Keras Activation (and parameter-free ReLU/Softmax layers) on the last axis; passes the mask on.
public struct ActivationOp: Op {
    public let activation: Activation
    public let name: String
    /// Wraps an activation; `className` is the Keras class it came from.
    public init(_ activation: Activation, className: String = "Activation") {
        self.activation = activation
        name = className
    }
    public var className: String { name }
    public var details: [String] { ["activation=\(activation.kerasName)"] }
    public var lengthSafe: Bool { true }

    public func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        guard inputs.count == 1, inputs[0].dtype == .float32, inputs[0].rank >= 1 else {
            throw incompatible("\(name) needs one float input")
        }
        return [inputs[0]]
    }

    public func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        var v = inputs[0].values
        let row = inputs[0].shape.last ?? 1
        v.withUnsafeMutableBufferPointer { activation.apply($0, rowLength: row) }
        return [Output(Tensor(shape: inputs[0].shape, values: v), mask: masks[0])]
    }
}

/// Layers that do nothing at inference (Dropout, noise, regularization): the input, mask and all.
public struct IdentityOp: Op {
    public let name: String
    /// A no-op standing for Keras class `className`.
    public init(className: String) { name = className }
    public var className: String { name }
    public var details: [String] { ["no-op at inference"] }
    public var lengthSafe: Bool { true }
    public func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        guard inputs.count == 1 else { throw incompatible("\(name) takes one input") }
        return inputs
    }
    public func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        [Output(inputs[0], mask: masks[0])]
    }
}

/// Keras TimeDistributed: the inner op on every step, `[batch, time, ...] -> [batch, time, ...]`.
public struct TimeDistributedOp: Op {
    public let inner: any Op
    /// Wraps a non-recurrent op.
    public init(_ inner: any Op) throws {
        guard inner.recurrentHalves.isEmpty else { throw incompatible("TimeDistributed of a recurrent layer is not supported") }
        self.inner = inner
    }
    public var className: String { "TimeDistributed(\(inner.className))" }
    public var parameterCount: Int { inner.parameterCount }
    public var details: [String] { inner.details }
    public var lengthSafe: Bool { true }

    public func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        guard inputs.count == 1, inputs[0].rank >= 2 else {
            throw incompatible("TimeDistributed needs input with a time axis, got \(inputs.first.map { shapeText([nil] + $0.shape) } ?? "none")")
        }
        let x = inputs[0]
        let innerOut = try inner.infer([TensorInfo(shape: Array(x.shape.dropFirst()), dtype: x.dtype)])
        return innerOut.map { TensorInfo(shape: [x.shape[0]] + $0.shape, dtype: $0.dtype, masked: x.masked, time: x.time) }
    }

    public func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        let x = inputs[0], batch = x.shape[0], time = x.shape[1]
        let folded = Tensor(shape: [batch * time] + Array(x.shape.dropFirst(2)), values: x.values)
        return try inner.run([folded], masks: [nil], context: context).map { out in
            Output(Tensor(shape: [batch, time] + Array(out.value.shape.dropFirst()), values: out.value.values), mask: masks[0])
        }
    }
}
