import CSQLite
import Foundation
import GateScopeEngine
import GateScopeInput

/// The gate values of one engine batch in primary-key order, ready to insert.
///
/// Layout: sequence b, recorded layer li, step t (on that layer's own time axis, `layerTime[li]`
/// steps), unit u, plane p (the layer cell's gates, `planes[li]` of them) at
/// `b * seqStride + layerOffset[li] + (t * units[li] + u) * planes[li] + p`;
/// `active[b * activeStride + activeOffset[li] + t]`.
final class BatchBuffer: @unchecked Sendable {
    var count = 0
    /// Padded steps of the first input.
    var time = 0
    /// Steps of each recorded layer's time axis for this batch.
    var layerTime: [Int] = []
    var activeOffset: [Int] = []
    var activeStride = 0
    var indices: [Int] = []
    var sourceIDs: [String?] = []
    var lengths: [Int] = []
    /// `[count, time]` token ids when the first input takes tokens.
    var tokens: [Int32]? = nil
    var gates: [Float] = []
    var active: [Bool] = []
    var seqStride = 0
    var layerOffset: [Int] = []

    /// Sizes the buffers for `count` sequences of `time` input steps whose recorded layers run
    /// `layerTime` steps each, with `units` units of `planes` values (capacity is kept between batches).
    func reshape(count: Int, time: Int, layerTime: [Int], units: [Int], planes: [Int]) {
        self.count = count
        self.time = time
        self.layerTime = layerTime
        var offsets: [Int] = [], activeOffsets: [Int] = []
        var total = 0, totalSteps = 0
        for k in units.indices {
            offsets.append(total); total += layerTime[k] * units[k] * planes[k]
            activeOffsets.append(totalSteps); totalSteps += layerTime[k]
        }
        layerOffset = offsets
        activeOffset = activeOffsets
        activeStride = totalSteps
        seqStride = total
        let need = count * total
        if gates.count < need { gates = [Float](repeating: 0, count: need) }
        let needActive = count * totalSteps
        if active.count < needActive { active = [Bool](repeating: false, count: needActive) }
        active.withUnsafeMutableBufferPointer { p in
            p.baseAddress!.update(repeating: false, count: Swift.max(needActive, 0))
        }
    }
}

/// Captures the engine's gate steps of the recorded layers into a `BatchBuffer`.
final class BatchCapture: GateObserver {
    let observedLayers: Set<Int>?
    /// recurrent layer index -> position among recorded layers, or -1.
    let slotOf: [Int]
    let units: [Int]
    let planes: [Int]
    var buffer: BatchBuffer

    init(observed: [Int], layerCount: Int, units: [Int], planes: [Int], buffer: BatchBuffer) {
        observedLayers = Set(observed)
        var slots = [Int](repeating: -1, count: layerCount)
        for (k, l) in observed.enumerated() { slots[l] = k }
        slotOf = slots
        self.units = units
        self.planes = planes
        self.buffer = buffer
    }

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
                    let src = b * u
                    // Interleave the planes unit by unit: the INSERT loop reads a row at a time.
                    for (p, plane) in s.planes.enumerated() {
                        let from = plane.baseAddress! + src
                        for j in 0..<u { dst[j * width + p] = from[j] }
                    }
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
/// thread inserts the previous batch, so SQLite is busy all the time.
final class Session {
    let db: Database
    let model: Model
    let observed: [Int]
    let units: [Int]
    /// The cell of each recorded layer, and its number of planes (gate columns).
    let cells: [CellKind]
    let planes: [Int]
    let options: RecordOptions
    let vocab: Vocab?
    let total: Int
    let stop: StopFlag?
    let progress: ((RecordProgress) -> Void)?
    let summaries: SummaryAccumulator

    var runID: Int64 = 0
    /// Index of the run's first sequence in the whole input (a shard's start, else 0).
    var firstSequence = 0
    /// Sequences in the whole input, when the run is a shard.
    var inputSequences: Int?
    /// First sequence this invocation writes (> firstSequence when resuming).
    var startSequence = 0
    var committedSequences = 0
    var committedSteps: Int64 = 0
    var committedRows: Int64 = 0
    /// Copies the WAL into the database on another thread while this one writes.
    var checkpointer: Checkpointer?
    /// Where the time goes, printed on stderr when GATESCOPE_TIMING is set (for scripts/bench_record.sh).
    let timings = Timings()

    init(db: Database, model: Model, observed: [Int], options: RecordOptions, vocab: Vocab?, total: Int,
         stop: StopFlag?, progress: ((RecordProgress) -> Void)?) throws {
        self.db = db
        self.model = model
        self.observed = observed
        self.units = observed.map { model.recurrentLayers[$0].units }
        self.cells = observed.map { model.recurrentLayers[$0].cell }
        self.planes = cells.map { $0.planes.count }
        self.options = options
        self.vocab = vocab
        self.total = total
        self.stop = stop
        self.progress = progress
        self.summaries = SummaryAccumulator(layerIDs: observed, units: units, cells: cells)
    }

    /// Inserts the `runs` row (status running) and the recorded `layers`.
    func createRun(modelPath: String, modelSHA: String, inputPath: String, inputSHA: String) throws -> Int64 {
        try db.transaction {
            try db.run("""
                INSERT INTO runs (name, model_path, model_sha256, model_format, keras_version, producer, input_path, input_sha256,
                                  status, created_at, tool_version, params, sequence_count, shard_index, shard_count, input_sequences)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)
                """, options.name, modelPath, modelSHA, model.format, model.kerasVersion.isEmpty ? nil : model.kerasVersion,
                model.producer.isEmpty ? nil : model.producer, inputPath, inputSHA, utcNow(), options.toolVersion, options.paramsJSON, total,
                options.shard?.index, options.shard?.count, inputSequences ?? total)
            runID = db.lastInsertRowID
            let insert = try db.prepare("""
                INSERT INTO layers (run_id, layer_id, name, direction, units, input_dim, activation, recurrent_activation,
                                    time_input, aligned, cell)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for index in observed {
                let l = model.recurrentLayers[index]
                // Tokens are those of the first input: only its aligned axis lines up with them.
                let aligned = l.time?.aligned == true && l.time?.input == model.graph.inputs[0].name
                try insert.bind([runID, l.index, l.name, l.direction.rawValue, l.units, l.inputDim,
                                 l.activation.kerasName, l.recurrentActivation.kerasName,
                                 l.time?.input, aligned ? 1 : 0, l.cell.rawValue] as [SQLiteBindable?])
                try insert.run()
            }
        }
        return runID
    }

    /// Continues run `runID`: checks its layers, drops rows of sequences that were not committed,
    /// and rebuilds the summaries of the committed rows (in the order they were first added).
    func prepareResume(runID: Int64) throws {
        self.runID = runID
        try db.transaction {
            let storedRows = try db.query("SELECT layer_id, cell FROM layers WHERE run_id = ? ORDER BY layer_id", [runID]).allRows()
            let stored = storedRows.compactMap { $0[0].int64Value.map(Int.init) }
            guard stored == observed, storedRows.map({ $0[1].stringValue ?? "" }) == cells.map(\.rawValue) else {
                throw DatabaseError(code: SQLITE_MISMATCH, message: "run \(runID) recorded layers \(stored), the model gives \(observed); is it the same model?")
            }
            guard let row = try db.query("SELECT count(*), coalesce(max(seq_id), -1), coalesce(sum(length), 0) FROM sequences WHERE run_id = ?", [runID]).nextRow(),
                  let count = row[0].int64Value, let maxID = row[1].int64Value, let steps = row[2].int64Value else {
                throw DatabaseError(message: "cannot read the sequences of run \(runID)")
            }
            let first = Int64(firstSequence)
            guard count == 0 || maxID + 1 - first == count else {
                throw DatabaseError(code: SQLITE_CORRUPT, message: "run \(runID) has \(count) sequences but ids \(first) to \(maxID); cannot resume it")
            }
            // Whole-sequence commits leave no partial rows; this only removes rows a foreign writer left.
            for cell in Set(cells) {
                try db.run("DELETE FROM \(cell.table) WHERE run_id = ? AND seq_id >= ?", runID, first + count)
            }
            try db.run("DELETE FROM tokens WHERE run_id = ? AND seq_id >= ?", runID, first + count)
            try db.run("DELETE FROM unit_summaries WHERE run_id = ?", runID)
            committedSequences = Int(count)
            committedSteps = steps
            committedRows = try rebuildSummaries()
            startSequence = firstSequence + Int(count)
            try db.run("""
                UPDATE runs SET status = 'running', error = NULL, finished_at = NULL,
                       recorded_sequences = ?, recorded_steps = ?, row_count = ?, sequence_count = ?
                WHERE run_id = ?
                """, committedSequences, committedSteps, committedRows, total, runID)
        }
    }

    /// Re-adds every committed row to the summaries, in primary-key order (the recorder's order
    /// within each (layer, unit), which is all the summaries depend on).
    func rebuildSummaries() throws -> Int64 {
        var position = [Int](repeating: -1, count: model.recurrentLayers.count)
        for (k, l) in observed.enumerated() { position[l] = k }
        var rows: Int64 = 0
        for cell in CellKind.allCases where cells.contains(cell) {
            let width = cell.planes.count
            let st = try db.prepare("SELECT layer_id, unit, \(cell.planes.joined(separator: ", ")) FROM \(cell.table) WHERE run_id = ? ORDER BY seq_id, layer_id, step, unit")
            try st.bind([runID])
            var values = [Float](repeating: 0, count: width)
            while try st.step() {
                let layer = st.int(at: 0), unit = st.int(at: 1)
                guard layer >= 0, layer < position.count, position[layer] >= 0, cells[position[layer]] == cell,
                      unit >= 0, unit < units[position[layer]] else {
                    throw DatabaseError(code: SQLITE_CORRUPT, message: "run \(runID) has a \(cell.table) row for layer \(layer), unit \(unit) that the model does not record")
                }
                // Stored REALs are Double(Float32): converting back is exact.
                for g in 0..<width { values[g] = Float(st.double(at: 2 + g)) }
                values.withUnsafeBufferPointer { summaries.add(layer: position[layer], unit: unit, $0.baseAddress!) }
                rows += 1
            }
        }
        return rows
    }

    enum Item {
        case batch(BatchBuffer)
        case failure(Error)
        case end
    }

    /// Records from the input (sequences before `startSequence` are read but not written).
    func run(open: () throws -> any SequenceReader) throws -> RecordResult {
        let reader = try open()
        let ready = Handoff<Item>(capacity: 1)
        let pool = Handoff<BatchBuffer>(capacity: 2)
        _ = pool.put(BatchBuffer())
        _ = pool.put(BatchBuffer())
        let producerDone = DispatchSemaphore(value: 0)
        let producer = Producer(session: self, reader: reader, ready: ready, pool: pool)
        let thread = Thread {
            producer.run()
            producerDone.signal()
        }
        thread.stackSize = 8 << 20
        thread.start()
        checkpointer = Checkpointer(path: db.path)
        checkpointer?.attach(to: db)
        defer {
            // Unblock and wait for the worker whatever happens, so it never outlives the call.
            ready.close()
            pool.close()
            producerDone.wait()
            checkpointer?.detach(from: db)
            checkpointer = nil
        }
        return try consume(ready: ready, pool: pool)
    }

    /// The insert loop (this thread owns the database connection).
    func consume(ready: Handoff<Item>, pool: Handoff<BatchBuffer>) throws -> RecordResult {
        // One INSERT per cell kind recorded; each layer writes through its cell's.
        var insertByCell: [CellKind: Statement] = [:]
        for cell in Set(cells) {
            let st = try db.prepare(cell.insertSQL)
            try st.bind(runID, at: 1)
            insertByCell[cell] = st
        }
        let layerInserts = cells.map { insertByCell[$0]! }
        let insertSequence = try db.prepare("INSERT INTO sequences (run_id, seq_id, length, source_id) VALUES (?, ?, ?, ?)")
        let insertToken = try db.prepare("INSERT INTO tokens (run_id, seq_id, step, token_id, token) VALUES (?, ?, ?, ?, ?)")
        let updateRun = try db.prepare("UPDATE runs SET recorded_sequences = ?, recorded_steps = ?, row_count = ? WHERE run_id = ?")
        try insertSequence.bind(runID, at: 1)
        try insertToken.bind(runID, at: 1)
        try updateRun.bind(runID, at: 4)

        let started = Date()
        let startedNanos = DispatchTime.now().uptimeNanoseconds
        var rowsWritten: Int64 = 0
        var pendingRows = 0, pendingSequences = 0
        var pendingSteps: Int64 = 0
        var batches = 0
        var tokenText: [Int32: String?] = [:]

        func report() {
            progress?(RecordProgress(sequencesDone: committedSequences, sequencesTotal: total, rowsWritten: rowsWritten,
                                     elapsed: Date().timeIntervalSince(started), startSequences: startSequence - firstSequence))
        }
        func commit() throws {
            committedSequences += pendingSequences
            committedSteps += pendingSteps
            committedRows += Int64(pendingRows)
            try updateRun.bind(committedSequences, at: 1)
            try updateRun.bind(committedSteps, at: 2)
            try updateRun.bind(committedRows, at: 3)
            try updateRun.run()
            let commitStart = timings.enabled ? DispatchTime.now().uptimeNanoseconds : 0
            try db.commit()
            if timings.enabled { timings.add(\.commit, since: commitStart) }
            rowsWritten += Int64(pendingRows)
            pendingRows = 0; pendingSequences = 0; pendingSteps = 0
            report()
        }

        report()
        try db.begin()
        do {
            while true {
                let waitStart = timings.enabled ? DispatchTime.now().uptimeNanoseconds : 0
                guard let item = ready.take() else { throw DatabaseError(message: "the recording worker stopped unexpectedly") }
                if timings.enabled { timings.add(\.waitEngine, since: waitStart) }
                let buf: BatchBuffer
                switch item {
                case .end:
                    // The worker is done: free the batch buffers before the summaries are written.
                    pool.close()
                    pool.removeAll()
                    defer { timings.print(total: DispatchTime.now().uptimeNanoseconds - startedNanos) }
                    try finish(pendingSequences: pendingSequences, pendingSteps: pendingSteps, pendingRows: pendingRows)
                    rowsWritten += Int64(pendingRows)
                    report()
                    return RecordResult(runID: runID, completed: true, sequencesDone: committedSequences,
                                        sequencesTotal: total, rowsWritten: rowsWritten)
                case let .failure(error):
                    throw error
                case let .batch(b):
                    buf = b
                }

                let layerCount = units.count
                for b in 0..<buf.count where buf.indices[b] >= startSequence {
                    let seq = buf.indices[b], length = buf.lengths[b]
                    try insertSequence.bind(seq, at: 2)
                    try insertSequence.bind(length, at: 3)
                    try insertSequence.bind(buf.sourceIDs[b], at: 4)
                    try insertSequence.run()
                    if let tokens = buf.tokens {
                        try insertToken.bind(seq, at: 2)
                        for t in 0..<length {
                            let id = tokens[b * buf.time + t]
                            try insertToken.bind(t, at: 3)
                            try insertToken.bind(Int(id), at: 4)
                            let text: String?
                            if let cached = tokenText[id] { text = cached } else {
                                text = vocab?.token(for: id)
                                tokenText[id] = text
                            }
                            try insertToken.bind(text, at: 5)
                            try insertToken.run()
                        }
                    }
                    var rows = 0
                    try buf.gates.withUnsafeBufferPointer { gp in
                        try buf.active.withUnsafeBufferPointer { ap in
                            for li in 0..<layerCount {
                                let insert = layerInserts[li]
                                let gh = insert.handle
                                try insert.bindInt64(Int64(seq), at: 2)
                                try insert.bindInt64(Int64(observed[li]), at: 3)
                                let u = units[li], width = planes[li]
                                let activeBase = b * buf.activeStride + buf.activeOffset[li]
                                let layerBase = gp.baseAddress! + b * buf.seqStride + buf.layerOffset[li]
                                for t in 0..<buf.layerTime[li] where ap[activeBase + t] {
                                    try insert.bindInt64(Int64(t), at: 4)
                                    var p = layerBase + t * u * width
                                    for unit in 0..<u {
                                        var rc = sqlite3_bind_int64(gh, 5, Int64(unit))
                                        for k in 0..<width {
                                            let v = Double(p[k])
                                            if v.isNaN {
                                                throw DatabaseError(code: SQLITE_MISMATCH, message: "the engine produced NaN at sequence \(seq), layer \(model.recurrentLayers[observed[li]].name), step \(t), unit \(unit), gate \(cells[li].planes[k]) (check the model weights); SQLite would store NULL", sql: insert.sql)
                                            }
                                            rc |= sqlite3_bind_double(gh, Int32(6 + k), v)
                                        }
                                        if rc != SQLITE_OK {
                                            throw DatabaseError(code: rc, message: String(cString: sqlite3_errmsg(db.handle)), sql: insert.sql)
                                        }
                                        try insert.run()
                                        p += width
                                    }
                                    rows += u
                                }
                            }
                        }
                    }
                    pendingRows += rows
                    pendingSequences += 1
                    pendingSteps += Int64(length)
                    if pendingRows >= options.commitRows {
                        try commit()
                        try db.begin()
                    }
                }
                _ = pool.put(buf)
                batches += 1
                if pendingSequences > 0 {
                    try commit()
                    try db.begin()
                }
                let stopNow = stop?.isRequested == true || options.stopAfterBatches.map { batches >= $0 } == true
                if stopNow && committedSequences < total {
                    try db.run("UPDATE runs SET error = ? WHERE run_id = ?",
                               "interrupted after \(committedSequences) of \(total) sequences; continue with --resume \(runID)", runID)
                    try db.commit()
                    return RecordResult(runID: runID, completed: false, sequencesDone: committedSequences,
                                        sequencesTotal: total, rowsWritten: rowsWritten)
                }
            }
        } catch {
            try? db.rollback()
            throw error
        }
    }

    /// Writes the last rows, the summaries and status `complete` in one transaction.
    func finish(pendingSequences: Int, pendingSteps: Int64, pendingRows: Int) throws {
        committedSequences += pendingSequences
        committedSteps += pendingSteps
        committedRows += Int64(pendingRows)
        try summaries.write(to: db, runID: runID)
        try db.run("""
            UPDATE runs SET status = 'complete', error = NULL, finished_at = ?,
                   recorded_sequences = ?, recorded_steps = ?, row_count = ?
            WHERE run_id = ?
            """, utcNow(), committedSequences, committedSteps, committedRows, runID)
        try db.commit()
    }

    /// Marks the run failed with the error's message (committed work stays).
    func markFailed(_ error: Error) {
        guard runID > 0 else { return }
        try? db.rollback()
        _ = try? db.run("UPDATE runs SET status = 'failed', error = ?, finished_at = ? WHERE run_id = ?",
                    String(describing: error), utcNow(), runID)
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
        // idle BLAS threads would spin on the core SQLite needs.
        _ = try session.model.run(values, lengths: graphInputs.indices.map { byModelIndex[$0]?.lengths }, observer: capture, threads: 1)
        let t1 = session.timings.enabled ? DispatchTime.now().uptimeNanoseconds : 0
        accumulate(buffer)
        if session.timings.enabled {
            session.timings.add(\.engine, since: t0, until: t1)
            session.timings.add(\.summaries, since: t1)
        }
    }

    /// Adds the batch's rows to the summaries in primary-key order (seq, layer, step, unit).
    func accumulate(_ buf: BatchBuffer) {
        let acc = session.summaries
        let layerCount = session.units.count
        buf.gates.withUnsafeBufferPointer { gp in
            buf.active.withUnsafeBufferPointer { ap in
                for b in 0..<buf.count where buf.indices[b] >= session.startSequence {
                    for li in 0..<layerCount {
                        let u = session.units[li], width = session.planes[li]
                        let activeBase = b * buf.activeStride + buf.activeOffset[li]
                        let layerBase = gp.baseAddress! + b * buf.seqStride + buf.layerOffset[li]
                        for t in 0..<buf.layerTime[li] where ap[activeBase + t] {
                            let p = layerBase + t * u * width
                            for unit in 0..<u { acc.add(layer: li, unit: unit, p + unit * width) }
                        }
                    }
                }
            }
        }
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
        FileHandle.standardError.write(Data("timing: writer \(s(total)) (waiting for the engine \(s(waitEngine)), commits \(s(commit))); worker: engine \(s(engine)), summaries \(s(summaries))\n".utf8))
    }
}

/// Runs passive WAL checkpoints on its own connection and thread, so the writer rarely stops to
/// copy pages into the database and sync (what `wal_autocheckpoint` does inside each commit).
/// It replaces the writer's autocheckpoint through `sqlite3_wal_hook`: after a commit it is poked;
/// once the WAL holds `resetFrames` frames the writer waits for one catch-up checkpoint of the
/// few frames not copied yet, so that its next transaction restarts the WAL from the beginning
/// (otherwise the WAL would grow as large as the database). Crash safety is unchanged: a
/// checkpoint only copies committed frames.
final class Checkpointer: @unchecked Sendable {
    /// Closed in `detach`, so the writer is the last connection and its close removes the WAL.
    private var db: Database?
    private let condition = NSCondition()
    private var pending = false
    private var running = false
    private var stopping = false
    private let done = DispatchSemaphore(value: 0)
    /// WAL size (frames) at which the writer waits for a catch-up checkpoint.
    let resetFrames: Int32

    /// Nil if a second connection cannot be opened (the writer then keeps its autocheckpoint).
    init?(path: String, resetBytes: Int = 64 << 20) {
        guard path != ":memory:", !path.isEmpty, let db = try? Database(path: path, mode: .readWrite) else { return nil }
        self.db = db
        let pageSize = (try? db.scalar("PRAGMA page_size")?.int64Value).flatMap { $0 }.map(Int.init) ?? 4096
        resetFrames = Int32(Swift.max(256, resetBytes / Swift.max(pageSize, 512)))
        let thread = Thread { [self] in
            loop()
            done.signal()
        }
        thread.start()
    }

    /// Takes over the writer's checkpoints (until `detach`).
    func attach(to writer: Database) {
        let context = Unmanaged.passUnretained(self).toOpaque()
        sqlite3_wal_hook(writer.handle, { context, _, _, frames in
            Unmanaged<Checkpointer>.fromOpaque(context!).takeUnretainedValue().committed(frames: frames)
            return SQLITE_OK
        }, context)
    }

    /// Gives the writer its autocheckpoint back and ends the thread.
    func detach(from writer: Database) {
        sqlite3_wal_hook(writer.handle, nil, nil)
        _ = try? writer.execute("PRAGMA wal_autocheckpoint = 8192")
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
        done.wait()
        db = nil
    }

    /// Called by the writer after each commit with the WAL's size in frames.
    func committed(frames: Int32) {
        condition.lock()
        if frames < resetFrames {
            pending = true
            condition.broadcast()
            condition.unlock()
            return
        }
        // Catch up on this thread: the background run (if any) finishes first.
        while running { condition.wait() }
        checkpointLocked()
        condition.unlock()
    }

    /// Runs one checkpoint with `condition` held on entry and exit, released while it works.
    private func checkpointLocked() {
        running = true
        pending = false
        condition.unlock()
        checkpoint()
        condition.lock()
        running = false
        condition.broadcast()
    }

    private func checkpoint() {
        var frames: Int32 = 0, copied: Int32 = 0
        // PASSIVE never waits for the writer or readers; what it cannot copy now, a later one does.
        guard let db else { return }
        _ = sqlite3_wal_checkpoint_v2(db.handle, nil, SQLITE_CHECKPOINT_PASSIVE, &frames, &copied)
    }

    private func loop() {
        while true {
            condition.lock()
            while (!pending || running) && !stopping { condition.wait() }
            if stopping { condition.unlock(); return }
            checkpointLocked()
            condition.unlock()
        }
    }
}
