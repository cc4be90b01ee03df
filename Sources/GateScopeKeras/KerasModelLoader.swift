import CHDF5
import Foundation
import GateScopeEngine
import GateScopeInput
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
        // File-backed, not Archive(data:): the in-memory archive of ZIPFoundation never frees its
        // buffer (LeakSanitizer under scripts/fuzz.sh), and the file need not be read whole.
        if let problem = ZipPrecheck.problem(path: path) {
            throw KerasError.corrupt(file: path, reason: "not a readable .keras zip archive: \(problem)")
        }
        let archive: Archive
        do { archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read) } catch {
            throw KerasError.corrupt(file: path, reason: "not a readable .keras zip archive (\(error))")
        }
        let fileSize = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? 0
        func entry(_ name: String, required: Bool) throws -> Data? {
            guard let e = archive[name] else {
                if required { throw KerasError.missing(file: path, path: name, what: "zip entry") }
                return nil
            }
            // Declared sizes are bounded by the file before anything is allocated: deflate
            // expands at most 1032:1, a stored entry not at all.
            let declared = Int64(e.uncompressedSize)
            let compressed = Int64(e.compressedSize)
            guard compressed <= fileSize, declared <= max(compressed, 0) * 1032 + 1024 else {
                throw KerasError.corrupt(file: path, reason: "zip entry \(name) declares \(declared) bytes from \(compressed) compressed in a \(fileSize)-byte file")
            }
            var out = Data()
            do {
                _ = try archive.extract(e, skipCRC32: false) { chunk in
                    guard Int64(out.count + chunk.count) <= declared else { throw KerasError.corrupt(file: path, reason: "zip entry \(name) holds more than the \(declared) bytes it declares") }
                    out.append(chunk)
                }
            } catch let error as KerasError {
                throw error
            } catch {
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
        guard try h5.hasAttribute("/", "model_config") else {
            throw KerasError.unreadable(file: path, reason: "HDF5 file without a 'model_config' root attribute: a weights-only .h5 (save_weights) has no model to load; save the whole model")
        }
        let configText = try h5.stringAttribute("/", "model_config")
        let version = try h5.hasAttribute("/", "keras_version") ? try h5.stringAttribute("/", "keras_version") : ""
        let backend = try h5.hasAttribute("/", "backend") ? try h5.stringAttribute("/", "backend") : nil
        let config = try KerasConfigParser.parse(configText, file: path)
        guard h5.isGroup("model_weights") else { throw KerasError.missing(file: path, path: "model_weights", what: "group") }
        let model = try build(config, store: LegacyH5Weights(h5: h5), file: path, format: "h5", version: version)
        return LoadedKerasModel(model: model, backend: backend, modelClass: config.className)
    }

    // MARK: graph

    static func build(_ config: ModelConfig, store: WeightStore, file: String, format: String, version: String) throws -> Model {
        let major = Int(version.prefix { $0.isNumber }) ?? (format == "keras" ? 3 : 2)
        var importer = KerasGraphImporter(file: file, kerasMajor: major, store: store)
        let graph = try importer.importModel(config.root, modelName: config.name)
        return Model(name: config.name, format: format, kerasVersion: version, graph: graph)
    }
}
