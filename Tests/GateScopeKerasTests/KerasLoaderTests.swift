import Foundation
import GateScopeEngine
@testable import GateScopeKeras
import Testing

@Suite("HDF5 reader")
struct HDF5FileTests {
    static let legacy = Fixtures.keras.appendingPathComponent("keras2_hard_sigmoid/model.h5").path

    @Test func rootStringAttributesAndGroups() throws {
        let f = try HDF5File(path: Self.legacy)
        #expect(try f.stringAttribute("/", "keras_version") == "2.21.0")
        #expect(try f.stringAttribute("/", "backend") == "tensorflow")
        #expect(try f.stringAttribute("/", "model_config").hasPrefix("{"))
        #expect(try f.members("model_weights").contains("lstm_hs"))
        #expect(f.isGroup("model_weights/lstm_hs"))
        #expect(!f.isGroup("model_weights/lstm_hs/lstm_hs/lstm_cell/kernel:0"))
        #expect(f.exists("model_weights/lstm_hs/lstm_hs/lstm_cell/kernel:0"))
        #expect(!f.exists("model_weights/nope/kernel:0"))
    }

    @Test("string arrays, and the empty float64 array Keras writes for layers without weights")
    func weightNames() throws {
        let f = try HDF5File(path: Self.legacy)
        #expect(try f.stringArrayAttribute("model_weights/lstm_hs", "weight_names") ==
                ["lstm_hs/lstm_cell/kernel:0", "lstm_hs/lstm_cell/recurrent_kernel:0", "lstm_hs/lstm_cell/bias:0"])
        #expect(try f.stringArrayAttribute("model_weights/masking", "weight_names") == [])
        let error = #expect(throws: KerasError.self) { try f.stringAttribute("model_weights/masking", "weight_names") }
        #expect(error?.description.contains("expected one string, found 0") == true)
    }

    @Test func datasetShapeAndValues() throws {
        let f = try HDF5File(path: Self.legacy)
        let (shape, values) = try f.floatDataset("model_weights/lstm_hs/lstm_hs/lstm_cell/kernel:0")
        #expect(shape == [4, 24])
        #expect(values.count == 96)
        #expect(values.contains { $0 != 0 })
    }

    @Test func missingThingsNameTheirPath() throws {
        let f = try HDF5File(path: Self.legacy)
        let e1 = #expect(throws: KerasError.self) { try f.floatDataset("model_weights/x/kernel") }
        #expect(e1?.description == "\(Self.legacy): dataset model_weights/x/kernel not found")
        let e2 = #expect(throws: KerasError.self) { try f.stringAttribute("model_weights", "nope") }
        #expect(e2?.description == "\(Self.legacy): attribute 'nope' of model_weights not found")
        let e3 = #expect(throws: KerasError.self) { try f.floatDataset("model_weights/lstm_hs") }
        #expect(e3?.description.contains("cannot read model_weights/lstm_hs: not a dataset") == true)
    }

    @Test("in-memory image through the core driver")
    func inMemory() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: Self.legacy))
        let f = try HDF5File(bytes: bytes, name: "mem.h5")
        #expect(try f.floatDataset("model_weights/probs/probs/bias:0").shape == [3])
        let error = #expect(throws: KerasError.self) { try HDF5File(bytes: bytes.prefix(bytes.count / 2), name: "half.h5") }
        #expect(error?.description.hasPrefix("half.h5: corrupt or truncated") == true)
        #expect(throws: KerasError.self) { try HDF5File(bytes: Data("PK not hdf5".utf8), name: "x") }
    }
}

@Suite("Keras config mapping")
struct KerasConfigTests {
    @Test func snakeCaseMatchesKeras() {
        #expect(KerasZipWeights.snakeCase("LSTM") == "lstm")
        #expect(KerasZipWeights.snakeCase("TimeDistributed") == "time_distributed")
        #expect(KerasZipWeights.snakeCase("InputLayer") == "input_layer")
        #expect(KerasZipWeights.snakeCase("SpatialDropout1D") == "spatial_dropout1d")
        #expect(KerasZipWeights.snakeCase("GaussianNoise") == "gaussian_noise")
    }

    @Test("Keras 3 Functional: mask op nodes are skipped, the chain is found")
    func keras3FunctionalChain() throws {
        let config = try KerasConfigParser.parse(try Self.zipConfig("lstm_stacked_masked"), file: "m.keras")
        #expect(config.className == "Functional")
        #expect(config.chain.map(\.name) == ["input_layer_1", "masking", "encoder", "summary", "head"])
    }

    @Test("Keras 2 Functional with nested inbound_nodes lists")
    func keras2Functional() throws {
        let json = """
        {"class_name": "Model", "config": {"name": "m", "layers": [
          {"class_name": "InputLayer", "config": {"batch_input_shape": [null, null, 2], "dtype": "float32", "name": "in"}, "name": "in", "inbound_nodes": []},
          {"class_name": "LSTM", "config": {"name": "l", "units": 3}, "name": "l", "inbound_nodes": [[["in", 0, 0, {}]]]},
          {"class_name": "Dense", "config": {"name": "d", "units": 1}, "name": "d", "inbound_nodes": [[["l", 0, 0, {}]]]}],
          "input_layers": [["in", 0, 0]], "output_layers": [["d", 0, 0]]}}
        """
        let config = try KerasConfigParser.parse(json, file: "m.h5")
        #expect(config.chain.map(\.name) == ["in", "l", "d"])
        #expect(config.chain[0].declaredInputShape == [nil, nil, 2])
    }

    @Test("a layer off the chain is refused as branching")
    func deadBranch() throws {
        let json = """
        {"class_name": "Functional", "config": {"name": "m", "layers": [
          {"class_name": "InputLayer", "config": {"batch_shape": [null, null, 2], "name": "in"}, "name": "in", "inbound_nodes": []},
          {"class_name": "Dense", "config": {"name": "side", "units": 1}, "name": "side", "inbound_nodes": [[["in", 0, 0, {}]]]},
          {"class_name": "LSTM", "config": {"name": "l", "units": 3}, "name": "l", "inbound_nodes": [[["in", 0, 0, {}]]]}],
          "input_layers": [["in", 0, 0]], "output_layers": [["l", 0, 0]]}}
        """
        let error = #expect(throws: KerasError.self) { try KerasConfigParser.parse(json, file: "m.h5") }
        #expect(error?.description.contains("layer 'side'") == true)
        #expect(error?.description.contains("branches") == true)
    }

    @Test("a second output of a return_state LSTM feeding the next layer is refused")
    func stateOutputRefused() throws {
        let json = """
        {"class_name": "Model", "config": {"name": "m", "layers": [
          {"class_name": "InputLayer", "config": {"batch_input_shape": [null, null, 2], "name": "in"}, "name": "in", "inbound_nodes": []},
          {"class_name": "LSTM", "config": {"name": "l", "units": 3, "return_state": true}, "name": "l", "inbound_nodes": [[["in", 0, 0, {}]]]},
          {"class_name": "Dense", "config": {"name": "d", "units": 1}, "name": "d", "inbound_nodes": [[["l", 0, 2, {}]]]}],
          "input_layers": [["in", 0, 0]], "output_layers": [["d", 0, 0]]}}
        """
        let error = #expect(throws: KerasError.self) { try KerasConfigParser.parse(json, file: "m.h5") }
        #expect(error?.description.contains("output #2 of 'l'") == true)
    }

    @Test("activations given as names or serialized objects")
    func activationForms() throws {
        let builder = LayerBuilder(file: "f", kerasMajor: 2, store: LegacyH5Weights(h5: try HDF5File(path: HDF5FileTests.legacy)))
        let entry = LayerEntry(name: "d", className: "Dense", module: nil, config: [:], raw: [:])
        #expect(try builder.activation(["activation": "hard_sigmoid"], "activation", default: "linear", entry) == .hardSigmoidKeras2)
        #expect(try builder.activation([:], "activation", default: "tanh", entry) == .tanh)
        #expect(try builder.activation(["activation": NSNull()], "activation", default: "linear", entry) == .linear)
        #expect(try builder.activation(["activation": ["class_name": "function", "config": "relu"]], "activation", default: "linear", entry) == .relu)
        let relu: [String: Any] = ["class_name": "ReLU", "config": ["name": "r", "max_value": NSNull(), "negative_slope": 0.0, "threshold": 0.0]]
        #expect(try builder.activation(["activation": relu], "activation", default: "linear", entry) == .relu)
        let relu6: [String: Any] = ["class_name": "ReLU", "config": ["name": "r", "max_value": 6.0]]
        let error = #expect(throws: KerasError.self) { try builder.activation(["activation": relu6], "activation", default: "linear", entry) }
        #expect(error?.description.contains("unknown activation 'ReLU'") == true)
        let k3 = LayerBuilder(file: "f", kerasMajor: 3, store: builder.store)
        #expect(try k3.activation(["activation": "hard_sigmoid"], "activation", default: "linear", entry) == .hardSigmoidKeras3)
    }

    static func zipConfig(_ name: String) throws -> String {
        try TestZip.entry(Fixtures.keras.appendingPathComponent("\(name)/model.keras").path, "config.json")
    }
}

@Suite("Loaded models")
struct KerasModelTests {
    func load(_ name: String, _ file: String) throws -> LoadedKerasModel {
        try KerasModelLoader.loadWithInfo(path: Fixtures.keras.appendingPathComponent("\(name)/\(file)").path)
    }

    @Test func keras2HardSigmoidUsesKeras2Definition() throws {
        let m = try load("keras2_hard_sigmoid", "model.h5")
        #expect(m.model.format == "h5" && m.model.kerasVersion == "2.21.0" && m.backend == "tensorflow")
        #expect(m.modelClass == "Sequential")
        #expect(m.model.recurrentLayers.map(\.recurrentActivation) == [.hardSigmoidKeras2, .sigmoid])
        guard case let .lstm(spec) = m.model.layers[2].kind else { Issue.record("layer 2 is not an LSTM"); return }
        #expect(spec.zeroOutputForMask == false)
    }

    @Test func bidirectionalHalvesAndZeroOutputForMask() throws {
        for file in ["model.keras", "model.h5"] {
            let m = try load("bidirectional", file).model
            guard case let .bidirectional(f, b, merge) = m.layers[1].kind else { Issue.record("no Bidirectional"); continue }
            #expect(merge == .concat)
            #expect(!f.goBackwards && b.goBackwards)
            // Keras forces zero_output_for_mask = return_sequences on both halves.
            #expect(f.zeroOutputForMask && b.zeroOutputForMask)
            #expect(m.recurrentLayers.map(\.direction) == [.fwd, .bwd, .bwd])
        }
    }

    @Test("fixed-length string attributes (old h5py / Keras 2) load like variable-length ones")
    func fixedLengthStrings() throws {
        let fixed = try KerasModelLoader.load(path: Fixtures.badPath("fixed_length_strings.h5"))
        let original = try load("keras2_hard_sigmoid", "model.h5").model
        #expect(fixed.kerasVersion == "2.21.0")
        #expect(fixed.layers == original.layers)
    }

    @Test("old Sequential configs: no InputLayer, batch_input_shape on the first layer")
    func sequentialWithoutInputLayer() throws {
        let path = Fixtures.keras.appendingPathComponent("keras2_hard_sigmoid/model.h5").path
        let h5 = try HDF5File(path: path)
        var root = try #require(try JSONSerialization.jsonObject(with: Data(try h5.stringAttribute("/", "model_config").utf8)) as? [String: Any])
        var config = try #require(root["config"] as? [String: Any])
        var layers = try #require(config["layers"] as? [[String: Any]])
        #expect(layers.removeFirst()["class_name"] as? String == "InputLayer")
        var first = try #require(layers[0]["config"] as? [String: Any])
        first["batch_input_shape"] = [NSNull(), NSNull(), 4]
        layers[0]["config"] = first
        config["layers"] = layers
        root["config"] = config
        let text = String(decoding: try JSONSerialization.data(withJSONObject: root), as: UTF8.self)
        let parsed = try KerasConfigParser.parse(text, file: path)
        let model = try KerasModelLoader.build(parsed, store: LegacyH5Weights(h5: h5), file: path, format: "h5", version: "2.21.0")
        let original = try load("keras2_hard_sigmoid", "model.h5").model
        #expect(model.inputFeatureDim == 4)
        #expect(Array(model.layers.dropFirst()) == Array(original.layers.dropFirst()))

        // Without any shape the input is unknown: a clear config error.
        var bare = first
        bare["batch_input_shape"] = nil
        layers[0]["config"] = bare
        config["layers"] = layers
        root["config"] = config
        let noShape = try KerasConfigParser.parse(String(decoding: try JSONSerialization.data(withJSONObject: root), as: UTF8.self), file: path)
        let error = #expect(throws: KerasError.self) {
            try KerasModelLoader.build(noShape, store: LegacyH5Weights(h5: h5), file: path, format: "h5", version: "2.21.0")
        }
        #expect(error?.description.contains("input shape is unknown") == true)
    }

    @Test func summaryForInspect() throws {
        let s = try KerasModelLoader.inspect(path: Fixtures.keras.appendingPathComponent("lstm_stacked_masked/model.keras").path)
        #expect(s.format == "keras" && s.kerasVersion == "3.15.1" && s.backend == nil)
        #expect(s.layers.map(\.className) == ["InputLayer", "Masking", "LSTM", "LSTM", "Dense"])
        #expect(s.layers[2].outputShape == [nil, nil, 12])
        #expect(s.layers[3].outputShape == [nil, 6])
        #expect(s.layers[2].activation == "tanh" && s.layers[2].recurrentActivation == "sigmoid")
        #expect(s.layers[2].parameterCount == 4 * 12 * (4 + 12 + 1))
        #expect(s.totalParameters == s.layers.map(\.parameterCount).reduce(0, +))
        #expect(s.recurrentLayers.map(\.layer) == ["encoder", "summary"])
    }
}
