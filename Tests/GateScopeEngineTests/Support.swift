@testable import GateScopeEngine

/// Collects every reported step as plain arrays, keyed by (layer, step, sequence).
final class Capture: GateObserver {
    struct Key: Hashable { let layer: Int; let step: Int; let seq: Int }
    var gates: [Key: [[Float]]] = [:]  // i, f, g, o, c, h
    var order: [Key] = []

    func observe(_ s: GateStep) throws {
        for b in 0..<s.batchSize where s.active[b] {
            let row = { (buf: UnsafeBufferPointer<Float>) in Array(buf[(b * s.units)..<((b + 1) * s.units)]) }
            let key = Key(layer: s.layer, step: s.step, seq: b)
            gates[key] = [row(s.i), row(s.f), row(s.g), row(s.o), row(s.c), row(s.h)]
            order.append(key)
        }
    }
}

/// Deterministic pseudo-random floats in [-scale, scale] (no Foundation RNG, so runs repeat).
struct Lcg {
    var state: UInt64
    mutating func next(_ scale: Float = 1) -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
    }
    mutating func array(_ n: Int, _ scale: Float = 1) -> [Float] { (0..<n).map { _ in next(scale) } }
}

func lstmSpec(_ name: String, units: Int, inputDim: Int, seed: UInt64, goBackwards: Bool = false,
              returnSequences: Bool = true, zeroOutputForMask: Bool = false,
              activation: Activation = .tanh, recurrent: Activation = .sigmoid, bias: Bool = true) throws -> LSTMSpec {
    var r = Lcg(state: seed)
    return try LSTMSpec(
        name: name, units: units, inputDim: inputDim, activation: activation, recurrentActivation: recurrent,
        goBackwards: goBackwards, returnSequences: returnSequences, zeroOutputForMask: zeroOutputForMask,
        kernel: Matrix(rows: inputDim, cols: 4 * units, values: r.array(inputDim * 4 * units, 0.8)),
        recurrentKernel: Matrix(rows: units, cols: 4 * units, values: r.array(units * 4 * units, 0.8)),
        bias: bias ? r.array(4 * units, 0.5) : nil)
}

func maxDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "\(a.count) vs \(b.count)")
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}
