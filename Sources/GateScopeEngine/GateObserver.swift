/// One processed timestep of one recurrent half, for a whole batch.
///
/// Buffers are only valid during the observer call; copy what you keep.
public struct GateStep {
    /// Index into `Model.recurrentLayers`.
    public let layer: Int
    public let cell: CellKind
    /// Position on the call's own time axis (also when the layer runs right to left).
    public let step: Int
    public let batchSize: Int
    public let units: Int
    /// [batch] false where the step is masked for that sequence (not computed, state carried).
    public let active: UnsafeBufferPointer<Bool>
    /// One buffer per plane of `cell.planes`, each [batch, units]; rows of inactive sequences are stale.
    public let planes: [UnsafeBufferPointer<Float>]

    /// LSTM planes by name (only for `cell == .lstm`).
    public var i: UnsafeBufferPointer<Float> { planes[0] }
    public var f: UnsafeBufferPointer<Float> { planes[1] }
    public var g: UnsafeBufferPointer<Float> { planes[2] }
    public var o: UnsafeBufferPointer<Float> { planes[3] }
    public var c: UnsafeBufferPointer<Float> { planes[4] }
    /// The hidden state after the step (the last plane of every cell).
    public var h: UnsafeBufferPointer<Float> { planes[planes.count - 1] }
}

/// Receives every computed recurrent step; the engine's only way of reporting gate values.
public protocol GateObserver: AnyObject {
    /// Which recurrent layers (indices into `Model.recurrentLayers`) to report; nil for all.
    var observedLayers: Set<Int>? { get }
    /// Called once per timestep per observed recurrent half, in processing order.
    func observe(_ step: GateStep) throws
}

extension GateObserver {
    /// All layers by default.
    public var observedLayers: Set<Int>? { nil }
}
