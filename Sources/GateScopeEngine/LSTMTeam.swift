import CKernels
import Foundation

/// The instruction set that runs the LSTM steps, chosen once per process.
///
/// Each path computes the same float operations per value; which one ran is still stored with
/// every recording, since a resumed or sharded run must be bit-identical to one uninterrupted run.
public enum KernelPath: String, Sendable, CaseIterable {
    /// AVX-512 kernels (x86-64 with AVX-512F).
    case avx512
    /// AVX2 + FMA kernels (x86-64 without AVX-512).
    case avx2
    /// OpenBLAS and the engine's Swift code (any CPU, e.g. aarch64).
    case portable

    /// The best path this CPU has, unless GATESCOPE_KERNELS names a lower one (`avx2`, or
    /// `off`/`portable`), e.g. to compare paths on one machine.
    public static let current: KernelPath = {
        let best: KernelPath = switch gs_lstm_path() {
        case 2: .avx512
        case 1: .avx2
        default: .portable
        }
        let order: [KernelPath] = [.portable, .avx2, .avx512]
        let asked: KernelPath? = switch getenv("GATESCOPE_KERNELS").map({ String(cString: $0) }) {
        case "off", "portable": .portable
        case "avx2": .avx2
        default: nil
        }
        guard let asked, order.firstIndex(of: asked)! < order.firstIndex(of: best)! else { return best }
        return asked
    }()

    var code: Int32 { self == .avx512 ? 2 : self == .avx2 ? 1 : 0 }
}

/// An LSTM's weights in the kernels' interleaved layout (see lstm_kernels.c): unit blocks of 16
/// whose four gates sit side by side, so threads can split a layer by units.
struct InterleavedLSTMWeights: @unchecked Sendable {  // immutable after init
    let path: KernelPath
    let blocks: Int
    let kernel: [Float]           // packed [inputDim, blocks * 64]
    let recurrentKernel: [Float]  // packed [units, blocks * 64]
    let bias: [Float]             // [blocks * 64]

    /// Nil unless a vector path runs here and the cell has the activations the kernels compute.
    init?(_ spec: LSTMSpec, path: KernelPath = .current) {
        guard path != .portable, spec.recurrentActivation == .sigmoid, spec.activation == .tanh,
              spec.units > 0, spec.inputDim > 0 else { return nil }
        let u = spec.units
        func pack(_ m: Matrix) -> [Float] {
            var p = [Float](repeating: 0, count: gs_lstm_packed_size(Int32(m.rows), Int32(u)))
            m.values.withUnsafeBufferPointer { src in
                p.withUnsafeMutableBufferPointer { gs_lstm_pack(src.baseAddress!, Int32(m.rows), Int32(u), $0.baseAddress!) }
            }
            return p
        }
        self.path = path
        blocks = Int(gs_lstm_blocks(Int32(u)))
        kernel = pack(spec.kernel)
        recurrentKernel = pack(spec.recurrentKernel)
        var b = [Float](repeating: 0, count: blocks * 64)
        b.withUnsafeMutableBufferPointer { dst in
            if let bias = spec.bias {
                bias.withUnsafeBufferPointer { gs_lstm_pack_bias($0.baseAddress!, Int32(u), dst.baseAddress!) }
            } else {
                gs_lstm_pack_bias(nil, Int32(u), dst.baseAddress!)
            }
        }
        bias = b
    }

    /// Threads worth splitting one layer's units over: one per 4 unit blocks at most, and
    /// only when each thread's share of a step's recurrent product is large enough (about
    /// 64K multiply-adds) to pay for meeting the others once per step.
    func threadCount(_ threads: Int, batch: Int, units: Int) -> Int {
        let perStep = batch * units * 4 * units
        return max(1, min(threads, blocks / 4, perStep / 65_536))
    }
}

/// Raw pointers shared by the threads of one layer run; the run outlives every thread.
private final class TeamBuffers: @unchecked Sendable {
    var x: UnsafePointer<Float>!
    var xz: UnsafeMutablePointer<Float>!
    var planes: UnsafeMutablePointer<Float>!
    var sequence: UnsafeMutablePointer<Float>?
    var last: UnsafeMutablePointer<Float>!
    var mask: UnsafePointer<Bool>?
    var firstActive: UnsafePointer<Int>!
    var barrier: OpaquePointer!
}

extension LSTMForward {
    /// The LSTM on the interleaved kernels, its units split over `threads` threads that meet
    /// once per step.
    ///
    /// Per step, each thread: z[:, own blocks] = xz_t (x W + b) + h_{t-1} U[:, own blocks];
    /// the cell update for its units; then the barrier. h, c and the gate planes alternate between
    /// two sets, so thread 0 can report step t to the observer while the others compute t+1.
    func runInterleaved(_ iw: InterleavedLSTMWeights, x: [Float], mask: [Bool]?, initial: [[Float]]?,
                        zeroBeforeFirst: Bool, layerIndex: Int, observer: GateObserver?, threads: Int) throws -> Result {
        let u = spec.units, d = spec.inputDim, batch = batch, time = time
        let zw = iw.blocks * 64              // columns of z per row (interleaved, padded)
        let bu = batch * u                   // floats per plane
        let report = observer.map { $0.observedLayers?.contains(layerIndex) ?? true } ?? false
        let returnSequences = spec.returnSequences, zeroOutput = spec.zeroOutputForMask
        let goBackwards = spec.goBackwards
        let path = iw.path.code

        // Buffers allocated once for the whole run.
        var xz = [Float](repeating: 0, count: batch * time * zw)      // [batch, time, zw]: xW + b, then z
        var planes = [Float](repeating: 0, count: 2 * 6 * bu)         // 2 sets x (i f g o c h) x [batch, units]
        if let initial {                                              // step 0 reads set 1
            precondition(initial.count == 2 && initial[0].count == bu && initial[1].count == bu)
            planes.replaceSubrange((6 + 5) * bu..<(6 + 6) * bu, with: initial[0])
            planes.replaceSubrange((6 + 4) * bu..<(6 + 5) * bu, with: initial[1])
        }
        var sequence = [Float](repeating: 0, count: returnSequences ? batch * time * u : 0)
        var last = [Float](repeating: 0, count: bu)
        var active = [Bool](repeating: true, count: batch)
        // The first processed step at which each row is active (Keras 2 outputs zeros before it).
        var firstActive = [Int](repeating: zeroBeforeFirst ? time : 0, count: batch)
        if zeroBeforeFirst {
            for b in 0..<batch {
                for k in 0..<time where mask?[b * time + (goBackwards ? time - 1 - k : k)] ?? true {
                    firstActive[b] = k
                    break
                }
            }
        }

        let team = max(1, min(threads, iw.blocks))
        let shared = TeamBuffers()
        guard let barrier = gs_barrier_create(Int32(team)) else { throw EngineError.badInput("cannot create the engine's thread barrier") }
        defer { gs_barrier_destroy(barrier) }
        shared.barrier = barrier
        var failure: Error?

        // One thread's share: unit blocks b0..<b1 (panels 2*b0..<2*b1) for every step.
        @Sendable func work(_ s: Int, _ buffers: TeamBuffers, observe: ((Int) throws -> Void)?) {
            let b0 = Int32(iw.blocks * s / team), b1 = Int32(iw.blocks * (s + 1) / team)
            let j0 = Int(b0) * 16, j1 = min(Int(b1) * 16, u)   // own units
            let xz = buffers.xz!, planes = buffers.planes!
            iw.kernel.withUnsafeBufferPointer { w in
            iw.recurrentKernel.withUnsafeBufferPointer { rk in
            iw.bias.withUnsafeBufferPointer { bias in
                // Input projection for every (sequence, step): [batch*time, d] x [d, own columns] + b.
                gs_lstm_gemm(path, buffers.x, d, Int32(batch * time), Int32(d), w.baseAddress!, 2 * b0, 2 * b1,
                             xz, zw, bias.baseAddress!, 0)
                var stopping = false
                for k in 0..<time {
                    let t = goBackwards ? time - 1 - k : k
                    let cur = planes + (k % 2) * 6 * bu, prev = planes + ((k + 1) % 2) * 6 * bu
                    if !stopping {
                        // z_t = xz_t + h_{t-1} U: rows of step t are time*zw apart.
                        gs_lstm_gemm(path, prev + 5 * bu, u, Int32(batch), Int32(u), rk.baseAddress!, 2 * b0, 2 * b1,
                                     xz + t * zw, time * zw, nil, 1)
                        for b in 0..<batch {
                            let on = buffers.mask?[b * time + t] ?? true
                            let r = b * u
                            if on {
                                gs_lstm_cell(path, xz + (b * time + t) * zw, b0, b1, Int32(u), prev + 4 * bu + r, cur + 4 * bu + r,
                                             cur + 5 * bu + r, cur + r, cur + bu + r, cur + 2 * bu + r, cur + 3 * bu + r)
                            } else {
                                // A masked step carries h and c.
                                for p in 4..<6 { (cur + p * bu + r + j0).update(from: prev + p * bu + r + j0, count: j1 - j0) }
                            }
                            let zero = !on && (zeroOutput || k < buffers.firstActive[b])
                            let h = cur + 5 * bu + r
                            if let seq = buffers.sequence {
                                let o = seq + (b * time + k) * u
                                for j in j0..<j1 { o[j] = zero ? 0 : h[j] }
                            }
                            if k == time - 1 {
                                for j in j0..<j1 { buffers.last[r + j] = zero ? 0 : h[j] }
                            }
                        }
                    }
                    gs_barrier_wait(buffers.barrier)
                    // Thread 0 raises the flag between two barriers; the others see it after the next.
                    if gs_barrier_aborted(buffers.barrier) != 0 { break }
                    if let observe {
                        do { try observe(k) } catch {
                            gs_barrier_abort(buffers.barrier)
                            stopping = true
                        }
                    }
                }
            }}}
        }

        try x.withUnsafeBufferPointer { xp in
        try xz.withUnsafeMutableBufferPointer { xzp in
        try planes.withUnsafeMutableBufferPointer { pp in
        try sequence.withUnsafeMutableBufferPointer { seq in
        try last.withUnsafeMutableBufferPointer { lp in
        try firstActive.withUnsafeBufferPointer { fa in
        try active.withUnsafeMutableBufferPointer { act in
            let maskCopy = mask
            try maskCopy.withOptionalBuffer { mp in
                shared.x = xp.baseAddress!
                shared.xz = xzp.baseAddress!
                shared.planes = pp.baseAddress!
                shared.sequence = returnSequences ? seq.baseAddress! : nil
                shared.last = lp.baseAddress!
                shared.mask = mp
                shared.firstActive = fa.baseAddress!
                let done = DispatchGroup()
                for s in 1..<team {
                    done.enter()
                    let thread = Thread { work(s, shared, observe: nil); done.leave() }
                    thread.stackSize = 1 << 20
                    thread.start()
                }
                // Thread 0 is the caller's: it reports every step, as the observer expects.
                let act = act, base = pp.baseAddress!
                let observe: ((Int) throws -> Void)? = report ? { k in
                    let t = goBackwards ? time - 1 - k : k
                    for b in 0..<batch { act[b] = mp?[b * time + t] ?? true }
                    guard act.contains(true) else { return }
                    let cur = base + (k % 2) * 6 * bu
                    do {
                        try observer!.observe(GateStep(
                            layer: layerIndex, cell: .lstm, step: t, batchSize: batch, units: u, active: UnsafeBufferPointer(act),
                            planes: (0..<6).map { UnsafeBufferPointer(start: cur + $0 * bu, count: bu) }))
                    } catch {
                        failure = error
                        throw error
                    }
                } : nil
                work(0, shared, observe: observe)
                done.wait()
            }
        }}}}}}}
        if let failure { throw failure }
        let final = (time - 1) % 2 * 6 * bu
        return Result(sequence: sequence, last: last, finalH: Array(planes[(final + 5 * bu)..<(final + 6 * bu)]),
                      finalC: Array(planes[(final + 4 * bu)..<(final + 5 * bu)]))
    }
}

extension Optional where Wrapped == [Bool] {
    /// Calls `body` with the array's base address, or nil.
    func withOptionalBuffer<R>(_ body: (UnsafePointer<Bool>?) throws -> R) rethrows -> R {
        switch self {
        case .none: return try body(nil)
        case let .some(a): return try a.withUnsafeBufferPointer { try body($0.baseAddress) }
        }
    }
}
