import CSV
import Foundation

/// Streams a `.csv` file with header `seq,step,<feature columns>`: the rows of one sequence are
/// contiguous, named by `seq` (any string, the source id), with steps 0, 1, 2, ... in order.
/// Blank lines are skipped. To detect a `seq` that reappears later, the reader keeps a 64-bit
/// hash per finished sequence (8 bytes each; the only state that grows with the input).
final class CSVSequenceReader: SequenceReader {
    let path: String
    let featureDim: Int?
    let totalCount: Int? = nil
    private(set) var position = 0
    private let reader: CSVReader
    private let featureNames: [String]
    /// Hashes of the seq names already finished.
    private var finished = Set<Int>()
    /// The row read ahead (first row of the next group) and its line.
    private var pending: (row: [String], line: Int)?
    private var nextLine = 1

    init(path: String) throws {
        self.path = path
        guard let stream = InputStream(fileAtPath: path), FileManager.default.fileExists(atPath: path) else {
            throw InputError(file: path, "no such file")
        }
        do {
            reader = try CSVReader(stream: stream, hasHeaderRow: false)
        } catch {
            throw InputError(file: path, "cannot read CSV: \(error)")
        }
        guard let rawHeader = reader.next() else {
            try Self.check(reader.error, path: path, line: 1)
            throw InputError(file: path, "empty file: expected a header seq,step,<feature columns>")
        }
        nextLine += Self.newlines(in: rawHeader) + 1
        var header = rawHeader.map { $0.trimmingCharacters(in: .whitespaces) }
        if header.first?.hasPrefix("\u{FEFF}") == true { header[0].removeFirst() }
        guard header.count >= 3, header[0].lowercased() == "seq", header[1].lowercased() == "step" else {
            throw InputError(file: path, line: 1,
                             "header must be seq,step followed by feature columns, got \(InputError.excerpt(rawHeader.joined(separator: ",")))")
        }
        featureNames = Array(header.dropFirst(2))
        featureDim = featureNames.count
    }

    /// Turns the CSV reader's sticky error into an `InputError`. On Linux, `InputStream` says it
    /// has bytes at end of file, so CSV.swift ends every file with `cannotReadFile`; real read
    /// failures come as `streamErrorHasOccurred`.
    private static func check(_ error: Error?, path: String, line: Int) throws {
        switch error {
        case nil, CSVError.cannotReadFile?: return
        case CSVError.unicodeDecoding?: throw InputError(file: path, line: line, "not valid UTF-8")
        case let e?: throw InputError(file: path, line: line, "cannot read CSV: \(e)")
        }
    }

    private static func newlines(in row: [String]) -> Int {
        row.reduce(0) { $0 + $1.reduce(0) { $0 + ($1.isNewline ? 1 : 0) } }
    }

    /// The next non-blank row and its starting line.
    private func readRow() throws -> (row: [String], line: Int)? {
        if let p = pending {
            pending = nil
            return p
        }
        while let row = reader.next() {
            let line = nextLine
            nextLine += Self.newlines(in: row) + 1
            if row.count == 1 && row[0].trimmingCharacters(in: .whitespaces).isEmpty { continue }
            return (row, line)
        }
        try Self.check(reader.error, path: path, line: nextLine)
        return nil
    }

    func next() throws -> InputSequence? {
        guard let first = try readRow() else { return nil }
        let index = position
        let name = first.row[0]
        if finished.contains(name.hashValue) {
            throw InputError(file: path, line: first.line,
                             "seq \(Vocab.quote(name)) appears again after other sequences; the rows of a sequence must be contiguous")
        }
        let dim = featureNames.count
        var values: [Float] = []
        var step = 0
        var current: (row: [String], line: Int)? = first
        while let (row, line) = current {
            guard row[0] == name else {
                pending = (row, line)
                break
            }
            guard row.count == dim + 2 else {
                throw InputError(file: path, line: line, "\(row.count) fields, expected \(dim + 2) (seq, step and \(dim) features)")
            }
            let stepText = row[1].trimmingCharacters(in: .whitespaces)
            guard let s = Int(stepText) else {
                throw InputError(file: path, line: line, "step \(InputError.excerpt(row[1])) is not an integer")
            }
            guard s == step else {
                throw InputError(file: path, line: line, step == 0
                    ? "seq \(Vocab.quote(name)) starts at step \(s); steps must start at 0"
                    : "seq \(Vocab.quote(name)) has step \(s) after step \(step - 1); steps must be consecutive (0, 1, 2, ...)")
            }
            for j in 0..<dim {
                let field = row[j + 2].trimmingCharacters(in: .whitespaces)
                guard let f = Float(field) else {
                    throw InputError(file: path, line: line, sequence: index, step: s,
                                     field.isEmpty ? "feature \(j) (\(InputError.excerpt(featureNames[j]))) is empty"
                                                   : "feature \(j) (\(InputError.excerpt(featureNames[j]))) is not a number: \(InputError.excerpt(field))")
                }
                guard f.isFinite else {
                    throw Validate.nonFinite(f, file: path, line: line, sequence: index, step: s, feature: j,
                                             wideSource: !field.lowercased().contains("inf"),
                                             featureName: { InputError.excerpt(self.featureNames[$0]) })
                }
                values.append(f)
            }
            step += 1
            current = try readRow()
        }
        finished.insert(name.hashValue)
        position += 1
        return InputSequence(index: index, sourceID: name, values: .features(values, featureDim: dim))
    }
}
