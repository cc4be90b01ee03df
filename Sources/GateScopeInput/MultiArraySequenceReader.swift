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
///
/// An input whose arrays keep the batch on another axis (`InputSpec.batchAxis`, e.g. ONNX's
/// time-major `[time, batch, features]`) is read whole and turned batch first. An input that
/// carries another input's lengths (`InputSpec.lengthsOf`, ONNX `sequence_lens`) is not a
/// sequence: its array gives that input's lengths, and it is left out of `values`/`others`.
final class MultiArraySequenceReader: SequenceReader {
    let path: String
    private let readers: [ArraySequenceReader]
    private let extracted: ExtractedNPZ

    var featureDim: Int? { readers[0].featureDim }
    var totalCount: Int? { readers[0].totalCount }
    var position: Int { readers[0].position }

    convenience init(npzPath: String, inputNames: [String]) throws {
        try self.init(npzPath: npzPath, inputs: inputNames.map { InputSpec(name: $0) })
    }

    init(npzPath: String, inputs specs: [InputSpec]) throws {
        precondition(!specs.isEmpty, "a model has at least one input")
        path = npzPath
        let allNames = specs.map(\.name)
        // Lengths carried by an input: input index -> name of the array holding them.
        var carried: [Int: String] = [:]
        for s in specs { if let of = s.lengthsOf { carried[of] = s.name } }
        let sequenceSpecs = specs.enumerated().filter { $0.element.lengthsOf == nil }
        let inputNames = sequenceSpecs.map(\.element.name)
        let available = try NPZ.arrayNames(path: npzPath)
        let lengthKeys = inputNames.map { "lengths.\($0)" }
        let optional = ["ids", "lengths"].filter { !inputNames.contains($0) }
        let known = Set(allNames + lengthKeys + optional)
        let listed = "model inputs: " + allNames.joined(separator: ", ")
        for name in allNames where !available.contains(name) {
            throw InputError(file: npzPath, "no array '\(name)' for model input '\(name)' (the .npz has: \(available.map(Self.quoted).joined(separator: ", ")); \(listed))")
        }
        if let extra = available.first(where: { !known.contains($0) }) {
            throw InputError(file: npzPath, "array \(Self.quoted(extra)) is not a model input (\(listed); optional: ids, lengths, lengths.NAME)")
        }
        extracted = try ExtractedNPZ(path: npzPath, names: Array(known))
        var readers: [ArraySequenceReader] = []
        for (k, (modelIndex, spec)) in sequenceSpecs.enumerated() {
            let name = spec.name
            var lengths = extracted.files["lengths.\(name)"] ?? (k == 0 && optional.contains("lengths") ? extracted.files["lengths"] : nil)
            if lengths == nil, let carrier = carried[modelIndex] { lengths = extracted.files[carrier] }
            let ids = k == 0 && optional.contains("ids") ? extracted.files["ids"] : nil
            var x = extracted.files[name]!
            if spec.batchAxis != 0 { x = try Self.batchFirst(x, axis: spec.batchAxis, input: name, file: npzPath) }
            readers.append(try ArraySequenceReader(path: npzPath, x: x, lengths: lengths, ids: ids))
        }
        for (k, r) in readers.enumerated() where r.count != readers[0].count {
            throw InputError(file: npzPath, "input '\(inputNames[k])' has \(r.count) sequences, input '\(inputNames[0])' \(readers[0].count): every input needs one row per sequence")
        }
        self.readers = readers
    }

    /// The array with axis `axis` moved to the front, in an unlinked temporary file (read whole:
    /// at most the file's own size in memory).
    static func batchFirst(_ file: NPYFile, axis: Int, input: String, file path: String) throws -> NPYFile {
        let h = file.header
        guard h.shape.count > axis else {
            throw InputError(file: path, "input '\(input)' has shape \(h.shapeText); its batch axis is \(axis)")
        }
        var bytes: [UInt8] = []
        try file.readElements(from: 0, count: h.count, into: &bytes)
        let array = NPYArray(dtype: h.dtype, shape: h.shape, data: bytes)
        let moved: NPYArray
        var order = Array(0..<h.shape.count)
        order.remove(at: axis)
        order.insert(axis, at: 0)
        let shape = order.map { h.shape[$0] }
        var strides = [Int](repeating: 1, count: h.shape.count)
        for k in stride(from: h.shape.count - 2, through: 0, by: -1) { strides[k] = strides[k + 1] * h.shape[k + 1] }
        let perm = order.map { strides[$0] }
        func permute<T>(_ v: [T]) -> [T] {
            var out = v
            var index = [Int](repeating: 0, count: shape.count)
            for o in 0..<v.count {
                var src = 0
                for k in 0..<index.count { src += index[k] * perm[k] }
                out[o] = v[src]
                var k = index.count - 1
                while k >= 0 { index[k] += 1; if index[k] < shape[k] { break }; index[k] = 0; k -= 1 }
            }
            return out
        }
        if h.dtype.isInteger { moved = NPYArray(int64s: permute(try array.int64s()), shape: shape) }
        else { moved = NPYArray(floats: permute(try array.floats()), shape: shape) }
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("gatescope-batchfirst-\(getpid())-\(UUID().uuidString).npy")
        do { try NPY.encode(moved).write(to: tmp) } catch {
            throw InputError(file: path, "cannot write a temporary file: \(describeIOError(error))")
        }
        defer { try? FileManager.default.removeItem(at: tmp) }
        return try NPYFile(path: tmp.path, name: "\(path) (\(input), batch first)")
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
