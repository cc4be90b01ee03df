import Foundation
import GateScopeInput
import Testing

/// `gatescope inspect` and `predict` run as a user would: the built binary on fixture files.
@Suite struct ModelCLITests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    static var badFiles: [String] {
        let dir = fixtures.appendingPathComponent("bad").path
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
            .filter { $0 != "fixed_length_strings.h5" }  // a valid model in an old string encoding
            .sorted()
    }

    /// Every damaged or unsupported model file: non-zero exit and one line naming the file.
    /// libhdf5_crash.h5 made libhdf5 itself segfault; HDF5Precheck refuses it before libhdf5 reads it.
    @Test(arguments: badFiles)
    func badModelGivesOneLine(_ name: String) throws {
        let path = Self.fixtures.appendingPathComponent("bad/\(name)").path
        for command in ["inspect", "predict"] {
            let args = command == "inspect" ? [command, path] : [command, path, Self.fixtures.appendingPathComponent("keras/lstm_single/input.npy").path]
            let out = try GateScopeCLI.run(args)
            #expect(out.status == 1, "\(command) \(name): exit \(out.status) \(out.stderr)")
            #expect(!out.signaled)
            #expect(out.stderr.split(separator: "\n").count == 1, "\(command) \(name): \(out.stderr)")
            #expect(out.stderr.contains(name), "\(command) \(name): \(out.stderr)")
            #expect(out.stdout.isEmpty)
        }
    }

    @Test func predictWritesKerasOutput() throws {
        let dir = try GateScopeCLI.tempDir("predict")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fixture = Self.fixtures.appendingPathComponent("keras/bidirectional").path
        let out = try GateScopeCLI.run(["predict", fixture + "/model.keras", fixture + "/input.npy", "-o", dir + "/y.npy", "--batch-size", "1"])
        #expect(out.status == 0, "\(out.stderr)")
        let y = try NPY.read(path: dir + "/y.npy")
        let want = try #require(try NPZ.read(path: fixture + "/expected.npz")["y"])
        #expect(y.dtype == .float32 && y.shape == want.shape)
        var worst: Float = 0
        for (a, b) in zip(try y.floats(), try want.floats()) {
            worst = max(worst, abs(a - b) / (2e-5 + 1e-4 * abs(b)))
        }
        print("predict bidirectional: worst |a-b| / tolerance = \(worst)")
        #expect(worst <= 1)
    }

    @Test func predictPrintsWithoutOutputFile() throws {
        let fixture = Self.fixtures.appendingPathComponent("keras/keras2_hard_sigmoid").path
        let out = try GateScopeCLI.run(["predict", fixture + "/model.h5", fixture + "/input.npy"])
        #expect(out.status == 0, "\(out.stderr)")
        let lines = out.stdout.split(separator: "\n")
        #expect(lines.first == "shape [3, 3]")
        #expect(lines.count == 4 && lines[1].hasPrefix("[0]: "))
    }

    @Test func predictRefusesInputOfTheWrongShape() throws {
        let k = Self.fixtures.appendingPathComponent("keras").path
        // lstm_single takes 3 features; char_embedding's input is int token ids.
        let out = try GateScopeCLI.run(["predict", k + "/lstm_single/model.keras", k + "/char_embedding/input.npy"])
        #expect(out.status == 1)
        #expect(out.stderr.split(separator: "\n").count == 1)
        #expect(out.stderr.hasPrefix("gatescope predict: ") && out.stderr.contains("input 'input_layer' has shape [3, 12]") && out.stderr.contains("takes (None, None, 3) float"), "\(out.stderr)")
    }

    @Test func inspectShowsLayers() throws {
        let out = try GateScopeCLI.run(["inspect", Self.fixtures.appendingPathComponent("keras/lstm_stacked_masked/model.keras").path])
        #expect(out.status == 0)
        #expect(out.stdout.contains("encoder (LSTM)              masking        (None, None, 12)  yes   tanh / sigmoid     816  units=12 return_sequences"))
        #expect(out.stdout.contains("  1 summary fwd: lstm, 6 units, steps of input 'input_layer_1'; recorded"))
        #expect(out.stdout.contains("Total params: 1,286"))
        let json = try GateScopeCLI.run(["inspect", "--json", Self.fixtures.appendingPathComponent("keras/keras2_hard_sigmoid/model.h5").path])
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(obj["keras_version"] as? String == "2.21.0")
    }
}
