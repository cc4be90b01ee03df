import Foundation

/// Streams a `.jsonl` file: one JSON object per line with an optional `"id"` (string, number or
/// null) and exactly one of `"x"` (list of steps, each a list of numbers), `"tokens"` (list of
/// non-negative integers) or `"text"` (a string mapped through the vocabulary). Blank lines are
/// skipped. The first sequence decides features vs tokens; `"tokens"` and `"text"` may mix.
final class JSONLSequenceReader: SequenceReader {
    let path: String
    private(set) var featureDim: Int?
    let totalCount: Int?
    private(set) var position = 0
    private let lines: LineReader
    private let vocab: Vocab?
    private let unknownID: Int32?
    private var pending: InputSequence?
    private var kindKnown = false

    init(path: String, vocab: Vocab?, unknownID: Int32?) throws {
        self.path = path
        self.vocab = vocab
        self.unknownID = unknownID
        lines = try LineReader(path: path)
        totalCount = try LineReader.countLines(path: path) { !JSONLSequenceReader.isBlank($0) }
        // Read the first sequence now so featureDim is known before the first next().
        pending = try parseNext()
    }

    func next() throws -> InputSequence? {
        if let p = pending {
            pending = nil
            position += 1
            return p
        }
        do {
            guard let s = try parseNext() else { return nil }
            position += 1
            return s
        } catch {
            // The bad line is consumed: later sequences keep their input-order index.
            position += 1
            throw error
        }
    }

    /// Skips sequences by counting non-blank lines, without parsing them (a shard's start).
    func skip(_ count: Int) throws -> Int {
        var skipped = 0
        if count > 0, pending != nil {
            pending = nil
            position += 1
            skipped = 1
        }
        while skipped < count, let bytes = try lines.next() {
            if Self.isBlank(bytes) { continue }
            position += 1
            skipped += 1
        }
        return skipped
    }

    static func isBlank(_ line: ArraySlice<UInt8>) -> Bool {
        line.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
    }

    private func parseNext() throws -> InputSequence? {
        while let bytes = try lines.next() {
            if Self.isBlank(bytes) { continue }
            let index = position + (pending == nil ? 0 : 1)
            return try parse(bytes, line: lines.lineNumber, index: index)
        }
        return nil
    }

    private func parse(_ bytes: ArraySlice<UInt8>, line: Int, index: Int) throws -> InputSequence {
        func fail(_ message: String, step: Int? = nil) -> InputError {
            InputError(file: path, line: line, sequence: index, step: step, message)
        }
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]) } catch {
            throw fail("invalid JSON")
        }
        guard let dict = object as? [String: Any] else { throw fail("expected a JSON object") }

        var sourceID: String?
        switch dict["id"] {
        case nil, is NSNull: sourceID = nil
        case let s as String: sourceID = s
        case let n as NSNumber:
            let d = n.doubleValue
            sourceID = d == d.rounded() && abs(d) < 9e15 ? String(Int64(d)) : n.stringValue
        default: throw fail("\"id\" must be a string or a number")
        }

        let present = ["x", "tokens", "text"].filter { dict[$0] != nil }
        guard present.count == 1 else {
            throw fail(present.isEmpty ? "expected one of \"x\", \"tokens\" or \"text\""
                                       : "has both \"\(present[0])\" and \"\(present[1])\"; expected exactly one")
        }
        let values: SequenceValues
        switch present[0] {
        case "x": values = try features(dict["x"]!, fail: fail)
        case "tokens": values = try tokens(dict["tokens"]!, fail: fail)
        default: values = try text(dict["text"]!, fail: fail)
        }

        let seq = InputSequence(index: index, sourceID: sourceID, values: values)
        guard seq.length > 0 else { throw fail("empty sequence (no steps)") }
        if !kindKnown {
            kindKnown = true
            if case .features(_, let dim) = values { featureDim = dim }
        } else {
            switch (values, featureDim) {
            case (.features(_, let dim), let expected?) where dim != expected:
                throw fail("\(dim) features per step, but the first sequence has \(expected)", step: 0)
            case (.features, nil):
                throw fail("\"x\" features, but the first sequence has token ids")
            case (.tokens, _?):
                throw fail("token ids, but the first sequence has \"x\" features")
            default: break
            }
        }
        return seq
    }

    private func features(_ value: Any, fail: (String, Int?) -> InputError) throws -> SequenceValues {
        guard let steps = value as? [Any] else { throw fail("\"x\" must be a list of steps, each a list of numbers", nil) }
        var out: [Float] = []
        var dim = -1
        for (t, stepValue) in steps.enumerated() {
            guard let row = stepValue as? [Any] else {
                throw fail("\"x\" must be a list of steps, each a list of numbers", t)
            }
            if dim < 0 {
                dim = row.count
                guard dim > 0 else { throw fail("no features", t) }
                out.reserveCapacity(steps.count * dim)
            } else if row.count != dim {
                throw fail("\(row.count) features, expected \(dim) as in step 0", t)
            }
            for (j, v) in row.enumerated() {
                guard let n = v as? NSNumber, !(v is String) else { throw fail("feature \(j) is not a number", t) }
                let f = n.floatValue
                guard f.isFinite else { throw fail(f.isNaN ? "NaN in feature \(j)" : "infinite value (or beyond float32 range) in feature \(j)", t) }
                out.append(f)
            }
        }
        return .features(out, featureDim: max(dim, 1))
    }

    private func tokens(_ value: Any, fail: (String, Int?) -> InputError) throws -> SequenceValues {
        guard let list = value as? [Any] else { throw fail("\"tokens\" must be a list of integers", nil) }
        var out: [Int32] = []
        out.reserveCapacity(list.count)
        for (t, v) in list.enumerated() {
            guard let n = v as? NSNumber, !(v is String) else { throw fail("token is not a number", t) }
            let d = n.doubleValue
            guard d == d.rounded(), abs(d) < 9e18 else { throw fail("token \(n) is not an integer", t) }
            let id = Int64(d)
            guard id >= 0 else { throw fail("negative token id \(id)", t) }
            guard let t32 = Int32(exactly: id) else { throw fail("token id \(id) is too large", t) }
            out.append(t32)
        }
        return .tokens(out)
    }

    private func text(_ value: Any, fail: (String, Int?) -> InputError) throws -> SequenceValues {
        guard let s = value as? String else { throw fail("\"text\" must be a string", nil) }
        guard let vocab else { throw fail("\"text\" needs a vocabulary (--vocab VOCAB.json)", nil) }
        switch vocab.encode(s, unknownID: unknownID) {
        case .success(let ids): return .tokens(ids)
        case .failure(let miss):
            throw fail("column \(miss.column) of \"text\": character \(Vocab.quote(miss.text)) is not in the vocabulary (pass an unknown-token id to map it)", nil)
        }
    }
}
