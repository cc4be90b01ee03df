import Foundation

/// The values of one sequence, or of a padded batch.
public enum SequenceValues: Sendable, Equatable {
    /// Float features, row-major `[time, featureDim]` (a batch: `[batch, time, featureDim]`).
    case features([Float], featureDim: Int)
    /// Token ids `[time]` (a batch: `[batch, time]`).
    case tokens([Int32])
}

/// One input sequence, validated (finite features, consistent feature count, token ids >= 0).
public struct InputSequence: Sendable, Equatable {
    public typealias Values = SequenceValues
    /// 0-based position in input order (the recorder's `seq_id`).
    public var index: Int
    /// The id the input file gives the sequence (.npz `ids`, .jsonl `id`, .csv `seq`,
    /// the 1-based line number for .txt), nil when it has none.
    public var sourceID: String?
    /// The values of the model's first input.
    public var values: Values
    /// The values of the model's further inputs, in model input order (empty for one input).
    public var others: [Values]

    /// Creates a sequence.
    public init(index: Int, sourceID: String?, values: Values, others: [Values] = []) {
        self.index = index
        self.sourceID = sourceID
        self.values = values
        self.others = others
    }

    /// Number of steps (of the first input).
    public var length: Int { Self.steps(values) }

    /// Steps of every input, first input first.
    public var lengths: [Int] { [length] + others.map(Self.steps) }

    static func steps(_ values: Values) -> Int {
        switch values {
        case .features(let v, let dim): return dim == 0 ? 0 : v.count / dim
        case .tokens(let t): return t.count
        }
    }
}

/// A streaming source of sequences in input order; memory does not grow with the number read.
///
/// Readers are classes: they own open files. Errors are `InputError`s naming the file and the
/// sequence (0-based), step (0-based) and, for text formats, line (1-based).
public protocol SequenceReader: AnyObject {
    /// The input file as given.
    var path: String { get }
    /// Features per step for float inputs; nil for token-id inputs.
    var featureDim: Int? { get }
    /// Number of sequences if known cheaply (for progress), else nil.
    var totalCount: Int? { get }
    /// Index of the next sequence `next()` returns (= sequences read or skipped so far).
    var position: Int { get }
    /// The next sequence, or nil at the end.
    func next() throws -> InputSequence?
    /// Skips up to `count` sequences (for `--resume`) and returns how many were skipped.
    /// Array inputs skip without reading; text inputs parse and discard.
    func skip(_ count: Int) throws -> Int
}

extension SequenceReader {
    /// True when the input holds token ids rather than float features.
    public var isTokens: Bool { featureDim == nil }

    /// Default skip: read and discard.
    public func skip(_ count: Int) throws -> Int {
        var skipped = 0
        while skipped < count, try next() != nil { skipped += 1 }
        return skipped
    }

    /// Up to `maxCount` next sequences (empty at the end).
    public func next(maxCount: Int) throws -> [InputSequence] {
        var out: [InputSequence] = []
        out.reserveCapacity(maxCount)
        while out.count < maxCount, let s = try next() { out.append(s) }
        return out
    }

    /// Up to `maxCount` next sequences padded into one batch, or nil at the end.
    public func nextBatch(maxCount: Int, time: Int? = nil) throws -> PaddedBatch? {
        let group = try next(maxCount: maxCount)
        if group.isEmpty { return nil }
        return try withFile(path) { try PaddedBatch(padding: group, time: time) }
    }
}

/// Sequences right-padded to a common length (features with 0.0, tokens with id 0), as the
/// recorder hands them to the engine (`SequenceBatch`).
public struct PaddedBatch: Sendable, Equatable {
    /// Number of sequences.
    public var batchSize: Int
    /// Padded length.
    public var time: Int
    /// `[batchSize, time, featureDim]` features or `[batchSize, time]` tokens.
    public var values: SequenceValues
    /// Each sequence's own length.
    public var lengths: [Int]
    /// Each sequence's id from the input file.
    public var sourceIDs: [String?]
    /// Each sequence's 0-based input index.
    public var indices: [Int]
    /// The model's further inputs, each padded on its own (their `others` are empty).
    public var others: [PaddedBatch] = []

    /// Pads `sequences` (all features of one dimension, or all tokens) to `time`, default the
    /// longest length; a `time` shorter than a sequence is an error.
    public init(padding sequences: [InputSequence], time: Int? = nil) throws {
        let longest = sequences.map(\.length).max() ?? 0
        let t = time ?? longest
        if longest > t {
            let s = sequences.first { $0.length > t }!
            throw InputError(sequence: s.index, "length \(s.length) exceeds the model's fixed \(t) timesteps")
        }
        batchSize = sequences.count
        self.time = t
        lengths = sequences.map(\.length)
        sourceIDs = sequences.map(\.sourceID)
        indices = sequences.map(\.index)
        let inputCount = sequences.first?.others.count ?? 0
        if let odd = sequences.first(where: { $0.others.count != inputCount }) {
            throw InputError(sequence: odd.index, "has \(odd.others.count + 1) inputs, sequence \(sequences[0].index) \(inputCount + 1)")
        }
        others = try (0..<inputCount).map { k in
            try PaddedBatch(padding: sequences.map { InputSequence(index: $0.index, sourceID: $0.sourceID, values: $0.others[k]) })
        }
        switch sequences.first?.values {
        case .features(_, let dim)?:
            var out = [Float](repeating: 0, count: sequences.count * t * dim)
            for (b, s) in sequences.enumerated() {
                guard case .features(let v, let d) = s.values, d == dim else {
                    throw InputError(sequence: s.index, "cannot batch \(Self.describe(s.values)) with sequences of \(dim) features")
                }
                out.withUnsafeMutableBufferPointer { dst in
                    v.withUnsafeBufferPointer { src in
                        if !src.isEmpty { (dst.baseAddress! + b * t * dim).update(from: src.baseAddress!, count: src.count) }
                    }
                }
            }
            values = .features(out, featureDim: dim)
        case .tokens?, nil:
            var out = [Int32](repeating: 0, count: sequences.count * t)
            for (b, s) in sequences.enumerated() {
                guard case .tokens(let v) = s.values else {
                    throw InputError(sequence: s.index, "cannot batch \(Self.describe(s.values)) with token sequences")
                }
                out.withUnsafeMutableBufferPointer { dst in
                    v.withUnsafeBufferPointer { src in
                        if !src.isEmpty { (dst.baseAddress! + b * t).update(from: src.baseAddress!, count: src.count) }
                    }
                }
            }
            values = .tokens(out)
        }
    }

    private static func describe(_ v: SequenceValues) -> String {
        switch v {
        case .features(_, let d): return "a sequence of \(d) features"
        case .tokens: return "a token sequence"
        }
    }
}

/// What a reader needs to know of one model input.
public struct InputSpec: Sendable, Equatable {
    /// The model's input name (the .npz key).
    public var name: String
    /// The axis of the given arrays that is the batch (1 for time-major `[time, batch, ...]`).
    public var batchAxis: Int
    /// When the input carries the lengths of model input `lengthsOf` (ONNX `sequence_lens`).
    public var lengthsOf: Int?

    /// Describes an input.
    public init(name: String, batchAxis: Int = 0, lengthsOf: Int? = nil) {
        self.name = name
        self.batchAxis = batchAxis
        self.lengthsOf = lengthsOf
    }
}

/// The input file formats, chosen by file extension.
public enum InputFormat: String, CaseIterable, Sendable {
    case npy, npz, jsonl, csv, txt

    /// The format for a path's extension (`.ndjson` counts as `.jsonl`).
    public init(path: String) throws {
        let ext = URL(fileURLWithPath: path).pathExtension.lowercased()
        switch ext {
        case "ndjson": self = .jsonl
        default:
            guard let f = InputFormat(rawValue: ext) else {
                throw InputError(file: path, "unsupported input format '\(ext.isEmpty ? "(no extension)" : "." + ext)' (expected .npy, .npz, .jsonl, .csv or .txt)")
            }
            self = f
        }
    }

    /// Opens a streaming reader for `path`. `vocab` is required for `.txt` and for `.jsonl`
    /// lines with `"text"`; characters missing from it become `unknownID` if given, else an error.
    ///
    /// `.npy` is read in ~1 MB chunks with `pread`. `.npz` first extracts `x`, `lengths` and `ids`
    /// to unlinked temporary files (needs disk space for the uncompressed arrays, no memory).
    /// `.jsonl`/`.txt` are read line by line (their `totalCount` costs one extra pass over the
    /// file); `.csv` row by row (`totalCount` nil).
    public static func open(path: String, vocab: Vocab? = nil, unknownID: Int32? = nil) throws -> any SequenceReader {
        try open(path: path, inputNames: [], vocab: vocab, unknownID: unknownID)
    }

    /// Opens a reader for a model with the inputs `inputNames`. With several inputs the file must
    /// be an `.npz` holding one array per input, keyed by its name (see `MultiArraySequenceReader`);
    /// a one-input model also reads an `.npz` keyed by its input's name when it has no `x`.
    public static func open(path: String, inputNames: [String], vocab: Vocab? = nil, unknownID: Int32? = nil) throws -> any SequenceReader {
        try open(path: path, inputs: inputNames.map { InputSpec(name: $0) }, vocab: vocab, unknownID: unknownID)
    }

    /// The same, for inputs that may keep the batch on another axis or carry lengths.
    public static func open(path: String, inputs: [InputSpec], vocab: Vocab? = nil, unknownID: Int32? = nil) throws -> any SequenceReader {
        let format = try InputFormat(path: path)
        let inputNames = inputs.map(\.name)
        if inputs.count > 1 || inputs.contains(where: { $0.batchAxis != 0 }) {
            guard format == .npz else {
                throw InputError(file: path, "the model has \(inputNames.count == 1 ? "a time-major input" : "\(inputNames.count) inputs") (\(inputNames.joined(separator: ", "))): give an .npz with one array per input, keyed by its name")
            }
            return try MultiArraySequenceReader(npzPath: path, inputs: inputs)
        }
        if format == .npz, let name = inputNames.first, try !NPZ.arrayNames(path: path).contains("x") {
            return try MultiArraySequenceReader(npzPath: path, inputNames: [name])
        }
        if let unknownID, unknownID < 0 {
            throw InputError(file: path, "unknown-token id \(unknownID) must be non-negative")
        }
        switch format {
        case .npy: return try ArraySequenceReader(npyPath: path)
        case .npz: return try ArraySequenceReader(npzPath: path)
        case .jsonl: return try JSONLSequenceReader(path: path, vocab: vocab, unknownID: unknownID)
        case .csv: return try CSVSequenceReader(path: path)
        case .txt:
            guard let vocab else {
                throw InputError(file: path, "a .txt input needs a vocabulary (--vocab VOCAB.json)")
            }
            return try TextSequenceReader(path: path, vocab: vocab, unknownID: unknownID)
        }
    }
}

/// Shared checks of decoded values.
enum Validate {
    /// Throws for the first NaN or infinite value of a `[time, dim]` row-major buffer.
    static func finite(_ v: UnsafeBufferPointer<Float>, featureDim: Int, file: String?, line: Int? = nil,
                       sequence: Int, wideSource: Bool = false, featureName: ((Int) -> String)? = nil) throws {
        for k in 0..<v.count where !v[k].isFinite {
            throw nonFinite(v[k], file: file, line: line, sequence: sequence, step: k / featureDim,
                            feature: k % featureDim, wideSource: wideSource, featureName: featureName)
        }
    }

    static func nonFinite(_ value: Float, file: String?, line: Int?, sequence: Int, step: Int, feature: Int,
                          wideSource: Bool, featureName: ((Int) -> String)?) -> InputError {
        let what = value.isNaN ? "NaN" : (wideSource ? "infinite value (or beyond float32 range)" : "infinite value")
        let name = featureName.map { " (\($0(feature)))" } ?? ""
        return InputError(file: file, line: line, sequence: sequence, step: step, "\(what) in feature \(feature)\(name)")
    }

    /// A token id as Int32, refusing negatives and values beyond Int32.
    static func token(_ v: Int64, file: String?, line: Int? = nil, sequence: Int, step: Int) throws -> Int32 {
        guard v >= 0 else {
            throw InputError(file: file, line: line, sequence: sequence, step: step, "negative token id \(v)")
        }
        guard let t = Int32(exactly: v) else {
            throw InputError(file: file, line: line, sequence: sequence, step: step, "token id \(v) is too large")
        }
        return t
    }
}
