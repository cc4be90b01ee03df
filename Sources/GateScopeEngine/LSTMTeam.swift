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

    /// Threads worth splitting one layer's work over: one per 4 work items at most, and only
    /// when each thread's share of a step's recurrent product is at least 100K multiply-adds.
    /// Measured on this project's 2 cores, against one thread at a 2M threshold, in one run:
    /// 2 x LSTM(256) at batch 1 27.9k -> 51.2k steps x sequences/s, LSTM(256) at batch 8
    /// 100k -> 188k, LSTM(128) at batch 8 316k -> 469k; LSTM(128) at batch 64 unchanged.
    /// The work items are unit blocks, of each row chunk (`rowChunks`).
    func threadCount(_ threads: Int, batch: Int, units: Int) -> Int {
        let perStep = batch * units * 4 * units
        return max(1, min(threads, blocks * rowChunks(batch: batch) / 4, perStep / 100_000))
    }

    /// Row chunks a step's batch is split into, so that a layer of few unit blocks still has work
    /// for every thread: enough for 8 items (chunks x blocks), each chunk at least 16 rows, and
    /// only from 32 rows (below, steps are projected a few at a time per row). Rows are
    /// independent, so a split changes no value. On 2 cores, against one chunk (which gave these
    /// layers one thread), alternating, medians of 7: LSTM(32) at batch 64 1.14x and at 256 1.48x,
    /// LSTM(64) at batch 64 1.31x, 2 x LSTM(32) at batch 64 1.22x and at 256 1.51x.
    func rowChunks(batch: Int) -> Int {
        guard batch >= 32 else { return 1 }
        return max(1, min(batch / 16, (8 + blocks - 1) / blocks))
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
    /// Per step, threads take blocks of 16 units (of a chunk of rows, for a layer of few blocks) in
    /// turn: z[:, block] = x_t W + b + h_{t-1} U[:, block], the cell update of those units, their
    /// outputs; then the barrier. h, c and the gate planes alternate between two sets, so thread 0
    /// can report step t to the observer while the others compute t+1.
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
        // 64-byte aligned, and every plane starts on a cache line: two threads write neighbouring
        // units of each row, and a line they shared would move between the cores on every step.
        let ps = (bu + 15) / 16 * 16                                  // plane stride in floats
        // z for `chunk` steps: x_t W + b, then + h_{t-1} U. Projecting a few steps at a time, not
        // the whole sequence up front, keeps z in L2 (a [batch, time, 4u] buffer is tens of MB,
        // streamed through DRAM by both threads), while a chunk still gives the projection at
        // least 32 rows, so a batch of one reads W once per 32 steps, not once per step.
        let chunk = min(time, max(1, 32 / batch))
        let xz = AlignedFloats(count: batch * chunk * zw)            // [batch, chunk, zw]
        let planes = AlignedFloats(count: 2 * 6 * ps, zeroed: true)   // 2 sets x (i f g o c h) x [batch, units]
        if let initial {                                              // step 0 reads set 1
            precondition(initial.count == 2 && initial[0].count == bu && initial[1].count == bu)
            planes.base.advanced(by: (6 + 5) * ps).update(from: initial[0], count: bu)
            planes.base.advanced(by: (6 + 4) * ps).update(from: initial[1], count: bu)
        }
        let last = AlignedFloats(count: bu)
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

        // One thread gains nothing from row chunks, and its products get fewer rows a call.
        let rowChunks = chunk == 1 && threads > 1 ? iw.rowChunks(batch: batch) : 1
        let items = iw.blocks * rowChunks                            // item i: block i % blocks of row chunk i / blocks
        let team = max(1, min(threads, items))
        let shared = TeamBuffers()
        guard let barrier = gs_barrier_create(Int32(team)) else { throw EngineError.badInput("cannot create the engine's thread barrier") }
        defer { gs_barrier_destroy(barrier) }
        shared.barrier = barrier
        var failure: Error?

        // Each thread owns a fixed range of items, unit blocks (of row chunks when the batch is
        // split), so its weights stay in its core's cache, and takes them `grain` at a time; one
        // that finishes early takes the rest of another's range from its end: on a shared machine
        // one core is often slower, and a fixed split would make every step wait for it. A take
        // is worth about 64K multiply-adds.
        let grain = max(1, 65_536 / max(1, (batch / rowChunks) * 64 * u))

        // Unit blocks c0..<c1 of rows r0..<r1 at step k: z (projection when a chunk starts, then
        // + h U), cell, outputs.
        @Sendable func blocks(_ c0: Int, _ c1: Int, rows r0: Int, _ r1: Int, k: Int, t: Int, chunkFirst: Int,
                              _ buffers: TeamBuffers, w: UnsafePointer<Float>, rk: UnsafePointer<Float>,
                              bias: UnsafePointer<Float>) {
            let p0 = Int32(2 * c0), p1 = Int32(2 * c1)
            let m = Int32(r1 - r0), pr = r0 * u                      // rows, and their offset in a plane
            let j0 = c0 * 16, j1 = min(c1 * 16, u)
            let xz = buffers.xz!, planes = buffers.planes!
            let cur = planes + (k % 2) * 6 * ps, prev = planes + ((k + 1) % 2) * 6 * ps
            if k % chunk == 0 {
                // z = x W + b for the chunk's steps (chunkFirst..., ascending).
                let steps = goBackwards ? t - chunkFirst + 1 : min(chunk, time - t)
                if chunk == 1 {
                    gs_lstm_gemm(path, buffers.x + r0 * time * d + t * d, time * d, m, Int32(d), w, p0, p1, xz + r0 * zw, zw, bias, 0)
                } else {
                    for b in r0..<r1 {
                        gs_lstm_gemm(path, buffers.x + (b * time + chunkFirst) * d, d, Int32(steps), Int32(d), w, p0, p1,
                                     xz + b * chunk * zw, zw, bias, 0)
                    }
                }
            }
            // z_t += h_{t-1} U; rows of step t are chunk*zw apart.
            let z = xz + (t - chunkFirst) * zw
            gs_lstm_gemm(path, prev + 5 * ps + pr, u, m, Int32(u), rk, p0, p1, z + r0 * chunk * zw, chunk * zw, nil, 1)
            // The cell of every active row in one call; it also writes their h to the output sequence.
            let seqStep = buffers.sequence.map { $0 + k * u }                // row b at + b * time * u
            gs_lstm_cell(path, z + r0 * chunk * zw, chunk * zw, m, buffers.mask.map { $0 + r0 * time + t }, time, Int32(c0), Int32(c1),
                         Int32(u), prev + 4 * ps + pr, cur + 4 * ps + pr, cur + 5 * ps + pr, cur + pr, cur + ps + pr,
                         cur + 2 * ps + pr, cur + 3 * ps + pr, seqStep.map { $0 + r0 * time * u }, time * u)
            guard buffers.mask != nil || k == time - 1 else { return }
            for b in r0..<r1 {
                let on = buffers.mask?[b * time + t] ?? true
                let r = b * u
                let zero = !on && (zeroOutput || k < buffers.firstActive[b])
                let h = cur + 5 * ps + r
                if !on {
                    // A masked step carries h and c.
                    for p in 4..<6 { (cur + p * ps + r + j0).update(from: prev + p * ps + r + j0, count: j1 - j0) }
                    if let seqStep {
                        let o = seqStep + b * time * u
                        for j in j0..<j1 { o[j] = zero ? 0 : h[j] }
                    }
                }
                if k == time - 1 {
                    for j in j0..<j1 { buffers.last[r + j] = zero ? 0 : h[j] }
                }
            }
        }

        // One thread: every step, blocks from the counter until the step has none left, then the barrier.
        @Sendable func work(_ s: Int, _ buffers: TeamBuffers, observe: ((Int) throws -> Void)?) {
            let own0 = Int32(items * s / team), own1 = Int32(items * (s + 1) / team)
            iw.kernel.withUnsafeBufferPointer { w in
            iw.recurrentKernel.withUnsafeBufferPointer { rk in
            iw.bias.withUnsafeBufferPointer { bias in
                var stopping = false
                gs_team_reset(buffers.barrier, Int32(s), own0, own1)
                for k in 0..<time {
                    let t = goBackwards ? time - 1 - k : k
                    // The chunk in xz holds steps chunkFirst..<chunkFirst+chunk (ascending, either direction).
                    let chunkFirst = goBackwards ? max(0, time - (k / chunk + 1) * chunk) : k / chunk * chunk
                    var start: Int32 = 0
                    while !stopping {
                        let n = Int(gs_team_next(buffers.barrier, Int32(s), Int32(grain), &start))
                        guard n > 0 else { break }
                        // Items start..<start+n, a run of blocks per row chunk they cover.
                        var i = Int(start)
                        while i < Int(start) + n {
                            let rc = i / iw.blocks, c0 = i % iw.blocks, c1 = min(iw.blocks, c0 + Int(start) + n - i)
                            blocks(c0, c1, rows: batch * rc / rowChunks, batch * (rc + 1) / rowChunks, k: k, t: t, chunkFirst: chunkFirst,
                                   buffers, w: w.baseAddress!, rk: rk.baseAddress!, bias: bias.baseAddress!)
                            i += c1 - c0
                        }
                    }
                    // Thread 0 raises the flag between two waits; every thread learns it from the next.
                    if gs_barrier_wait(buffers.barrier) != 0 { break }
                    // Own blocks of the next step, offered before thread 0 reports this one, so the
                    // others can take its share while it is busy with the observer.
                    gs_team_reset(buffers.barrier, Int32(s), stopping ? own1 : own0, own1)
                    if let observe {
                        do { try observe(k) } catch {
                            gs_barrier_abort(buffers.barrier)
                            stopping = true
                        }
                    }
                }
            }}}
        }

        // Nothing below throws: an observer's error is kept in `failure` and thrown after the join.
        // The output sequence is written in place into the array that is returned: every element
        // of every step is written (h or zero), and a copy of it would touch as many fresh pages again.
        let sequenceCount = returnSequences ? batch * time * u : 0
        let sequence = [Float](unsafeUninitializedCapacity: sequenceCount) { seqBuffer, initialized in
        x.withUnsafeBufferPointer { xp in
        firstActive.withUnsafeBufferPointer { fa in
        active.withUnsafeMutableBufferPointer { act in
            mask.withOptionalBuffer { mp in
                shared.x = xp.baseAddress!
                shared.xz = xz.base
                shared.planes = planes.base
                shared.sequence = returnSequences ? seqBuffer.baseAddress : nil
                shared.last = last.base
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
                let act = act, base = planes.base
                let observe: ((Int) throws -> Void)? = report ? { k in
                    let t = goBackwards ? time - 1 - k : k
                    for b in 0..<batch { act[b] = mp?[b * time + t] ?? true }
                    guard act.contains(true) else { return }
                    let cur = base + (k % 2) * 6 * ps
                    do {
                        try observer!.observe(GateStep(
                            layer: layerIndex, cell: .lstm, step: t, batchSize: batch, units: u, active: UnsafeBufferPointer(act),
                            planes: (0..<6).map { UnsafeBufferPointer(start: cur + $0 * ps, count: bu) }))
                    } catch {
                        failure = error
                        throw error
                    }
                } : nil
                work(0, shared, observe: observe)
                done.wait()
                // The threads used these through raw pointers: keep them alive until all are done.
                withExtendedLifetime([xz, planes, last]) {}
            }
        }}}
            // Float has no invalid values: after a failure (thrown below) the rest is never read.
            initialized = sequenceCount
        }
        if let failure { throw failure }
        let final = (time - 1) % 2 * 6 * ps
        return Result(sequence: sequence, last: last.array(), finalH: planes.array(from: final + 5 * ps, count: bu),
                      finalC: planes.array(from: final + 4 * ps, count: bu))
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

/// A float buffer on a 64-byte boundary (a cache line), freed with its owner.
final class AlignedFloats: @unchecked Sendable {
    let base: UnsafeMutablePointer<Float>
    let count: Int

    init(count: Int, zeroed: Bool = false) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        if zeroed { base.initialize(repeating: 0, count: count) }
    }

    deinit { base.deallocate() }

    /// A copy of `count` floats from `start` (all of them by default).
    func array(from start: Int = 0, count n: Int? = nil) -> [Float] {
        Array(UnsafeBufferPointer(start: base + start, count: n ?? count - start))
    }
}
