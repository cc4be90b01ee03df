import CSQLite
import Foundation
import GateScopeEngine

/// The gate values of one engine batch in primary-key order, ready to insert.
///
/// Layout: sequence b, recorded layer li, step t (on that layer's own time axis, `layerTime[li]`
/// steps), unit u, plane p (the layer cell's gates, `planes[li]` of them) at
/// `b * seqStride + layerOffset[li] + (t * units[li] + u) * planes[li] + p`;
/// `active[b * activeStride + activeOffset[li] + t]`.
public final class BatchBuffer: @unchecked Sendable {
    public var count = 0
    /// Padded steps of the first input.
    public var time = 0
    /// Steps of each recorded layer's time axis for this batch.
    public var layerTime: [Int] = []
    public var activeOffset: [Int] = []
    public var activeStride = 0
    public var indices: [Int] = []
    public var sourceIDs: [String?] = []
    public var lengths: [Int] = []
    /// `[count, time]` token ids when the first input takes tokens.
    public var tokens: [Int32]? = nil
    public var gates: [Float] = []
    public var active: [Bool] = []
    public var seqStride = 0
    public var layerOffset: [Int] = []

    /// Sizes the buffers for `count` sequences of `time` input steps whose recorded layers run
    /// `layerTime` steps each, with `units` units of `planes` values (capacity is kept between batches).
    /// An empty buffer.
    public init() {}

    public func reshape(count: Int, time: Int, layerTime: [Int], units: [Int], planes: [Int]) {
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

/// A recorded layer half as the `layers` table stores it.
public struct RecordedLayer: Sendable, Equatable {
    public var layerID: Int
    public var name: String
    public var direction: String
    public var cell: CellKind
    public var units: Int
    public var inputDim: Int
    public var activation: String
    public var recurrentActivation: String
    /// The model input whose time axis the layer walks, nil when made inside the model.
    public var timeInput: String?
    /// True when step t is step t of the first input (and of its tokens).
    public var aligned: Bool

    public init(layerID: Int, name: String, direction: String, cell: CellKind, units: Int, inputDim: Int,
                activation: String, recurrentActivation: String, timeInput: String?, aligned: Bool) {
        self.layerID = layerID; self.name = name; self.direction = direction; self.cell = cell; self.units = units
        self.inputDim = inputDim; self.activation = activation; self.recurrentActivation = recurrentActivation
        self.timeInput = timeInput; self.aligned = aligned
    }
}

/// What the `runs` row of a new recording says.
public struct NewRun: Sendable {
    public var name: String?
    public var modelPath: String
    public var modelSHA256: String
    public var modelFormat: String
    public var kerasVersion: String?
    public var producer: String?
    public var inputPath: String
    public var inputSHA256: String
    public var toolVersion: String
    /// The record options as JSON (`runs.params`).
    public var params: String
    /// Sequences this run records (a shard's share).
    public var sequenceCount: Int
    public var shardIndex: Int?
    public var shardCount: Int?
    /// Sequences in the whole input.
    public var inputSequences: Int

    public init(name: String?, modelPath: String, modelSHA256: String, modelFormat: String, kerasVersion: String?, producer: String?,
                inputPath: String, inputSHA256: String, toolVersion: String, params: String, sequenceCount: Int,
                shardIndex: Int?, shardCount: Int?, inputSequences: Int) {
        self.name = name; self.modelPath = modelPath; self.modelSHA256 = modelSHA256; self.modelFormat = modelFormat
        self.kerasVersion = kerasVersion; self.producer = producer; self.inputPath = inputPath; self.inputSHA256 = inputSHA256
        self.toolVersion = toolVersion; self.params = params; self.sequenceCount = sequenceCount
        self.shardIndex = shardIndex; self.shardCount = shardCount; self.inputSequences = inputSequences
    }
}

/// The `runs` row a resume continues.
public struct StoredRun: Sendable {
    public var runID: Int64
    public var status: String
    public var modelSHA256: String
    public var inputSHA256: String
    public var params: String
}

/// The storage side of a recording: the only place its SQL lives. The recording pipeline
/// (GateScopeRecording) hands it batches of gate values in primary-key order and says when to
/// commit; the writer inserts them, keeps the run's bookkeeping and writes the summaries.
///
/// A run's data is consistent at every commit: a sequence's `sequences`, `tokens` and gate rows
/// are written in one transaction.
public final class RunWriter {
    let db: Database
    public let layers: [RecordedLayer]
    /// The per-unit summaries the pipeline adds every written row to.
    public let summaries: SummaryAccumulator
    /// Pair moments of h and memory spans, which the pipeline adds every written sequence to.
    public let extras: SequenceAccumulators
    public private(set) var runID: Int64 = 0
    public private(set) var committedSequences = 0
    public private(set) var committedSteps: Int64 = 0
    public private(set) var committedRows: Int64 = 0
    private var pendingSequences = 0
    private var pendingSteps: Int64 = 0
    private var pendingRows = 0
    private var insertByLayer: [Statement] = []
    private var insertSequence: Statement?
    private var insertToken: Statement?
    private var updateRun: Statement?
    private var tokenText: [Int32: String?] = [:]
    private var checkpointer: Checkpointer?
    /// Space kept aside so that a full disk still lets `markFailed` write (see `SpaceReserve`).
    private var reserve: SpaceReserve?
    /// This process's claim on the run: taken by `create`, or handed in by a resume (`RunLock`).
    public var lock: RunLock?
    /// False for a summaries-only run: `append` writes the `sequences` and `tokens` rows but no gate rows.
    public var storesRows = true
    /// The token text of an id, for `tokens.token` (the vocabulary's).
    public var tokenName: (Int32) -> String? = { _ in nil }

    /// Page size of databases the recorder creates: larger pages mean fewer page writes per row
    /// (measured with scripts/bench_record.sh, which gives its C yardstick the same page size).
    public static let pageSize = 16384

    /// Opens (creating if needed) and migrates `path` for writing a run of `layers`.
    public init(path: String, layers: [RecordedLayer]) throws {
        // The reserve first: with no room even for it, nothing (not even an empty database) is made.
        reserve = try SpaceReserve(databasePath: path)
        db = try Database(path: path, mode: .readWriteCreate, pageSize: Self.pageSize)
        try Schema.migrate(db)
        try Self.configureWriter(db)
        self.layers = layers
        summaries = SummaryAccumulator(layerIDs: layers.map(\.layerID), units: layers.map(\.units), cells: layers.map(\.cell))
        extras = SequenceAccumulators(layers: layers)
    }

    /// Writer settings: see the benchmark notes in scripts/bench_record.sh.
    static func configureWriter(_ db: Database) throws {
        // WAL + NORMAL: a crash or kill never corrupts and loses at most uncommitted work.
        try db.execute("PRAGMA synchronous = NORMAL")
        // Enough cache for one commit's dirty pages, so nothing spills mid-transaction.
        try db.execute("PRAGMA cache_size = -8192")
        // Larger, fewer checkpoints if the background checkpointer cannot run (see Checkpointer).
        try db.execute("PRAGMA wal_autocheckpoint = 8192")
    }

    /// The run a resume continues, from an existing database (migrated first).
    public static func storedRun(path: String, runID: Int64) throws -> StoredRun {
        let db = try Database(path: path, mode: .readWrite)
        try Schema.migrate(db)
        guard let row = try db.query("SELECT status, model_sha256, input_sha256, params FROM runs WHERE run_id = ?", [runID]).nextRow() else {
            throw StoreError("no run \(runID) in '\(db.path)' to resume")
        }
        let status = row[0].stringValue ?? ""
        if status == "complete" {
            throw StoreError("run \(runID) is already complete; nothing to resume")
        }
        return StoredRun(runID: runID, status: status, modelSHA256: row[1].stringValue ?? "",
                         inputSHA256: row[2].stringValue ?? "", params: row[3].stringValue ?? "{}")
    }

    /// Inserts the `runs` row (status running) and the recorded `layers`.
    public func create(_ run: NewRun) throws {
        try db.transaction {
            try db.run("""
                INSERT INTO runs (name, model_path, model_sha256, model_format, keras_version, producer, input_path, input_sha256,
                                  status, created_at, tool_version, params, sequence_count, shard_index, shard_count, input_sequences)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)
                """, run.name, run.modelPath, run.modelSHA256, run.modelFormat, run.kerasVersion, run.producer, run.inputPath,
                run.inputSHA256, utcNow(), run.toolVersion, run.params, run.sequenceCount, run.shardIndex, run.shardCount, run.inputSequences)
            runID = db.lastInsertRowID
            // Before the commit makes the run visible, so no resume can claim it first.
            lock = try RunLock(databasePath: db.path, runID: runID)
            let insert = try db.prepare("""
                INSERT INTO layers (run_id, layer_id, name, direction, units, input_dim, activation, recurrent_activation,
                                    time_input, aligned, cell)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for l in layers {
                try insert.bind([runID, l.layerID, l.name, l.direction, l.units, l.inputDim, l.activation, l.recurrentActivation,
                                 l.timeInput, l.aligned ? 1 : 0, l.cell.rawValue] as [SQLiteBindable?])
                try insert.run()
            }
        }
    }

    /// Continues run `runID`, whose sequences start at `firstSequence`: checks its layers, drops
    /// rows of sequences that were not committed, rebuilds the summaries of the committed rows,
    /// and returns how many sequences are committed.
    public func resume(runID: Int64, firstSequence: Int, sequenceCount: Int) throws -> Int {
        self.runID = runID
        let cells = layers.map(\.cell)
        return try db.transaction {
            let storedRows = try db.query("SELECT layer_id, cell FROM layers WHERE run_id = ? ORDER BY layer_id", [runID]).allRows()
            let stored = storedRows.compactMap { $0[0].int64Value.map(Int.init) }
            guard stored == layers.map(\.layerID), storedRows.map({ $0[1].stringValue ?? "" }) == cells.map(\.rawValue) else {
                throw StoreError("run \(runID) recorded layers \(stored), the model gives \(layers.map(\.layerID)); is it the same model?")
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
            for table in SequenceAccumulators.tables { try db.run("DELETE FROM \(table.name) WHERE run_id = ?", runID) }
            committedSequences = Int(count)
            committedSteps = steps
            committedRows = try rebuildSummaries()
            // What the run builds on must be what was committed: the recorder's own counts, kept in
            // the same transactions as the rows, against what the tables hold now. A mismatch rolls
            // back this transaction, so a damaged database is left as it was.
            let counts = try db.query("SELECT recorded_sequences, row_count FROM runs WHERE run_id = ?", [runID]).nextRow()
            let recordedSequences = counts?[0].int64Value ?? 0, recordedRows = counts?[1].int64Value ?? 0
            guard count == recordedSequences, committedRows == recordedRows else {
                throw DatabaseError(code: SQLITE_CORRUPT, message: "run \(runID) is damaged: its tables hold \(count) sequences and \(committedRows) gate rows, the recorder committed \(recordedSequences) and \(recordedRows); not resuming (see `gatescope check`)")
            }
            try db.run("""
                UPDATE runs SET status = 'running', error = NULL, finished_at = NULL,
                       recorded_sequences = ?, recorded_steps = ?, row_count = ?, sequence_count = ?
                WHERE run_id = ?
                """, committedSequences, committedSteps, committedRows, sequenceCount, runID)
            return Int(count)
        }
    }

    /// Re-adds every committed row to the summaries, in primary-key order (the recorder's order
    /// within each (layer, unit); the exact sums do not even depend on that), and each sequence's
    /// steps to the pair moments and spans.
    func rebuildSummaries() throws -> Int64 {
        let maxID = layers.map(\.layerID).max() ?? 0
        var position = [Int](repeating: -1, count: maxID + 1)
        for (k, l) in layers.enumerated() { position[l.layerID] = k }
        var rows: Int64 = 0
        for cell in CellKind.allCases where layers.contains(where: { $0.cell == cell }) {
            let width = cell.planes.count
            let st = try db.prepare("SELECT seq_id, layer_id, step, unit, \(cell.planes.joined(separator: ", ")) FROM \(cell.table) WHERE run_id = ? ORDER BY seq_id, layer_id, step, unit")
            try st.bind([runID])
            var values = [Float](repeating: 0, count: width)
            let block = SequenceBlock()
            while try st.step() {
                let seq = st.int64(at: 0), layer = st.int(at: 1), step = st.int(at: 2), unit = st.int(at: 3)
                guard layer >= 0, layer < position.count, position[layer] >= 0, layers[position[layer]].cell == cell,
                      unit >= 0, unit < layers[position[layer]].units else {
                    throw DatabaseError(code: SQLITE_CORRUPT, message: "run \(runID) has a \(cell.table) row for layer \(layer), unit \(unit) that the model does not record")
                }
                let li = position[layer]
                guard step >= 0, step < SequenceBlock.maxSteps else {
                    throw DatabaseError(code: SQLITE_CORRUPT, message: "run \(runID) sequence \(seq) layer \(layer) has a row at step \(step)")
                }
                if block.seqID != seq || block.layer != li {
                    block.feed(extras)
                    block.start(seqID: seq, layer: li, units: layers[li].units, width: width)
                }
                // Stored REALs are Double(Float32): converting back is exact.
                for g in 0..<width { values[g] = Float(st.double(at: 4 + g)) }
                values.withUnsafeBufferPointer { summaries.add(layer: li, unit: unit, $0.baseAddress!) }
                guard block.set(step: step, unit: unit, values) else {
                    throw DatabaseError(code: SQLITE_CORRUPT, message: "run \(runID) sequence \(seq) layer \(layer) has a row at step \(step), more steps than a sequence can hold")
                }
                rows += 1
            }
            block.feed(extras)
        }
        return rows
    }

    /// Prepares the statements, starts the background checkpointer and the first transaction.
    public func begin() throws {
        insertByLayer = try layers.map { l in
            let st = try db.prepare(l.cell.insertSQL)
            try st.bind(runID, at: 1)
            try st.bindInt64(Int64(l.layerID), at: 3)
            return st
        }
        insertSequence = try db.prepare("INSERT INTO sequences (run_id, seq_id, length, source_id) VALUES (?, ?, ?, ?)")
        insertToken = try db.prepare("INSERT INTO tokens (run_id, seq_id, step, token_id, token) VALUES (?, ?, ?, ?, ?)")
        updateRun = try db.prepare("UPDATE runs SET recorded_sequences = ?, recorded_steps = ?, row_count = ? WHERE run_id = ?")
        try insertSequence!.bind(runID, at: 1)
        try insertToken!.bind(runID, at: 1)
        try updateRun!.bind(runID, at: 4)
        checkpointer = Checkpointer(path: db.path)
        checkpointer?.attach(to: db)
        try db.begin()
    }

    /// Gives the writer its autocheckpoint back (call once, whatever happened).
    public func end() {
        checkpointer?.detach(from: db)
        checkpointer = nil
    }

    /// Rows written since the last commit.
    public var uncommittedRows: Int { pendingRows }
    /// Sequences written since the last commit.
    public var uncommittedSequences: Int { pendingSequences }

    /// Writes sequence `b` of `batch` (its `sequences` row, tokens and gate rows); returns its rows.
    /// `describe(layer, step, unit, gate)` names a NaN value in the error.
    public func append(_ batch: BatchBuffer, sequence b: Int, nameOf: (Int) -> String) throws -> Int {
        let seq = batch.indices[b], length = batch.lengths[b]
        let insertSequence = insertSequence!, insertToken = insertToken!
        try insertSequence.bind(seq, at: 2)
        try insertSequence.bind(length, at: 3)
        try insertSequence.bind(batch.sourceIDs[b], at: 4)
        try insertSequence.run()
        if let tokens = batch.tokens {
            try insertToken.bind(seq, at: 2)
            for t in 0..<length {
                let id = tokens[b * batch.time + t]
                try insertToken.bind(t, at: 3)
                try insertToken.bind(Int(id), at: 4)
                let text: String?
                if let cached = tokenText[id] { text = cached } else {
                    text = tokenName(id)
                    tokenText[id] = text
                }
                try insertToken.bind(text, at: 5)
                try insertToken.run()
            }
        }
        var rows = 0
        if storesRows {
        try batch.gates.withUnsafeBufferPointer { gp in
            try batch.active.withUnsafeBufferPointer { ap in
                for (li, layer) in layers.enumerated() {
                    let insert = insertByLayer[li]
                    let gh = insert.handle
                    try insert.bindInt64(Int64(seq), at: 2)
                    let u = layer.units, width = layer.cell.planes.count
                    let activeBase = b * batch.activeStride + batch.activeOffset[li]
                    let layerBase = gp.baseAddress! + b * batch.seqStride + batch.layerOffset[li]
                    for t in 0..<batch.layerTime[li] where ap[activeBase + t] {
                        try insert.bindInt64(Int64(t), at: 4)
                        var p = layerBase + t * u * width
                        for unit in 0..<u {
                            var rc = sqlite3_bind_int64(gh, 5, Int64(unit))
                            for k in 0..<width {
                                let v = Double(p[k])
                                if v.isNaN {
                                    throw DatabaseError(code: SQLITE_MISMATCH, message: "the engine produced NaN at sequence \(seq), layer \(nameOf(li)), step \(t), unit \(unit), gate \(layer.cell.planes[k]) (check the model weights); SQLite would store NULL", sql: insert.sql)
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
        }
        pendingRows += rows
        pendingSequences += 1
        pendingSteps += Int64(length)
        return rows
    }

    /// Commits what was appended (with the run's counters) and starts the next transaction.
    public func commit() throws {
        committedSequences += pendingSequences
        committedSteps += pendingSteps
        committedRows += Int64(pendingRows)
        let updateRun = updateRun!
        try updateRun.bind(committedSequences, at: 1)
        try updateRun.bind(committedSteps, at: 2)
        try updateRun.bind(committedRows, at: 3)
        try updateRun.run()
        try db.commit()
        pendingRows = 0; pendingSequences = 0; pendingSteps = 0
        try db.begin()
    }

    /// Writes the last rows, the summaries and status `complete` in one transaction.
    public func finish() throws {
        committedSequences += pendingSequences
        committedSteps += pendingSteps
        committedRows += Int64(pendingRows)
        pendingRows = 0; pendingSequences = 0; pendingSteps = 0
        try summaries.write(to: db, runID: runID)
        try extras.write(to: db, runID: runID, layerIDs: layers.map(\.layerID))
        try db.run("""
            UPDATE runs SET status = 'complete', error = NULL, finished_at = ?,
                   recorded_sequences = ?, recorded_steps = ?, row_count = ?
            WHERE run_id = ?
            """, utcNow(), committedSequences, committedSteps, committedRows, runID)
        try db.commit()
    }

    /// Leaves the run resumable: what is committed stays, `error` says why it stopped.
    public func interrupted(_ message: String) throws {
        try db.run("UPDATE runs SET error = ? WHERE run_id = ?", message, runID)
        try db.commit()
    }

    /// Marks the run failed with the error's message (committed work stays). On a full disk the
    /// space reserve is given back first, so the status and error are written in every case.
    public func markFailed(_ error: Error) {
        guard runID > 0 else { return }
        try? db.rollback()
        try? withReserve {
            try db.run("UPDATE runs SET status = 'failed', error = ?, finished_at = ? WHERE run_id = ?",
                       String(describing: error), utcNow(), runID)
        }
    }

    /// Runs the autocommit `write`; if it fails, frees the space reserve and tries once more.
    private func withReserve(_ write: () throws -> Void) throws {
        do {
            try write()
        } catch {
            guard let reserve else { throw error }
            reserve.release()
            self.reserve = nil
            try write()
        }
    }

    /// Rolls back what was not committed.
    public func rollback() { try? db.rollback() }
}

func utcNow() -> String {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime]
    return f.string(from: Date())
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
