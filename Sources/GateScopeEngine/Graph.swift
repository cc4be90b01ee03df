/// Index of a tensor in `Graph.tensors`.
public typealias TensorID = Int

/// Element type of a graph tensor. Token ids travel as exact Float values (ids < 2^24).
public enum DType: String, Sendable, Codable {
    case float32, int32
}

/// Where a tensor's time axis (axis 1 after the batch) comes from, for lining up recorded steps with tokens.
public struct TimeAxis: Equatable, Sendable {
    /// The model input whose axis this is, or nil when the axis was made inside the model (RepeatVector).
    public var input: String?
    /// True when step t of this axis is step t of that input (stride 1, no cropping, no pooling).
    public var aligned: Bool

    /// Creates an axis description.
    public init(input: String?, aligned: Bool) {
        self.input = input
        self.aligned = aligned
    }

    /// The same input, no longer lined up step for step.
    public var shifted: TimeAxis { TimeAxis(input: input, aligned: false) }
}

/// What the graph knows of a tensor before running: its shape, dtype, mask and time axis.
public struct TensorInfo: Equatable, Sendable {
    /// Shape without the batch axis; nil for a size known only at run time (a free time axis).
    public var shape: [Int?]
    public var dtype: DType
    /// True when a `[batch, time]` mask may travel with the tensor.
    public var masked: Bool
    /// The time axis (shape[0]) provenance; nil when the tensor has no time axis.
    public var time: TimeAxis?

    /// Creates a description.
    public init(shape: [Int?], dtype: DType = .float32, masked: Bool = false, time: TimeAxis? = nil) {
        self.shape = shape
        self.dtype = dtype
        self.masked = masked
        self.time = time
    }

    /// Rank without the batch axis.
    public var rank: Int { shape.count }
    /// The last axis' size (features), when known.
    public var features: Int? { shape.last ?? nil }
}

/// One call of a layer: the op, the tensors it reads and the tensors it makes.
public struct Node: Sendable {
    /// The call's name: the layer name for its first call, `name#2`, `name#3` for later ones.
    public var name: String
    /// The layer (operation) name shared by every call.
    public var layer: String
    /// 0-based index of this call among the layer's calls.
    public var call: Int
    public var op: any Op
    public var inputs: [TensorID]
    public var outputs: [TensorID]
    /// First index into `Model.recurrentLayers` of the halves this call reports, or -1.
    public var recurrentBase: Int
}

/// A model input: a name (the framework's input name) and the tensor it feeds.
public struct GraphInput: Equatable, Sendable {
    public var name: String
    public var tensor: TensorID
    /// For token inputs: ids must be below this (the smallest Embedding reading it), when known.
    public var vocabularySize: Int?
    /// The axis of the framework's own array that is the batch (1 for ONNX's time-major
    /// `[time, batch, features]` inputs); the engine tensor always has it first.
    public var fileBatchAxis: Int = 0
    /// When this input carries the sequence lengths of input `lengthsOf` (ONNX `sequence_lens`
    /// fed from the graph inputs), the recorder fills it from that input's lengths.
    public var lengthsOf: Int? = nil
}

/// A model output: its key (`layer`, `layer#2`, `layer:1`) and the tensor.
public struct GraphOutput: Equatable, Sendable {
    public var name: String
    public var tensor: TensorID
    /// Where the framework's own layout has the batch axis (the engine tensor has it first).
    public var fileBatchAxis: Int = 0
}

/// Builds a graph node by node; every node's output shapes and masks are worked out here, once.
///
/// Importers (Keras, ONNX) add inputs, then nodes in dependency order, then mark outputs.
public struct GraphBuilder {
    public private(set) var tensors: [TensorInfo] = []
    public private(set) var nodes: [Node] = []
    public private(set) var inputs: [GraphInput] = []
    public private(set) var outputs: [GraphOutput] = []
    private var callCounts: [String: Int] = [:]
    /// Recurrent halves of the nodes so far: the next recurrent node's first `Model.recurrentLayers` index.
    private var recurrentCount = 0

    /// An empty graph.
    public init() {}

    /// Marks input `k` as the lengths of input `of` (see `GraphInput.lengthsOf`).
    public mutating func setLengths(input k: Int, of other: Int) { inputs[k].lengthsOf = other }

    /// Adds a model input `[batch] + shape` and returns its tensor; `fileBatchAxis` says where the
    /// batch axis is in the arrays users give for it.
    public mutating func addInput(name: String, shape: [Int?], dtype: DType, fileBatchAxis: Int) throws -> TensorID {
        let id = try addInput(name: name, shape: shape, dtype: dtype)
        inputs[inputs.count - 1].fileBatchAxis = fileBatchAxis
        return id
    }

    /// Adds a model input `[batch] + shape` and returns its tensor.
    public mutating func addInput(name: String, shape: [Int?], dtype: DType) throws -> TensorID {
        guard !inputs.contains(where: { $0.name == name }) else {
            throw EngineError.incompatible(layer: name, reason: "two model inputs have this name")
        }
        let id = tensors.count
        tensors.append(TensorInfo(shape: shape, dtype: dtype, masked: false,
                                  time: shape.isEmpty ? nil : TimeAxis(input: name, aligned: true)))
        inputs.append(GraphInput(name: name, tensor: id, vocabularySize: nil))
        return id
    }

    /// Adds one call of layer `layer` running `op` on `inputs`; returns its output tensors.
    ///
    /// Calls are numbered per layer in the order they are added: the first is named `layer`,
    /// later ones `layer#2`, `layer#3`.
    @discardableResult
    public mutating func add(layer: String, op: any Op, inputs: [TensorID]) throws -> [TensorID] {
        let call = callCounts[layer, default: 0]
        callCounts[layer] = call + 1
        let name = call == 0 ? layer : "\(layer)#\(call + 1)"
        for t in inputs where t < 0 || t >= tensors.count {
            throw EngineError.incompatible(layer: name, reason: "refers to a tensor that does not exist")
        }
        let infos: [TensorInfo]
        do { infos = try op.infer(inputs.map { tensors[$0] }) } catch let EngineError.incompatible(_, reason) {
            throw EngineError.incompatible(layer: name, reason: reason)
        } catch let EngineError.weightShape(_, weight, expected, got) {
            throw EngineError.weightShape(layer: name, weight: weight, expected: expected, got: got)
        }
        if let embedding = op as? EmbeddingOp {
            // Token inputs are bounded by the Embedding that reads them.
            for (k, input) in self.inputs.enumerated() where inputs.first == input.tensor {
                self.inputs[k].vocabularySize = min(input.vocabularySize ?? Int.max, embedding.embeddings.rows)
            }
        }
        let first = tensors.count
        tensors += infos
        let outs = Array(first..<tensors.count)
        let halves = op.recurrentHalves.count
        nodes.append(Node(name: name, layer: layer, call: call, op: op, inputs: inputs, outputs: outs,
                          recurrentBase: halves == 0 ? -1 : recurrentCount))
        recurrentCount += halves
        return outs
    }

    /// Marks `tensor` as a model output named `name`.
    public mutating func addOutput(name: String, tensor: TensorID, fileBatchAxis: Int = 0) {
        outputs.append(GraphOutput(name: name, tensor: tensor, fileBatchAxis: fileBatchAxis))
    }
}

/// A model as a graph of layer calls in topological order, with every tensor's shape and mask known.
public struct Graph: Sendable {
    public let tensors: [TensorInfo]
    public let nodes: [Node]
    public let inputs: [GraphInput]
    public let outputs: [GraphOutput]

    /// Freezes a builder; checks that every node only reads tensors made before it.
    public init(_ b: GraphBuilder) throws {
        guard !b.inputs.isEmpty else { throw EngineError.incompatible(layer: "model", reason: "the model has no input") }
        guard !b.outputs.isEmpty else { throw EngineError.incompatible(layer: "model", reason: "the model has no output") }
        var made = Set(b.inputs.map(\.tensor))
        for node in b.nodes {
            for t in node.inputs where !made.contains(t) {
                throw EngineError.incompatible(layer: node.name, reason: "reads tensor \(t) before it is computed")
            }
            made.formUnion(node.outputs)
        }
        tensors = b.tensors
        nodes = b.nodes
        inputs = b.inputs
        outputs = b.outputs
    }

    /// The node that makes tensor `t`, or nil for a model input.
    public func producer(of t: TensorID) -> Node? { nodes.first { $0.outputs.contains(t) } }
}
