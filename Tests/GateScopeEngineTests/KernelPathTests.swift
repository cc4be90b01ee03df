import Testing
import CKernels
import Foundation
@testable import GateScopeEngine

/// The vector paths this CPU can run (the portable one always).
private let paths: [KernelPath] = {
    var p: [KernelPath] = [.portable]
    if gs_lstm_path() >= 1 { p.append(.avx2) }
    if gs_lstm_path() >= 2 { p.append(.avx512) }
    return p
}()

/// Keras's LSTM in float64, step by step: outputs [batch, time, u] in processing order and every
/// active step's gates (i, f, g, o, c, h) keyed like `Capture`.
private func reference(_ s: LSTMSpec, x: [Float], batch: Int, time: Int, mask: [Bool]?, h0: [Float]?, c0: [Float]?,
                       zeroBeforeFirst: Bool) -> (out: [Double], gates: [Capture.Key: [[Double]]]) {
    let u = s.units, d = s.inputDim
    var h = (h0 ?? [Float](repeating: 0, count: batch * u)).map(Double.init)
    var c = (c0 ?? [Float](repeating: 0, count: batch * u)).map(Double.init)
    var out = [Double](repeating: 0, count: batch * time * u)
    var gates: [Capture.Key: [[Double]]] = [:]
    var seen = [Bool](repeating: !zeroBeforeFirst, count: batch)
    func sig(_ v: Double) -> Double { 1 / (1 + exp(-v)) }
    for k in 0..<time {
        let t = s.goBackwards ? time - 1 - k : k
        for b in 0..<batch {
            let on = mask?[b * time + t] ?? true
            if on {
                seen[b] = true
                var z = [Double](repeating: 0, count: 4 * u)
                for j in 0..<(4 * u) {
                    var acc = Double(s.bias?[j] ?? 0)
                    for q in 0..<d { acc += Double(x[(b * time + t) * d + q]) * Double(s.kernel.values[q * 4 * u + j]) }
                    for q in 0..<u { acc += h[b * u + q] * Double(s.recurrentKernel.values[q * 4 * u + j]) }
                    z[j] = acc
                }
                var g6 = [[Double]](repeating: [Double](repeating: 0, count: u), count: 6)
                for j in 0..<u {
                    let i = sig(z[j]), f = sig(z[u + j]), g = tanh(z[2 * u + j]), o = sig(z[3 * u + j])
                    c[b * u + j] = f * c[b * u + j] + i * g
                    h[b * u + j] = o * tanh(c[b * u + j])
                    (g6[0][j], g6[1][j], g6[2][j], g6[3][j], g6[4][j], g6[5][j]) = (i, f, g, o, c[b * u + j], h[b * u + j])
                }
                gates[Capture.Key(layer: 0, step: t, seq: b)] = g6
            }
            let zero = !on && (s.zeroOutputForMask || !seen[b])
            for j in 0..<u { out[(b * time + k) * u + j] = zero ? 0 : h[b * u + j] }
        }
    }
    return (out, gates)
}

/// Every kernel path, on one and on two threads, against the float64 reference: masked steps,
/// go_backwards, initial states, Keras 2's zeros before a row's first step, a last unit block that
/// is not full (37 and 200 units), batches that do not fill the row tiles, and a batch split into row
/// chunks because the layer has few unit blocks (37 units, batch 40: 2 chunks x 3 blocks). The vector paths
/// must also equal each other bit for bit, whatever the thread count: resumed and sharded runs
/// depend on it.
@Test(arguments: [(37, 1), (37, 13), (37, 40), (128, 1), (200, 9), (256, 64), (300, 3)])
func kernelPathsMatchFloat64(_ shape: (units: Int, batch: Int)) throws {
    let (u, batch) = shape
    let time = 5, d = 7
    let spec = try lstmSpec("l", units: u, inputDim: d, seed: UInt64(u * 100 + batch), goBackwards: u == 200,
                            zeroOutputForMask: u == 37)
    // Small weights keep the gates off their rails, where float32 error is largest and clearest.
    var scaled = spec
    scaled.kernel = Matrix(rows: d, cols: 4 * u, values: spec.kernel.values.map { $0 * 8 / Float(d + u) })
    scaled.recurrentKernel = Matrix(rows: u, cols: 4 * u, values: spec.recurrentKernel.values.map { $0 * 8 / Float(d + u) })
    var r = Lcg(state: 5)
    let x = r.array(batch * time * d)
    let mask: [Bool]? = batch > 1 ? (0..<(batch * time)).map { ($0 / time) % 3 != 1 || $0 % time >= 2 } : nil
    let h0 = r.array(batch * u, 0.5), c0 = r.array(batch * u, 0.5)
    let initial: [[Float]]? = u == 128 ? nil : [h0, c0]
    let zeroBeforeFirst = u == 200
    let want = reference(scaled, x: x, batch: batch, time: time, mask: mask, h0: initial?[0], c0: initial?[1], zeroBeforeFirst: zeroBeforeFirst)

    var vectorRuns: [(String, [Float], Capture)] = []
    for path in paths {
        // Three threads on two cores: a team member often starts late, and others take its blocks.
        for threads in path == .portable ? [1, 2] : [1, 2, 3] {
            let weights = LSTMWeights(scaled, path: path)
            let capture = Capture()
            let forward = LSTMForward(spec: scaled, weights: weights, batch: batch, time: time, threads: threads)
            // The team size is forced here; `run` would choose one thread for most of these shapes.
            let result = try weights.interleaved.map {
                try forward.runInterleaved($0, x: x, mask: mask, initial: initial, zeroBeforeFirst: zeroBeforeFirst,
                                           layerIndex: 0, observer: capture, threads: threads)
            } ?? forward.run(x, mask: mask, initial: initial, zeroBeforeFirst: zeroBeforeFirst, layerIndex: 0, observer: capture)
            var worst = 0.0
            for (k, v) in result.sequence.enumerated() { worst = max(worst, abs(Double(v) - want.out[k])) }
            #expect(Set(capture.gates.keys) == Set(want.gates.keys))
            for (key, g) in want.gates {
                guard let got = capture.gates[key] else { continue }
                for q in 0..<6 { for j in 0..<u { worst = max(worst, abs(Double(got[q][j]) - g[q][j])) } }
            }
            print("kernel path \(path) threads=\(threads) units=\(u) batch=\(batch): largest difference from float64 \(worst)")
            #expect(worst < 2e-6, "\(path) threads=\(threads)")
            if path != .portable { vectorRuns.append(("\(path)/\(threads)", result.sequence + result.finalH + result.finalC, capture)) }
        }
    }
    for (name, values, capture) in vectorRuns.dropFirst() {
        #expect(values == vectorRuns[0].1, "\(name) differs from \(vectorRuns[0].0)")
        #expect(capture.order == vectorRuns[0].2.order)
        for (key, g) in capture.gates { #expect(g == vectorRuns[0].2.gates[key]!, "\(name) at \(key)") }
    }
}

/// An observer that throws stops every thread of a layer and the error reaches the caller; 40
/// tries on 2 and 3 threads, since a thread that saw the stop a step early once left the others
/// waiting for it forever.
@Test func observerErrorStopsTheTeam() throws {
    struct Stop: Error {}
    final class Thrower: GateObserver {
        var calls = 0
        let at: Int
        init(at: Int) { self.at = at }
        func observe(_ s: GateStep) throws {
            calls += 1
            if calls == at { throw Stop() }
        }
    }
    let spec = try lstmSpec("l", units: 256, inputDim: 4, seed: 3)
    let weights = LSTMWeights(spec)
    guard let iw = weights.interleaved else { return }  // no vector kernels on this CPU: no team
    var r = Lcg(state: 1)
    let x = r.array(16 * 20 * 4)
    for trial in 0..<40 {
        let thrower = Thrower(at: 1 + trial % 7)
        let forward = LSTMForward(spec: spec, weights: weights, batch: 16, time: 20, threads: 2 + trial % 2)
        #expect(throws: Stop.self) {
            _ = try forward.runInterleaved(iw, x: x, mask: nil, initial: nil, zeroBeforeFirst: false,
                                           layerIndex: 0, observer: thrower, threads: 2 + trial % 2)
        }
        #expect(thrower.calls == thrower.at)
    }
}
