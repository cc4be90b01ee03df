import Foundation
import GateScopeEngine

/// Where a Keras tensor comes from: output `tensor` of call `node` of layer `layer` (`keras_history`).
struct TensorKey: Hashable {
    let layer: String
    let node: Int
    let tensor: Int
}

/// One call of a layer as the config records it: the tensors it reads, in order.
struct CallSpec {
    /// Data inputs (args), then initial states, in order.
    var inputs: [TensorKey]
    /// Number of leading `inputs` that are data (the rest are initial_state tensors).
    var dataCount: Int
    /// Keras 3 passes a mask only to calls with a single tensor argument (no initial_state).
    var receivesMask: Bool
    /// Non-tensor call options that change the math (`use_causal_mask`, `return_attention_scores`).
    var causal: Bool
    var returnScores = false
}

/// One functional (or sequential) config being instantiated: its layers and the tensors made so far.
final class ConfigScope {
    let name: String
    let entries: [String: LayerEntry]
    let order: [LayerEntry]
    /// Enclosing sub-model names, outermost first (for weight paths).
    let path: [String]
    var tensors: [TensorKey: TensorID] = [:]
    /// Tensors being resolved, to catch cycles.
    var resolving = Set<TensorKey>()

    init(name: String, layers: [LayerEntry], path: [String]) {
        self.name = name
        self.order = layers
        var map: [String: LayerEntry] = [:]
        for l in layers { map[l.name] = l }
        entries = map
        self.path = path
    }
}

/// Builds the engine graph from a Keras model config (Keras 2 `inbound_nodes` lists, Keras 3
/// `args`/`kwargs` with `__keras_tensor__`), flattening nested Functional and Sequential models.
///
/// Calls are added on demand from the outputs backwards, so the graph holds what the outputs need
/// (Keras 3's mask op nodes, NotEqual/Any, are never needed: masks travel with tensors here).
/// A layer's calls are always added in the order of its inbound nodes, so call names are stable.
struct KerasGraphImporter {
    let file: String
    let kerasMajor: Int
    let store: WeightStore
    var builder = GraphBuilder()
    /// One op per layer, shared by its calls (keyed by scope path and name).
    var ops: [String: any Op] = [:]

    init(file: String, kerasMajor: Int, store: WeightStore) {
        self.file = file
        self.kerasMajor = kerasMajor
        self.store = store
    }

    static let modelClasses: Set<String> = ["Functional", "Model", "Sequential"]

    // MARK: top level

    /// The whole model's graph.
    mutating func importModel(_ root: JSONObject, modelName: String) throws -> Graph {
        let cls = root["class_name"] as? String ?? ""
        let config = root["config"] as? JSONObject ?? [:]
        if cls == "Sequential" {
            let layers = try KerasConfigParser.sequentialLayers(root, file: file)
            let (inputName, shape, dtype, rest) = try sequentialInput(layers, root: root, name: modelName)
            let x = try builder.addInput(name: inputName, shape: shape, dtype: dtype)
            let scope = ConfigScope(name: modelName, layers: rest, path: [])
            let out = try chain(rest, from: [x], scope: scope)
            try addOutputs(names: [(rest.last?.name ?? inputName, 0, 0)], tensors: out)
        } else {
            let layers = try KerasConfigParser.functionalLayers(config, file: file)
            let scope = ConfigScope(name: modelName, layers: layers, path: [])
            for (name, _, _) in KerasConfigParser.endpoints(config["input_layers"]) {
                guard let entry = scope.entries[name], entry.className == "InputLayer" else {
                    throw KerasError.badConfig(file: file, layer: name, reason: "a model input is not an InputLayer in the config")
                }
                let (shape, dtype) = try inputShape(entry)
                scope.tensors[TensorKey(layer: name, node: 0, tensor: 0)] = try wrap(entry) { try builder.addInput(name: name, shape: shape, dtype: dtype) }
            }
            let outs = KerasConfigParser.endpoints(config["output_layers"])
            guard !outs.isEmpty else { throw KerasError.badConfig(file: file, layer: nil, reason: "the model lists no output_layers") }
            let tensors = try outs.map { try resolve(TensorKey(layer: $0.0, node: $0.1, tensor: $0.2), in: scope) }
            try addOutputs(names: outs, tensors: tensors)
        }
        do { return try Graph(builder) } catch let e as EngineError { throw KerasError.model(file: file, e) }
    }

    mutating func addOutputs(names: [(String, Int, Int)], tensors: [TensorID]) throws {
        for ((name, node, tensor), id) in zip(names, tensors) {
            var key = node == 0 ? name : "\(name)#\(node + 1)"
            if tensor > 0 { key += ":\(tensor)" }
            builder.addOutput(name: key, tensor: id)
        }
    }

    // MARK: inputs

    func inputShape(_ entry: LayerEntry) throws -> ([Int?], DType) {
        guard let shape = entry.declaredInputShape, !shape.isEmpty else {
            throw KerasError.badConfig(file: file, layer: entry.name, reason: "InputLayer without batch_shape/batch_input_shape")
        }
        return (Array(shape.dropFirst()), Self.dtype(entry.config["dtype"]))
    }

    static func dtype(_ any: Any?) -> DType {
        var name = any as? String ?? ""
        if let dict = any as? JSONObject { name = (dict["config"] as? JSONObject)?["name"] as? String ?? "" }
        return name.hasPrefix("int") || name.hasPrefix("uint") ? .int32 : .float32
    }

    /// A Sequential's input: its InputLayer, or the shape its first layer declares.
    func sequentialInput(_ layers: [LayerEntry], root: JSONObject, name: String) throws -> (String, [Int?], DType, [LayerEntry]) {
        if let first = layers.first, first.className == "InputLayer" {
            let (shape, dtype) = try inputShape(first)
            return (first.name, shape, dtype, Array(layers.dropFirst()))
        }
        // Old Sequential configs carry the input shape on the first layer instead.
        var shape = layers.first?.declaredInputShape
        if shape == nil, let config = root["config"] as? JSONObject { shape = parseShape(config["build_input_shape"]) }
        if shape == nil, let bc = root["build_config"] as? JSONObject { shape = parseShape(bc["input_shape"]) }
        guard let shape, !shape.isEmpty else {
            throw KerasError.badConfig(file: file, layer: layers.first?.name ?? name,
                                       reason: "no InputLayer and no batch_input_shape/build_input_shape, so the input shape is unknown")
        }
        let dtype: DType = layers.first?.className == "Embedding" ? .int32 : Self.dtype(layers.first?.config["dtype"])
        return ("input", Array(shape.dropFirst()), dtype, layers)
    }

    // MARK: resolving tensors

    /// The graph tensor of Keras tensor `key` in `scope`, adding the calls it needs.
    mutating func resolve(_ key: TensorKey, in scope: ConfigScope) throws -> TensorID {
        if let t = scope.tensors[key] { return t }
        guard let entry = scope.entries[key.layer] else {
            throw KerasError.badConfig(file: file, layer: key.layer, reason: "referenced layer is not in the config")
        }
        guard scope.resolving.insert(key).inserted else {
            throw KerasError.unsupportedGraph(file: file, layer: key.layer, reason: "the graph has a cycle")
        }
        defer { scope.resolving.remove(key) }
        if entry.className == "InputLayer" {
            throw KerasError.unsupportedGraph(file: file, layer: key.layer, reason: "this InputLayer is not a model input")
        }
        let nodes = entry.raw["inbound_nodes"] as? [Any] ?? []
        guard key.node < nodes.count else {
            throw KerasError.badConfig(file: file, layer: key.layer, reason: "call #\(key.node + 1) is referenced but the layer has \(nodes.count) inbound node(s)")
        }
        // Earlier calls first, so that calls are numbered in inbound-node order.
        for n in 0...key.node where scope.tensors[TensorKey(layer: key.layer, node: n, tensor: 0)] == nil {
            try callNode(entry, node: n, spec: parseCall(nodes[n], layer: entry), in: scope)
        }
        guard let t = scope.tensors[key] else {
            throw KerasError.unsupportedGraph(file: file, layer: key.layer, reason: "output #\(key.tensor) of call #\(key.node + 1) is referenced but the call has no such output")
        }
        return t
    }

    /// Parses one inbound node (Keras 3 dict or Keras 2 list).
    func parseCall(_ node: Any, layer: LayerEntry) throws -> CallSpec {
        if let dict = node as? JSONObject {
            let args = dict["args"] as? [Any] ?? []
            var data: [TensorKey] = []
            for a in args { data += Self.tensorRefs(a) }
            var states: [TensorKey] = []
            var tensorKwargs = false
            var causal = false, returnScores = false
            for (key, value) in dict["kwargs"] as? JSONObject ?? [:] {
                switch key {
                case "mask", "training": continue
                case "initial_state": states = Self.tensorRefs(value); tensorKwargs = !states.isEmpty
                case "use_causal_mask": causal = (value as? NSNumber)?.boolValue ?? false
                case "return_attention_scores": returnScores = (value as? NSNumber)?.boolValue ?? false
                default:
                    let refs = Self.tensorRefs(value)
                    if !refs.isEmpty {
                        throw KerasError.unsupportedLayer(file: file, layer: layer.name, className: layer.className,
                                                          reason: "call argument '\(key)' takes a tensor, which is not supported")
                    }
                }
            }
            let single = args.count == 1 && !tensorKwargs
            return CallSpec(inputs: data + states, dataCount: data.count, receivesMask: single, causal: causal, returnScores: returnScores)
        }
        if let list = node as? [Any] {
            // Keras 2: [["name", node, tensor, {kwargs}], ...]; an RNN's initial states follow its input.
            let refs: [TensorKey] = try list.map { item in
                guard let r = item as? [Any], let name = r.first as? String else {
                    throw KerasError.badConfig(file: file, layer: layer.name, reason: "unreadable inbound node")
                }
                let n = r.count > 1 ? (r[1] as? NSNumber)?.intValue ?? 0 : 0
                let k = r.count > 2 ? (r[2] as? NSNumber)?.intValue ?? 0 : 0
                return TensorKey(layer: name, node: n, tensor: k)
            }
            var causal = false, returnScores = false
            if let first = list.first as? [Any], first.count > 3, let kwargs = first[3] as? JSONObject {
                causal = (kwargs["use_causal_mask"] as? NSNumber)?.boolValue ?? false
                returnScores = (kwargs["return_attention_scores"] as? NSNumber)?.boolValue ?? false
            }
            let recurrent = ["LSTM", "GRU", "SimpleRNN", "Bidirectional"].contains(layer.className)
            return CallSpec(inputs: refs, dataCount: recurrent ? 1 : refs.count, receivesMask: true, causal: causal, returnScores: returnScores)
        }
        throw KerasError.badConfig(file: file, layer: layer.name, reason: "unreadable inbound_nodes")
    }

    /// Keras 3 `__keras_tensor__` references inside a value, in order.
    static func tensorRefs(_ any: Any) -> [TensorKey] {
        if let dict = any as? JSONObject {
            if dict["class_name"] as? String == "__keras_tensor__",
               let h = (dict["config"] as? JSONObject)?["keras_history"] as? [Any], let name = h.first as? String {
                let n = h.count > 1 ? (h[1] as? NSNumber)?.intValue ?? 0 : 0
                let k = h.count > 2 ? (h[2] as? NSNumber)?.intValue ?? 0 : 0
                return [TensorKey(layer: name, node: n, tensor: k)]
            }
            return []
        }
        if let list = any as? [Any] { return list.flatMap { tensorRefs($0) } }
        return []
    }

    /// Adds call `node` of `entry` (or, for a sub-model, all of its inner calls).
    mutating func callNode(_ entry: LayerEntry, node: Int, spec: CallSpec, in scope: ConfigScope) throws {
        var inputs: [TensorID] = []
        for ref in spec.inputs { inputs.append(try resolve(ref, in: scope)) }
        let outs: [TensorID]
        if Self.modelClasses.contains(entry.className) {
            outs = try submodel(entry, inputs: inputs, parent: scope)
        } else {
            outs = try call(entry, inputs: inputs, spec: spec, scope: scope)
        }
        for (k, t) in outs.enumerated() { scope.tensors[TensorKey(layer: entry.name, node: node, tensor: k)] = t }
    }

    /// Runs a nested Functional or Sequential model on `inputs`; its layers join the graph under their own names.
    mutating func submodel(_ entry: LayerEntry, inputs: [TensorID], parent: ConfigScope) throws -> [TensorID] {
        let path = parent.path + [entry.name]
        let root = entry.raw
        if entry.className == "Sequential" {
            var layers = try KerasConfigParser.sequentialLayers(root, file: file)
            if layers.first?.className == "InputLayer" { layers.removeFirst() }
            guard inputs.count == 1 else {
                throw KerasError.unsupportedGraph(file: file, layer: entry.name, reason: "a Sequential model takes one input, got \(inputs.count)")
            }
            return try chain(layers, from: inputs, scope: ConfigScope(name: entry.name, layers: layers, path: path))
        }
        let config = root["config"] as? JSONObject ?? [:]
        let layers = try KerasConfigParser.functionalLayers(config, file: file)
        let scope = ConfigScope(name: entry.name, layers: layers, path: path)
        let ins = KerasConfigParser.endpoints(config["input_layers"])
        guard ins.count == inputs.count else {
            throw KerasError.unsupportedGraph(file: file, layer: entry.name, reason: "the sub-model takes \(ins.count) inputs, the call gives \(inputs.count)")
        }
        for ((name, _, _), t) in zip(ins, inputs) { scope.tensors[TensorKey(layer: name, node: 0, tensor: 0)] = t }
        return try KerasConfigParser.endpoints(config["output_layers"]).map {
            try resolve(TensorKey(layer: $0.0, node: $0.1, tensor: $0.2), in: scope)
        }
    }

    /// Applies Sequential `layers` one after the other.
    mutating func chain(_ layers: [LayerEntry], from inputs: [TensorID], scope: ConfigScope) throws -> [TensorID] {
        var x = inputs
        for layer in layers {
            guard x.count == 1 else {
                throw KerasError.unsupportedGraph(file: file, layer: layer.name, reason: "a Sequential layer gets \(x.count) tensors")
            }
            if Self.modelClasses.contains(layer.className) {
                x = try submodel(layer, inputs: x, parent: scope)
            } else {
                x = try call(layer, inputs: x, spec: CallSpec(inputs: [], dataCount: 1, receivesMask: true, causal: false), scope: scope)
            }
        }
        return x
    }

    /// Adds one call of a plain layer.
    mutating func call(_ entry: LayerEntry, inputs: [TensorID], spec: CallSpec, scope: ConfigScope) throws -> [TensorID] {
        let key = (scope.path + [entry.name]).joined(separator: "/")
        let infos = inputs.map { builder.tensors[$0] }
        var op: any Op
        if let existing = ops[key] {
            op = existing
        } else {
            var factory = KerasLayerFactory(file: file, kerasMajor: kerasMajor, store: store, scope: scope.path)
            op = try factory.op(entry, inputs: Array(infos.prefix(max(spec.dataCount, 1))))
            ops[key] = op
        }
        if spec.causal || spec.returnScores, let attention = op as? AttentionOp {
            op = AttentionOp(score: attention.score, causal: spec.causal, returnScores: spec.returnScores)
        }
        if kerasMajor >= 3 && !spec.receivesMask { op = MaskDropping(op) }
        return try wrap(entry) { try builder.add(layer: entry.name, op: op, inputs: inputs) }
    }

    func wrap<T>(_ entry: LayerEntry, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as EngineError { throw KerasError.model(file: file, e) }
    }
}

/// A call that Keras 3 runs without its input's mask (a recurrent layer given initial_state):
/// the op sees no mask, so padding would reach it and it is not length-safe.
struct MaskDropping: Op {
    let inner: any Op
    init(_ inner: any Op) { self.inner = inner }
    var className: String { inner.className }
    var parameterCount: Int { inner.parameterCount }
    var details: [String] { inner.details + ["no input mask (Keras 3 passes none with initial_state)"] }
    var recurrentHalves: [RecurrentHalf] { inner.recurrentHalves }
    var lengthSafe: Bool { false }
    func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        try inner.infer(inputs.map { var i = $0; i.masked = false; return i })
    }
    func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        try inner.run(inputs, masks: masks.map { _ in nil }, context: context)
    }
}
