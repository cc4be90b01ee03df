import Foundation
import GateScopeEngine
import GateScopeKeras
import GateScopeONNX

/// Picks the importer for a model file: `.onnx` is ONNX; everything else is read as Keras
/// (`.keras` / `.h5`, detected from the content).
enum ModelFiles {
    static func isONNX(_ path: String) -> Bool { URL(fileURLWithPath: path).pathExtension.lowercased() == "onnx" }

    /// The engine model of `path`.
    static func load(_ path: String) throws -> Model {
        isONNX(path) ? try ONNXModelLoader.load(path: path) : try KerasModelLoader.load(path: path)
    }

    /// What `inspect` shows of `path`.
    static func inspect(_ path: String) throws -> ModelSummary {
        if isONNX(path) { return ModelSummary(model: try ONNXModelLoader.load(path: path), backend: nil, modelClass: "ONNX graph") }
        return try KerasModelLoader.inspect(path: path)
    }
}
