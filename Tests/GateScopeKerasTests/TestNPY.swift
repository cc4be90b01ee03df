import Foundation
import GateScopeInput
import ZIPFoundation

// Fixture arrays through GateScopeInput's .npy/.npz readers, every element as Double.

/// A numpy array read for tests: every element as Double.
struct TestArray {
    var dtype: String
    var shape: [Int]
    var values: [Double]

    init(_ array: NPYArray) throws {
        dtype = array.dtype.descr
        shape = array.shape
        values = try array.doubles()
    }
}

enum TestNPY {
    static func read(path: String) throws -> TestArray { try TestArray(NPY.read(path: path)) }
}

enum TestNPZ {
    static func read(path: String) throws -> [String: TestArray] { try NPZ.read(path: path).mapValues(TestArray.init) }
}

enum TestZip {
    struct Missing: Error, CustomStringConvertible { let description: String }

    /// One entry of a zip file as UTF-8 text.
    static func entry(_ path: String, _ name: String) throws -> String {
        let archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read)
        guard let e = archive[name] else { throw Missing(description: "\(path): no entry \(name)") }
        var data = Data()
        _ = try archive.extract(e) { data.append($0) }
        return String(decoding: data, as: UTF8.self)
    }
}
