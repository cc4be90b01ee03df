import Foundation
import GateScopeEngine
import GateScopeKeras
import GateScopeONNX
import GateScopeTorch

/// Picks the importer for a model file by its extension: `.onnx` is ONNX; `.pt`, `.pth`, `.bin`
/// and `.safetensors` are PyTorch state dicts; everything else is Keras (`.keras` / `.h5`,
/// detected from the content).
enum ModelFiles {
    enum Kind { case keras, onnx, torch }

    static func kind(_ path: String) -> Kind {
        switch URL(fileURLWithPath: path).pathExtension.lowercased() {
        case "onnx": return .onnx
        case "pt", "pth", "bin", "safetensors": return .torch
        default: return .keras
        }
    }

    /// The engine model of `path`; `module` picks a recurrent module of a state dict.
    static func load(_ path: String, module: String? = nil) throws -> Model {
        switch kind(path) {
        case .onnx: return try ONNXModelLoader.load(path: path)
        case .torch: return try TorchModelLoader.load(path: path, module: module)
        case .keras:
            if module != nil { throw ValidationFailure("--module picks a module of a PyTorch state dict (.pt, .safetensors), not of '\(path)'") }
            return try KerasModelLoader.load(path: path)
        }
    }

    /// What `inspect` shows of `path`.
    static func inspect(_ path: String, module: String? = nil) throws -> ModelSummary {
        switch kind(path) {
        case .onnx: return ModelSummary(model: try load(path), backend: nil, modelClass: "ONNX graph")
        case .torch: return ModelSummary(model: try load(path, module: module), backend: nil, modelClass: "PyTorch state dict")
        case .keras: return try KerasModelLoader.inspect(path: path)
        }
    }

    struct ValidationFailure: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }
}

import ArgumentParser

/// The options every command that loads a model shares.
struct ModelOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The recurrent module of a PyTorch state dict that holds several, by key prefix (e.g. encoder for encoder.weight_ih_l0).", valueName: "name"))
    var module: String?
}
