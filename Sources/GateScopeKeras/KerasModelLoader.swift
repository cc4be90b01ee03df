import CHDF5
import Foundation
import GateScopeEngine
import ZIPFoundation

/// A loaded model with the file facts that `Model` does not carry.
public struct LoadedKerasModel: Sendable {
    /// The engine model, ready to run.
    public let model: Model
    /// The Keras backend the file was saved with (legacy `.h5` only; nil when the file does not say).
    public let backend: String?
    /// "Sequential" or "Functional".
    public let modelClass: String
}

/// Loads Keras 3 `.keras` and legacy Keras 2/3 `.h5` models into engine models.
public enum KerasModelLoader {
    /// Loads the model at `path`; the format is detected from the content, not the extension.
    public static func load(path: String) throws -> Model {
        try loadWithInfo(path: path).model
    }

    /// Loads the model and what `inspect` shows besides it (backend, model class).
    public static func loadWithInfo(path: String) throws -> LoadedKerasModel {
        switch try detectFormat(path: path) {
        case .kerasZip: return try loadKerasZip(path: path)
        case .hdf5: return try loadLegacyH5(path: path)
        }
    }

    /// Loads the model at `path` and summarizes it for `gatescope inspect`.
    public static func inspect(path: String) throws -> ModelSummary {
        ModelSummary(try loadWithInfo(path: path))
    }

    // MARK: containers

    enum Format { case kerasZip, hdf5 }

    static func detectFormat(path: String) throws -> Format {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw KerasError.unreadable(file: path, reason: "no such file")
        }
        guard !isDir.boolValue else { throw KerasError.unreadable(file: path, reason: "is a directory, not a model file") }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw KerasError.unreadable(file: path, reason: "cannot open the file for reading")
        }
        defer { try? handle.close() }
        let head = [UInt8]((try? handle.read(upToCount: 8)) ?? Data())
        if head.starts(with: [0x50, 0x4B]) { return .kerasZip }  // "PK"
        if head.starts(with: HDF5Lib.signature) { return .hdf5 }
        // A user block can move the HDF5 signature to 512, 1024, ...
        if HDF5Lib.call(path, { H5Fis_hdf5(path) }) > 0 { return .hdf5 }
        if head.isEmpty { throw KerasError.unreadable(file: path, reason: "the file is empty, not a Keras model") }
        throw KerasError.unreadable(file: path, reason: "not a Keras model: neither a .keras zip archive nor an HDF5 .h5 file (corrupt?)")
    }

    static func loadKerasZip(path: String) throws -> LoadedKerasModel {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw KerasError.unreadable(file: path, reason: "cannot read the file: \(error.localizedDescription)")
        }
        let archive: Archive
        do { archive = try Archive(data: data, accessMode: .read) } catch {
            throw KerasError.corrupt(file: path, reason: "not a readable .keras zip archive (\(error))")
        }
        func entry(_ name: String, required: Bool) throws -> Data? {
            guard let e = archive[name] else {
                if required { throw KerasError.missing(file: path, path: name, what: "zip entry") }
                return nil
            }
            var out = Data()
            do { _ = try archive.extract(e) { out.append($0) } } catch {
                throw KerasError.corrupt(file: path, reason: "zip entry \(name) cannot be extracted (\(error))")
            }
            return out
        }
        guard let configData = try entry("config.json", required: true),
              let configText = String(data: configData, encoding: .utf8) else {
            throw KerasError.badConfig(file: path, layer: nil, reason: "config.json is not UTF-8 text")
        }
        var version = ""
        if let meta = try entry("metadata.json", required: false),
           let obj = (try? JSONSerialization.jsonObject(with: meta)) as? JSONObject {
            version = obj["keras_version"] as? String ?? ""
        }
        let weights = try entry("model.weights.h5", required: true)!
        let config = try KerasConfigParser.parse(configText, file: path)
        let h5 = try HDF5File(bytes: weights, name: "\(path):model.weights.h5")
        let store = try KerasZipWeights(h5: h5, config: config)
        let model = try build(config, store: store, file: path, format: "keras", version: version)
        return LoadedKerasModel(model: model, backend: nil, modelClass: config.className)
    }

    static func loadLegacyH5(path: String) throws -> LoadedKerasModel {
        let h5 = try HDF5File(path: path)
        guard h5.hasAttribute("/", "model_config") else {
            throw KerasError.unreadable(file: path, reason: "HDF5 file without a 'model_config' root attribute: a weights-only .h5 (save_weights) has no model to load; save the whole model")
        }
        let configText = try h5.stringAttribute("/", "model_config")
        let version = h5.hasAttribute("/", "keras_version") ? try h5.stringAttribute("/", "keras_version") : ""
        let backend = h5.hasAttribute("/", "backend") ? try h5.stringAttribute("/", "backend") : nil
        let config = try KerasConfigParser.parse(configText, file: path)
        guard h5.isGroup("model_weights") else { throw KerasError.missing(file: path, path: "model_weights", what: "group") }
        let model = try build(config, store: LegacyH5Weights(h5: h5), file: path, format: "h5", version: version)
        return LoadedKerasModel(model: model, backend: backend, modelClass: config.className)
    }

    // MARK: layers

    static func build(_ config: ModelConfig, store: WeightStore, file: String, format: String, version: String) throws -> Model {
        let major = Int(version.prefix { $0.isNumber }) ?? (format == "keras" ? 3 : 2)
        var builder = LayerBuilder(file: file, kerasMajor: major, store: store)
        var layers: [Layer] = []
        var chain = config.chain[...]
        if let first = chain.first, first.className == "InputLayer" {
            layers.append(try builder.input(name: first.name, shape: first.declaredInputShape, dtype: first.config["dtype"], firstLayer: nil))
            chain = chain.dropFirst()
        } else {
            // Old Sequential configs carry the input shape on the first layer instead.
            let shape = chain.first?.declaredInputShape ?? config.buildInputShape
            layers.append(try builder.input(name: "input", shape: shape, dtype: chain.first?.config["dtype"], firstLayer: chain.first))
        }
        for entry in chain {
            layers.append(try builder.layer(entry))
        }
        do {
            return try Model(name: config.name, format: format, kerasVersion: version, layers: layers)
        } catch let error as EngineError {
            throw KerasError.model(file: file, error)
        }
    }
}

/// Turns config entries into engine layers, reading and shape-checking their weights.
struct LayerBuilder {
    let file: String
    let kerasMajor: Int
    let store: WeightStore
    /// Features per step of the previous layer's output; nil while the data are token ids.
    var dim: Int?

    init(file: String, kerasMajor: Int, store: WeightStore) {
        self.file = file
        self.kerasMajor = kerasMajor
        self.store = store
    }

    static let identityClasses: Set<String> = [
        "Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
    ]

    mutating func input(name: String, shape: [Int?]?, dtype: Any?, firstLayer: LayerEntry?) throws -> Layer {
        guard let shape else {
            throw KerasError.badConfig(file: file, layer: firstLayer?.name ?? name,
                                       reason: "no InputLayer and no batch_input_shape/build_input_shape, so the input shape is unknown")
        }
        switch shape.count {
        case 2:
            dim = nil
            return Layer(name: name, className: "InputLayer", kind: .input(featureDim: nil))
        case 3:
            guard let d = shape[2] else {
                throw KerasError.unsupportedLayer(file: file, layer: name, className: "InputLayer",
                                                  reason: "the feature axis of input shape \(Self.shapeText(shape)) has no size")
            }
            dim = d
            return Layer(name: name, className: "InputLayer", kind: .input(featureDim: d))
        default:
            throw KerasError.unsupportedLayer(file: file, layer: name, className: "InputLayer",
                                              reason: "input shape \(Self.shapeText(shape)) is not supported (supported: (batch, time, features) floats or (batch, time) token ids)")
        }
    }

    mutating func layer(_ entry: LayerEntry) throws -> Layer {
        let c = entry.config
        switch entry.className {
        case "Embedding":
            let inputDim = try int(c, "input_dim", entry), outputDim = try int(c, "output_dim", entry)
            let paths = try store.paths(for: entry, part: .main, expected: ["embeddings"])
            let e = try read(paths[0], [inputDim, outputDim], entry)
            dim = outputDim
            return Layer(name: entry.name, className: "Embedding",
                         kind: .embedding(embeddings: Matrix(rows: inputDim, cols: outputDim, values: e), maskZero: bool(c, "mask_zero", false)))
        case "Masking":
            let value = (c["mask_value"] as? NSNumber)?.floatValue ?? 0
            return Layer(name: entry.name, className: "Masking", kind: .masking(maskValue: value))
        case "LSTM":
            let paths = try store.paths(for: entry, part: .main, expected: Self.lstmWeights(c))
            // Keras 3 configs carry zero_output_for_mask; Keras 2 plain LSTMs leave it False.
            let spec = try lstm(c, entry: entry, name: entry.name, paths: paths, zeroOutputForMask: bool(c, "zero_output_for_mask", false))
            dim = spec.units
            return Layer(name: entry.name, className: "LSTM", kind: .lstm(spec))
        case "Bidirectional":
            return try bidirectional(entry)
        case "Dense":
            return try dense(entry, config: c, className: "Dense")
        case "TimeDistributed":
            guard let inner = c["layer"] as? JSONObject, let innerClass = inner["class_name"] as? String else {
                throw KerasError.badConfig(file: file, layer: entry.name, reason: "TimeDistributed without a wrapped layer")
            }
            guard innerClass == "Dense" else {
                throw unsupported(entry, "TimeDistributed(\(innerClass))")
            }
            return try dense(entry, config: inner["config"] as? JSONObject ?? [:], className: "TimeDistributed(Dense)")
        case "Activation":
            let a = try activation(c, "activation", default: "linear", entry)
            return Layer(name: entry.name, className: "Activation", kind: .activation(a))
        case let cls where Self.identityClasses.contains(cls):
            return Layer(name: entry.name, className: cls, kind: .identity)
        case "InputLayer":
            throw KerasError.unsupportedGraph(file: file, layer: entry.name, reason: "a second InputLayer")
        default:
            throw unsupported(entry, entry.className)
        }
    }

    func unsupported(_ entry: LayerEntry, _ cls: String) -> KerasError {
        KerasError.unsupportedLayer(file: file, layer: entry.name, className: cls,
                                    reason: "unsupported layer class (supported: \(KerasError.supportedClasses.joined(separator: ", ")))")
    }

    static func lstmWeights(_ c: JSONObject) -> [String] {
        (c["use_bias"] as? Bool ?? true) ? ["kernel", "recurrent_kernel", "bias"] : ["kernel", "recurrent_kernel"]
    }

    mutating func bidirectional(_ entry: LayerEntry) throws -> Layer {
        let c = entry.config
        guard let inner = c["layer"] as? JSONObject, let innerClass = inner["class_name"] as? String,
              let forward = inner["config"] as? JSONObject else {
            throw KerasError.badConfig(file: file, layer: entry.name, reason: "Bidirectional without a wrapped layer")
        }
        guard innerClass == "LSTM" else { throw unsupported(entry, "Bidirectional(\(innerClass))") }
        let merge: MergeMode
        switch c["merge_mode"] {
        case nil: merge = .concat  // Keras's default
        case let name as String where MergeMode(rawValue: name) != nil: merge = MergeMode(rawValue: name)!
        case let other:
            let text = other is NSNull ? "None" : "\(other!)"
            throw KerasError.unsupportedLayer(file: file, layer: entry.name, className: "Bidirectional",
                                              reason: "merge_mode \(text) is not supported (supported: concat, sum, ave, mul)")
        }
        var backward: JSONObject
        if let b = c["backward_layer"] as? JSONObject {
            guard b["class_name"] as? String == "LSTM", let bc = b["config"] as? JSONObject else {
                throw unsupported(entry, "Bidirectional(backward_layer=\(b["class_name"] as? String ?? "?"))")
            }
            backward = bc
        } else {
            backward = forward
            backward["go_backwards"] = !bool(forward, "go_backwards", false)
        }
        // Keras forces zero_output_for_mask = return_sequences on both halves of a Bidirectional.
        let inputDim = dim
        let f = try lstm(forward, entry: entry, name: "\(entry.name)/forward",
                         paths: store.paths(for: entry, part: .forward, expected: Self.lstmWeights(forward)),
                         zeroOutputForMask: bool(forward, "return_sequences", false))
        dim = inputDim
        let b = try lstm(backward, entry: entry, name: "\(entry.name)/backward",
                         paths: store.paths(for: entry, part: .backward, expected: Self.lstmWeights(backward)),
                         zeroOutputForMask: bool(backward, "return_sequences", false))
        dim = merge == .concat ? f.units + b.units : f.units
        return Layer(name: entry.name, className: "Bidirectional", kind: .bidirectional(forward: f, backward: b, merge: merge))
    }

    func lstm(_ c: JSONObject, entry: LayerEntry, name: String, paths: [String], zeroOutputForMask: Bool) throws -> LSTMSpec {
        if bool(c, "stateful", false) {
            throw KerasError.unsupportedLayer(file: file, layer: entry.name, className: entry.className,
                                              reason: "stateful=True is not supported (state carried across batches); save the model with stateful=False")
        }
        if bool(c, "time_major", false) {
            throw KerasError.unsupportedLayer(file: file, layer: entry.name, className: entry.className,
                                              reason: "time_major=True is not supported (only batch-major input)")
        }
        let units = try int(c, "units", entry)
        let kernel = try read(paths[0], [dim, 4 * units], entry)
        let recurrent = try read(paths[1], [units, 4 * units], entry)
        let bias = paths.count > 2 ? try read(paths[2], [4 * units], entry) : nil
        let inputDim = kernel.count / (4 * units)
        do {
            return try LSTMSpec(
                name: name, units: units, inputDim: inputDim,
                activation: try activation(c, "activation", default: "tanh", entry),
                recurrentActivation: try activation(c, "recurrent_activation", default: "sigmoid", entry),
                goBackwards: bool(c, "go_backwards", false), returnSequences: bool(c, "return_sequences", false),
                zeroOutputForMask: zeroOutputForMask,
                kernel: Matrix(rows: inputDim, cols: 4 * units, values: kernel),
                recurrentKernel: Matrix(rows: units, cols: 4 * units, values: recurrent), bias: bias)
        } catch let error as EngineError {
            throw KerasError.model(file: file, error)
        }
    }

    mutating func dense(_ entry: LayerEntry, config c: JSONObject, className: String) throws -> Layer {
        let units = try int(c, "units", entry)
        let useBias = bool(c, "use_bias", true)
        let paths = try store.paths(for: entry, part: .main, expected: useBias ? ["kernel", "bias"] : ["kernel"])
        let kernel = try read(paths[0], [dim, units], entry)
        let bias = useBias ? try read(paths[1], [units], entry) : nil
        let a = try activation(c, "activation", default: "linear", entry)
        dim = units
        return Layer(name: entry.name, className: className,
                     kind: .dense(kernel: Matrix(rows: kernel.count / max(units, 1), cols: units, values: kernel), bias: bias, activation: a))
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
}
