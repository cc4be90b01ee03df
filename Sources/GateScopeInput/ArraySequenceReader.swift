import Foundation

/// Streams sequences from a `.npy` array, or from `x` (with optional `lengths`, `ids`) of an `.npz`.
///
/// Layouts: float `[batch, time, features]` (or `[batch, time, a, b, ...]`, each step flattened
/// to a*b*... features); float `[time, features]` = one sequence; integer
/// `[batch, time]` token ids; integer `[time]` = one token sequence. Without `lengths` every
/// sequence has the full `time` steps (padding inside is left to the model's own mask); with
/// `lengths`, sequence b is `x[b, :lengths[b]]`. Reads about 1 MB of sequences per `pread`.
final class ArraySequenceReader: SequenceReader {
    let path: String
    let featureDim: Int?
    let count: Int
    let time: Int
    private(set) var position = 0
    var totalCount: Int? { count }

    private let x: NPYFile
    private let lengths: NPYFile?
    private let ids: NPYFile?
    private let elementsPerSequence: Int
    private let chunkSequences: Int

    // The current chunk: sequences [chunkStart, chunkStart + chunkCount).
    private var chunk: [UInt8] = []
    private var chunkLengths: [UInt8] = []
    private var chunkIDs: [UInt8] = []
    private var chunkStart = 0
    private var chunkCount = 0

    convenience init(npyPath: String) throws {
        guard FileManager.default.fileExists(atPath: npyPath) else { throw InputError(file: npyPath, "no such file") }
        try self.init(path: npyPath, x: NPYFile(path: npyPath), lengths: nil, ids: nil)
    }

    convenience init(npzPath: String) throws {
        let extracted = try ExtractedNPZ(path: npzPath, names: ["x", "lengths", "ids"])
        guard let x = extracted.files["x"] else {
            throw InputError(file: npzPath, "no array 'x' in the .npz (expected x, optional lengths and ids)")
        }
        try self.init(path: npzPath, x: x, lengths: extracted.files["lengths"], ids: extracted.files["ids"])
    }

    init(path: String, x: NPYFile, lengths: NPYFile?, ids: NPYFile?) throws {
        self.path = path
        self.x = x
        self.lengths = lengths
        self.ids = ids
        let h = x.header
        let shape = h.shape
        let expected = "expected float [batch, time, features], float [time, features] (one sequence) or integer [batch, time] token ids"
        if h.dtype.isFloat {
            switch shape.count {
            // Axes after time (frames of `[batch, time, 6, 3]`) are one flattened step each.
            case 3...8: (count, time, featureDim) = (shape[0], shape[1], shape[2...].reduce(1, *))
            case 2: (count, time, featureDim) = (1, shape[0], shape[1])
            case 1: throw InputError(file: x.name, "a 1-D float array of shape \(h.shapeText) is ambiguous; \(expected)")
            default: throw InputError(file: x.name, "float array of shape \(h.shapeText): \(expected)")
            }
            if featureDim == 0 { throw InputError(file: x.name, "shape \(h.shapeText) has no features") }
        } else if h.dtype.isInteger {
            switch shape.count {
            case 2: (count, time) = (shape[0], shape[1])
            case 1: (count, time) = (1, shape[0])
            default: throw InputError(file: x.name, "integer array of shape \(h.shapeText): token ids must be [batch, time] (cast float features to float32)")
            }
            featureDim = nil
        } else {
            throw InputError(file: x.name, "dtype \(h.dtype) ('\(h.dtype.descr)') cannot be an input; \(expected)")
        }
        if time == 0 && count > 0 { throw InputError(file: x.name, "shape \(h.shapeText) has sequences of 0 steps") }
        elementsPerSequence = time * (featureDim ?? 1)

        if let lengths {
            let lh = lengths.header
            guard lh.dtype.isInteger else {
                throw InputError(file: lengths.name, "lengths must be integers, got dtype \(lh.dtype) ('\(lh.dtype.descr)')")
            }
            guard lh.shape.count == 1, lh.shape[0] == count else {
                throw InputError(file: lengths.name, "lengths has shape \(lh.shapeText), expected (\(count),): one length per sequence of x \(h.shapeText)")
            }
        }
        if let ids {
            let ih = ids.header
            switch ih.dtype {
            case .unicode, .bytes: break
            case let t where t.isInteger: break
            default:
                throw InputError(file: ids.name, "ids must be strings (numpy '<U') or integers, got dtype \(ih.dtype) ('\(ih.dtype.descr)')")
            }
            // A scalar id is fine for a single sequence.
            guard ih.count == count, ih.shape.count == 1 || ih.shape.isEmpty else {
                throw InputError(file: ids.name, "ids has shape \(ih.shapeText), expected (\(count),): one id per sequence of x \(h.shapeText)")
            }
        }
        let bytesPerSequence = max(1, elementsPerSequence * h.dtype.itemSize)
        chunkSequences = max(1, (1 << 20) / bytesPerSequence)
    }

    func skip(_ n: Int) throws -> Int {
        let skipped = max(0, min(n, count - position))
        position += skipped
        return skipped
    }

    func next() throws -> InputSequence? {
        guard position < count else { return nil }
        if position < chunkStart || position >= chunkStart + chunkCount { try loadChunk() }
        let b = position
        let local = b - chunkStart
        position += 1

        var length = time
        if let lengths {
            let raw = chunkLengths.withUnsafeBytes { Convert.int64($0, dtype: lengths.header.dtype, at: local) }
            guard raw >= 1, raw <= Int64(time) else {
                throw InputError(file: lengths.name, sequence: b,
                                 raw == 0 ? "length 0 (empty sequences cannot be recorded)" : "length \(raw) is outside 1...\(time) (x has \(time) steps)")
            }
            length = Int(raw)
        }
        var sourceID: String?
        if let ids {
            sourceID = try chunkIDs.withUnsafeBytes { raw -> String in
                let t = ids.header.dtype
                if t.isInteger { return String(Convert.int64(raw, dtype: t, at: local)) }
                do { return try Convert.string(raw, dtype: t, at: local) } catch let e as InputError {
                    throw InputError(file: ids.name, sequence: b, e.message)
                }
            }
        }

        let dtype = x.header.dtype
        let values: SequenceValues = try chunk.withUnsafeBytes { all in
            let itemSize = dtype.itemSize
            let start = local * elementsPerSequence * itemSize
            if let dim = featureDim {
                let n = length * dim
                let raw = UnsafeRawBufferPointer(rebasing: all[start..<(start + n * itemSize)])
                let floats = [Float](unsafeUninitializedCapacity: n) { buf, done in
                    Convert.floats(raw, dtype: dtype, count: n, into: buf.baseAddress!)
                    done = n
                }
                try floats.withUnsafeBufferPointer {
                    try Validate.finite($0, featureDim: dim, file: x.name, sequence: b, wideSource: dtype == .float64)
                }
                return .features(floats, featureDim: dim)
            } else {
                let raw = UnsafeRawBufferPointer(rebasing: all[start..<(start + length * itemSize)])
                var tokens = [Int32](repeating: 0, count: length)
                for k in 0..<length {
                    tokens[k] = try Validate.token(Convert.int64(raw, dtype: dtype, at: k), file: x.name, sequence: b, step: k)
                }
                return .tokens(tokens)
            }
        }
        return InputSequence(index: b, sourceID: sourceID, values: values)
    }

    private func loadChunk() throws {
        chunkStart = position
        chunkCount = min(chunkSequences, count - position)
        try x.readElements(from: chunkStart * elementsPerSequence, count: chunkCount * elementsPerSequence, into: &chunk)
        try lengths?.readElements(from: chunkStart, count: chunkCount, into: &chunkLengths)
        try ids?.readElements(from: chunkStart, count: chunkCount, into: &chunkIDs)
    }
}
