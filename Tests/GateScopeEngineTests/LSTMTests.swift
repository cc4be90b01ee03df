import Testing
import CKernels
import Foundation
@testable import GateScopeEngine

private func featureModel(_ layers: [Layer], featureDim: Int) throws -> Model {
    try Model(name: "m", format: "test", kerasVersion: "3.0.0",
              layers: [Layer(name: "in", className: "InputLayer", kind: .input(featureDim: featureDim))] + layers)
}

/// Two steps of a 1-unit LSTM, checked against a float64 hand computation.
@Test func singleUnitMatchesHandComputation() throws {
    let spec = try LSTMSpec(
        name: "l", units: 1, inputDim: 2, activation: .tanh, recurrentActivation: .sigmoid,
        goBackwards: false, returnSequences: true, zeroOutputForMask: false,
        kernel: Matrix(rows: 2, cols: 4, values: [0.5, -0.3, 0.8, 0.1, 0.2, 0.4, -0.6, 0.7]),
        recurrentKernel: Matrix(rows: 1, cols: 4, values: [0.3, -0.2, 0.5, 0.9]),
        bias: [0.1, 1.0, -0.1, 0.0])
    let model = try featureModel([Layer(name: "l", className: "LSTM", kind: .lstm(spec))], featureDim: 2)
    let cap = Capture()
    let out = try model.forward(SequenceBatch(features: [1, 2, -0.5, 0.25], batchSize: 1, time: 2, featureDim: 2), observer: cap)
    let want: [[Float]] = [
        [0.7310585786, 0.8175744762, -0.4621171573, 0.8175744762, -0.3378347121, -0.2661556043],
        [0.4551591288, 0.7863782732, -0.6544697369, 0.4713962543, -0.5635537528, -0.2406993628],
    ]
    for t in 0..<2 {
        let got = cap.gates[.init(layer: 0, step: t, seq: 0)]!.map { $0[0] }
        #expect(maxDiff(got, want[t]) < 1e-6, "step \(t): \(got)")
    }
    #expect(out.shape == [1, 2, 1])
    #expect(maxDiff(out.values, [-0.2661556043, -0.2406993628]) < 1e-6)
}

/// A masked step is skipped: same gates as the sequence with that step removed, and not reported.
@Test func maskedStepCarriesState() throws {
    let spec = try lstmSpec("l", units: 3, inputDim: 2, seed: 1)
    let model = try featureModel([
        Layer(name: "mask", className: "Masking", kind: .masking(maskValue: 0)),
        Layer(name: "l", className: "LSTM", kind: .lstm(spec)),
    ], featureDim: 2)
    let withGap: [Float] = [0.5, -1, 0, 0, 0.3, 0.9]
    let noGap: [Float] = [0.5, -1, 0.3, 0.9]
    let a = Capture(), b = Capture()
    let outA = try model.forward(SequenceBatch(features: withGap, batchSize: 1, time: 3, featureDim: 2), observer: a)
    _ = try model.forward(SequenceBatch(features: noGap, batchSize: 1, time: 2, featureDim: 2), observer: b)
    #expect(a.gates[.init(layer: 0, step: 1, seq: 0)] == nil)
    #expect(a.gates.count == 2)
    let last = a.gates[.init(layer: 0, step: 2, seq: 0)]!, lastB = b.gates[.init(layer: 0, step: 1, seq: 0)]!
    for q in 0..<6 { #expect(maxDiff(last[q], lastB[q]) < 1e-6) }
    // Output at the masked step repeats the previous output (zero_output_for_mask = false).
    #expect(Array(outA.values[3..<6]) == Array(outA.values[0..<3]))
}

/// go_backwards reports input positions right to left and equals a forward pass over the reversed input.
@Test func goBackwardsReportsInputPositions() throws {
    let back = try lstmSpec("b", units: 4, inputDim: 3, seed: 7, goBackwards: true)
    var fwd = back
    fwd.goBackwards = false
    var r = Lcg(state: 3)
    let x = r.array(5 * 3)
    var reversed: [Float] = []
    for t in (0..<5).reversed() { reversed += x[(t * 3)..<(t * 3 + 3)] }
    let cb = Capture(), cf = Capture()
    let outB = try featureModel([Layer(name: "b", className: "LSTM", kind: .lstm(back))], featureDim: 3)
        .forward(SequenceBatch(features: x, batchSize: 1, time: 5, featureDim: 3), observer: cb)
    let outF = try featureModel([Layer(name: "b", className: "LSTM", kind: .lstm(fwd))], featureDim: 3)
        .forward(SequenceBatch(features: reversed, batchSize: 1, time: 5, featureDim: 3), observer: cf)
    #expect(cb.order.map(\.step) == [4, 3, 2, 1, 0])
    for t in 0..<5 {
        let gb = cb.gates[.init(layer: 0, step: t, seq: 0)]!, gf = cf.gates[.init(layer: 0, step: 4 - t, seq: 0)]!
        for q in 0..<6 { #expect(maxDiff(gb[q], gf[q]) < 1e-6) }
    }
    // Keras returns a go_backwards sequence in processing order.
    #expect(maxDiff(outB.values, outF.values) < 1e-6)
}

/// Batching and per-sequence lengths change nothing: each sequence matches a run on its own.
@Test func batchWithLengthsEqualsSeparateRuns() throws {
    let spec = try lstmSpec("l", units: 5, inputDim: 2, seed: 11, goBackwards: true)
    let model = try featureModel([Layer(name: "l", className: "LSTM", kind: .lstm(spec))], featureDim: 2)
    var r = Lcg(state: 5)
    let lengths = [4, 2, 3]
    let seqs = lengths.map { r.array($0 * 2) }
    var padded: [Float] = []
    for s in seqs { padded += s + [Float](repeating: 9, count: (4 * 2) - s.count) }  // padding must never be read
    let batched = Capture()
    _ = try model.forward(SequenceBatch(features: padded, batchSize: 3, time: 4, featureDim: 2, lengths: lengths), observer: batched)
    #expect(batched.gates.count == lengths.reduce(0, +))
    for (b, s) in seqs.enumerated() {
        let alone = Capture()
        _ = try model.forward(SequenceBatch(features: s, batchSize: 1, time: lengths[b], featureDim: 2), observer: alone)
        for t in 0..<lengths[b] {
            let g1 = batched.gates[.init(layer: 0, step: t, seq: b)]!, g2 = alone.gates[.init(layer: 0, step: t, seq: 0)]!
            for q in 0..<6 { #expect(maxDiff(g1[q], g2[q]) < 1e-6, "seq \(b) step \(t) gate \(q)") }
        }
    }
}

/// Bidirectional merges the forward output with the time-flipped backward output.
@Test(arguments: [MergeMode.concat, .sum, .ave, .mul])
func bidirectionalMerge(_ merge: MergeMode) throws {
    let f = try lstmSpec("bi", units: 3, inputDim: 2, seed: 21, zeroOutputForMask: true)
    let b = try lstmSpec("bi", units: 3, inputDim: 2, seed: 22, goBackwards: true, zeroOutputForMask: true)
    var r = Lcg(state: 9)
    let x = r.array(4 * 2)
    let batch = SequenceBatch(features: x, batchSize: 1, time: 4, featureDim: 2)
    let bi = try featureModel([Layer(name: "bi", className: "Bidirectional", kind: .bidirectional(forward: f, backward: b, merge: merge))], featureDim: 2)
    let cap = Capture()
    let out = try bi.forward(batch, observer: cap)
    let yf = try featureModel([Layer(name: "f", className: "LSTM", kind: .lstm(f))], featureDim: 2).forward(batch).values
    let yb = try featureModel([Layer(name: "b", className: "LSTM", kind: .lstm(b))], featureDim: 2).forward(batch).values
    let u = 3
    var want: [Float] = []
    for t in 0..<4 {
        let a = Array(yf[(t * u)..<(t * u + u)]), c = Array(yb[((3 - t) * u)..<((3 - t) * u + u)])
        switch merge {
        case .concat: want += a + c
        case .sum: want += zip(a, c).map { $0 + $1 }
        case .ave: want += zip(a, c).map { ($0 + $1) / 2 }
        case .mul: want += zip(a, c).map { $0 * $1 }
        case .none: Issue.record("merge_mode None gives two outputs, not tested here")
        }
    }
    #expect(maxDiff(out.values, want) < 1e-6)
    #expect(bi.recurrentLayers.map(\.direction) == [.fwd, .bwd])
    #expect(Set(cap.gates.keys.map(\.layer)) == [0, 1])
}

/// Embedding with mask_zero masks id 0; Dense applies to the last axis; softmax rows sum to 1.
@Test func embeddingDenseSoftmax() throws {
    var r = Lcg(state: 4)
    let emb = Matrix(rows: 6, cols: 3, values: r.array(18))
    let spec = try lstmSpec("l", units: 4, inputDim: 3, seed: 2)
    let dense = Matrix(rows: 4, cols: 6, values: r.array(24))
    let model = try Model(name: "m", format: "test", kerasVersion: "3.0.0", layers: [
        Layer(name: "in", className: "InputLayer", kind: .input(featureDim: nil)),
        Layer(name: "e", className: "Embedding", kind: .embedding(embeddings: emb, maskZero: true)),
        Layer(name: "l", className: "LSTM", kind: .lstm(spec)),
        Layer(name: "d", className: "Dense", kind: .dense(kernel: dense, bias: r.array(6), activation: .softmax)),
    ])
    let cap = Capture()
    let out = try model.forward(SequenceBatch(tokens: [3, 1, 0, 5, 0, 2], batchSize: 2, time: 3), observer: cap)
    #expect(out.shape == [2, 3, 6])
    #expect(Set(cap.gates.keys) == [.init(layer: 0, step: 0, seq: 0), .init(layer: 0, step: 1, seq: 0),
                                    .init(layer: 0, step: 0, seq: 1), .init(layer: 0, step: 2, seq: 1)])
    for row in 0..<6 {
        let s = out.values[(row * 6)..<(row * 6 + 6)].reduce(0, +)
        #expect(abs(s - 1) < 1e-5)
    }
    #expect(throws: EngineError.self) {
        try model.forward(SequenceBatch(tokens: [6, 1, 0], batchSize: 1, time: 3))
    }
}

/// A call limits the count while it runs and gives the process's back when the last overlapping
/// call ends, also when it throws (on a stand-in for OpenBLAS's count: other tests run models at
/// the same time, so the real one cannot be checked exactly here).
@Test func matrixThreadsAreScopedToCalls() throws {
    struct Stop: Error {}
    var count = 4, sets = 0
    let scope = MatrixThreads.Scope(get: { count }, set: { count = $0; sets += 1 })
    scope.withLimit(1) { #expect(count == 1) }
    #expect(count == 4 && sets == 2)
    #expect(throws: Stop.self) { try scope.withLimit(2) { throw Stop() } }
    #expect(count == 4)
    scope.withLimit(1) {
        scope.withLimit(3) { #expect(count == 3) }
        #expect(count == 3)  // the latest limit holds until the outer call ends
    }
    #expect(count == 4)
    sets = 0
    scope.withLimit(4) {}
    #expect(sets == 0)  // no change, no reconfiguration
}

@Test func wrongShapesAreRefused() throws {
    #expect(throws: EngineError.weightShape(layer: "l", weight: "kernel", expected: [3, 8], got: [3, 4])) {
        try LSTMSpec(name: "l", units: 2, inputDim: 3, activation: .tanh, recurrentActivation: .sigmoid,
                     goBackwards: false, returnSequences: true, zeroOutputForMask: false,
                     kernel: Matrix(rows: 3, cols: 4, values: .init(repeating: 0, count: 12)),
                     recurrentKernel: Matrix(rows: 2, cols: 8, values: .init(repeating: 0, count: 16)), bias: nil)
    }
    let last = try lstmSpec("a", units: 2, inputDim: 3, seed: 1, returnSequences: false)
    let next = try lstmSpec("b", units: 2, inputDim: 2, seed: 1)
    #expect(throws: EngineError.self) {
        try featureModel([Layer(name: "a", className: "LSTM", kind: .lstm(last)),
                          Layer(name: "b", className: "LSTM", kind: .lstm(next))], featureDim: 3)
    }
    let m = try featureModel([Layer(name: "a", className: "LSTM", kind: .lstm(last))], featureDim: 3)
    #expect(throws: EngineError.self) { try m.forward(SequenceBatch(features: [1, 2], batchSize: 1, time: 1, featureDim: 2)) }
}

/// Splitting a batch across threads changes nothing: every reported gate and the output agree
/// with the single-threaded run (Bidirectional and masking included).
@Test func threadedBatchEqualsSerial() throws {
    let f = try lstmSpec("bi", units: 9, inputDim: 3, seed: 31, zeroOutputForMask: true)
    let b = try lstmSpec("bi", units: 9, inputDim: 3, seed: 32, goBackwards: true, zeroOutputForMask: true)
    let model = try featureModel([
        Layer(name: "mask", className: "Masking", kind: .masking(maskValue: 0)),
        Layer(name: "bi", className: "Bidirectional", kind: .bidirectional(forward: f, backward: b, merge: .concat)),
    ], featureDim: 3)
    var r = Lcg(state: 77)
    let batch = 37, time = 6
    var x = r.array(batch * time * 3)
    for s in stride(from: 0, to: batch, by: 5) { for j in 0..<3 { x[(s * time + 2) * 3 + j] = 0 } }  // masked steps
    let input = SequenceBatch(features: x, batchSize: batch, time: time, featureDim: 3, lengths: (0..<batch).map { 3 + $0 % 4 })
    let serial = Capture(), threaded = Capture()
    let y1 = try model.forward(input, observer: serial, threads: 1)
    let y2 = try model.forward(input, observer: threaded, threads: 4)
    #expect(maxDiff(y1.values, y2.values) < 1e-6)
    #expect(Set(serial.gates.keys) == Set(threaded.gates.keys))
    #expect(serial.order == threaded.order)
    for (key, g) in serial.gates { for q in 0..<6 { #expect(maxDiff(g[q], threaded.gates[key]![q]) < 1e-6) } }
}

/// The packed matrix product (AVX-512 kernel where the CPU has it, else OpenBLAS) equals a plain
/// triple loop for shapes that do not fill its 8 x 32 blocks, with and without accumulation.
@Test(arguments: [(1, 5, 7), (3, 33, 40), (8, 64, 32), (13, 256, 1024), (130, 17, 100)])
func packedProductMatchesNaive(_ shape: (Int, Int, Int)) throws {
    let (m, k, n) = shape
    var r = Lcg(state: UInt64(m * 1000 + k * 10 + n))
    let a = r.array(m * k), w = r.array(k * n), c0 = r.array(m * n)
    let packed = PackedMatrix(Matrix(rows: k, cols: n, values: w))
    for accumulate in [false, true] {
        var c = c0
        a.withUnsafeBufferPointer { ap in
            c.withUnsafeMutableBufferPointer { packed.multiply(ap.baseAddress!, rows: m, into: $0.baseAddress!, accumulate: accumulate) }
        }
        var want = accumulate ? c0 : [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var s: Double = 0
            for q in 0..<k { s += Double(a[i * k + q]) * Double(w[q * n + j]) }
            want[i * n + j] += Float(s)
        } }
        #expect(maxDiff(c, want) < 1e-4, "\(shape) accumulate=\(accumulate) kernels=\(Kernels.enabled)")
    }
}

/// The vector cell updates (AVX-512 and AVX2, used for sigmoid/tanh LSTMs on CPUs that have
/// them) agree with a float64 evaluation of Keras's cell for every lane, including a partial
/// last vector (u = 37).
@Test(.enabled(if: gs_lstm_path() != 0, "this CPU has no vector kernels: they are never used"))
func vectorCellMatchesFloat64() throws {
    let u = 37
    var r = Lcg(state: 99)
    let z = r.array(4 * u, 6), c0 = r.array(u, 2)
    // The kernels read z interleaved in 16-unit blocks: the column order the bias is packed in.
    var zi = [Float](repeating: 0, count: Int(gs_lstm_blocks(Int32(u))) * 64)
    gs_lstm_pack_bias(z, Int32(u), &zi)
    func sig(_ x: Float) -> Double { 1 / (1 + Foundation.exp(-Double(x))) }
    for path in 1...gs_lstm_path() {
        var c = [Float](repeating: 0, count: u), h = c
        var gi = h, gf = h, gg = h, go = h
        gs_lstm_cell(path, zi, zi.count, 1, nil, 0, 0, gs_lstm_blocks(Int32(u)), Int32(u), c0, &c, &h, &gi, &gf, &gg, &go, nil, 0)
        var worst = 0.0
        for j in 0..<u {
            let i = sig(z[j]), f = sig(z[u + j]), g = Foundation.tanh(Double(z[2 * u + j])), o = sig(z[3 * u + j])
            let cn = f * Double(c0[j]) + i * g, hn = o * Foundation.tanh(cn)
            for (got, want) in [(gi[j], i), (gf[j], f), (gg[j], g), (go[j], o), (c[j], cn), (h[j], hn)] {
                worst = max(worst, abs(Double(got) - want) / (1e-7 + 1e-6 * abs(want)))
            }
        }
        print("\(path == 2 ? "AVX-512" : "AVX2") cell: worst error / (1e-7 + 1e-6|b|) = \(worst)")
        #expect(worst <= 1)

        // Three rows in one call, the middle one masked: rows 0 and 2 equal the single-row result
        // (row 2 reads the same z and c), row 1 is left as it was, and `out` gets each computed h.
        let zs = zi.count + 16
        var z3 = [Float](repeating: .nan, count: 3 * zs)
        for q in 0..<3 { for j in 0..<zi.count { z3[q * zs + j] = zi[j] } }
        let c3 = c0 + c0 + c0, sentinel = [Float](repeating: -7, count: 3 * u)
        var cn = sentinel, hn = sentinel, gi3 = sentinel, gf3 = sentinel, gg3 = sentinel, go3 = sentinel
        var out = [Float](repeating: -7, count: 3 * (u + 5))
        let mask: [Bool] = [true, true, false, false, true, true]  // read at stride 2
        gs_lstm_cell(path, z3, zs, 3, mask, 2, 0, gs_lstm_blocks(Int32(u)), Int32(u), c3, &cn, &hn,
                     &gi3, &gf3, &gg3, &go3, &out, u + 5)
        for (row, on) in [(0, true), (1, false), (2, true)] {
            let range = row * u..<(row + 1) * u
            #expect(Array(cn[range]) == (on ? c : Array(sentinel[range])), "row \(row) c")
            #expect(Array(hn[range]) == (on ? h : Array(sentinel[range])), "row \(row) h")
            #expect(Array(gf3[range]) == (on ? gf : Array(sentinel[range])), "row \(row) f")
            #expect(Array(go3[range]) == (on ? go : Array(sentinel[range])), "row \(row) o")
            #expect(Array(out[row * (u + 5)..<row * (u + 5) + u]) == (on ? h : [Float](repeating: -7, count: u)), "row \(row) out")
        }
        #expect(out[u..<u + 5].allSatisfy { $0 == -7 }, "nothing written between output rows")
    }
}
