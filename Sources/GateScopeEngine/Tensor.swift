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
