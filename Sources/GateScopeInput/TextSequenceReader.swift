import Foundation

/// Streams a `.txt` file: each non-empty line is one token sequence, its characters mapped
/// through the vocabulary (see `Vocab` for how text is split). The line terminator (`\n` or
/// `\r\n`) is not part of the sequence; empty lines are skipped, so each sequence's source id is
/// its 1-based line number.
final class TextSequenceReader: SequenceReader {
    let path: String
    let featureDim: Int? = nil
    let totalCount: Int?
    private(set) var position = 0
    private let lines: LineReader
    private let vocab: Vocab
    private let unknownID: Int32?

    init(path: String, vocab: Vocab, unknownID: Int32?) throws {
        self.path = path
        self.vocab = vocab
        self.unknownID = unknownID
        lines = try LineReader(path: path)
        totalCount = try LineReader.countLines(path: path) { !$0.isEmpty }
    }

    func next() throws -> InputSequence? {
        while let bytes = try lines.next() {
            if bytes.isEmpty { continue }
            let line = lines.lineNumber
            let index = position
            // Counted even if the line is bad, so later sequences keep their input-order index.
            position += 1
            let text = try decodeLine(bytes, file: path, line: line)
            switch vocab.encode(text, unknownID: unknownID) {
            case .success(let ids):
                return InputSequence(index: index, sourceID: String(line), values: .tokens(ids))
            case .failure(let miss):
                throw InputError(file: path, line: line,
                                 "column \(miss.column): character \(Vocab.quote(miss.text)) is not in the vocabulary (pass an unknown-token id to map it)")
            }
        }
        return nil
    }

    /// Skips sequences by counting non-empty lines, without decoding them (a shard's start).
    func skip(_ count: Int) throws -> Int {
        var skipped = 0
        while skipped < count, let bytes = try lines.next() {
            if bytes.isEmpty { continue }
            position += 1
            skipped += 1
        }
        return skipped
    }
}
