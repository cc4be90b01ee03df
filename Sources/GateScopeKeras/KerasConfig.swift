import Foundation

typealias JSONObject = [String: Any]

/// One layer entry of a Keras model config (Keras 2 or 3).
struct LayerEntry {
    let name: String
    let className: String
    let module: String?
    /// The layer's own `config` object.
    let config: JSONObject
    /// The whole entry (holds `build_config`, `inbound_nodes`).
    let raw: JSONObject

    /// Keras 3 op nodes (`NotEqual`, `Any`, ... from keras.src.ops) that Functional configs list beside layers.
    var isOpNode: Bool {
        if let module, module.hasPrefix("keras.src.ops") || module.hasPrefix("keras.ops") { return true }
        return false
    }

    /// `batch_shape` (Keras 3) / `batch_input_shape` (Keras 2) or `build_config.input_shape`.
    var declaredInputShape: [Int?]? {
        if let s = parseShape(config["batch_shape"]) { return s }
        if let s = parseShape(config["batch_input_shape"]) { return s }
        if let build = raw["build_config"] as? JSONObject, let s = parseShape(build["input_shape"]) { return s }
        return nil
    }
}

/// The model's layers as one chain from input to output.
struct ModelConfig {
    let name: String
    /// "Sequential" or "Functional" (Keras 2 says "Model" for the latter; reported as "Functional").
    let className: String
    /// The chain in order; an InputLayer comes first when the config lists one.
    let chain: [LayerEntry]
    /// Every real layer (no op nodes) in config order: `.keras` numbers weight groups in this order.
    let allLayers: [LayerEntry]
    /// Sequential `build_input_shape`, for configs without an InputLayer.
    let buildInputShape: [Int?]?
}

/// Parses a JSON shape like `[null, null, 4]`.
func parseShape(_ any: Any?) -> [Int?]? {
    guard let list = any as? [Any] else { return nil }
    return list.map { ($0 as? NSNumber)?.intValue }
}

/// Reads Keras model configs (`config.json` of `.keras`, `model_config` of legacy `.h5`).
enum KerasConfigParser {
    static func parse(_ text: String, file: String) throws -> ModelConfig {
        guard let data = text.data(using: .utf8),
              let root = (try? JSONSerialization.jsonObject(with: data)) as? JSONObject else {
            throw KerasError.badConfig(file: file, layer: nil, reason: "the model config is not a JSON object")
        }
        guard let cls = root["class_name"] as? String else {
            throw KerasError.badConfig(file: file, layer: nil, reason: "no top-level class_name")
        }
        switch cls {
        case "Sequential":
            return try sequential(root, file: file)
        case "Functional", "Model":
            return try functional(root, file: file)
        default:
            throw KerasError.unsupportedLayer(file: file, layer: (root["config"] as? JSONObject)?["name"] as? String ?? "model",
                                              className: cls, reason: "only Sequential and Functional models are supported")
        }
    }

    static func entry(_ any: Any, file: String) throws -> LayerEntry {
        guard let raw = any as? JSONObject, let cls = raw["class_name"] as? String else {
            throw KerasError.badConfig(file: file, layer: nil, reason: "a layer entry has no class_name")
        }
        let config = raw["config"] as? JSONObject ?? [:]
        guard let name = config["name"] as? String ?? raw["name"] as? String else {
            throw KerasError.badConfig(file: file, layer: nil, reason: "a \(cls) layer has no name")
        }
        return LayerEntry(name: name, className: cls, module: raw["module"] as? String, config: config, raw: raw)
    }

    static func sequential(_ root: JSONObject, file: String) throws -> ModelConfig {
        // Keras 2.2 and older wrote the layer list directly as `config`.
        let config = root["config"] as? JSONObject ?? [:]
        guard let list = config["layers"] as? [Any] ?? root["config"] as? [Any] else {
            throw KerasError.badConfig(file: file, layer: nil, reason: "Sequential config has no layers list")
        }
        let layers = try list.map { try entry($0, file: file) }
        var build = parseShape(config["build_input_shape"])
        if build == nil, let bc = root["build_config"] as? JSONObject { build = parseShape(bc["input_shape"]) }
        return ModelConfig(name: config["name"] as? String ?? "sequential", className: "Sequential",
                           chain: layers, allLayers: layers.filter { $0.className != "InputLayer" }, buildInputShape: build)
    }

    /// `["name", 0, 0]` or `[["name", 0, 0], ...]` -> names.
    static func endpointNames(_ any: Any?) -> [String] {
        guard let list = any as? [Any] else { return [] }
        if let name = list.first as? String { return [name] }
        return list.compactMap { ($0 as? [Any])?.first as? String }
    }

    /// Names of the layers whose outputs a Keras 3 node argument refers to (`__keras_tensor__`s).
    static func tensorRefs(_ any: Any) -> [String] {
        if let dict = any as? JSONObject {
            if dict["class_name"] as? String == "__keras_tensor__",
               let history = (dict["config"] as? JSONObject)?["keras_history"] as? [Any],
               let name = history.first as? String {
                return [name]
            }
            return dict.values.flatMap { tensorRefs($0) }
        }
        if let list = any as? [Any] { return list.flatMap { tensorRefs($0) } }
        return []
    }

    /// The tensor index of the data input when it is not a layer's first output (Keras 3 `keras_history[2]`,
    /// Keras 2 `["name", node, tensor, {}]`), else nil.
    static func secondaryOutputIndex(of layer: LayerEntry) -> Int? {
        guard let node = (layer.raw["inbound_nodes"] as? [Any])?.first else { return nil }
        if let dict = node as? JSONObject {
            func find(_ any: Any) -> Int? {
                if let d = any as? JSONObject {
                    if d["class_name"] as? String == "__keras_tensor__" {
                        let h = (d["config"] as? JSONObject)?["keras_history"] as? [Any] ?? []
                        let k = h.count > 2 ? (h[2] as? NSNumber)?.intValue ?? 0 : 0
                        return k == 0 ? nil : k
                    }
                    return d.values.lazy.compactMap(find).first
                }
                if let l = any as? [Any] { return l.lazy.compactMap(find).first }
                return nil
            }
            return find(dict["args"] ?? [])
        }
        if let refs = node as? [Any], let ref = refs.first as? [Any], ref.count > 2,
           let k = (ref[2] as? NSNumber)?.intValue, k != 0 {
            return k
        }
        return nil
    }

    /// The data inputs of a layer's single call: layer names, and names fed through other kwargs.
    static func dataInputs(of layer: LayerEntry, file: String) throws -> [String] {
        let nodes = layer.raw["inbound_nodes"] as? [Any] ?? []
        if nodes.isEmpty { return [] }
        guard nodes.count == 1 else {
            throw KerasError.unsupportedGraph(file: file, layer: layer.name,
                                              reason: "it is called \(nodes.count) times (a shared layer)")
        }
        if let node = nodes[0] as? JSONObject {
            // Keras 3: {"args": [...], "kwargs": {...}}; `mask` kwargs come from op nodes Keras adds itself.
            var refs = tensorRefs(node["args"] ?? [])
            for (key, value) in node["kwargs"] as? JSONObject ?? [:] where key != "mask" && key != "training" {
                refs += tensorRefs(value)
            }
            return refs
        }
        if let node = nodes[0] as? [Any] {
            // Keras 2: [["name", node_index, tensor_index, {kwargs}], ...]
            return node.compactMap { ($0 as? [Any])?.first as? String }
        }
        throw KerasError.badConfig(file: file, layer: layer.name, reason: "unreadable inbound_nodes")
    }

    /// Layer classes that are never mask helpers, even when only a mask refers to them.
    static let knownLayerClasses: Set<String> = [
        "InputLayer", "Embedding", "Masking", "LSTM", "GRU", "SimpleRNN", "Bidirectional", "Dense", "TimeDistributed",
        "Activation", "Dropout", "Conv1D", "Concatenate", "Add", "Multiply", "Average", "Lambda", "TFOpLambda",
    ]

    /// Layers named in a Keras 3 node's `mask` kwarg.
    static func maskRefs(of layer: LayerEntry) -> [String] {
        (layer.raw["inbound_nodes"] as? [Any] ?? []).flatMap { node -> [String] in
            guard let kwargs = (node as? JSONObject)?["kwargs"] as? JSONObject, let mask = kwargs["mask"] else { return [] }
            return tensorRefs(mask)
        }
    }

    /// Every layer a node refers to (args and kwargs, Keras 2 or 3).
    static func allRefs(of layer: LayerEntry) -> [String] {
        (layer.raw["inbound_nodes"] as? [Any] ?? []).flatMap { node -> [String] in
            if let dict = node as? JSONObject { return tensorRefs(dict["args"] ?? []) + tensorRefs(dict["kwargs"] ?? [:]) }
            return (node as? [Any] ?? []).compactMap { ($0 as? [Any])?.first as? String }
        }
    }

    static func functional(_ root: JSONObject, file: String) throws -> ModelConfig {
        guard let config = root["config"] as? JSONObject, let list = config["layers"] as? [Any] else {
            throw KerasError.badConfig(file: file, layer: nil, reason: "Functional config has no layers list")
        }
        let modelName = config["name"] as? String ?? "model"
        let layers = try list.map { try entry($0, file: file) }
        var byName: [String: LayerEntry] = [:]
        for layer in layers { byName[layer.name] = layer }

        let inputs = endpointNames(config["input_layers"])
        // Several outputs of one layer (LSTM return_state, Bidirectional merge_mode=None): that layer
        // is the output; its own checks say what it cannot do.
        let outputs = Array(Set(endpointNames(config["output_layers"])))
        guard inputs.count == 1 else {
            throw KerasError.unsupportedGraph(file: file, layer: modelName, reason: "the model has \(inputs.count) inputs (\(inputs.joined(separator: ", ")))")
        }
        guard outputs.count == 1 else {
            throw KerasError.unsupportedGraph(file: file, layer: modelName, reason: "the model has \(outputs.count) outputs (\(outputs.sorted().joined(separator: ", ")))")
        }

        // Walk back from the output along each layer's single data input.
        var chain: [LayerEntry] = []
        var seen = Set<String>()
        var current = outputs[0]
        while true {
            guard let layer = byName[current] else {
                throw KerasError.badConfig(file: file, layer: current, reason: "referenced layer is not in the config")
            }
            guard seen.insert(current).inserted else {
                throw KerasError.unsupportedGraph(file: file, layer: current, reason: "the graph has a cycle")
            }
            chain.append(layer)
            if current == inputs[0] { break }
            let refs = try dataInputs(of: layer, file: file)
            if refs.isEmpty {
                throw KerasError.unsupportedGraph(file: file, layer: current, reason: "it has no input but is not the model input '\(inputs[0])'")
            }
            guard refs.count == 1 else {
                throw KerasError.unsupportedGraph(file: file, layer: current,
                                                  reason: "it takes \(refs.count) inputs (\(refs.joined(separator: ", "))), so the graph branches")
            }
            if let k = secondaryOutputIndex(of: layer) {
                throw KerasError.unsupportedGraph(file: file, layer: current,
                                                  reason: "it uses output #\(k) of '\(refs[0])' (a return_state state or a merge_mode=None half)")
            }
            current = refs[0]
        }
        chain.reverse()

        // Keras 3 lists the ops that compute masks (NotEqual, Any, ...) beside the layers; legacy .h5
        // configs omit their module. Nodes reached only through `mask` kwargs of chain layers are
        // such helpers; any other layer off the chain is a branch.
        let onChain = Set(chain.map(\.name))
        var maskFeeders = Set<String>()
        var queue = chain.flatMap { maskRefs(of: $0) }
        while let name = queue.popLast() {
            guard !onChain.contains(name), maskFeeders.insert(name).inserted, let layer = byName[name] else { continue }
            queue += allRefs(of: layer)
        }
        for layer in layers where !onChain.contains(layer.name) {
            let helper = layer.isOpNode || (maskFeeders.contains(layer.name) && !knownLayerClasses.contains(layer.className))
            if !helper {
                throw KerasError.unsupportedGraph(file: file, layer: layer.name,
                                                  reason: "this \(layer.className) is not on the path from '\(inputs[0])' to '\(outputs[0])', so the graph branches")
            }
        }
        return ModelConfig(name: modelName, className: "Functional", chain: chain,
                           allLayers: layers.filter { !$0.isOpNode }, buildInputShape: nil)
    }
}
