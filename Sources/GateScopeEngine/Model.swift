import Foundation

/// One recurrent half that reports gate values: a plain recurrent call gives one, a Bidirectional two.
public struct RecurrentLayerInfo: Equatable, Sendable {
    /// Index in `Model.recurrentLayers`; the `layer` of every `GateStep` from it.
    public var index: Int
    /// The call's name (`lstm`, or `lstm#2` for a shared layer's second call); both halves of a
    /// Bidirectional share it.
    public var name: String
    public var cell: CellKind
    public var direction: Direction
    public var units: Int
    public var inputDim: Int
    public var activation: Activation
    public var recurrentActivation: Activation
    /// Where the call's time axis comes from, and whether its steps line up with that input's.
    public var time: TimeAxis?

    /// Creates a description (tests build these by hand).
    public init(index: Int, name: String, cell: CellKind = .lstm, direction: Direction, units: Int, inputDim: Int,
                activation: Activation, recurrentActivation: Activation, time: TimeAxis? = nil) {
        self.index = index
        self.name = name
        self.cell = cell
        self.direction = direction
        self.units = units
        self.inputDim = inputDim
        self.activation = activation
        self.recurrentActivation = recurrentActivation
        self.time = time
    }
}

/// A model ready to run: a graph of layer calls plus the file facts; built by an importer or by hand.
public struct Model: Sendable {
    /// The model name the file gives.
    public var name: String
    /// Where the model came from, e.g. "keras" (Keras 3 zip) or "h5" (legacy HDF5).
    public var format: String
    /// The `keras_version` the file was written with ("" if unknown).
    public var kerasVersion: String
    /// What wrote the file when it is not Keras: an ONNX producer ("pytorch 2.5.0 (opset 17)"),
    /// or the torch file format ("" if unknown).
    public var producer: String = ""
    public let graph: Graph
    /// Every recurrent half, in node order (a Bidirectional gives fwd then bwd).
    public let recurrentLayers: [RecurrentLayerInfo]
    /// The first node that mixes steps across time, or nil when sequences of different lengths
    /// may share a padded batch (every op is length-safe).
    public let firstTimeMixingNode: Node?

    /// Wraps a graph and indexes its recurrent halves.
    public init(name: String, format: String, kerasVersion: String, graph: Graph) {
        self.name = name
        self.format = format
        self.kerasVersion = kerasVersion
        self.graph = graph
        var recurrent: [RecurrentLayerInfo] = []
        for node in graph.nodes {
            let time = node.inputs.first.flatMap { graph.tensors[$0].time }
            for h in node.op.recurrentHalves {
                recurrent.append(RecurrentLayerInfo(index: recurrent.count, name: node.name, cell: h.cell, direction: h.direction,
                                                    units: h.units, inputDim: h.inputDim, activation: h.activation,
                                                    recurrentActivation: h.recurrentActivation, time: time))
            }
        }
        recurrentLayers = recurrent
        firstTimeMixingNode = graph.nodes.first { !$0.op.lengthSafe }
    }

    /// Builds a single-chain model (first layer the input), as tests and benchmarks write them by hand.
    public init(name: String, format: String, kerasVersion: String, layers: [Layer]) throws {
        guard case let .input(featureDim) = layers.first?.kind else {
            throw EngineError.incompatible(layer: layers.first?.name ?? name, reason: "a model must start with its input layer")
        }
        var b = GraphBuilder()
        var x = try b.addInput(name: layers[0].name, shape: featureDim.map { [nil, $0] } ?? [nil], dtype: featureDim == nil ? .int32 : .float32)
        for layer in layers.dropFirst() {
            let op: any Op
            switch layer.kind {
            case .input: throw EngineError.incompatible(layer: layer.name, reason: "an input layer can only come first")
            case let .embedding(e, maskZero): op = EmbeddingOp(embeddings: e, maskZero: maskZero)
            case let .masking(v): op = MaskingOp(maskValue: v)
            case let .lstm(s): op = RecurrentOp(cell: .lstm(s), returnState: false)
            case let .bidirectional(f, bw, merge): op = try BidirectionalOp(forward: .lstm(f), backward: .lstm(bw), merge: merge, returnState: false)
            case let .dense(k, bias, a): op = try DenseOp(kernel: k, bias: bias, activation: a)
            case let .activation(a): op = ActivationOp(a)
            case .identity: op = IdentityOp(className: layer.className)
            }
            x = try b.add(layer: layer.name, op: op, inputs: [x])[0]
        }
        b.addOutput(name: layers.last!.name, tensor: x)
        self.init(name: name, format: format, kerasVersion: kerasVersion, graph: try Graph(b))
    }

    /// The model inputs with their static facts.
    public var inputs: [(input: GraphInput, info: TensorInfo)] { graph.inputs.map { ($0, graph.tensors[$0.tensor]) } }

    /// Feature count per step of the first input, or nil when it takes token ids.
    public var inputFeatureDim: Int? { inputFeatureDim(0) }

    /// Values per step of input `k` (the product of its axes after time, e.g. 18 for
    /// `(None, T, 6, 3)`), or nil when it takes token ids.
    public func inputFeatureDim(_ k: Int) -> Int? {
        let info = graph.tensors[graph.inputs[k].tensor]
        guard info.dtype != .int32 else { return nil }
        return inputStepShape(k).reduce(1, *)
    }

    /// The axes of input `k` after batch and time (`[]` for token ids, `[6, 3]` for `(None, T, 6, 3)`).
    public func inputStepShape(_ k: Int) -> [Int] {
        let info = graph.tensors[graph.inputs[k].tensor]
        return info.shape.dropFirst().map { $0 ?? 0 }
    }

    /// Vocabulary size of the Embedding reading the first input, when it takes token ids.
    public var tokenVocabularySize: Int? { graph.inputs[0].vocabularySize }

    /// Number of trainable values.
    public var parameterCount: Int {
        var seen = Set<String>()
        return graph.nodes.reduce(0) { sum, node in seen.insert(node.layer).inserted ? sum + node.op.parameterCount : sum }
    }

    /// True when every op is length-safe: sequences of different lengths may share a padded batch.
    public var lengthSafe: Bool { firstTimeMixingNode == nil }

    /// Runs a single-input model on a batch and returns its first output: `[batch, time, dim]` or `[batch, dim]`.
    ///
    /// `threads` (default: every core) bounds the threads the engine uses, its own and OpenBLAS's.
    public func forward(_ input: SequenceBatch, observer: GateObserver? = nil, threads: Int? = nil) throws -> Tensor {
        guard graph.inputs.count == 1 else {
            throw EngineError.badInput("model '\(name)' has \(graph.inputs.count) inputs (\(graph.inputs.map(\.name).joined(separator: ", "))); give one array per input")
        }
        let x: Tensor
        switch input.values {
        case let .features(v, featureDim): x = Tensor(shape: [input.batchSize, input.time, featureDim], values: v)
        case let .tokens(ids): x = Tensor(shape: [input.batchSize, input.time], values: ids.map { Float($0) }, dtype: .int32)
        }
        return try run([x], lengths: [input.lengths], observer: observer, threads: threads)[0]
    }

    /// Checks one input value against the model input's shape and dtype; the message names the input.
    public func check(_ value: Tensor, input k: Int) throws {
        let (input, info) = inputs[k]
        let expected = shapeText([nil] + info.shape) + " " + info.dtype.rawValue
        guard value.dtype == info.dtype else {
            throw EngineError.badInput("input '\(input.name)': got \(value.dtype.rawValue) \(value.shape), expected \(expected)\(info.dtype == .int32 ? " token ids" : " features")")
        }
        // The time axis may differ from a declared fixed length, as Keras only warns about it;
        // every other axis must match.
        let fits = value.shape.count == info.rank + 1
            && zip(value.shape.dropFirst(), info.shape).enumerated().allSatisfy { k, p in p.1 == nil || p.0 == p.1 || (k == 0 && info.rank >= 2) }
        guard fits else { throw EngineError.badInput("input '\(input.name)': got shape \(value.shape), expected \(expected)") }
    }

    /// Runs the graph: one value per model input (`[batch, ...]`), optional per-input sequence
    /// lengths (steps past a length count as masked); returns one value per model output.
    public func run(_ values: [Tensor], lengths: [[Int]?]? = nil, observer: GateObserver? = nil, threads: Int? = nil) throws -> [Tensor] {
        try runWithMasks(values, lengths: lengths, observer: observer, threads: threads).map(\.value)
    }

    /// The same, with each output's mask.
    public func runWithMasks(_ values: [Tensor], lengths: [[Int]?]? = nil, observer: GateObserver? = nil, threads: Int? = nil) throws -> [Output] {
        let slots = try execute(values, lengths: lengths, observer: observer, threads: threads, only: nil)
        return graph.outputs.map { slots[$0.tensor]! }
    }

    /// Runs only the nodes that the recurrent halves `layers` (indices into `recurrentLayers`)
    /// read from, and theirs, for a caller that wants their gates (through `observer`) and not the
    /// model's outputs: a recording skips the heads after its last recorded layer (a Dense over a
    /// large vocabulary at every step can cost several times the LSTM below it).
    public func observe(_ values: [Tensor], lengths: [[Int]?]? = nil, layers: Set<Int>, observer: GateObserver, threads: Int? = nil) throws {
        _ = try execute(values, lengths: lengths, observer: observer, threads: threads, only: nodesFeeding(layers))
    }

    /// Indices into `graph.nodes` of the nodes of recurrent halves `layers` and of every node
    /// they depend on.
    public func nodesFeeding(_ layers: Set<Int>) -> Set<Int> {
        var producer = [Int](repeating: -1, count: graph.tensors.count)
        for (k, node) in graph.nodes.enumerated() { for t in node.outputs { producer[t] = k } }
        var needed = Set<Int>()
        var stack = graph.nodes.indices.filter { k in
            let node = graph.nodes[k], halves = node.op.recurrentHalves.count
            return node.recurrentBase >= 0 && (node.recurrentBase..<node.recurrentBase + halves).contains { layers.contains($0) }
        }
        while let k = stack.popLast() {
            guard needed.insert(k).inserted else { continue }
            for t in graph.nodes[k].inputs where producer[t] >= 0 { stack.append(producer[t]) }
        }
        return needed
    }

    /// The graph's tensors after running `only` (indices into `graph.nodes`; nil: every node).
    private func execute(_ values: [Tensor], lengths: [[Int]?]?, observer: GateObserver?, threads: Int?, only: Set<Int>?) throws -> [Output?] {
        guard values.count == graph.inputs.count else {
            throw EngineError.badInput("model '\(name)' takes \(graph.inputs.count) input(s) (\(graph.inputs.map(\.name).joined(separator: ", "))), got \(values.count)")
        }
        for (k, v) in values.enumerated() { try check(v, input: k) }
        let batch = values[0].shape[0]
        for (k, v) in values.enumerated() where v.shape[0] != batch {
            throw EngineError.badInput("input '\(graph.inputs[k].name)' has \(v.shape[0]) sequences, input '\(graph.inputs[0].name)' \(batch)")
        }
        let threads = max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount)
        // The engine splits large batches across threads itself, each with a single-threaded
        // product; a small batch is one thread, and the matrix library may use the others.
        let engineThreads = LSTMForward.threadCount(threads, batch: batch)
        return try MatrixThreads.withLimit(engineThreads > 1 ? 1 : threads) {
            try execute(values, batch: batch, threads: threads, engineThreads: engineThreads, lengths: lengths, observer: observer, only: only)
        }
    }

    /// The body of `execute`, while OpenBLAS runs at most the threads the call was given.
    private func execute(_ values: [Tensor], batch: Int, threads: Int, engineThreads: Int, lengths: [[Int]?]?,
                         observer: GateObserver?, only: Set<Int>?) throws -> [Output?] {
        // The first node that runs and mixes steps across time.
        let mixingNode = only.map { only in graph.nodes.enumerated().first { only.contains($0.offset) && !$0.element.op.lengthSafe }?.element }
            ?? firstTimeMixingNode
        var slots = [Output?](repeating: nil, count: graph.tensors.count)
        for (k, input) in graph.inputs.enumerated() {
            let v = values[k]
            // The caller's lengths act as a mask, so padding never reaches a recurrent step.
            let mask = try lengthMask(lengths?[k] ?? nil, batch: batch, time: v.shape.count > 1 ? v.shape[1] : 1, input: input.name)
            if mask != nil, let mixing = mixingNode, Set(lengths?[k] ?? []).count > 1 {
                throw EngineError.badInput("model '\(name)' mixes steps across time (\(mixing.op.className) '\(mixing.name)'), so sequences of different lengths cannot share a padded batch; batch them by length")
            }
            slots[input.tensor] = Output(v, mask: mask)
        }
        for (index, node) in graph.nodes.enumerated() where only?.contains(index) ?? true {
            let ins = node.inputs.map { slots[$0]! }
            let context = OpContext(node: node.name, threads: engineThreads, threadBudget: threads, observer: observer,
                                    recurrentBase: node.recurrentBase)
            let outs: [Output]
            do {
                outs = try node.op.run(ins.map(\.value), masks: ins.map(\.mask), context: context)
            } catch let EngineError.badInput(message) where !message.hasPrefix("layer '") {
                throw EngineError.badInput("layer '\(node.name)': \(message)")
            }
            precondition(outs.count == node.outputs.count, "\(node.name) made \(outs.count) outputs, expected \(node.outputs.count)")
            for (t, o) in zip(node.outputs, outs) { slots[t] = o }
        }
        return slots
    }

    /// `[batch, time]` mask for `lengths`, or nil when every sequence fills the batch.
    func lengthMask(_ lengths: [Int]?, batch: Int, time: Int, input: String) throws -> [Bool]? {
        guard let lengths else { return nil }
        guard lengths.count == batch else { throw EngineError.badInput("input '\(input)': \(lengths.count) lengths for \(batch) sequences") }
        guard lengths.contains(where: { $0 < time }) else { return nil }
        var m = [Bool](repeating: false, count: batch * time)
        for b in 0..<batch {
            guard lengths[b] >= 0, lengths[b] <= time else {
                throw EngineError.badInput("input '\(input)', sequence \(b): length \(lengths[b]) outside 0...\(time)")
            }
            for t in 0..<lengths[b] { m[b * time + t] = true }
        }
        return m
    }

    /// Steps of each recurrent half's time axis for inputs of `times` steps (index = input), or nil
    /// where the axis has no fixed relation to the inputs' lengths.
    public func recurrentSteps(inputTimes: [Int]) throws -> [Int] {
        var sizes = [[Int]?](repeating: nil, count: graph.tensors.count)
        var steps: [Int] = []
        for (k, input) in graph.inputs.enumerated() {
            var s = graph.tensors[input.tensor].shape.map { $0 ?? 0 }
            if !s.isEmpty { s[0] = inputTimes[k] }
            sizes[input.tensor] = s
        }
        for node in graph.nodes {
            let infos = node.inputs.map { t -> TensorInfo in
                var info = graph.tensors[t]
                info.shape = sizes[t]!.map { Optional($0) }
                return info
            }
            let outs = try node.op.infer(infos)
            for (t, o) in zip(node.outputs, outs) { sizes[t] = o.shape.map { $0 ?? 0 } }
            // Ops that cannot size an axis before running (ONNX tensor ops report 0) give the
            // longest input's steps: an upper bound for the graphs exporters write.
            for _ in node.op.recurrentHalves {
                let n = sizes[node.inputs[0]]![0]
                steps.append(n > 0 ? n : (inputTimes.max() ?? 0))
            }
        }
        return steps
    }
}
