import Foundation
import GateScopeEngine
import GateScopeInput
import GateScopeStore

/// Options of one recording (`gatescope record`); stored as JSON in `runs.params`.
public struct RecordOptions: Sendable, Equatable {
    /// Run label (`--name`).
    public var name: String?
    /// Vocabulary file for text inputs and token texts (`--vocab`).
    public var vocabPath: String?
    /// Id for characters missing from the vocabulary (`--unknown`); nil makes them an error.
    public var unknownID: Int32?
    /// Recurrent layers to store, by Keras name (`name`, `name:fwd`, `name:bwd`); nil for all.
    public var layers: [String]?
    /// Sequences per engine batch (`--batch-size`); a batch is smaller while ramping up
    /// (`batchRampStart`) and when its gate buffer would exceed `bufferBudgetBytes`.
    public var batchSize: Int = 64
    /// The first batch holds at most this many sequences and each next one twice as many, up to
    /// `batchSize`, so rows start flowing into SQLite at once instead of after a whole batch
    /// (0: every batch is `batchSize`).
    public var batchRampStart: Int = 4
    /// Upper bound of one batch's gate buffer (the recorder keeps two).
    public var bufferBudgetBytes: Int = 16 << 20
    /// A transaction is committed after the first whole sequence that brings it to this many rows
    /// (and at the end of every batch).
    public var commitRows: Int = 50_000
    /// Continue this run instead of starting a new one (`--resume`). Its stored options are used.
    public var resumeRunID: Int64?
    /// The version written to `runs.tool_version`.
    public var toolVersion: String = GateScopeVersion.current
    /// Test hook: behave as if interrupted after this many batches were committed.
    public var stopAfterBatches: Int?
    /// Record only shard `index` (0-based) of `count` disjoint parts of the input (`--shard K/N`):
    /// sequences floor(K*total/N) ..< floor((K+1)*total/N), keeping their seq_id in the whole input.
    public var shard: Shard?
    /// Store the per-unit summaries, pair moments and spans (what `stats` and the summary-backed
    /// queries read) but no gate rows (`--summaries-only`): the engine, not SQLite, sets the pace.
    public var summariesOnly = false
    /// The kernels a stored run was recorded with (`fromParams`; nil for runs from before they were stored).
    var recordedKernels: String?

    /// A part of the input by sequence index.
    public struct Shard: Sendable, Equatable {
        public var index: Int
        public var count: Int
        /// Shard `index` of `count`; needs 0 <= index < count.
        public init(index: Int, count: Int) { self.index = index; self.count = count }
        /// The sequence indices of this shard among `total`.
        public func range(total: Int) -> Range<Int> {
            (total * index / count)..<(total * (index + 1) / count)
        }
    }

    /// Default options.
    public init() {}

    /// The options that shape the recorded rows, as stored in `runs.params`.
    var paramsJSON: String {
        var object: [String: Any] = [
            "batch_size": batchSize,
            "batch_ramp_start": batchRampStart,
            "buffer_budget_bytes": bufferBudgetBytes,
            "commit_rows": commitRows,
        ]
        object["name"] = name ?? NSNull()
        object["vocab"] = vocabPath ?? NSNull()
        object["unknown_id"] = unknownID.map { Int($0) } ?? NSNull()
        object["layers"] = layers ?? NSNull()
        if let shard { object["shard"] = [shard.index, shard.count] }
        if summariesOnly { object["summaries_only"] = true }
        // The kernels that computed the values: a resume or another shard must use the same ones
        // to be bit-identical (the vector paths agree with each other; the portable one may not).
        object["kernels"] = KernelPath.current.rawValue
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    /// Reads the options stored by `paramsJSON` (for `--resume`).
    static func fromParams(_ json: String) throws -> RecordOptions {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            throw RecordingError("runs.params is not a JSON object: \(json)")
        }
        var o = RecordOptions()
        o.name = object["name"] as? String
        o.vocabPath = object["vocab"] as? String
        o.unknownID = (object["unknown_id"] as? NSNumber).map { Int32(truncating: $0) }
        o.layers = object["layers"] as? [String]
        if let b = (object["batch_size"] as? NSNumber)?.intValue { o.batchSize = b }
        o.batchRampStart = (object["batch_ramp_start"] as? NSNumber)?.intValue ?? 0
        if let b = (object["buffer_budget_bytes"] as? NSNumber)?.intValue { o.bufferBudgetBytes = b }
        if let c = (object["commit_rows"] as? NSNumber)?.intValue { o.commitRows = c }
        if let s = object["shard"] as? [NSNumber], s.count == 2 { o.shard = Shard(index: s[0].intValue, count: s[1].intValue) }
        o.summariesOnly = (object["summaries_only"] as? NSNumber)?.boolValue ?? false
        o.recordedKernels = object["kernels"] as? String
        return o
    }
}

/// How far a recording is, reported after each commit.
public struct RecordProgress: Sendable {
    /// Sequences committed (including those of earlier invocations of a resumed run).
    public var sequencesDone: Int
    /// Sequences in the input.
    public var sequencesTotal: Int
    /// `gates` rows written by this invocation.
    public var rowsWritten: Int64
    /// Seconds since this invocation started writing.
    public var elapsed: Double

    /// Rows per second of this invocation.
    public var rowsPerSecond: Double { elapsed > 0 ? Double(rowsWritten) / elapsed : 0 }
    /// Estimated seconds left, from this invocation's pace (nil before anything is done).
    public var etaSeconds: Double? {
        guard elapsed > 0, sequencesDone > startSequences else { return nil }
        let rate = Double(sequencesDone - startSequences) / elapsed
        return Double(sequencesTotal - sequencesDone) / rate
    }
    /// Sequences already committed when this invocation started.
    public var startSequences: Int
}

/// What a recording ended with.
public struct RecordResult: Sendable, Equatable {
    /// The run written to.
    public var runID: Int64
    /// True when the run is `complete`; false when it stopped early (Ctrl-C) and is resumable.
    public var completed: Bool
    /// Sequences committed in total.
    public var sequencesDone: Int
    /// Sequences in the input.
    public var sequencesTotal: Int
    /// `gates` rows written by this invocation.
    public var rowsWritten: Int64
}

/// A flag another thread (e.g. a SIGINT handler) sets to stop a recording at the next batch boundary.
public final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var requested = false
    private var sources: [DispatchSourceSignal] = []

    /// A flag that is not set.
    public init() {}

    /// Asks the recording to stop.
    public func request() { lock.lock(); requested = true; lock.unlock() }
    /// True once `request()` was called.
    public var isRequested: Bool { lock.lock(); defer { lock.unlock() }; return requested }

    /// Sets the flag on SIGINT (Ctrl-C) and SIGTERM instead of letting them kill the process;
    /// `onSignal` runs (off the main thread) when one arrives.
    public func trapInterrupts(onSignal: @escaping @Sendable (Int32) -> Void = { _ in }) {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in
                self?.request()
                onSignal(sig)
            }
            source.resume()
            sources.append(source)
        }
    }
}

/// Why a recording could not start or go on, when it is not the input's or SQLite's fault
/// (those are `InputError` and `DatabaseError`): options, layers, resume checks.
public struct RecordingError: Error, CustomStringConvertible, Equatable {
    public var message: String
    /// True when the recording stopped because it was asked to (Ctrl-C) before anything was written.
    public var interrupted = false
    public init(_ message: String, interrupted: Bool = false) {
        self.message = message
        self.interrupted = interrupted
    }
    public var description: String { message }
}

/// Records gate values of a model over an input file into a GateScope database.
public enum Recorder {
    /// Records `inputPath` through `model` into `databasePath` (created if missing) and returns the run.
    ///
    /// The whole input is validated first (NaN/inf, feature count, token range): a bad input
    /// writes nothing. Rows are committed in whole sequences; on a thrown error the run becomes
    /// `failed`; when `stop` is set the run stays `running` and `--resume` continues it.
    public static func record(model: Model, modelPath: String, inputPath: String, databasePath: String,
                              options: RecordOptions = RecordOptions(), stop: StopFlag? = nil,
                              progress: ((RecordProgress) -> Void)? = nil) throws -> RecordResult {
        try record(model: model, modelPath: modelPath, inputPath: inputPath, databasePath: databasePath,
                   options: options, stop: stop, progress: progress, openInput: nil)
    }

    /// The same, reading sequences from `openInput` (called once per pass) instead of the file's reader.
    static func record(model: Model, modelPath: String, inputPath: String, databasePath: String,
                       options requested: RecordOptions, stop: StopFlag?, progress: ((RecordProgress) -> Void)?,
                       openInput: ((Vocab?, Int32?) throws -> any SequenceReader)?) throws -> RecordResult {
        guard !model.recurrentLayers.isEmpty else {
            throw RecordingError("model '\(model.name)' has no recurrent layer (LSTM, GRU or SimpleRNN) to record")
        }
        let modelSHA = try SHA256.hex(fileAt: modelPath)
        let inputSHA = try SHA256.hex(fileAt: inputPath)

        // Resuming reuses the run's stored options; read them before anything else.
        var options = requested
        var resumeRow: StoredRun? = nil
        var resumeLock: RunLock? = nil
        if let runID = requested.resumeRunID {
            // First of all: a run another process is recording is refused before anything is read or written.
            // (A missing database is storedRun's error; no lock file is made for it.)
            if FileManager.default.fileExists(atPath: databasePath) {
                resumeLock = try RunLock(databasePath: databasePath, runID: runID)
            }
            let info = try RunWriter.storedRun(path: databasePath, runID: runID)
            if info.modelSHA256 != modelSHA {
                throw RecordingError("run \(runID) was recorded from a different model file (sha256 \(info.modelSHA256.prefix(12))..., '\(modelPath)' is \(modelSHA.prefix(12))...)")
            }
            if info.inputSHA256 != inputSHA {
                throw RecordingError("run \(runID) was recorded from a different input file (sha256 \(info.inputSHA256.prefix(12))..., '\(inputPath)' is \(inputSHA.prefix(12))...)")
            }
            var stored = try RecordOptions.fromParams(info.params)
            if stored.summariesOnly {
                throw RecordingError("run \(runID) has summaries only (--summaries-only): they cannot be rebuilt from stored rows, so it cannot be resumed; record it again")
            }
            if let kernels = stored.recordedKernels, kernels != KernelPath.current.rawValue,
               kernels == KernelPath.portable.rawValue || KernelPath.current == .portable {
                throw RecordingError("run \(runID) was recorded with the \(kernels) kernels, this machine runs \(KernelPath.current.rawValue); its values would differ in the last bits, so resume it where it was recorded (or set GATESCOPE_KERNELS=\(kernels == "portable" ? "off" : kernels))")
            }
            stored.resumeRunID = runID
            stored.toolVersion = requested.toolVersion
            stored.stopAfterBatches = requested.stopAfterBatches
            options = stored
            resumeRow = info
        }
        guard options.batchSize > 0 else {
            throw RecordingError("batch size must be positive, got \(options.batchSize)")
        }
        if let shard = options.shard, !(shard.count >= 1 && shard.index >= 0 && shard.index < shard.count) {
            throw RecordingError("shard \(shard.index)/\(shard.count) does not exist: use K/N with 0 <= K < N")
        }
        let observed = try resolveLayers(model: model, names: options.layers)
        let vocab = try options.vocabPath.map { try Vocab(path: $0) }
        let openWhole: () throws -> any SequenceReader = {
            if let openInput { return try openInput(vocab, options.unknownID) }
            return try InputFormat.open(path: inputPath, inputs: model.graph.inputs.map {
                InputSpec(name: $0.name, batchAxis: $0.fileBatchAxis, lengthsOf: $0.lengthsOf)
            }, vocab: vocab, unknownID: options.unknownID)
        }

        // A shard reads only its own range; array inputs skip to it without reading the rest.
        var inputSequences: Int? = nil
        var range: Range<Int>? = nil
        if let shard = options.shard {
            let whole = try openWhole()
            let total = try whole.totalCount ?? { var n = 0; while try whole.next() != nil { n += 1 }; return n }()
            inputSequences = total
            range = shard.range(total: total)
        }
        let open: () throws -> any SequenceReader = {
            let reader = try openWhole()
            guard let range else { return reader }
            _ = try reader.skip(range.lowerBound)
            return LimitedReader(reader, end: range.upperBound)
        }

        // Pass 1: validate everything before writing anything, and count.
        let total = try validate(model: model, open: open, stop: stop)

        // Tokens are those of the first input: only its aligned axis lines up with them.
        let layers = observed.map { index -> RecordedLayer in
            let l = model.recurrentLayers[index]
            return RecordedLayer(layerID: l.index, name: l.name, direction: l.direction.rawValue, cell: l.cell, units: l.units,
                                 inputDim: l.inputDim, activation: l.activation.kerasName, recurrentActivation: l.recurrentActivation.kerasName,
                                 timeInput: l.time?.input, aligned: l.time?.aligned == true && l.time?.input == model.graph.inputs[0].name)
        }
        let writer = try RunWriter(path: databasePath, layers: layers)
        writer.storesRows = !options.summariesOnly
        writer.tokenName = { vocab?.token(for: $0) }
        let session = Session(writer: writer, model: model, observed: observed, options: options,
                              total: total, stop: stop, progress: progress)
        session.firstSequence = range?.lowerBound ?? 0
        session.startSequence = session.firstSequence
        if let info = resumeRow {
            writer.lock = resumeLock
            let committed = try writer.resume(runID: info.runID, firstSequence: session.firstSequence, sequenceCount: total)
            session.startSequence = session.firstSequence + committed
        } else {
            try writer.create(NewRun(name: options.name, modelPath: modelPath, modelSHA256: modelSHA, modelFormat: model.format,
                                     kerasVersion: model.kerasVersion.isEmpty ? nil : model.kerasVersion,
                                     producer: model.producer.isEmpty ? nil : model.producer, inputPath: inputPath, inputSHA256: inputSHA,
                                     toolVersion: options.toolVersion, params: options.paramsJSON, sequenceCount: total,
                                     shardIndex: options.shard?.index, shardCount: options.shard?.count,
                                     inputSequences: inputSequences ?? total))
        }
        do {
            return try session.run(open: open)
        } catch {
            writer.markFailed(error)
            throw error
        }
    }

    /// Indices into `model.recurrentLayers` selected by `names` (`name`, `name#2`, `name:fwd`, `name:bwd`);
    /// every recurrent half (LSTM, GRU, SimpleRNN) for nil.
    public static func resolveLayers(model: Model, names: [String]?) throws -> [Int] {
        guard let names else { return model.recurrentLayers.map(\.index) }
        var chosen = Set<Int>()
        for raw in names {
            let text = raw.trimmingCharacters(in: .whitespaces)
            var name = text, direction: Direction? = nil
            for d in [Direction.fwd, .bwd] where text.hasSuffix(":" + d.rawValue) {
                name = String(text.dropLast(d.rawValue.count + 1))
                direction = d
            }
            let matches = model.recurrentLayers.filter { $0.name == name && (direction == nil || $0.direction == direction) }
            guard !matches.isEmpty else {
                let known = model.recurrentLayers.map { "\($0.name):\($0.direction.rawValue)" }.joined(separator: ", ")
                throw RecordingError("no recurrent layer '\(text)' in model '\(model.name)' (layers: \(known))")
            }
            for m in matches { chosen.insert(m.index) }
        }
        guard !chosen.isEmpty else {
            throw RecordingError("--layers selects no layer")
        }
        return chosen.sorted()
    }

    /// Reads the whole input once: every sequence must fit the model. Returns the sequence count.
    static func validate(model: Model, open: () throws -> any SequenceReader, stop: StopFlag? = nil) throws -> Int {
        let reader = try open()
        // Inputs that carry another input's lengths are not read as sequences.
        let sequenceInputs = model.graph.inputs.indices.filter { model.graph.inputs[$0].lengthsOf == nil }
        let inputs = sequenceInputs.map { model.graph.inputs[$0] }
        let several = model.graph.inputs.count > 1
        var count = 0
        while let s = try reader.next() {
            if stop?.isRequested == true {
                throw RecordingError("interrupted while checking the input; nothing was written", interrupted: true)
            }
            guard s.others.count == inputs.count - 1 else {
                throw InputError(file: reader.path, sequence: s.index, "model '\(model.name)' takes \(inputs.count) inputs, the input gives \(s.others.count + 1)")
            }
            for (k, values) in ([s.values] + s.others).enumerated() {
                let which = several ? "input '\(inputs[k].name)' of model '\(model.name)'" : "model '\(model.name)'"
                let wantDim = model.inputFeatureDim(sequenceInputs[k])
                switch values {
                case let .features(_, dim):
                    guard let wantDim else {
                        throw InputError(file: reader.path, sequence: s.index, "\(which) takes token ids, the input has float features (\(dim) per step)")
                    }
                    guard dim == wantDim else {
                        throw InputError(file: reader.path, sequence: s.index, "\(which) expects \(wantDim) features per step, the input has \(dim)")
                    }
                case let .tokens(ids):
                    guard wantDim == nil else {
                        throw InputError(file: reader.path, sequence: s.index, "\(which) takes \(wantDim!) float features per step, the input has token ids")
                    }
                    // The Embedding bounds the ids when the importer knows it (an ONNX Gather checks at run time).
                    guard let vocabSize = inputs[k].vocabularySize else { break }
                    for (step, id) in ids.enumerated() where id < 0 || Int(id) >= vocabSize {
                        throw InputError(file: reader.path, sequence: s.index, step: step, "token id \(id) is outside the Embedding range 0..<\(vocabSize) of \(which)")
                    }
                }
            }
            count += 1
        }
        return count
    }
}

/// The sequences of a reader before index `end` (a shard's share of its input).
final class LimitedReader: SequenceReader {
    let base: any SequenceReader
    let end: Int
    init(_ base: any SequenceReader, end: Int) {
        self.base = base
        self.end = end
    }
    var path: String { base.path }
    var featureDim: Int? { base.featureDim }
    var totalCount: Int? { base.totalCount.map { Swift.min($0, end) - Swift.min(base.position, end) } }
    var position: Int { base.position }
    func next() throws -> InputSequence? { base.position < end ? try base.next() : nil }
    func skip(_ count: Int) throws -> Int { try base.skip(Swift.min(count, Swift.max(0, end - base.position))) }
}
