import GateScopeEngine

/// What `gatescope inspect` shows about a model: file facts, its inputs and outputs, and one entry per layer call.
public struct ModelSummary: Codable, Equatable, Sendable {
    /// One layer call (graph node) as `inspect` lists it; model inputs come first as InputLayer rows.
    public struct LayerSummary: Codable, Equatable, Sendable {
        /// The call's name (`lstm`, `lstm#2` for a shared layer's second call).
        public var name: String
        public var className: String
        /// The calls (or model inputs) whose outputs this call reads, `name:k` for output k > 0.
        public var inbound: [String]
        /// Shape of the first output including the batch axis; `nil` for free axes (batch, time).
        public var outputShape: [Int?]
        /// Shapes of every output (several with return_state or merge_mode=None).
        public var outputShapes: [[Int?]]
        /// Whether a `[batch, time]` mask travels with the first output.
        public var masked: Bool
        /// `activation` of recurrent/Dense/Activation layers (Keras name).
        public var activation: String?
        /// `recurrent_activation` of recurrent layers.
        public var recurrentActivation: String?
        public var parameterCount: Int
        /// Settings worth seeing, e.g. "units=8", "return_sequences", "mask_zero", "padding=causal".
        public var details: [String]

        // Written by hand so absent activations appear as null in JSON rather than vanishing.
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(className, forKey: .className)
            try c.encode(inbound, forKey: .inbound)
            try c.encode(outputShape, forKey: .outputShape)
            try c.encode(outputShapes, forKey: .outputShapes)
            try c.encode(masked, forKey: .masked)
            try c.encode(activation, forKey: .activation)
            try c.encode(recurrentActivation, forKey: .recurrentActivation)
            try c.encode(parameterCount, forKey: .parameterCount)
            try c.encode(details, forKey: .details)
        }
    }

    /// One recurrent half, with whether `record` stores its gates.
    public struct RecurrentSummary: Codable, Equatable, Sendable {
        public var index: Int
        public var layer: String
        public var cell: String
        public var direction: String
        public var units: Int
        /// The model input whose time axis this half walks (nil: made inside the model).
        public var timeFrom: String?
        /// True when its step t is step t of that input.
        public var aligned: Bool
        /// True when `record` stores this half's gates (every cell kind the engine runs).
        public var recorded: Bool

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(layer, forKey: .layer)
            try c.encode(cell, forKey: .cell)
            try c.encode(direction, forKey: .direction)
            try c.encode(units, forKey: .units)
            try c.encode(timeFrom, forKey: .timeFrom)
            try c.encode(aligned, forKey: .aligned)
            try c.encode(recorded, forKey: .recorded)
        }
    }

    /// A model input or output.
    public struct Endpoint: Codable, Equatable, Sendable {
        public var name: String
        /// Shape including the batch axis.
        public var shape: [Int?]
        /// "float32" features or "int32" token ids.
        public var dtype: String
    }

    /// "keras" (Keras 3 zip) or "h5" (legacy HDF5).
    public var format: String
    public var kerasVersion: String
    public var backend: String?
    public var modelName: String
    /// "Sequential" or "Functional".
    public var modelClass: String
    /// The first input's shape including the batch axis.
    public var inputShape: [Int?]
    /// "float features" or "token ids" (the first input).
    public var inputKind: String
    public var inputs: [Endpoint]
    public var outputs: [Endpoint]
    public var layers: [LayerSummary]
    public var recurrentLayers: [RecurrentSummary]
    public var totalParameters: Int

    // Written by hand so an unknown backend appears as null in JSON rather than vanishing.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(format, forKey: .format)
        try c.encode(kerasVersion, forKey: .kerasVersion)
        try c.encode(backend, forKey: .backend)
        try c.encode(modelName, forKey: .modelName)
        try c.encode(modelClass, forKey: .modelClass)
        try c.encode(inputShape, forKey: .inputShape)
        try c.encode(inputKind, forKey: .inputKind)
        try c.encode(inputs, forKey: .inputs)
        try c.encode(outputs, forKey: .outputs)
        try c.encode(layers, forKey: .layers)
        try c.encode(recurrentLayers, forKey: .recurrentLayers)
        try c.encode(totalParameters, forKey: .totalParameters)
    }

    /// The cells whose gates `record` stores.
    public static let recordedCells = Set(CellKind.allCases)

    /// Summarizes a loaded model.
    public init(_ loaded: LoadedKerasModel) {
        self.init(model: loaded.model, backend: loaded.backend, modelClass: loaded.modelClass)
    }

    /// Summarizes any engine model (ONNX, PyTorch): the graph says everything shown.
    public init(model: Model, backend: String?, modelClass: String) {
        let graph = model.graph
        format = model.format
        kerasVersion = model.kerasVersion.isEmpty ? model.producer : model.kerasVersion
        self.backend = backend
        modelName = model.name
        self.modelClass = modelClass
        let first = graph.tensors[graph.inputs[0].tensor]
        inputShape = [nil] + first.shape
        inputKind = first.dtype == .int32 ? "token ids" : "float features"
        inputs = graph.inputs.map { Endpoint(name: $0.name, shape: [nil] + graph.tensors[$0.tensor].shape, dtype: graph.tensors[$0.tensor].dtype.rawValue) }
        outputs = graph.outputs.map { Endpoint(name: $0.name, shape: [nil] + graph.tensors[$0.tensor].shape, dtype: graph.tensors[$0.tensor].dtype.rawValue) }

        // Who made each tensor, for the inbound column.
        var maker: [TensorID: String] = [:]
        for input in graph.inputs { maker[input.tensor] = input.name }
        for node in graph.nodes {
            for (k, t) in node.outputs.enumerated() { maker[t] = k == 0 ? node.name : "\(node.name):\(k)" }
        }
        var rows = graph.inputs.map { input -> LayerSummary in
            let info = graph.tensors[input.tensor]
            return LayerSummary(name: input.name, className: "InputLayer", inbound: [], outputShape: [nil] + info.shape,
                                outputShapes: [[nil] + info.shape], masked: false, activation: nil, recurrentActivation: nil,
                                parameterCount: 0, details: [info.dtype.rawValue])
        }
        var counted = Set<String>()
        for node in graph.nodes {
            let shapes = node.outputs.map { [nil] + graph.tensors[$0].shape }
            var s = LayerSummary(name: node.name, className: node.op.className, inbound: node.inputs.map { maker[$0] ?? "?" },
                                 outputShape: shapes[0], outputShapes: shapes, masked: graph.tensors[node.outputs[0]].masked,
                                 activation: nil, recurrentActivation: nil,
                                 parameterCount: counted.insert(node.layer).inserted ? node.op.parameterCount : 0,
                                 details: node.op.details)
            if let h = node.op.recurrentHalves.first {
                s.activation = h.activation.kerasName
                s.recurrentActivation = h.cell == .simpleRNN ? nil : h.recurrentActivation.kerasName
            } else if let a = s.details.first(where: { $0.hasPrefix("activation=") }) {
                s.activation = String(a.dropFirst("activation=".count))
                s.details.removeAll { $0.hasPrefix("activation=") }
            }
            let used = node.op.recurrentHalves.flatMap { [$0.activation, $0.recurrentActivation] }
            if used.contains(.hardSigmoidKeras2) { s.details.append("hard_sigmoid=clip(0.2x+0.5,0,1) (Keras 2)") }
            if used.contains(.hardSigmoidKeras3) { s.details.append("hard_sigmoid=clip(x/6+0.5,0,1) (Keras 3)") }
            if node.call > 0 { s.details.append("shared: call \(node.call + 1) of '\(node.layer)'") }
            rows.append(s)
        }
        layers = rows
        recurrentLayers = model.recurrentLayers.map {
            RecurrentSummary(index: $0.index, layer: $0.name, cell: $0.cell.rawValue, direction: $0.direction.rawValue, units: $0.units,
                             timeFrom: $0.time?.input, aligned: $0.time?.aligned ?? false, recorded: Self.recordedCells.contains($0.cell))
        }
        totalParameters = model.parameterCount
    }
}
