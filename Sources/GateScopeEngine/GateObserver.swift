/// One processed timestep of one LSTM half, for a whole batch.
///
/// Buffers are only valid during the observer call; copy what you keep.
public struct GateStep {
    /// Index into `Model.recurrentLayers`.
    public let layer: Int
    /// Position in the input sequence (also when the layer runs right to left).
    public let step: Int
    public let batchSize: Int
    public let units: Int
    /// [batch] false where the step is masked for that sequence (not computed, state carried).
    public let active: UnsafeBufferPointer<Bool>
    /// Gate activations after the step, each [batch, units]; rows of inactive sequences are stale.
    public let i, f, g, o, c, h: UnsafeBufferPointer<Float>
}

/// Receives every computed LSTM step; the engine's only way of reporting gate values.
public protocol GateObserver: AnyObject {
    /// Which recurrent layers (indices into `Model.recurrentLayers`) to report; nil for all.
    var observedLayers: Set<Int>? { get }
    /// Called once per timestep per observed LSTM half, in processing order.
    func observe(_ step: GateStep) throws
}

extension GateObserver {
    /// All layers by default.
    public var observedLayers: Set<Int>? { nil }
}
