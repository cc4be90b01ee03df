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

    @Test("Keras 3 Functional: mask op nodes are not needed, the graph holds the real layers")
    func keras3FunctionalGraph() throws {
        let config = try KerasConfigParser.parse(try Self.zipConfig("lstm_stacked_masked"), file: "m.keras")
        #expect(config.className == "Functional")
        #expect(config.allLayers.map(\.name) == ["input_layer_1", "masking", "encoder", "summary", "head"])
        let model = try KerasModelLoader.load(path: Fixtures.keras.appendingPathComponent("lstm_stacked_masked/model.keras").path)
        #expect(model.graph.nodes.map(\.name) == ["masking", "encoder", "summary", "head"])
        #expect(model.graph.inputs.map(\.name) == ["input_layer_1"])
    }

    @Test("Keras 2 and 3 endpoint lists")
    func endpoints() throws {
        #expect(KerasConfigParser.endpoints(["d", 0, 0]).map(\.0) == ["d"])
        let two = KerasConfigParser.endpoints([["a", 0, 0], ["b", 1, 2]])
        #expect(two.map(\.0) == ["a", "b"] && two[1].1 == 1 && two[1].2 == 2)
    }

    @Test("Keras 2 inbound node lists and Keras 3 __keras_tensor__ references")
    func callSpecs() throws {
        let importer = KerasGraphImporter(file: "f", kerasMajor: 2, store: LegacyH5Weights(h5: try HDF5File(path: HDF5FileTests.legacy)))
        let lstm = LayerEntry(name: "dec", className: "LSTM", module: nil, config: [:], raw: [:])
        let k2 = try importer.parseCall([["x", 0, 0, [:]], ["enc", 0, 1, [:]], ["enc", 0, 2, [:]]], layer: lstm)
        #expect(k2.inputs == [TensorKey(layer: "x", node: 0, tensor: 0), TensorKey(layer: "enc", node: 0, tensor: 1), TensorKey(layer: "enc", node: 0, tensor: 2)])
        #expect(k2.dataCount == 1 && k2.receivesMask)
        func ref(_ n: String, _ k: Int) -> [String: Any] { ["class_name": "__keras_tensor__", "config": ["keras_history": [n, 0, k]]] }
        let k3 = try importer.parseCall(["args": [ref("x", 0)], "kwargs": ["initial_state": [ref("enc", 1), ref("enc", 2)], "training": false]], layer: lstm)
        #expect(k3.inputs.map(\.tensor) == [0, 1, 2] && k3.dataCount == 1)
        // Keras 3 passes no mask to a call with initial_state.
        #expect(!k3.receivesMask)
        let merge = LayerEntry(name: "add", className: "Add", module: nil, config: [:], raw: [:])
        let m = try importer.parseCall(["args": [[ref("a", 0), ref("b", 0)]], "kwargs": [:]], layer: merge)
        #expect(m.inputs.map(\.layer) == ["a", "b"] && m.receivesMask)
    }

    @Test("activations given as names or serialized objects")
    func activationForms() throws {
        let builder = KerasLayerFactory(file: "f", kerasMajor: 2, store: LegacyH5Weights(h5: try HDF5File(path: HDF5FileTests.legacy)), scope: [])
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
        let k3 = KerasLayerFactory(file: "f", kerasMajor: 3, store: builder.store, scope: [])
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
        guard case let .lstm(spec)? = (m.model.graph.nodes[1].op as? RecurrentOp)?.cell else { Issue.record("node 1 is not an LSTM"); return }
        #expect(spec.zeroOutputForMask == false)
    }

    @Test func bidirectionalHalvesAndZeroOutputForMask() throws {
        for file in ["model.keras", "model.h5"] {
            let m = try load("bidirectional", file).model
            guard let bi = m.graph.nodes[0].op as? BidirectionalOp, case let .lstm(f) = bi.forward, case let .lstm(b) = bi.backward else {
                Issue.record("no Bidirectional"); continue
            }
            #expect(bi.merge == .concat)
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
        #expect(fixed.recurrentLayers == original.recurrentLayers)
        #expect(fixed.graph.nodes.map(\.name) == original.graph.nodes.map(\.name))
        #expect(fixed.parameterCount == original.parameterCount)
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
        #expect(model.graph.nodes.map(\.name) == original.graph.nodes.map(\.name))
        // Only the input's name differs: the config without an InputLayer does not give one.
        #expect(model.graph.inputs.map(\.name) == ["input"])
        #expect(model.recurrentLayers.map { "\($0.name) \($0.units) \($0.inputDim)" } == original.recurrentLayers.map { "\($0.name) \($0.units) \($0.inputDim)" })
        let x = Tensor(shape: [1, 3, 4], values: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2])
        #expect(try model.run([x]) == original.run([x]))

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
