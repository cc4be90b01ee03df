import GateScopeEngine

/// What `gatescope inspect` shows about a model: file facts and one entry per layer.
public struct ModelSummary: Codable, Equatable, Sendable {
    /// One layer as `inspect` lists it.
    public struct LayerSummary: Codable, Equatable, Sendable {
        public var name: String
        public var className: String
        /// Output shape including the batch axis; `nil` for free axes (batch, time).
        public var outputShape: [Int?]
        /// `activation` of LSTM/Dense/Activation layers (Keras name).
        public var activation: String?
        /// `recurrent_activation` of LSTM layers.
        public var recurrentActivation: String?
        public var parameterCount: Int
        /// Settings worth seeing, e.g. "units=8", "return_sequences", "mask_zero", "merge_mode=concat".
        public var details: [String]

        // Written by hand so absent activations appear as null in JSON rather than vanishing.
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(className, forKey: .className)
            try c.encode(outputShape, forKey: .outputShape)
            try c.encode(activation, forKey: .activation)
            try c.encode(recurrentActivation, forKey: .recurrentActivation)
            try c.encode(parameterCount, forKey: .parameterCount)
            try c.encode(details, forKey: .details)
        }
    }

    /// One LSTM half that reports gate values, as recorded.
    public struct RecurrentSummary: Codable, Equatable, Sendable {
        public var index: Int
        public var layer: String
        public var direction: String
        public var units: Int
    }

    /// "keras" (Keras 3 zip) or "h5" (legacy HDF5).
    public var format: String
    public var kerasVersion: String
    public var backend: String?
    public var modelName: String
    /// "Sequential" or "Functional".
    public var modelClass: String
    /// Input shape including the batch axis.
    public var inputShape: [Int?]
    /// "float32" features or "int32" token ids.
    public var inputKind: String
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
        try c.encode(layers, forKey: .layers)
        try c.encode(recurrentLayers, forKey: .recurrentLayers)
        try c.encode(totalParameters, forKey: .totalParameters)
    }

    /// Summarizes a loaded model.
    public init(_ loaded: LoadedKerasModel) {
        let model = loaded.model
        format = model.format
        kerasVersion = model.kerasVersion
        backend = loaded.backend
        modelName = model.name
        modelClass = loaded.modelClass
        inputShape = [nil] + (model.outputShapes.first ?? [])
        inputKind = model.inputFeatureDim == nil ? "token ids" : "float features"
        layers = zip(model.layers, model.outputShapes).map { layer, shape in
            var s = LayerSummary(name: layer.name, className: layer.className, outputShape: [nil] + shape,
                                 activation: nil, recurrentActivation: nil, parameterCount: layer.parameterCount, details: [])
            switch layer.kind {
            case .input:
                break
            case let .embedding(e, maskZero):
                s.details = ["input_dim=\(e.rows)", "output_dim=\(e.cols)"] + (maskZero ? ["mask_zero"] : [])
            case let .masking(value):
                s.details = ["mask_value=\(value)"]
            case let .lstm(spec):
                s.activation = spec.activation.kerasName
                s.recurrentActivation = spec.recurrentActivation.kerasName
                s.details = Self.lstmDetails(spec)
            case let .bidirectional(f, b, merge):
                s.activation = f.activation.kerasName
                s.recurrentActivation = f.recurrentActivation.kerasName
                s.details = ["merge_mode=\(merge.rawValue)"] + Self.lstmDetails(f)
                if b.activation != f.activation || b.recurrentActivation != f.recurrentActivation || b.units != f.units {
                    s.details.append("backward: units=\(b.units) \(b.activation.kerasName)/\(b.recurrentActivation.kerasName)")
                }
            case let .dense(k, bias, a):
                s.activation = a.kerasName
                s.details = ["units=\(k.cols)"] + (bias == nil ? ["use_bias=false"] : [])
            case let .activation(a):
                s.activation = a.kerasName
            case .identity:
                s.details = ["no-op at inference"]
            }
            let used = Self.activations(layer.kind)
            if used.contains(.hardSigmoidKeras2) { s.details.append("hard_sigmoid=clip(0.2x+0.5,0,1) (Keras 2)") }
            if used.contains(.hardSigmoidKeras3) { s.details.append("hard_sigmoid=clip(x/6+0.5,0,1) (Keras 3)") }
            return s
        }
        recurrentLayers = model.recurrentLayers.map {
            RecurrentSummary(index: $0.index, layer: $0.name, direction: $0.direction.rawValue, units: $0.units)
        }
        totalParameters = model.parameterCount
    }

    static func activations(_ kind: LayerKind) -> [Activation] {
        switch kind {
        case let .lstm(s): return [s.activation, s.recurrentActivation]
        case let .bidirectional(f, b, _): return [f.activation, f.recurrentActivation, b.activation, b.recurrentActivation]
        case let .dense(_, _, a), let .activation(a): return [a]
        default: return []
        }
    }

    static func lstmDetails(_ s: LSTMSpec) -> [String] {
        var d = ["units=\(s.units)"]
        if s.returnSequences { d.append("return_sequences") }
        if s.goBackwards { d.append("go_backwards") }
        if s.bias == nil { d.append("use_bias=false") }
        return d
    }
}
