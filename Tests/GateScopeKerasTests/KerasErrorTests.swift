import Foundation
import GateScopeKeras
import Testing

/// One malformed or unsupported file from Tests/Fixtures/bad and words its error must contain.
struct BadCase: Sendable, CustomStringConvertible {
    let file: String
    let keywords: [String]
    var description: String { file }
}

@Suite("Keras import errors: one clear line naming the problem")
struct KerasErrorTests {
    static let cases: [BadCase] = [
        BadCase(file: "truncated.keras", keywords: ["truncated.keras", "corrupt or truncated", "zip"]),
        BadCase(file: "truncated.h5", keywords: ["truncated.h5", "corrupt or truncated", "HDF5"]),
        BadCase(file: "random.h5", keywords: ["random.h5", "not a Keras model", "HDF5"]),
        BadCase(file: "empty.keras", keywords: ["empty.keras", "empty"]),
        BadCase(file: "corrupt_weights.keras", keywords: ["corrupt_weights.keras", "model.weights.h5", "corrupt or truncated"]),
        BadCase(file: "no_config.keras", keywords: ["no_config.keras", "config.json", "not found"]),
        BadCase(file: "wrong_kernel_shape.h5",
                keywords: ["wrong_kernel_shape.h5: layer 'lstm_hs': dataset model_weights/lstm_hs/lstm_hs/lstm_cell/kernel:0 has shape [4, 20], expected [4, 24]"]),
        BadCase(file: "wrong_kernel_shape.keras",
                keywords: ["layer 'lstm'", "dataset layers/lstm/cell/vars/0", "has shape [3, 28], expected [3, 32]"]),
        BadCase(file: "missing_dataset.h5", keywords: ["dataset model_weights/lstm_last/lstm_last/lstm_cell/bias:0 not found"]),
        BadCase(file: "missing_dataset.keras", keywords: ["model.weights.h5", "dataset layers/lstm/cell/vars/2 not found"]),
        BadCase(file: "lambda.keras", keywords: ["layer 'lambda_double' (Lambda)", "arbitrary Python code"]),
        BadCase(file: "custom.keras", keywords: ["layer 'custom_scale'", "custom layer classes are not supported"]),
        BadCase(file: "stateful.keras", keywords: ["layer 'stateful_lstm' (LSTM)", "stateful=True", "not supported"]),
        BadCase(file: "unknown_activation.keras", keywords: ["layer 'odd_act'", "unknown activation 'log_sigmoid'", "supported:"]),
        BadCase(file: "weights_only.weights.h5", keywords: ["model_config", "weights-only"]),
    ]

    @Test("each bad file throws a one-line KerasError", arguments: cases)
    func badFile(_ c: BadCase) throws {
        let path = Fixtures.badPath(c.file)
        #expect(FileManager.default.fileExists(atPath: path), "missing fixture \(path): run scripts/make_bad_fixtures.py")
        let error = #expect(throws: KerasError.self) { try KerasModelLoader.load(path: path) }
        let text = error.map { "\($0)" } ?? ""
        #expect(!text.contains("\n"), "error is not one line: \(text)")
        for word in c.keywords {
            #expect(text.contains(word), "'\(word)' missing from: \(text)")
        }
    }

    @Test func missingFile() {
        let error = #expect(throws: KerasError.self) { try KerasModelLoader.load(path: "/nonexistent/model.keras") }
        #expect(error?.description == "/nonexistent/model.keras: no such file")
    }

    @Test func directoryIsRefused() {
        let error = #expect(throws: KerasError.self) { try KerasModelLoader.load(path: Fixtures.bad.path) }
        #expect(error?.description.contains("is a directory") == true)
    }

    @Test("format is detected from content, not the extension")
    func formatByContent() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gatescope-keras-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let src = Fixtures.keras.appendingPathComponent("lstm_single")
        let zipAsH5 = dir.appendingPathComponent("actually_zip.h5"), h5AsKeras = dir.appendingPathComponent("actually_h5.keras")
        try FileManager.default.copyItem(at: src.appendingPathComponent("model.keras"), to: zipAsH5)
        try FileManager.default.copyItem(at: src.appendingPathComponent("model.h5"), to: h5AsKeras)
        #expect(try KerasModelLoader.load(path: zipAsH5.path).format == "keras")
        #expect(try KerasModelLoader.load(path: h5AsKeras.path).format == "h5")
    }
}
