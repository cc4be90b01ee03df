import Foundation
import GateScopeEngine

/// Turns one Keras layer entry into an engine op, reading and shape-checking its weights.
struct KerasLayerFactory {
    let file: String
    let kerasMajor: Int
    let store: WeightStore
    /// Enclosing sub-model names, for weight paths.
    let scope: [String]

    static let identityClasses: Set<String> = [
        "Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
    ]

    /// The op for `entry`, whose call reads tensors described by `inputs` (data inputs only).
    mutating func op(_ entry: LayerEntry, inputs: [TensorInfo]) throws -> any Op {
        let c = entry.config
        let x = inputs.first ?? TensorInfo(shape: [])
        if entry.isOpNode || ["NotEqual", "Any", "Equal", "All", "Cast", "TFOpLambda", "SlicingOpLambda"].contains(entry.className) {
            throw KerasError.unsupportedLayer(file: file, layer: entry.name, className: entry.className,
                                              reason: "a raw tensor operation on the data path is not supported (only as part of a mask)")
        }
        if let data = c["data_format"] as? String, data != "channels_last" {
            throw KerasError.unsupportedLayer(file: file, layer: entry.name, className: entry.className, reason: "data_format=\(data) is not supported (channels_last only)")
        }
        switch entry.className {
        case "Embedding":
            let inputDim = try int(c, "input_dim", entry), outputDim = try int(c, "output_dim", entry)
            let paths = try store.paths(for: entry, scope: scope, part: .main, expected: ["embeddings"])
            let e = try read(paths[0], [inputDim, outputDim], entry)
            return EmbeddingOp(embeddings: Matrix(rows: inputDim, cols: outputDim, values: e), maskZero: bool(c, "mask_zero", false))
        case "Masking":
            return MaskingOp(maskValue: (c["mask_value"] as? NSNumber)?.floatValue ?? 0)
        case "LSTM", "GRU", "SimpleRNN":
            try refuseStateful(c, entry)
            // Keras 3 configs carry zero_output_for_mask; Keras 2 plain RNNs leave it False.
            let cell = try recurrent(entry.className, c, entry: entry, part: .main, inputDim: x.features,
                                     zeroOutputForMask: bool(c, "zero_output_for_mask", false))
            return RecurrentOp(cell: cell, returnState: bool(c, "return_state", false), kerasMajor: kerasMajor)
        case "Bidirectional":
            return try bidirectional(entry, inputDim: x.features)
        case "Dense":
            return try dense(entry, config: c, part: .main, inputDim: x.features)
        case "TimeDistributed":
            guard let inner = c["layer"] as? JSONObject, let innerClass = inner["class_name"] as? String else {
                throw KerasError.badConfig(file: file, layer: entry.name, reason: "TimeDistributed without a wrapped layer")
            }
            var innerEntry = try KerasConfigParser.entry(inner, file: file)
            innerEntry = LayerEntry(name: entry.name, className: innerClass, module: innerEntry.module, config: innerEntry.config, raw: innerEntry.raw)
            let stepInfo = TensorInfo(shape: Array(x.shape.dropFirst()), dtype: x.dtype)
            let innerOp: any Op
            if innerClass == "Dense" {
                innerOp = try dense(innerEntry, config: innerEntry.config, part: .inner, inputDim: stepInfo.features)
            } else {
                var f = KerasLayerFactory(file: file, kerasMajor: kerasMajor, store: InnerWeights(outer: store, wrapper: entry), scope: scope)
                innerOp = try f.op(innerEntry, inputs: [stepInfo])
            }
            return try wrapEngine(entry) { try TimeDistributedOp(innerOp) }
        case "Activation":
            return ActivationOp(try activation(c, "activation", default: "linear", entry))
        case "ReLU", "LeakyReLU", "Softmax", "ELU":
            return try activationLayer(entry)
        case let cls where Self.identityClasses.contains(cls):
            return IdentityOp(className: cls)
        case "Conv1D":
            return try conv1D(entry, inputChannels: x.features)
        case "MaxPooling1D", "AveragePooling1D":
            let size = try intOrFirst(c, "pool_size", entry, default: 2)
            let stride = try intOrFirst(c, "strides", entry, default: size)
            return try wrapEngine(entry) {
                try Pool1DOp(kind: entry.className == "MaxPooling1D" ? .max : .average, size: size, stride: stride, padding: try padding(c, entry))
            }
        case "GlobalMaxPooling1D", "GlobalAveragePooling1D":
            return GlobalPool1DOp(average: entry.className == "GlobalAveragePooling1D", keepDims: bool(c, "keepdims", false))
        case "Flatten":
            return FlattenOp()
        case "Reshape":
            let target = (c["target_shape"] as? [Any] ?? []).compactMap { ($0 as? NSNumber)?.intValue }
            return try wrapEngine(entry) { try ReshapeOp(target: target) }
        case "Permute":
            let dims = (c["dims"] as? [Any] ?? []).compactMap { ($0 as? NSNumber)?.intValue }
            return try wrapEngine(entry) { try PermuteOp(dims: dims) }
        case "RepeatVector":
            return RepeatVectorOp(n: try int(c, "n", entry))
        case "ZeroPadding1D":
            let (l, r) = try pair(c, "padding", entry, default: 1)
            return StepsOp(.pad(left: l, right: r))
        case "Cropping1D":
            let (l, r) = try pair(c, "cropping", entry, default: 1)
            return StepsOp(.crop(left: l, right: r))
        case "UpSampling1D":
            return StepsOp(.upsample(try int(c, "size", entry)))
        case "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum":
            return ElementwiseMergeOp(ElementwiseMergeOp.Kind(rawValue: entry.className)!, kerasMajor: kerasMajor)
        case "Concatenate":
            return ConcatenateOp(axis: (c["axis"] as? NSNumber)?.intValue ?? -1, kerasMajor: kerasMajor)
        case "Dot":
            let axes: [Int]
            if let n = c["axes"] as? NSNumber { axes = [n.intValue, n.intValue] } else {
                axes = (c["axes"] as? [Any] ?? []).compactMap { ($0 as? NSNumber)?.intValue }
            }
            guard axes.count == 2 else { throw KerasError.badConfig(file: file, layer: entry.name, reason: "Dot needs axes (an int or a pair)") }
            return DotOp(axes: axes, normalize: bool(c, "normalize", false), kerasMajor: kerasMajor)
        case "LayerNormalization", "BatchNormalization":
            return try normalization(entry, features: x.features)
        case "Attention", "AdditiveAttention":
            return try attention(entry, dim: x.features)
        case "InputLayer":
            throw KerasError.unsupportedGraph(file: file, layer: entry.name, reason: "an InputLayer inside the graph")
        case "Lambda":
            throw KerasError.unsupportedLayer(file: file, layer: entry.name, className: "Lambda",
                                              reason: "Lambda layers run arbitrary Python code, which GateScope cannot run; replace it with built-in layers")
        default:
            if let registered = entry.raw["registered_name"] as? String, registered != entry.className || registered.contains(">") {
                throw KerasError.unsupportedLayer(file: file, layer: entry.name, className: registered,
                                                  reason: "custom layer classes are not supported (their Python code is not in the file)")
            }
            throw KerasError.unsupportedLayer(file: file, layer: entry.name, className: entry.className,
                                              reason: "unsupported layer class (supported: \(KerasError.supportedClasses.joined(separator: ", ")))")
        }
    }

    func wrapEngine<T>(_ entry: LayerEntry, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let EngineError.incompatible(_, reason) {
            throw KerasError.unsupportedLayer(file: file, layer: entry.name, className: entry.className, reason: reason)
        } catch let EngineError.weightShape(_, weight, expected, got) {
            throw KerasError.model(file: file, .weightShape(layer: entry.name, weight: weight, expected: expected, got: got))
        } catch let e as EngineError { throw KerasError.model(file: file, e) }
    }

    func refuseStateful(_ c: JSONObject, _ entry: LayerEntry) throws {
        if bool(c, "stateful", false) {
            throw KerasError.unsupportedLayer(file: file, layer: entry.name, className: entry.className,
                                              reason: "stateful=True is not supported (state carried across batches); save the model with stateful=False")
        }
        if bool(c, "time_major", false) {
            throw KerasError.unsupportedLayer(file: file, layer: entry.name, className: entry.className,
                                              reason: "time_major=True is not supported (only batch-major input)")
        }
    }

    static func recurrentWeights(_ c: JSONObject) -> [String] {
        (c["use_bias"] as? Bool ?? true) ? ["kernel", "recurrent_kernel", "bias"] : ["kernel", "recurrent_kernel"]
    }

    /// An LSTM, GRU or SimpleRNN cell from its config and weights (`inputDim` from the input, when known).
    func recurrent(_ cls: String, _ c: JSONObject, entry: LayerEntry, part: WeightPart, inputDim: Int?, zeroOutputForMask: Bool) throws -> RecurrentCell {
        let units = try int(c, "units", entry)
        let paths = try store.paths(for: entry, scope: scope, part: part, expected: Self.recurrentWeights(c))
        let gates = cls == "LSTM" ? 4 : cls == "GRU" ? 3 : 1
        let kernel = try read(paths[0], [inputDim, gates * units], entry)
        let recurrentKernel = try read(paths[1], [units, gates * units], entry)
        let d = kernel.count / (gates * units)
        let name = part == .forward ? "\(entry.name)/forward" : part == .backward ? "\(entry.name)/backward" : entry.name
        let activation = try self.activation(c, "activation", default: "tanh", entry)
        let goBackwards = bool(c, "go_backwards", false), returnSequences = bool(c, "return_sequences", false)
        return try wrapEngine(entry) { () -> RecurrentCell in
            switch cls {
            case "LSTM":
                let bias = paths.count > 2 ? try read(paths[2], [4 * units], entry) : nil
                return .lstm(try LSTMSpec(
                    name: name, units: units, inputDim: d, activation: activation,
                    recurrentActivation: try self.activation(c, "recurrent_activation", default: "sigmoid", entry),
                    goBackwards: goBackwards, returnSequences: returnSequences, zeroOutputForMask: zeroOutputForMask,
                    kernel: Matrix(rows: d, cols: 4 * units, values: kernel),
                    recurrentKernel: Matrix(rows: units, cols: 4 * units, values: recurrentKernel), bias: bias))
            case "GRU":
                // Keras 3 and Keras 2 (TF 2) both default to reset_after=True; bias is [2, 3u] then, else [3u].
                let resetAfter = bool(c, "reset_after", true)
                var inputBias: [Float]? = nil, recurrentBias: [Float]? = nil
                if paths.count > 2 {
                    if resetAfter {
                        let b = try read(paths[2], [2, 3 * units], entry)
                        inputBias = Array(b[..<(3 * units)])
                        recurrentBias = Array(b[(3 * units)...])
                    } else {
                        inputBias = try read(paths[2], [3 * units], entry)
                    }
                }
                return .gru(try GRUSpec(
                    name: name, units: units, inputDim: d, activation: activation,
                    recurrentActivation: try self.activation(c, "recurrent_activation", default: "sigmoid", entry),
                    goBackwards: goBackwards, returnSequences: returnSequences, zeroOutputForMask: zeroOutputForMask,
                    resetAfter: resetAfter, kernel: Matrix(rows: d, cols: 3 * units, values: kernel),
                    recurrentKernel: Matrix(rows: units, cols: 3 * units, values: recurrentKernel),
                    inputBias: inputBias, recurrentBias: recurrentBias))
            default:
                let bias = paths.count > 2 ? try read(paths[2], [units], entry) : nil
                return .simpleRNN(try SimpleRNNSpec(
                    name: name, units: units, inputDim: d, activation: activation, goBackwards: goBackwards,
                    returnSequences: returnSequences, zeroOutputForMask: zeroOutputForMask,
                    kernel: Matrix(rows: d, cols: units, values: kernel),
                    recurrentKernel: Matrix(rows: units, cols: units, values: recurrentKernel), bias: bias))
            }
        }
    }

    func bidirectional(_ entry: LayerEntry, inputDim: Int?) throws -> any Op {
        let c = entry.config
        guard let inner = c["layer"] as? JSONObject, let innerClass = inner["class_name"] as? String,
              let forward = inner["config"] as? JSONObject else {
            throw KerasError.badConfig(file: file, layer: entry.name, reason: "Bidirectional without a wrapped layer")
        }
        guard ["LSTM", "GRU", "SimpleRNN"].contains(innerClass) else {
            throw KerasError.unsupportedLayer(file: file, layer: entry.name, className: "Bidirectional(\(innerClass))",
                                              reason: "Bidirectional supports LSTM, GRU and SimpleRNN")
        }
        try refuseStateful(forward, entry)
        let merge: MergeMode
        switch c["merge_mode"] {
        case nil: merge = .concat  // Keras's default
        case is NSNull: merge = .none
        case let name as String where MergeMode(rawValue: name) != nil && name != "none": merge = MergeMode(rawValue: name)!
        case let other:
            throw KerasError.unsupportedLayer(file: file, layer: entry.name, className: "Bidirectional",
                                              reason: "merge_mode \(other!) is not supported (supported: concat, sum, ave, mul, None)")
        }
        var backward: JSONObject
        var backwardClass = innerClass
        if let b = c["backward_layer"] as? JSONObject {
            guard let bc = b["config"] as? JSONObject, let cls = b["class_name"] as? String, cls == innerClass else {
                throw KerasError.unsupportedLayer(file: file, layer: entry.name, className: "Bidirectional",
                                                  reason: "a backward_layer of another class than the forward one is not supported")
            }
            backward = bc
            backwardClass = cls
        } else {
            backward = forward
            backward["go_backwards"] = !bool(forward, "go_backwards", false)
        }
        // Keras forces zero_output_for_mask = return_sequences on both halves of a Bidirectional.
        let f = try recurrent(innerClass, forward, entry: entry, part: .forward, inputDim: inputDim,
                              zeroOutputForMask: bool(forward, "return_sequences", false))
        let b = try recurrent(backwardClass, backward, entry: entry, part: .backward, inputDim: inputDim,
                              zeroOutputForMask: bool(backward, "return_sequences", false))
        return try wrapEngine(entry) {
            try BidirectionalOp(forward: f, backward: b, merge: merge, returnState: bool(forward, "return_state", false) || bool(c, "return_state", false),
                                kerasMajor: kerasMajor)
        }
    }

    func dense(_ entry: LayerEntry, config c: JSONObject, part: WeightPart, inputDim: Int?) throws -> any Op {
        let units = try int(c, "units", entry)
        let useBias = bool(c, "use_bias", true)
        let paths = try store.paths(for: entry, scope: scope, part: part, expected: useBias ? ["kernel", "bias"] : ["kernel"])
        let kernel = try read(paths[0], [inputDim, units], entry)
        let bias = useBias ? try read(paths[1], [units], entry) : nil
        let a = try activation(c, "activation", default: "linear", entry)
        return try wrapEngine(entry) {
            try DenseOp(kernel: Matrix(rows: kernel.count / max(units, 1), cols: units, values: kernel), bias: bias, activation: a)
        }
    }

    func conv1D(_ entry: LayerEntry, inputChannels: Int?) throws -> any Op {
        let c = entry.config
        let filters = try int(c, "filters", entry)
        let size = try intOrFirst(c, "kernel_size", entry, default: nil)
        let groups = (c["groups"] as? NSNumber)?.intValue ?? 1
        let useBias = bool(c, "use_bias", true)
        let paths = try store.paths(for: entry, scope: scope, part: .main, expected: useBias ? ["kernel", "bias"] : ["kernel"])
        let kernel = try read(paths[0], [size, inputChannels.map { $0 / max(groups, 1) }, filters], entry)
        let bias = useBias ? try read(paths[1], [filters], entry) : nil
        let cin = kernel.count / (size * filters) * max(groups, 1)
        return try wrapEngine(entry) {
            try Conv1DOp(kernel: kernel, bias: bias, size: size, inputChannels: cin, filters: filters,
                         stride: try intOrFirst(c, "strides", entry, default: 1),
                         dilation: try intOrFirst(c, "dilation_rate", entry, default: 1), groups: groups,
                         padding: try padding(c, entry), activation: try activation(c, "activation", default: "linear", entry))
        }
    }

    func normalization(_ entry: LayerEntry, features: Int?) throws -> any Op {
        let c = entry.config
        guard let n = features else {
            throw KerasError.unsupportedLayer(file: file, layer: entry.name, className: entry.className, reason: "the feature axis has no fixed size")
        }
        var axes = (c["axis"] as? [Any])?.compactMap { ($0 as? NSNumber)?.intValue } ?? []
        if let a = c["axis"] as? NSNumber { axes = [a.intValue] }
        // Only the last axis: -1, or its positive index in the full shape (unknown here, so any single axis is checked by size).
        guard axes.count <= 1 else {
            throw KerasError.unsupportedLayer(file: file, layer: entry.name, className: entry.className, reason: "normalizing over axes \(axes) is not supported (last axis only)")
        }
        if bool(c, "rms_scaling", false) {
            throw KerasError.unsupportedLayer(file: file, layer: entry.name, className: entry.className, reason: "rms_scaling=True is not supported")
        }
        let scale = bool(c, "scale", true), center = bool(c, "center", true)
        let epsilon = (c["epsilon"] as? NSNumber)?.floatValue ?? 1e-3  // both layers' Keras default
        var names: [String] = []
        if scale { names.append("gamma") }
        if center { names.append("beta") }
        let batch = entry.className == "BatchNormalization"
        if batch { names += ["moving_mean", "moving_variance"] }
        let paths = try store.paths(for: entry, scope: scope, part: .main, expected: names)
        var k = 0
        func next() throws -> [Float] { defer { k += 1 }; return try read(paths[k], [n], entry) }
        let gamma = scale ? try next() : nil
        let beta = center ? try next() : nil
        let kind: NormalizationOp.Kind = batch ? .batch(mean: try next(), variance: try next()) : .layer
        return try wrapEngine(entry) { try NormalizationOp(kind: kind, features: n, gamma: gamma, beta: beta, epsilon: epsilon) }
    }

    func attention(_ entry: LayerEntry, dim: Int?) throws -> any Op {
        let c = entry.config
        let useScale = bool(c, "use_scale", entry.className == "AdditiveAttention")
        if entry.className == "AdditiveAttention" {
            let paths = try store.paths(for: entry, scope: scope, part: .main, expected: useScale ? ["scale"] : [])
            let scale = useScale ? try read(paths[0], [dim], entry) : nil
            return AttentionOp(score: .additive(scale: scale), causal: false)
        }
        let mode = c["score_mode"] as? String ?? "dot"
        guard mode == "dot" || mode == "concat" else {
            throw KerasError.unsupportedLayer(file: file, layer: entry.name, className: "Attention", reason: "score_mode \(mode) is not supported (dot, concat)")
        }
        var names: [String] = []
        if useScale { names.append("scale") }
        if mode == "concat" { names.append("concat_score_weight") }
        let paths = try store.paths(for: entry, scope: scope, part: .main, expected: names)
        var k = 0
        func scalar() throws -> Float { defer { k += 1 }; return try read(paths[k], [], entry).first ?? 1 }
        let scale = useScale ? try scalar() : nil
        if mode == "concat" { return AttentionOp(score: .concat(scale: scale, weight: try scalar()), causal: false) }
        return AttentionOp(score: .dot(scale: scale), causal: false)
    }

    /// Parameter-free activation layers (ReLU, LeakyReLU, Softmax, ELU) with their default settings.
    func activationLayer(_ entry: LayerEntry) throws -> any Op {
        let c = entry.config
        func num(_ k: String) -> Double? { (c[k] as? NSNumber)?.doubleValue }
        let a: Activation?
        switch entry.className {
        case "ReLU": a = (c["max_value"] == nil || c["max_value"] is NSNull) && (num("negative_slope") ?? 0) == 0 && (num("threshold") ?? 0) == 0 ? .relu : nil
        // The leaky_relu activation has slope 0.2; the layer's default is 0.3.
        case "LeakyReLU": a = (num("negative_slope") ?? num("alpha") ?? 0.3) == 0.2 ? .leakyRelu : nil
        case "Softmax": a = (c["axis"] as? NSNumber)?.intValue ?? -1 == -1 ? .softmax : nil
        case "ELU": a = (num("alpha") ?? 1) == 1 ? .elu : nil
        default: a = nil
        }
        guard let a else {
            throw KerasError.unsupportedLayer(file: file, layer: entry.name, className: entry.className, reason: "only the default settings of this activation layer are supported")
        }
        return ActivationOp(a, className: entry.className)
    }

    // MARK: config values

    func int(_ c: JSONObject, _ key: String, _ entry: LayerEntry) throws -> Int {
        guard let n = c[key] as? NSNumber, n.intValue > 0 else {
            throw KerasError.badConfig(file: file, layer: entry.name, reason: "\(entry.className) needs a positive integer '\(key)'")
        }
        return n.intValue
    }

    func bool(_ c: JSONObject, _ key: String, _ fallback: Bool) -> Bool {
        (c[key] as? NSNumber)?.boolValue ?? fallback
    }

    /// An activation given as a name or as a serialized object (`{"class_name": "function", "config": "relu"}`,
    /// or a parameter-free activation layer such as `ReLU()`).
    func activation(_ c: JSONObject, _ key: String, default fallback: String, _ entry: LayerEntry) throws -> Activation {
        var name: String
        switch c[key] {
        case nil, is NSNull: name = fallback
        case let s as String: name = s
        case let dict as JSONObject:
            let cls = dict["class_name"] as? String ?? "?"
            let inner = dict["config"] as? JSONObject ?? [:]
            if let s = dict["config"] as? String {
                name = s
            } else if cls == "ReLU", (inner["max_value"] == nil || inner["max_value"] is NSNull),
                      (inner["negative_slope"] as? NSNumber)?.doubleValue ?? 0 == 0,
                      (inner["threshold"] as? NSNumber)?.doubleValue ?? 0 == 0 {
                name = "relu"
            } else if cls == "LeakyReLU", (inner["negative_slope"] as? NSNumber)?.doubleValue ?? 0.2 == 0.2 {
                name = "leaky_relu"
            } else {
                name = cls == "function" ? "<lambda or custom function>" : cls
            }
        default:
            name = "\(c[key]!)"
        }
        guard let a = Activation(kerasName: name, kerasMajorVersion: kerasMajor) else {
            throw KerasError.model(file: file, .unknownActivation(layer: entry.name, name: name))
        }
        return a
    }

    /// Reads a dataset and checks its shape (`nil` entries match any size).
    func read(_ path: String, _ expected: [Int?], _ entry: LayerEntry) throws -> [Float] {
        let (shape, values) = try store.h5.floatDataset(path)
        let ok = shape.count == expected.count && zip(shape, expected).allSatisfy { $1 == nil || $0 == $1 }
        guard ok else {
            throw KerasError.weightShape(file: store.h5.name, layer: entry.name, path: path, got: shape, expected: expected)
        }
        return values
    }

    static func shapeText(_ shape: [Int?]) -> String {
        "(" + shape.map { $0.map(String.init) ?? "None" }.joined(separator: ", ") + ")"
    }

    /// An int setting given as `3` or `[3]` (Keras writes tuples for 1-D sizes).
    func intOrFirst(_ c: JSONObject, _ key: String, _ entry: LayerEntry, default fallback: Int?) throws -> Int {
        var v: Int? = (c[key] as? NSNumber)?.intValue
        if v == nil, let list = c[key] as? [Any] { v = (list.first as? NSNumber)?.intValue }
        if v == nil && (c[key] == nil || c[key] is NSNull) { v = fallback }
        guard let v, v > 0 else {
            throw KerasError.badConfig(file: file, layer: entry.name, reason: "\(entry.className) needs a positive integer '\(key)'")
        }
        return v
    }

    /// A (left, right) setting given as `n` or `[l, r]`.
    func pair(_ c: JSONObject, _ key: String, _ entry: LayerEntry, default fallback: Int) throws -> (Int, Int) {
        if let n = c[key] as? NSNumber { return (n.intValue, n.intValue) }
        if let list = c[key] as? [Any], list.count == 2, let l = (list[0] as? NSNumber)?.intValue, let r = (list[1] as? NSNumber)?.intValue, l >= 0, r >= 0 {
            return (l, r)
        }
        if c[key] == nil { return (fallback, fallback) }
        throw KerasError.badConfig(file: file, layer: entry.name, reason: "\(entry.className) needs '\(key)' as n or [left, right]")
    }

    func padding(_ c: JSONObject, _ entry: LayerEntry) throws -> Padding1D {
        let name = (c["padding"] as? String ?? "valid").lowercased()
        guard let p = Padding1D(rawValue: name) else {
            throw KerasError.unsupportedLayer(file: file, layer: entry.name, className: entry.className, reason: "padding '\(name)' is not supported (valid, same, causal)")
        }
        return p
    }
}

/// The weights of a layer wrapped by TimeDistributed, found through the wrapper.
struct InnerWeights: WeightStore {
    let outer: WeightStore
    let wrapper: LayerEntry
    var h5: HDF5File { outer.h5 }
    func paths(for layer: LayerEntry, scope: [String], part: WeightPart, expected: [String]) throws -> [String] {
        try outer.paths(for: wrapper, scope: scope, part: .inner, expected: expected)
    }
}
