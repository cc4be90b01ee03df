import ArgumentParser
import Foundation
import GateScopeEngine
import GateScopeInput
import GateScopeKeras

/// `gatescope predict MODEL INPUT [-o OUT]`: the whole model's outputs, to check against `model.predict`.
struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Run a Keras model on .npy/.npz input and write its outputs as float32 .npy/.npz.",
        discussion: """
        Use it to check GateScope's engine against Keras: the output should equal \
        model.predict(x) within float32 rounding (the tests use |a-b| <= 2e-5 + 1e-4*|b|).

        INPUT.npy (one-input models): float [batch, time, features], int token ids [batch, time] \
        for a model that starts with an Embedding, or a 2-D float array [time, features] as one \
        sequence. INPUT.npz: one array per model input, keyed by the input's name (see \
        `gatescope inspect`). Little-endian f4/f8/i4/i8, C order.

        With one output, -o writes .npy; with several, -o must name an .npz, with one array per \
        output keyed by the output layer's name (`name#2` for a shared layer's second call, \
        `name:1` for its second output tensor). Without -o the outputs are printed as text.

        Examples:
          gatescope predict model.keras x.npy -o y.npy
          gatescope predict seq2seq.keras inputs.npz -o outputs.npz
          python3 -c "import numpy as np, keras; m = keras.saving.load_model('model.keras'); \\
            print(abs(m.predict(np.load('x.npy')) - np.load('y.npy')).max())"
        """
    )

    @Argument(help: "The model: .keras or legacy .h5 (Keras), .onnx, or a PyTorch state dict (.pt, .safetensors).")
    var model: String

    @OptionGroup var modelOptions: ModelOptions

    @Argument(help: "The input: an .npy array, or an .npz with one array per model input.")
    var input: String

    @Option(name: .shortAndLong, help: "Write the outputs here: float32 .npy for one output, .npz for several (default: print them).")
    var output: String?

    @Option(help: "Sequences per engine batch.")
    var batchSize: Int = 64

    func validate() throws {
        guard batchSize > 0 else { throw ValidationError("--batch-size must be at least 1, e.g. --batch-size 64") }
    }

    func run() throws {
        do {
            let model = try ModelFiles.load(model, module: modelOptions.module)
            let arrays: [NPYArray]
            var lengths: [Int]? = nil
            if input.lowercased().hasSuffix(".npz") {
                var npz = try NPZ.read(path: input)
                // `lengths` (when no input has that name): the first input's sequence lengths.
                if let l = npz["lengths"], !model.graph.inputs.contains(where: { $0.name == "lengths" }) {
                    lengths = try l.int64s().map { Int($0) }
                    npz["lengths"] = nil
                }
                arrays = try Self.inputs(model, npz: npz, name: input)
            } else {
                guard model.graph.inputs.count == 1 else {
                    throw EngineError.badInput("\(input): model '\(model.name)' has \(model.graph.inputs.count) inputs (\(model.graph.inputs.map(\.name).joined(separator: ", "))); give an .npz with one array per input")
                }
                arrays = [try NPY.read(path: input)]
            }
            let ys = try Self.predict(model, arrays, lengths: lengths, batchSize: batchSize, name: input)
            let names = model.graph.outputs.map(\.name)
            if let output {
                if output.lowercased().hasSuffix(".npz") {
                    var out: [String: NPYArray] = [:]
                    for (n, y) in zip(names, ys) { out[n] = NPYArray(floats: y.values, shape: y.shape) }
                    try NPZ.write(out, to: output)
                } else {
                    guard ys.count == 1 else {
                        throw EngineError.badInput("model '\(model.name)' has \(ys.count) outputs (\(names.joined(separator: ", "))); -o must name an .npz file")
                    }
                    try NPY.write(floats: ys[0].values, shape: ys[0].shape, to: output)
                }
            } else if ys.count == 1 {
                print(Self.format(ys[0]), terminator: "")
            } else {
                for (n, y) in zip(names, ys) { print("output \(n)\n" + Self.format(y), terminator: "") }
            }
        } catch {
            FileHandle.standardError.write(Data("gatescope predict: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }

    /// The .npz arrays in model input order; a missing or extra array is refused naming it.
    static func inputs(_ model: Model, npz: [String: NPYArray], name: String) throws -> [NPYArray] {
        let wanted = model.inputs.map { "'\($0.input.name)' \(shapeText([nil] + $0.info.shape)) \($0.info.dtype.rawValue)" }
        for key in npz.keys.sorted() where !model.graph.inputs.contains(where: { $0.name == key }) {
            throw EngineError.badInput("\(name): array '\(key)' is not a model input (inputs: \(wanted.joined(separator: ", ")))")
        }
        return try model.inputs.map { input, info in
            guard let a = npz[input.name] else {
                throw EngineError.badInput("\(name): no array for input '\(input.name)', which takes \(shapeText([nil] + info.shape)) \(info.dtype.rawValue)")
            }
            return a
        }
    }

    /// Runs `model` over every sequence of `arrays` (one per input) in batches and stacks each output.
    static func predict(_ model: Model, _ arrays: [NPYArray], lengths: [Int]? = nil, batchSize: Int, name: String) throws -> [Tensor] {
        var tensors: [(shape: [Int], values: [Float], dtype: DType)] = []
        for ((input, info), file) in zip(model.inputs, arrays) {
            // The framework's own layout may put the batch elsewhere (ONNX time-major inputs).
            var array = file
            if input.fileBatchAxis != 0, file.shape.count > input.fileBatchAxis {
                let moved = Tensor(shape: file.shape, values: try file.floats()).movingAxis(input.fileBatchAxis, to: 0)
                array = file.dtype.isInteger ? NPYArray(int64s: moved.values.map { Int64($0) }, shape: moved.shape)
                                             : NPYArray(floats: moved.values, shape: moved.shape)
            }
            var shape = array.shape
            // A single sequence [time, features] for a one-input float model.
            if arrays.count == 1, info.dtype == .float32, shape.count == info.rank, array.dtype.isFloat { shape = [1] + shape }
            let want = "\(shapeText([nil] + info.shape)) \(info.dtype == .int32 ? "int token ids" : "float")"
            let fits = shape.count == info.rank + 1 && shape.allSatisfy { $0 > 0 }
                && zip(shape.dropFirst(), info.shape).enumerated().allSatisfy { k, p in p.1 == nil || p.0 == p.1 || (k == 0 && info.rank >= 2) }
            guard fits else {
                throw EngineError.badInput("\(name): input '\(input.name)' has shape \(array.shape) (\(array.dtype)); model '\(model.name)' takes \(want)")
            }
            if info.dtype == .int32 {
                guard array.dtype.isInteger else {
                    throw EngineError.badInput("\(name): input '\(input.name)' holds \(array.dtype) values, but model '\(model.name)' takes integer token ids \(want)")
                }
                let values = try array.int64s().map { v -> Float in
                    guard let id = Int32(exactly: v) else { throw EngineError.badInput("\(name): input '\(input.name)': token id \(v) does not fit in int32") }
                    return Float(id)
                }
                tensors.append((shape, values, .int32))
            } else {
                guard array.dtype.isFloat || array.dtype.isInteger else {
                    throw EngineError.badInput("\(name): input '\(input.name)' holds \(array.dtype) values; model '\(model.name)' takes \(want)")
                }
                tensors.append((shape, try array.floats(), .float32))
            }
        }
        let n = tensors[0].shape[0]
        if let lengths, lengths.count != n {
            throw EngineError.badInput("\(name): lengths has \(lengths.count) values for \(n) sequences")
        }
        for (k, t) in tensors.enumerated() where t.shape[0] != n {
            throw EngineError.badInput("\(name): input '\(model.graph.inputs[k].name)' has \(t.shape[0]) sequences, input '\(model.graph.inputs[0].name)' \(n)")
        }
        var outs = [[Float]](repeating: [], count: model.graph.outputs.count)
        var outShapes = [[Int]](repeating: [], count: model.graph.outputs.count)
        var start = 0
        while start < n {
            let m = min(batchSize, n - start)
            let batch = tensors.map { t -> Tensor in
                let per = t.shape.dropFirst().reduce(1, *)
                return Tensor(shape: [m] + t.shape.dropFirst(), values: Array(t.values[(start * per)..<((start + m) * per)]), dtype: t.dtype)
            }
            let batchLengths: [[Int]?]? = lengths.map { l in [Array(l[start..<(start + m)])] + Array(repeating: nil, count: batch.count - 1) }
            let ys = try model.run(batch, lengths: batchLengths)
            for (k, y) in ys.enumerated() {
                outs[k] += y.values
                outShapes[k] = [n] + y.shape.dropFirst()
            }
            start += m
        }
        return zip(model.graph.outputs, zip(outShapes, outs)).map { output, y in
            Tensor(shape: y.0, values: y.1).movingAxis(0, to: output.fileBatchAxis)
        }
    }

    /// One line per output row (the last axis), prefixed with its index.
    static func format(_ y: Tensor) -> String {
        let width = y.shape.last ?? 1
        var out = "shape \(y.shape)\n"
        let rows = y.values.count / max(width, 1)
        for r in 0..<rows {
            var index: [Int] = []
            var rest = r
            for d in y.shape.dropLast().reversed() { index.insert(rest % d, at: 0); rest /= d }
            let row = y.values[(r * width)..<((r + 1) * width)].map { "\($0)" }.joined(separator: " ")
            out += "\(index): \(row)\n"
        }
        return out
    }
}
