/// A dense row-major array with its shape, e.g. `[batch, time, features]`. Token ids (int32) are
/// held as exact Float values.
public struct Tensor: Equatable, Sendable {
    public var shape: [Int]
    public var values: [Float]
    public var dtype: DType

    /// Wraps `values`; the count must match the shape.
    public init(shape: [Int], values: [Float], dtype: DType = .float32) {
        precondition(values.count == shape.reduce(1, *), "tensor \(shape) needs \(shape.reduce(1, *)) values, got \(values.count)")
        self.shape = shape
        self.values = values
        self.dtype = dtype
    }
}

extension Tensor {
    /// The same values with axis `from` moved to position `to`, the other axes in order
    /// (between the engine's batch-first layout and a framework's own).
    public func movingAxis(_ from: Int, to: Int) -> Tensor {
        guard from != to, shape.count > 1 else { return self }
        var order = Array(0..<shape.count)
        order.remove(at: from)
        order.insert(from, at: to)
        return transposed(order)
    }

    /// The axes permuted: output axis k is input axis `perm[k]`.
    public func transposed(_ perm: [Int]) -> Tensor {
        if perm == Array(0..<shape.count) { return self }
        let outShape = perm.map { shape[$0] }
        var strides = [Int](repeating: 1, count: shape.count)
        for k in stride(from: shape.count - 2, through: 0, by: -1) { strides[k] = strides[k + 1] * shape[k + 1] }
        let permStrides = perm.map { strides[$0] }
        var out = [Float](repeating: 0, count: values.count)
        var index = [Int](repeating: 0, count: shape.count)
        for o in 0..<values.count {
            var src = 0
            for k in 0..<index.count { src += index[k] * permStrides[k] }
            out[o] = values[src]
            var k = index.count - 1
            while k >= 0 { index[k] += 1; if index[k] < outShape[k] { break }; index[k] = 0; k -= 1 }
        }
        return Tensor(shape: outShape, values: out, dtype: dtype)
    }
}

/// A batch of input sequences, right-padded to a common length.
public struct SequenceBatch: Sendable {
    /// Float features `[batch, time, featureDim]` or token ids `[batch, time]`.
    public enum Values: Sendable {
        case features([Float], featureDim: Int)
        case tokens([Int32])
    }
    public var batchSize: Int
    public var time: Int
    public var values: Values
    /// Each sequence's own length (<= time); steps past it are treated as masked. nil: all `time`.
    public var lengths: [Int]?

    /// Float sequences `[batch, time, featureDim]`.
    public init(features: [Float], batchSize: Int, time: Int, featureDim: Int, lengths: [Int]? = nil) {
        precondition(features.count == batchSize * time * featureDim)
        self.batchSize = batchSize
        self.time = time
        self.values = .features(features, featureDim: featureDim)
        self.lengths = lengths
    }

    /// Token-id sequences `[batch, time]`.
    public init(tokens: [Int32], batchSize: Int, time: Int, lengths: [Int]? = nil) {
        precondition(tokens.count == batchSize * time)
        self.batchSize = batchSize
        self.time = time
        self.values = .tokens(tokens)
        self.lengths = lengths
    }
}
