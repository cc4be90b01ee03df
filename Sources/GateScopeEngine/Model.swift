import Foundation

/// A chain of Keras layers, ready to run; built by GateScopeKeras or by hand in tests.
public struct Model: Sendable {
    /// The Keras model name.
    public var name: String
    /// Where the model came from, e.g. "keras" (Keras 3 zip) or "h5" (legacy HDF5).
    public var format: String
    /// The `keras_version` the file was written with ("" if unknown).
    public var kerasVersion: String
    /// The layers in order; the first is the input.
    public let layers: [Layer]
    /// Every LSTM half that reports gate values, in layer order (a Bidirectional gives fwd then bwd).
    public let recurrentLayers: [RecurrentLayerInfo]
    /// Per layer: output shape without the batch axis, `nil` for a free time axis.
    public let outputShapes: [[Int?]]
    /// Per layer: its weight matrices prepared for the matrix kernel, built once here rather than per batch.
    private let prepared: [PreparedWeights]

    /// Validates the chain (shapes, what may follow what) and indexes its recurrent layers.
    public init(name: String, format: String, kerasVersion: String, layers: [Layer]) throws {
        guard case .input = layers.first?.kind else {
            throw EngineError.incompatible(layer: layers.first?.name ?? name, reason: "a model must start with its input layer")
        }
        var recurrent: [RecurrentLayerInfo] = []
        var shapes: [[Int?]] = []
        var dim: Int? = nil        // feature dim; nil while the input is token ids
        var hasTime = true
        func need(_ layer: Layer, _ ok: Bool, _ reason: @autoclosure () -> String) throws {
            if !ok { throw EngineError.incompatible(layer: layer.name, reason: reason()) }
        }
        for layer in layers {
            switch layer.kind {
            case let .input(featureDim):
                try need(layer, shapes.isEmpty, "an input layer can only come first")
                dim = featureDim
            case let .embedding(e, _):
                try need(layer, dim == nil, "Embedding needs token-id input, got \(dim ?? 0) features per step")
                dim = e.cols
            case .masking:
                try need(layer, dim != nil && hasTime, "Masking needs [batch, time, features] input")
            case let .lstm(s):
                try need(layer, hasTime, "LSTM needs a time axis, but the previous layer returns one vector per sequence")
                try need(layer, dim == s.inputDim, "LSTM kernel expects \(s.inputDim) input features, the previous layer gives \(dim.map(String.init) ?? "token ids")")
                recurrent.append(.init(index: recurrent.count, name: layer.name, spec: s))
                dim = s.units
                hasTime = s.returnSequences
            case let .bidirectional(f, b, merge):
                try need(layer, hasTime, "Bidirectional needs a time axis")
                for s in [f, b] {
                    try need(layer, dim == s.inputDim, "LSTM kernel expects \(s.inputDim) input features, the previous layer gives \(dim.map(String.init) ?? "token ids")")
                    recurrent.append(.init(index: recurrent.count, name: layer.name, spec: s))
                }
                try need(layer, f.units == b.units && f.returnSequences == b.returnSequences && f.goBackwards != b.goBackwards,
                         "the two halves must have the same units and return_sequences, and opposite go_backwards")
                dim = merge == .concat ? 2 * f.units : f.units
                hasTime = f.returnSequences
            case let .dense(k, bias, _):
                try need(layer, dim == k.rows, "Dense kernel expects \(k.rows) inputs, the previous layer gives \(dim.map(String.init) ?? "token ids")")
                if let bias, bias.count != k.cols {
                    throw EngineError.weightShape(layer: layer.name, weight: "bias", expected: [k.cols], got: [bias.count])
                }
                dim = k.cols
            case .activation, .identity:
                try need(layer, dim != nil, "\(layer.className) cannot take token ids")
            }
            shapes.append(hasTime ? [nil] + (dim.map { [$0] } ?? []) : (dim.map { [$0] } ?? []))
        }
        self.name = name
        self.format = format
        self.kerasVersion = kerasVersion
        self.layers = layers
        self.recurrentLayers = recurrent
        self.outputShapes = shapes
        self.prepared = layers.map { layer in
            switch layer.kind {
            case let .lstm(s): return PreparedWeights(lstm: [LSTMWeights(s)])
            case let .bidirectional(f, b, _): return PreparedWeights(lstm: [LSTMWeights(f), LSTMWeights(b)])
            case let .dense(k, _, _): return PreparedWeights(dense: PackedMatrix(k))
            default: return PreparedWeights()
            }
        }
    }

    /// Feature count per step of the input, or nil when the model takes token ids.
    public var inputFeatureDim: Int? {
        if case let .input(d) = layers[0].kind { return d }
        return nil
    }

    /// Vocabulary size of the first Embedding, when the model takes token ids.
    public var tokenVocabularySize: Int? {
        for layer in layers { if case let .embedding(e, _) = layer.kind { return e.rows } }
        return nil
    }

    /// True when a Masking or Embedding(mask_zero) layer masks steps.
    public var masksSteps: Bool {
        layers.contains { layer in
            switch layer.kind {
            case .masking: return true
            case let .embedding(_, maskZero): return maskZero
            default: return false
            }
        }
    }

    /// Number of trainable values.
    public var parameterCount: Int { layers.reduce(0) { $0 + $1.parameterCount } }

    /// Runs the whole model on a batch; `observer` receives every computed LSTM step.
    /// Returns the last layer's output: `[batch, time, dim]` or `[batch, dim]`.
    ///
    /// `threads` (default: every core) bounds the threads the engine uses, its own and OpenBLAS's.
    public func forward(_ input: SequenceBatch, observer: GateObserver? = nil, threads: Int? = nil) throws -> Tensor {
        let batch = input.batchSize, time = input.time
        let threads = max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount)
        // The engine splits large batches across threads itself, each with a single-threaded
        // product; a small batch is one thread, and the matrix library may use the others.
        let engineThreads = LSTMForward.threadCount(threads, batch: batch)
        MatrixThreads.limit(to: engineThreads > 1 ? 1 : threads)
        // The caller's lengths act as an extra mask, so padding never reaches a recurrent layer.
        var lengthMask: [Bool]? = nil
        if let lengths = input.lengths {
            guard lengths.count == batch else { throw EngineError.badInput("\(lengths.count) lengths for \(batch) sequences") }
            if lengths.contains(where: { $0 < time }) {
                var m = [Bool](repeating: false, count: batch * time)
                for b in 0..<batch {
                    guard lengths[b] >= 0, lengths[b] <= time else {
                        throw EngineError.badInput("sequence \(b): length \(lengths[b]) outside 0...\(time)")
                    }
                    for t in 0..<lengths[b] { m[b * time + t] = true }
                }
                lengthMask = m
            }
        }
        func withLengths(_ m: [Bool]) -> [Bool] {
            guard let lengthMask else { return m }
            return zip(m, lengthMask).map { $0 && $1 }
        }

        var x: [Float]                 // [batch, time, dim] or [batch, dim]
        var dim: Int
        var hasTime = true
        var mask: [Bool]? = lengthMask  // [batch, time]
        var tokens: [Int32]? = nil
        switch input.values {
        case let .features(v, featureDim):
            guard let want = inputFeatureDim else {
                throw EngineError.badInput("model '\(name)' takes token ids [batch, time], got float features [\(batch), \(time), \(featureDim)]")
            }
            guard featureDim == want else {
                throw EngineError.badInput("model '\(name)' expects \(want) features per step, got \(featureDim)")
            }
            x = v
            dim = featureDim
        case let .tokens(ids):
            if let want = inputFeatureDim {
                throw EngineError.badInput("model '\(name)' takes float features [batch, time, \(want)], got token ids [\(batch), \(time)]")
            }
            tokens = ids
            x = []
            dim = 0
        }

        var recurrentIndex = 0
        for (index, layer) in layers.enumerated() {
            let weights = prepared[index]
            switch layer.kind {
            case .input, .identity:
                break
            case let .embedding(e, maskZero):
                guard let ids = tokens else { throw EngineError.incompatible(layer: layer.name, reason: "Embedding needs token ids") }
                let outDim = e.cols
                var out = [Float](repeating: 0, count: batch * time * outDim)  // [batch, time, outputDim]
                for (pos, id) in ids.enumerated() {
                    if let lengthMask, !lengthMask[pos] { continue }  // padding past a sequence's length
                    guard id >= 0, Int(id) < e.rows else {
                        throw EngineError.badInput("layer '\(layer.name)': token id \(id) at sequence \(pos / time), step \(pos % time) is outside 0..<\(e.rows)")
                    }
                    let src = Int(id) * outDim
                    for j in 0..<outDim { out[pos * outDim + j] = e.values[src + j] }
                }
                if maskZero { mask = withLengths(ids.map { $0 != 0 }) }
                x = out
                dim = outDim
                tokens = nil
            case let .masking(maskValue):
                var m = [Bool](repeating: false, count: batch * time)
                for pos in 0..<(batch * time) {
                    let base = pos * dim
                    var keep = false
                    for j in 0..<dim where x[base + j] != maskValue { keep = true; break }
                    m[pos] = keep
                    if !keep { for j in 0..<dim { x[base + j] = 0 } }
                }
                mask = withLengths(m)
            case let .lstm(spec):
                let r = try LSTMForward(spec: spec, weights: weights.lstm[0],
                                            batch: batch, time: time, threads: engineThreads)
                    .run(x, mask: mask, layerIndex: recurrentIndex, observer: observer)
                recurrentIndex += 1
                // Keras passes the mask on unchanged (not reversed, even for go_backwards).
                if spec.returnSequences { x = r.sequence } else { x = r.last; hasTime = false; mask = nil }
                dim = spec.units
            case let .bidirectional(fwd, bwd, merge):
                let rf = try LSTMForward(spec: fwd, weights: weights.lstm[0],
                                             batch: batch, time: time, threads: engineThreads)
                    .run(x, mask: mask, layerIndex: recurrentIndex, observer: observer)
                let rb = try LSTMForward(spec: bwd, weights: weights.lstm[1],
                                             batch: batch, time: time, threads: engineThreads)
                    .run(x, mask: mask, layerIndex: recurrentIndex + 1, observer: observer)
                recurrentIndex += 2
                let u = fwd.units
                let rows = fwd.returnSequences ? batch * time : batch
                var a = fwd.returnSequences ? rf.sequence : rf.last
                var b = bwd.returnSequences ? rb.sequence : rb.last
                if fwd.goBackwards { a = Self.flipTime(a, batch: batch, time: time, dim: u, when: fwd.returnSequences) }
                if bwd.goBackwards { b = Self.flipTime(b, batch: batch, time: time, dim: u, when: bwd.returnSequences) }
                switch merge {
                case .concat:
                    var out = [Float](repeating: 0, count: rows * 2 * u)  // [rows, 2u]: fwd then bwd
                    for r in 0..<rows {
                        for j in 0..<u { out[r * 2 * u + j] = a[r * u + j]; out[r * 2 * u + u + j] = b[r * u + j] }
                    }
                    x = out
                    dim = 2 * u
                case .sum: x = zip(a, b).map { $0 + $1 }; dim = u
                case .ave: x = zip(a, b).map { ($0 + $1) / 2 }; dim = u
                case .mul: x = zip(a, b).map { $0 * $1 }; dim = u
                }
                if !fwd.returnSequences { hasTime = false; mask = nil }
            case let .dense(kernel, bias, activation):
                let rows = hasTime ? batch * time : batch
                var out = [Float](repeating: 0, count: rows * kernel.cols)  // [rows, units]
                x.withUnsafeBufferPointer { xp in
                    out.withUnsafeMutableBufferPointer { weights.dense!.multiply(xp.baseAddress!, rows: rows, into: $0.baseAddress!) }
                }
                if let bias {
                    for r in 0..<rows { for j in 0..<kernel.cols { out[r * kernel.cols + j] += bias[j] } }
                }
                out.withUnsafeMutableBufferPointer { activation.apply($0, rowLength: kernel.cols) }
                x = out
                dim = kernel.cols
            case let .activation(activation):
                x.withUnsafeMutableBufferPointer { activation.apply($0, rowLength: dim) }
            }
        }
        return Tensor(shape: hasTime ? [batch, time, dim] : [batch, dim], values: x)
    }

    /// Reverses the time axis of `[batch, time, dim]` (a Bidirectional's backward half).
    static func flipTime(_ v: [Float], batch: Int, time: Int, dim: Int, when: Bool) -> [Float] {
        guard when else { return v }
        var out = v
        for b in 0..<batch {
            for t in 0..<time {
                let src = (b * time + t) * dim, dst = (b * time + (time - 1 - t)) * dim
                for j in 0..<dim { out[dst + j] = v[src + j] }
            }
        }
        return out
    }
}

/// One layer's weights prepared for the matrix kernel: an LSTM's (a Bidirectional's forward then
/// backward half), or a Dense kernel.
private struct PreparedWeights: Sendable {
    var lstm: [LSTMWeights] = []
    var dense: PackedMatrix? = nil
}
