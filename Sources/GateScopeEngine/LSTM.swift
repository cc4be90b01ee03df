import CKernels
import Dispatch

/// An LSTM's two weight matrices, prepared once per model for the matrix kernel.
struct LSTMWeights: Sendable {
    let kernel: PackedMatrix           // [inputDim, 4*units]
    let recurrentKernel: PackedMatrix  // [units, 4*units]
    /// The same weights for the vector kernels, when they run here (sigmoid and tanh cells).
    let interleaved: InterleavedLSTMWeights?

    /// `path` chooses the kernels (tests compare them on one machine); default: this CPU's best.
    init(_ spec: LSTMSpec, path: KernelPath = .current) {
        interleaved = InterleavedLSTMWeights(spec, path: path)
        // The batch-split path below needs its own copies only when the kernels do not run.
        kernel = PackedMatrix(spec.kernel, pack: interleaved == nil)
        recurrentKernel = PackedMatrix(spec.recurrentKernel, pack: interleaved == nil)
    }

}

/// Keras's LSTM over a batch, step by step, reporting every computed step to an observer.
///
/// Per step t (Keras `LSTMCell.call`, gate order i, f, c, o in the weight columns):
///   z = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias      // [batch, 4*units]
///   i = ra(z_i)  f = ra(z_f)  g = a(z_c)  o = ra(z_o)
///   c_t = f * c_{t-1} + i * g
///   h_t = o * a(c_t)
/// A masked step keeps h and c; its output is the previous output, or zeros with
/// `zeroOutputForMask` (Keras `backend.rnn`).
///
/// Sequences are independent, so the batch is split into `chunks` row ranges that threads step
/// through side by side (each with its own single-threaded matrix product); the observer is
/// called once per step, for the whole batch, from the calling thread.
struct LSTMForward {
    let spec: LSTMSpec
    let weights: LSTMWeights
    let batch: Int
    let time: Int
    /// Row ranges of the batch, one per thread (a single range runs on the calling thread).
    let chunks: [Range<Int>]

    /// Threads worth using for `batch` sequences, at most `threads`: at least 8 sequences per
    /// thread, since below that the thread hand-off costs more than it saves.
    static func threadCount(_ threads: Int, batch: Int) -> Int { max(1, min(threads, batch / 8)) }

    /// Splits the batch into `threads` row ranges (use `threadCount` to choose it).
    init(spec: LSTMSpec, weights: LSTMWeights, batch: Int, time: Int, threads: Int) {
        self.spec = spec
        self.weights = weights
        self.batch = batch
        self.time = time
        let n = max(1, min(threads, batch))
        chunks = (0..<n).map { c in (batch * c / n)..<(batch * (c + 1) / n) }
    }

    /// Runs `body(chunkIndex, rows)` for every chunk, in parallel when there are several.
    private func forEachChunk(_ body: (Int, Range<Int>) -> Void) {
        if chunks.count == 1 { body(0, chunks[0]); return }
        DispatchQueue.concurrentPerform(iterations: chunks.count) { body($0, chunks[$0]) }
    }

    struct Result {
        /// [batch, time, units] in processing order (reversed for go_backwards), or empty.
        var sequence: [Float]
        /// [batch, units]: the output of the last processed step.
        var last: [Float]
        /// [batch, units] each: the states after the last step (carried through masked steps).
        var finalH: [Float]
        var finalC: [Float]
    }

    /// Runs the layer on `x` [batch, time, inputDim] with `mask` [batch, time] (nil: all steps),
    /// starting from `initial` states h, c ([batch, units] each; zeros when nil).
    func run(_ x: [Float], mask: [Bool]?, initial: [[Float]]? = nil, zeroBeforeFirst: Bool = false,
             layerIndex: Int, observer: GateObserver?, threadBudget: Int = 1) throws -> Result {
        if let iw = weights.interleaved, batch > 0, time > 0 {
            return try runInterleaved(iw, x: x, mask: mask, initial: initial, zeroBeforeFirst: zeroBeforeFirst, layerIndex: layerIndex,
                                      observer: observer, threads: iw.threadCount(threadBudget, batch: batch, units: spec.units))
        }
        let u = spec.units, u4 = 4 * spec.units, d = spec.inputDim, batch = batch, time = time
        precondition(x.count == batch * time * d)
        guard batch > 0, time > 0 else {
            let h0 = initial?[0] ?? [Float](repeating: 0, count: batch * u)
            return Result(sequence: [], last: h0, finalH: h0, finalC: initial?[1] ?? [Float](repeating: 0, count: batch * u))
        }
        let report = observer.map { $0.observedLayers?.contains(layerIndex) ?? true } ?? false
        let ra = spec.recurrentActivation, a = spec.activation
        let returnSequences = spec.returnSequences, zeroOutput = spec.zeroOutputForMask

        // Buffers allocated once for the whole sequence.
        var xproj = [Float](repeating: 0, count: batch * time * u4)  // [batch*time, 4u]
        var state = [Float](repeating: 0, count: 2 * batch * u)      // h then c, each [batch, units]
        if let initial {
            precondition(initial.count == 2 && initial[0].count == batch * u && initial[1].count == batch * u)
            state = initial[0] + initial[1]
        }
        var z = [Float](repeating: 0, count: batch * u4)             // [batch, 4u]
        var gates = [Float](repeating: 0, count: 4 * batch * u)      // i, f, g, o, each [batch, units]
        var actC = [Float](repeating: 0, count: chunks.count * u)    // [chunks, units] scratch
        var active = [Bool](repeating: true, count: batch)
        // Keras 2 repeats zeros, not the initial state, for masked steps before a row's first active one.
        var seen = [Bool](repeating: !zeroBeforeFirst, count: batch)
        var sequence = [Float](repeating: 0, count: returnSequences ? batch * time * u : 0)
        var last = [Float](repeating: 0, count: batch * u)

        let kernel = weights.kernel                    // [inputDim, 4u]
        let recurrentKernel = weights.recurrentKernel  // [units, 4u]

        try x.withUnsafeBufferPointer { xp in
        try xproj.withUnsafeMutableBufferPointer { xz in
        try state.withUnsafeMutableBufferPointer { st in
        try z.withUnsafeMutableBufferPointer { zp in
        try gates.withUnsafeMutableBufferPointer { gp in
        try actC.withUnsafeMutableBufferPointer { ac in
        try active.withUnsafeMutableBufferPointer { act in
        try sequence.withUnsafeMutableBufferPointer { seq in
        try last.withUnsafeMutableBufferPointer { lp in
            let h = st.baseAddress!, c = h + batch * u
            let gi = gp.baseAddress!, gf = gi + batch * u, gg = gf + batch * u, go = gg + batch * u

            // Input projection for every (sequence, step) at once: one large matrix product per chunk.
            forEachChunk { _, rows in
                let first = rows.lowerBound * time
                kernel.multiply(xp.baseAddress! + first * d, rows: rows.count * time, into: xz.baseAddress! + first * u4)
                if let bias = spec.bias {
                    for row in first..<(rows.upperBound * time) {
                        let r = xz.baseAddress! + row * u4
                        for k in 0..<u4 { r[k] += bias[k] }
                    }
                }
            }

            for k in 0..<time {
                let t = spec.goBackwards ? time - 1 - k : k
                forEachChunk { chunk, rows in
                    // z = h @ U for this chunk's rows: [rows, units] x [units, 4u]
                    recurrentKernel.multiply(h + rows.lowerBound * u, rows: rows.count, into: zp.baseAddress! + rows.lowerBound * u4)
                    let acc = ac.baseAddress! + chunk * u
                    for b in rows {
                        act[b] = mask?[b * time + t] ?? true
                        guard act[b] else { continue }
                        let zr = zp.baseAddress! + b * u4, xr = xz.baseAddress! + (b * time + t) * u4
                        for j in 0..<u4 { zr[j] += xr[j] }
                        let s = b * u
                        ra.apply(UnsafeMutableBufferPointer(start: zr, count: 2 * u), rowLength: u)       // i, f
                        a.apply(UnsafeMutableBufferPointer(start: zr + 2 * u, count: u), rowLength: u)    // g
                        ra.apply(UnsafeMutableBufferPointer(start: zr + 3 * u, count: u), rowLength: u)   // o
                        for j in 0..<u {
                            let iv = zr[j], fv = zr[u + j], gv = zr[2 * u + j]
                            gi[s + j] = iv
                            gf[s + j] = fv
                            gg[s + j] = gv
                            go[s + j] = zr[3 * u + j]
                            c[s + j] = fv * c[s + j] + iv * gv
                            acc[j] = c[s + j]
                        }
                        a.apply(UnsafeMutableBufferPointer(start: acc, count: u), rowLength: u)
                        for j in 0..<u { h[s + j] = go[s + j] * acc[j] }
                    }
                }
                // Output of this step, in processing order.
                for b in 0..<batch {
                    if act[b] { seen[b] = true }
                    let useZero = !act[b] && (zeroOutput || !seen[b])
                    let s = b * u
                    if returnSequences {
                        let o = (b * time + k) * u
                        for j in 0..<u { seq[o + j] = useZero ? 0 : h[s + j] }
                    }
                    if k == time - 1 {
                        for j in 0..<u { lp[s + j] = useZero ? 0 : h[s + j] }
                    }
                }
                if report, let observer, act.contains(true) {
                    let n = batch * u
                    try observer.observe(GateStep(
                        layer: layerIndex, cell: .lstm, step: t, batchSize: batch, units: u, active: UnsafeBufferPointer(act),
                        planes: [gi, gf, gg, go, c, h].map { (p: UnsafeMutablePointer<Float>) in UnsafeBufferPointer(start: p, count: n) }))
                }
            }
        }}}}}}}}}
        return Result(sequence: sequence, last: last, finalH: Array(state[0..<(batch * u)]), finalC: Array(state[(batch * u)...]))
    }
}
