import CSummaries
import Foundation
import GateScopeEngine
import GateScopeInput
import GateScopeStore

/// Captures the engine's gate steps of the recorded layers into a `BatchBuffer`.
final class BatchCapture: GateObserver {
    let observedLayers: Set<Int>?
    /// recurrent layer index -> position among recorded layers, or -1.
    let slotOf: [Int]
    let units: [Int]
    let planes: [Int]
    var buffer: BatchBuffer
    /// One sequence's plane pointers for `gs_interleave`, reused every step.
    private let planeRows: UnsafeMutablePointer<UnsafePointer<Float>?>

    init(observed: [Int], layerCount: Int, units: [Int], planes: [Int], buffer: BatchBuffer) {
        observedLayers = Set(observed)
        var slots = [Int](repeating: -1, count: layerCount)
        for (k, l) in observed.enumerated() { slots[l] = k }
        slotOf = slots
        self.units = units
        self.planes = planes
        self.buffer = buffer
        planeRows = .allocate(capacity: Swift.max(planes.max() ?? 1, 1))
    }

    deinit { planeRows.deallocate() }

    func observe(_ s: GateStep) throws {
        let li = slotOf[s.layer]
        guard li >= 0 else { return }
        let u = s.units, width = planes[li]
        precondition(s.planes.count == width, "layer \(s.layer) reported \(s.planes.count) planes, its cell has \(width)")
        let buf = buffer
        let stride = buf.seqStride, offset = buf.layerOffset[li]
        let activeBase = buf.activeOffset[li], activeStride = buf.activeStride
        precondition(s.step < buf.layerTime[li], "step \(s.step) past the \(buf.layerTime[li]) steps sized for layer \(s.layer)")
        buf.gates.withUnsafeMutableBufferPointer { gp in
            buf.active.withUnsafeMutableBufferPointer { ap in
                for b in 0..<s.batchSize where s.active[b] {
                    ap[b * activeStride + activeBase + s.step] = true
                    let dst = gp.baseAddress! + b * stride + offset + s.step * u * width
                    // Interleave the planes unit by unit: the INSERT loop and the summaries read a row at a time.
                    for p in 0..<width { planeRows[p] = UnsafePointer(s.planes[p].baseAddress! + b * u) }
                    gs_interleave(dst, planeRows, Int32(width), Int32(u))
                }
            }
        }
    }
}

/// A blocking single-producer/single-consumer queue.
final class Handoff<T>: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [T] = []
    private var closed = false
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    /// Waits for room; false if the queue was closed.
    func put(_ item: T) -> Bool {
        condition.lock(); defer { condition.unlock() }
        while items.count >= capacity && !closed { condition.wait() }
        if closed { return false }
        items.append(item)
        condition.broadcast()
        return true
    }

    /// Waits for an item; nil once closed and empty.
    func take() -> T? {
        condition.lock(); defer { condition.unlock() }
        while items.isEmpty && !closed { condition.wait() }
        if items.isEmpty { return nil }
        let item = items.removeFirst()
        condition.broadcast()
        return item
    }

    /// Drops queued items (frees buffers nobody will use again).
    func removeAll() {
        condition.lock()
        items.removeAll()
        condition.broadcast()
        condition.unlock()
    }

    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }
}

/// One recording into one run: the engine on a worker thread fills batch buffers while this
/// thread hands the previous batch to the storage writer, so SQLite is busy all the time.
/// Holds no SQL: everything stored goes through `RunWriter`.
final class Session {
    let writer: RunWriter
    let model: Model
    let observed: [Int]
    let units: [Int]
    /// The cell of each recorded layer, and its number of planes (gate columns).
    let cells: [CellKind]
    let planes: [Int]
    let options: RecordOptions
    let total: Int
    let stop: StopFlag?
    let progress: ((RecordProgress) -> Void)?
    var summaries: SummaryAccumulator { writer.summaries }
    var extras: SequenceAccumulators { writer.extras }

    /// Index of the run's first sequence in the whole input (a shard's start, else 0).
    var firstSequence = 0
    /// First sequence this invocation writes (> firstSequence when resuming).
    var startSequence = 0
    /// Where the time goes, printed on stderr when GATESCOPE_TIMING is set (for scripts/bench_record.sh).
    let timings = Timings()

    init(writer: RunWriter, model: Model, observed: [Int], options: RecordOptions, total: Int,
         stop: StopFlag?, progress: ((RecordProgress) -> Void)?) {
        self.writer = writer
        self.model = model
        self.observed = observed
        self.units = observed.map { model.recurrentLayers[$0].units }
        self.cells = observed.map { model.recurrentLayers[$0].cell }
        self.planes = cells.map { $0.planes.count }
        self.options = options
        self.total = total
        self.stop = stop
        self.progress = progress
    }

    enum Item {
        case batch(BatchBuffer)
        case failure(Error)
        case end
    }

    /// Records from the input (sequences before `startSequence` are read but not written).
    func run(open: () throws -> any SequenceReader) throws -> RecordResult {
        let reader = try open()
        // With summaries only, a third buffer lets the engine run a batch further ahead, so that
        // the summaries, which take longer, rarely wait for it (each buffer is bounded in size).
        let buffers = options.summariesOnly ? 3 : 2
        let ready = Handoff<Item>(capacity: buffers - 1)
        let pool = Handoff<BatchBuffer>(capacity: buffers)
        for _ in 0..<buffers { _ = pool.put(BatchBuffer()) }
        let producerDone = DispatchSemaphore(value: 0)
        let producer = Producer(session: self, reader: reader, ready: ready, pool: pool)
        let thread = Thread {
            producer.run()
            producerDone.signal()
        }
        thread.stackSize = 8 << 20
        thread.start()
        defer {
            // Unblock and wait for the worker whatever happens, so it never outlives the call.
            ready.close()
            pool.close()
            producerDone.wait()
            writer.end()
        }
        try writer.begin()
        return try consume(ready: ready, pool: pool)
    }

    /// Adds each sequence of the batch (from `startSequence` on) to the summaries, pair moments and
    /// spans; every one of them is exact, so the order does not show in the results. With summaries
    /// only, they run as independent tasks on every core (the writer thread has no SQL to wait on).
    func accumulate(_ buf: BatchBuffer) {
        let t0 = timings.enabled ? DispatchTime.now().uptimeNanoseconds : 0
        // Sequences before the resume point lead the batch (the input is in order).
        guard let first = (0..<buf.count).first(where: { buf.indices[$0] >= startSequence }) else { return }
        let seqIDs = buf.indices[first..<buf.count].map { Int64($0) }
        let acc = summaries, pairs = extras.pairs, spans = extras.spans
        // Independent tasks: per layer, its spans, its pair moments, and its unit summaries in
        // unit ranges (disjoint ranges may run at once; each accumulator keeps per-layer state).
        // The long ones first, so that whichever thread is free takes the next and the parts end
        // together.
        enum Task { case spans(Int), pairs(Int), units(Int, Range<Int>) }
        let ranges = options.summariesOnly ? 4 : 1
        var tasks: [Task] = units.indices.map { .spans($0) } + units.indices.map { .pairs($0) }
        for li in units.indices {
            for r in 0..<ranges { tasks.append(.units(li, (units[li] * r / ranges)..<(units[li] * (r + 1) / ranges))) }
        }
        buf.gates.withUnsafeBufferPointer { gp in
            buf.active.withUnsafeBufferPointer { ap in
                let run = { (k: Int) in
                    let li: Int
                    switch tasks[k] { case let .spans(l), let .pairs(l), let .units(l, _): li = l }
                    let active = ap.baseAddress! + first * buf.activeStride + buf.activeOffset[li]
                    let values = gp.baseAddress! + first * buf.seqStride + buf.layerOffset[li]
                    let steps = buf.layerTime[li]
                    switch tasks[k] {
                    case .spans:
                        spans.add(layer: li, seqIDs: seqIDs, steps: steps, values: values, valueStride: buf.seqStride,
                                  active: active, activeStride: buf.activeStride)
                    case .pairs:
                        for s in seqIDs.indices {
                            pairs.add(layer: li, steps: steps, values: values + s * buf.seqStride, active: active + s * buf.activeStride)
                        }
                    case let .units(_, range):
                        acc.add(layer: li, units: range, sequences: seqIDs.count, steps: steps, values: values,
                                valueStride: buf.seqStride, active: active, activeStride: buf.activeStride)
                    }
                }
                // With summaries only the writer thread has no SQL to wait on: the tasks run on
                // every core, beside the engine's thread.
                if options.summariesOnly { DispatchQueue.concurrentPerform(iterations: tasks.count, execute: run) }
                else { for k in tasks.indices { run(k) } }
            }
        }
        if timings.enabled { timings.add(\.summaries, since: t0) }
    }

    /// The write loop (this thread owns the database connection, through the writer).
    func consume(ready: Handoff<Item>, pool: Handoff<BatchBuffer>) throws -> RecordResult {
        let started = Date()
        let startedNanos = DispatchTime.now().uptimeNanoseconds
        var rowsWritten: Int64 = 0
        var batches = 0
        let names = observed.map { model.recurrentLayers[$0].name }

        func report() {
            progress?(RecordProgress(sequencesDone: writer.committedSequences, sequencesTotal: total, rowsWritten: rowsWritten,
                                     elapsed: Date().timeIntervalSince(started), startSequences: startSequence - firstSequence))
        }
        func commit() throws {
            let pending = writer.uncommittedRows
            let commitStart = timings.enabled ? DispatchTime.now().uptimeNanoseconds : 0
            try writer.commit()
            if timings.enabled { timings.add(\.commit, since: commitStart) }
            rowsWritten += Int64(pending)
            report()
        }

        report()
        do {
            while true {
                let waitStart = timings.enabled ? DispatchTime.now().uptimeNanoseconds : 0
                guard let item = ready.take() else { throw RecordingError("the recording worker stopped unexpectedly") }
                if timings.enabled { timings.add(\.waitEngine, since: waitStart) }
                let buf: BatchBuffer
                switch item {
                case .end:
                    // The worker is done: free the batch buffers before the summaries are written.
                    pool.close()
                    pool.removeAll()
                    defer { timings.print(total: DispatchTime.now().uptimeNanoseconds - startedNanos) }
                    let pending = writer.uncommittedRows
                    try writer.finish()
                    rowsWritten += Int64(pending)
                    report()
                    return RecordResult(runID: writer.runID, completed: true, sequencesDone: writer.committedSequences,
                                        sequencesTotal: total, rowsWritten: rowsWritten)
                case let .failure(error):
                    throw error
                case let .batch(b):
                    buf = b
                }
                if options.summariesOnly { accumulate(buf) }
                for b in 0..<buf.count where buf.indices[b] >= startSequence {
                    _ = try writer.append(buf, sequence: b, nameOf: { names[$0] })
                    if writer.uncommittedRows >= options.commitRows { try commit() }
                }
                _ = pool.put(buf)
                batches += 1
                if writer.uncommittedSequences > 0 { try commit() }
                let stopNow = stop?.isRequested == true || options.stopAfterBatches.map { batches >= $0 } == true
                if stopNow && writer.committedSequences < total {
                    try writer.interrupted(options.summariesOnly
                        ? "interrupted after \(writer.committedSequences) of \(total) sequences; a summaries-only run cannot be resumed: record it again"
                        : "interrupted after \(writer.committedSequences) of \(total) sequences; continue with --resume \(writer.runID)")
                    return RecordResult(runID: writer.runID, completed: false, sequencesDone: writer.committedSequences,
                                        sequencesTotal: total, rowsWritten: rowsWritten)
                }
            }
        } catch {
            writer.rollback()
            throw error
        }
    }
}

/// The worker: reads and batches the input, runs the engine, fills buffers, adds to the summaries.
final class Producer: @unchecked Sendable {
    let session: Session
    let reader: any SequenceReader
    let ready: Handoff<Session.Item>
    let pool: Handoff<BatchBuffer>
    private var lookahead: InputSequence?
    private var batchIndex = 0

    init(session: Session, reader: any SequenceReader, ready: Handoff<Session.Item>, pool: Handoff<BatchBuffer>) {
        self.session = session
        self.reader = reader
        self.ready = ready
        self.pool = pool
    }

    func run() {
        do {
            while let group = try nextGroup() {
                // Batches wholly before the resume point are not run: their rows are committed.
                guard group.last!.index >= session.startSequence else { continue }
                guard let buffer = pool.take() else { return }
                try fill(buffer, group: group)
                guard ready.put(.batch(buffer)) else { return }
            }
            _ = ready.put(.end)
        } catch {
            _ = ready.put(.failure(error))
        }
    }

    /// The next batch: up to `batchSize` sequences (fewer in the first batches, see
    /// `batchRampStart`) whose padded gate buffer fits the budget (always at least one).
    /// Depends only on the input, so a resumed run batches identically.
    func nextGroup() throws -> [InputSequence]? {
        let rowBytes = zip(session.units, session.planes).reduce(0) { $0 + $1.0 * $1.1 } * MemoryLayout<Float>.size
        var group: [InputSequence] = []
        var longest = 0
        let options = session.options
        var limit = options.batchSize
        if options.batchRampStart > 0, batchIndex < 32 {
            limit = Swift.min(limit, options.batchRampStart << batchIndex)
        }
        batchIndex += 1
        while group.count < limit {
            guard let s = try lookahead ?? reader.next() else { break }
            lookahead = nil
            let newLongest = Swift.max(longest, s.length)
            // A model that mixes steps across time (Conv1D, pooling, ...) sees padding, so only
            // sequences of one length share a batch.
            let lengthBreak = !session.model.lengthSafe && !group.isEmpty && s.lengths != group[0].lengths
            if lengthBreak || (!group.isEmpty && (group.count + 1) * newLongest * rowBytes > session.options.bufferBudgetBytes) {
                lookahead = s
                break
            }
            group.append(s)
            longest = newLongest
        }
        return group.isEmpty ? nil : group
    }

    func fill(_ buffer: BatchBuffer, group: [InputSequence]) throws {
        let padded = try PaddedBatch(padding: group)
        // The read inputs, then every model input: a lengths input (ONNX sequence_lens) is filled
        // from the lengths of the input it belongs to.
        let read = [padded] + padded.others
        let graphInputs = session.model.graph.inputs
        let sequenceInputs = graphInputs.indices.filter { graphInputs[$0].lengthsOf == nil }
        var byModelIndex: [Int: PaddedBatch] = [:]
        for (k, m) in sequenceInputs.enumerated() { byModelIndex[m] = read[k] }
        let times = graphInputs.indices.map { byModelIndex[$0]?.time ?? 0 }
        let steps = try session.model.recurrentSteps(inputTimes: times)
        buffer.reshape(count: padded.batchSize, time: padded.time, layerTime: session.observed.map { steps[$0] },
                       units: session.units, planes: session.planes)
        buffer.indices = padded.indices
        buffer.sourceIDs = padded.sourceIDs
        buffer.lengths = padded.lengths
        if case let .tokens(ids) = padded.values { buffer.tokens = ids } else { buffer.tokens = nil }
        // One value per model input: `[batch, time, features]` floats or `[batch, time]` token ids.
        // A step of several axes (e.g. frames of `(None, T, 6, 3)`) arrives flattened per step.
        let model = session.model
        let values = graphInputs.indices.map { k -> Tensor in
            guard let input = byModelIndex[k] else {
                let of = byModelIndex[graphInputs[k].lengthsOf!]!
                return Tensor(shape: [of.batchSize], values: of.lengths.map(Float.init), dtype: graphInputs[k].lengthsOf == nil ? .float32 : model.graph.tensors[graphInputs[k].tensor].dtype)
            }
            switch input.values {
            case let .features(v, dim):
                let step = model.inputStepShape(k)
                return Tensor(shape: [input.batchSize, input.time] + (step.count > 1 && step.reduce(1, *) == dim ? step : [dim]), values: v)
            case let .tokens(ids): return Tensor(shape: [input.batchSize, input.time], values: ids.map { Float($0) }, dtype: .int32)
            }
        }
        let capture = BatchCapture(observed: session.observed, layerCount: session.model.recurrentLayers.count,
                                   units: session.units, planes: session.planes, buffer: buffer)
        let t0 = session.timings.enabled ? DispatchTime.now().uptimeNanoseconds : 0
        // The engine runs on its own worker beside the SQLite writer: one thread each, since
        // idle BLAS threads would spin on the core SQLite needs. Only the recorded layers and what
        // feeds them run: nothing reads the model's outputs here.
        try session.model.observe(values, lengths: graphInputs.indices.map { byModelIndex[$0]?.lengths }, layers: Set(session.observed),
                                  observer: capture, threads: 1)
        if session.timings.enabled { session.timings.add(\.engine, since: t0) }
        // With rows to store, SQLite is the slower side, so the worker summarizes; with summaries
        // only, the writer thread has nothing else to do and summarizes while the engine runs.
        if !session.options.summariesOnly { session.accumulate(buffer) }
    }
}

/// Nanosecond counters of the recording's phases (diagnostics only).
final class Timings: @unchecked Sendable {
    let enabled = ProcessInfo.processInfo.environment["GATESCOPE_TIMING"] != nil
    private let lock = NSLock()
    var waitEngine: UInt64 = 0
    var commit: UInt64 = 0
    var engine: UInt64 = 0
    var summaries: UInt64 = 0

    func add(_ field: ReferenceWritableKeyPath<Timings, UInt64>, since start: UInt64, until end: UInt64 = DispatchTime.now().uptimeNanoseconds) {
        lock.lock()
        self[keyPath: field] += end - start
        lock.unlock()
    }

    func print(total: UInt64) {
        guard enabled else { return }
        func s(_ n: UInt64) -> String { String(format: "%.3f s", Double(n) / 1e9) }
        FileHandle.standardError.write(Data("timing: writer \(s(total)) (waiting for the engine \(s(waitEngine)), commits \(s(commit))); engine \(s(engine)), summaries \(s(summaries))\n".utf8))
    }
}

