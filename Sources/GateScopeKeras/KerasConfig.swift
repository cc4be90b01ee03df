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

/// A parsed model config: the root object, with what the loaders need up front.
struct ModelConfig {
    let name: String
    /// "Sequential" or "Functional" (Keras 2 says "Model" for the latter; reported as "Functional").
    let className: String
    let root: JSONObject
    /// Every real layer (no op nodes) in config order, nested models included after their parent:
    /// `.keras` numbers weight groups per class in this order.
    let allLayers: [LayerEntry]
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
        case "Sequential", "Functional", "Model":
            let config = root["config"] as? JSONObject ?? [:]
            let name = config["name"] as? String ?? (cls == "Sequential" ? "sequential" : "model")
            let layers = cls == "Sequential" ? try sequentialLayers(root, file: file) : try functionalLayers(config, file: file)
            return ModelConfig(name: name, className: cls == "Sequential" ? "Sequential" : "Functional", root: root,
                               allLayers: layers.filter { !$0.isOpNode })
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

    /// The layer list of a Sequential config (Keras 2.2 and older wrote it directly as `config`).
    static func sequentialLayers(_ root: JSONObject, file: String) throws -> [LayerEntry] {
        let config = root["config"] as? JSONObject ?? [:]
        guard let list = config["layers"] as? [Any] ?? root["config"] as? [Any] else {
            throw KerasError.badConfig(file: file, layer: nil, reason: "Sequential config has no layers list")
        }
        return try list.map { try entry($0, file: file) }
    }

    /// The layer list of a Functional config.
    static func functionalLayers(_ config: JSONObject, file: String) throws -> [LayerEntry] {
        guard let list = config["layers"] as? [Any] else {
            throw KerasError.badConfig(file: file, layer: nil, reason: "Functional config has no layers list")
        }
        return try list.map { try entry($0, file: file) }
    }

    /// `["name", 0, 0]` or `[["name", 0, 0], ...]` -> (name, node, tensor) list.
    static func endpoints(_ any: Any?) -> [(String, Int, Int)] {
        guard let list = any as? [Any] else { return [] }
        func one(_ l: [Any]) -> (String, Int, Int)? {
            guard let name = l.first as? String else { return nil }
            return (name, l.count > 1 ? (l[1] as? NSNumber)?.intValue ?? 0 : 0, l.count > 2 ? (l[2] as? NSNumber)?.intValue ?? 0 : 0)
        }
        if list.first is String { return one(list).map { [$0] } ?? [] }
        return list.compactMap { ($0 as? [Any]).flatMap(one) }
    }
}
