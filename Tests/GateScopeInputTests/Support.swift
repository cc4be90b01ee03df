import Foundation
@testable import GateScopeInput

/// Tests/Fixtures/inputs, made by scripts/make_input_fixtures.py.
let fixtureDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/inputs")

func fixture(_ name: String) -> String { fixtureDir.appendingPathComponent(name).path }

/// A fresh temporary directory, removed when the value is released.
final class TempDir {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("gatescope-input-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    /// Writes text to a file in the directory and returns its path.
    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        let p = path(name)
        try Data(text.utf8).write(to: URL(fileURLWithPath: p))
        return p
    }

    @discardableResult
    func write(_ name: String, bytes: [UInt8]) throws -> String {
        let p = path(name)
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }
}

/// The description of the error `body` throws ("no error" if none; other error types are marked).
func errorText(_ body: () throws -> Any?) -> String {
    do {
        _ = try body()
        return "no error"
    } catch let e as InputError {
        return e.description
    } catch {
        return "unexpected \(type(of: error)): \(error)"
    }
}

/// Reads every sequence of a reader.
func readAll(_ reader: any SequenceReader) throws -> [InputSequence] {
    var out: [InputSequence] = []
    while let s = try reader.next() { out.append(s) }
    return out
}

func features(_ s: InputSequence) -> [Float] {
    if case .features(let v, _) = s.values { return v }
    return []
}

func tokens(_ s: InputSequence) -> [Int32] {
    if case .tokens(let t) = s.values { return t }
    return []
}

/// `.npy` bytes with a hand-written header dict (padded like numpy) followed by `data`.
func npyBytes(dict: String, data: [UInt8] = [], major: UInt8 = 1, minor: UInt8 = 0) -> [UInt8] {
    var text = dict
    let prefix = major == 1 ? 10 : 12
    text += String(repeating: " ", count: (64 - (prefix + text.utf8.count + 1) % 64) % 64) + "\n"
    var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [major, minor]
    let n = text.utf8.count
    out += major == 1 ? [UInt8(n & 0xFF), UInt8(n >> 8)] : [UInt8(n & 0xFF), UInt8((n >> 8) & 0xFF), 0, 0]
    return out + Array(text.utf8) + data
}

/// Little-endian bytes of floats.
func floatBytes(_ v: [Float]) -> [UInt8] { v.withUnsafeBytes { Array($0) } }

/// Current resident set size in bytes, from /proc/self/status.
func residentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
        return kb * 1024
    }
    return 0
}
