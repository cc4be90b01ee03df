import Foundation

/// Streams sequences of a model with several inputs from an `.npz` holding one array per model
/// input, keyed by the input's name.
///
/// Each input's array has the layouts `ArraySequenceReader` reads (float `[batch, time, features]`
/// or integer `[batch, time]`), with the same `batch` for every input; inputs may have different
/// time axes. Optional arrays: `ids` (source ids), `lengths` (lengths of the first input) and
/// `lengths.NAME` (lengths of input NAME); an input without lengths has full-length sequences,
/// and padding inside is left to the model's own masks. An input literally named `ids` or
/// `lengths` takes that key, so the optional array of that name is not available then.
/// A sequence's `values` are the first input's, its `others` the rest in model input order.
final class MultiArraySequenceReader: SequenceReader {
    let path: String
    private let readers: [ArraySequenceReader]
    private let extracted: ExtractedNPZ

    var featureDim: Int? { readers[0].featureDim }
    var totalCount: Int? { readers[0].totalCount }
    var position: Int { readers[0].position }

    init(npzPath: String, inputNames: [String]) throws {
        precondition(!inputNames.isEmpty, "a model has at least one input")
        path = npzPath
        let available = try NPZ.arrayNames(path: npzPath)
        let lengthKeys = inputNames.map { "lengths.\($0)" }
        let optional = ["ids", "lengths"].filter { !inputNames.contains($0) }
        let known = Set(inputNames + lengthKeys + optional)
        let listed = "model inputs: " + inputNames.joined(separator: ", ")
        for name in inputNames where !available.contains(name) {
            throw InputError(file: npzPath, "no array '\(name)' for model input '\(name)' (the .npz has: \(available.map(Self.quoted).joined(separator: ", ")); \(listed))")
        }
        if let extra = available.first(where: { !known.contains($0) }) {
            throw InputError(file: npzPath, "array \(Self.quoted(extra)) is not a model input (\(listed); optional: ids, lengths, lengths.NAME)")
        }
        extracted = try ExtractedNPZ(path: npzPath, names: Array(known))
        var readers: [ArraySequenceReader] = []
        for (k, name) in inputNames.enumerated() {
            let lengths = extracted.files["lengths.\(name)"] ?? (k == 0 && optional.contains("lengths") ? extracted.files["lengths"] : nil)
            let ids = k == 0 && optional.contains("ids") ? extracted.files["ids"] : nil
            readers.append(try ArraySequenceReader(path: npzPath, x: extracted.files[name]!, lengths: lengths, ids: ids))
        }
        for (k, r) in readers.enumerated() where r.count != readers[0].count {
            throw InputError(file: npzPath, "input '\(inputNames[k])' has \(r.count) sequences, input '\(inputNames[0])' \(readers[0].count): every input needs one row per sequence")
        }
        self.readers = readers
    }

    /// A name as it may be printed in a one-line message (escaped, cut short).
    static func quoted(_ name: String) -> String {
        let cut = name.count > 40 ? String(name.prefix(40)) + "..." : name
        return "'" + cut.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7f ? String($0) : $0.escaped(asASCII: true) }.joined() + "'"
    }

    func next() throws -> InputSequence? {
        guard var first = try readers[0].next() else { return nil }
        for r in readers.dropFirst() {
            // Every reader has the same count, so they end together.
            first.others.append(try r.next()!.values)
        }
        return first
    }

    func skip(_ n: Int) throws -> Int {
        let skipped = try readers[0].skip(n)
        for r in readers.dropFirst() { _ = try r.skip(n) }
        return skipped
    }
}
