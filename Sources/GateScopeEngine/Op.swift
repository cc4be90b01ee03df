/// One operation of the graph: a layer's three jobs as in Keras (output shapes, output masks, run).
///
/// `infer` runs once when the graph is built; `run` once per call per batch. Ops hold their
/// weights and are shared by every call of the same layer.
public protocol Op: Sendable {
    /// The framework class, e.g. "Conv1D", "TimeDistributed(Dense)".
    var className: String { get }
    /// The outputs' shapes, dtypes, masks and time axes, from the inputs'; throws `EngineError.incompatible`
    /// (the layer name is filled in by the graph builder) when the inputs do not fit.
    func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo]
    /// Computes the outputs `[batch, ...]` and their `[batch, time]` masks (nil: no mask).
    func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output]
    /// Trainable values, as Keras's `count_params`.
    var parameterCount: Int { get }
    /// Settings worth showing in `inspect`, e.g. "units=8", "padding=causal".
    var details: [String] { get }
    /// The recurrent halves this op reports gate values for (empty for non-recurrent ops).
    var recurrentHalves: [RecurrentHalf] { get }
    /// True when every output step depends only on the same input step or earlier ones through a
    /// mask-aware recurrence, so padding a shorter sequence to a batch's length changes nothing
    /// that is recorded or returned for its own steps.
    var lengthSafe: Bool { get }
}

extension Op {
    public var parameterCount: Int { 0 }
    public var details: [String] { [] }
    public var recurrentHalves: [RecurrentHalf] { [] }
    public var lengthSafe: Bool { false }
}

/// One output of a call: the value and its mask.
public struct Output: Sendable {
    public var value: Tensor
    public var mask: [Bool]?

    /// Wraps a value and its mask.
    public init(_ value: Tensor, mask: [Bool]? = nil) {
        self.value = value
        self.mask = mask
    }
}

/// What a running op may use besides its inputs.
public struct OpContext {
    /// The call's name, for error messages.
    public var node: String
    /// Engine threads for large batches (see `LSTMForward.threadCount`).
    public var threads: Int
    /// Every thread the caller allows (kernels that split a layer by units choose from these).
    public var threadBudget: Int = 1
    /// Receives recurrent steps; nil when nobody listens.
    public var observer: GateObserver?
    /// Index of this call's first recurrent half in `Model.recurrentLayers`.
    public var recurrentBase: Int
}

/// A recurrent half of a call, as it is recorded.
public struct RecurrentHalf: Equatable, Sendable {
    public var cell: CellKind
    public var direction: Direction
    public var units: Int
    public var inputDim: Int
    public var activation: Activation
    public var recurrentActivation: Activation
}

/// The error an op throws from `infer`; the builder names the layer.
func incompatible(_ reason: String) -> EngineError { .incompatible(layer: "", reason: reason) }

/// "(None, 12, 3)" in Keras's notation, for messages.
public func shapeText(_ shape: [Int?]) -> String {
    "(" + shape.map { $0.map(String.init) ?? "None" }.joined(separator: ", ") + (shape.count == 1 ? ",)" : ")")
}

extension TensorInfo {
    /// A float tensor of the same batch with another shape, keeping (or dropping) the time axis.
    func with(shape: [Int?], masked: Bool? = nil, time: TimeAxis?? = nil) -> TensorInfo {
        TensorInfo(shape: shape, dtype: .float32, masked: masked ?? self.masked, time: time ?? self.time)
    }
}
