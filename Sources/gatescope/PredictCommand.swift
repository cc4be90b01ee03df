import ArgumentParser
import Foundation
import GateScopeEngine
import GateScopeInput
import GateScopeKeras

/// `gatescope predict MODEL INPUT.npy [-o OUT.npy]`: the whole model's output, to check against `model.predict`.
struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Run a Keras model on an .npy input and write its final output as float32 .npy.",
        discussion: """
        Use it to check GateScope's engine against Keras: the output should equal \
        model.predict(x) within float32 rounding (the tests use |a-b| <= 2e-5 + 1e-4*|b|).

        INPUT.npy: float [batch, time, features], int token ids [batch, time] for a model that \
        starts with an Embedding, or a 2-D float array [time, features] as one sequence. \
        Little-endian f4/f8/i4/i8, C order. Without -o the output is printed as text.

        Examples:
          gatescope predict model.keras x.npy -o y.npy
          python3 -c "import numpy as np, keras; m = keras.saving.load_model('model.keras'); \\
            print(abs(m.predict(np.load('x.npy')) - np.load('y.npy')).max())"
        """
    )

    @Argument(help: "The model: a Keras 3 .keras file or a legacy .h5 file.")
    var model: String

    @Argument(help: "The input array (.npy).")
    var input: String

    @Option(name: .shortAndLong, help: "Write the output here as float32 .npy (default: print it).")
    var output: String?

    @Option(help: "Sequences per engine batch.")
    var batchSize: Int = 64

    func validate() throws {
        guard batchSize > 0 else { throw ValidationError("--batch-size must be at least 1, e.g. --batch-size 64") }
    }

    func run() throws {
        do {
            let model = try KerasModelLoader.load(path: model)
            let array = try NPY.read(path: input)
            let y = try Self.predict(model, array, batchSize: batchSize, name: input)
            if let output {
                try NPY.write(floats: y.values, shape: y.shape, to: output)
            } else {
                print(Self.format(y), terminator: "")
            }
        } catch {
            FileHandle.standardError.write(Data("gatescope predict: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }

    /// Runs `model` over every sequence of `array` in batches and stacks the outputs.
    static func predict(_ model: Model, _ array: NPYArray, batchSize: Int, name: String) throws -> Tensor {
        let takesTokens = model.inputFeatureDim == nil
        var shape = array.shape
        if !takesTokens, shape.count == 2, array.dtype.isFloat { shape = [1] + shape }  // one sequence
        let want = takesTokens ? "int token ids [batch, time]" : "float [batch, time, \(model.inputFeatureDim!)]"
        guard shape.count == (takesTokens ? 2 : 3), shape.allSatisfy({ $0 > 0 }) else {
            throw EngineError.badInput("\(name): array of shape \(array.shape) (\(array.dtype)); model '\(model.name)' takes \(want)")
        }
        let (n, time) = (shape[0], shape[1])
        let perSeq = takesTokens ? time : time * shape[2]
        var tokens: [Int32] = [], features: [Float] = []
        if takesTokens {
            guard array.dtype.isInteger else {
                throw EngineError.badInput("\(name): \(array.dtype) values, but model '\(model.name)' takes integer token ids")
            }
            tokens = try array.int64s().map { v in
                guard let id = Int32(exactly: v) else { throw EngineError.badInput("\(name): token id \(v) does not fit in int32") }
                return id
            }
        } else {
            features = try array.floats()
        }
        var values: [Float] = []
        var outShape: [Int] = []
        var start = 0
        while start < n {
            let m = min(batchSize, n - start)
            let range = (start * perSeq)..<((start + m) * perSeq)
            let batch = takesTokens
                ? SequenceBatch(tokens: Array(tokens[range]), batchSize: m, time: time)
                : SequenceBatch(features: Array(features[range]), batchSize: m, time: time, featureDim: shape[2])
            let y = try model.forward(batch)
            values += y.values
            outShape = [n] + y.shape.dropFirst()
            start += m
        }
        return Tensor(shape: outShape, values: values)
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
