import Foundation
import Testing

/// Every input that ever broke a reader (Tests/Fixtures/hostile, most found by fuzzing; see its
/// README): refused with exit 1 and one line naming the file, within 10 s and 256 MB of data.
@Suite struct HostileInputCLITests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    static var hostileFiles: [String] {
        let dir = fixtures.appendingPathComponent("hostile").path
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0 != "README.md" }.sorted()
    }

    @Test(arguments: hostileFiles)
    func hostileFileIsRefusedInOneLineQuickly(_ name: String) throws {
        let path = Self.fixtures.appendingPathComponent("hostile/\(name)").path
        let dir = try GateScopeCLI.tempDir("hostile")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = Self.fixtures.appendingPathComponent("keras/lstm_single/model.keras").path
        let isModel = [".h5", ".keras", ".onnx", ".pt", ".safetensors"].contains { name.hasSuffix($0) }
        let args = isModel ? ["inspect", path] : ["record", model, path, "--db", dir + "/out.db", "--no-progress"]
        // RLIMIT_DATA caps the heap: a reader that believed a hostile size would fail to allocate.
        let started = Date()
        let running = try GateScopeCLI.start(args, wrapper: ["/usr/bin/prlimit", "--data=\(256 << 20)", "--"])
        let deadline = Date().addingTimeInterval(10)
        while running.process.isRunning, Date() < deadline { usleep(20_000) }
        let hung = running.process.isRunning
        if hung { kill(running.pid, SIGKILL) }
        let out = try GateScopeCLI.finish(running)
        let seconds = Date().timeIntervalSince(started)
        #expect(!hung, "\(name): still running after 10 s")
        #expect(out.status == 1 && !out.signaled, "\(name): exit \(out.status) in \(seconds) s: \(out.stderr.prefix(400))")
        #expect(out.stderr.split(separator: "\n").count == 1, "\(name): \(out.stderr.prefix(400))")
        #expect(out.stderr.contains(name), "\(name): \(out.stderr.prefix(300))")
        #expect(out.stderr.count < 700, "\(name): \(out.stderr.count) characters")
        #expect(!FileManager.default.fileExists(atPath: dir + "/out.db"), "\(name): a refused input created the database")
    }
}
