import Foundation
import ZIPFoundation

// A minimal .npy/.npz reader for the fixtures only (GateScopeInput is not a dependency of this
// test target). Little-endian f4/f8/i4/i8/b1, C order.

/// A numpy array read for tests: every element as Double.
struct TestArray {
    var dtype: String
    var shape: [Int]
    var values: [Double]
}

enum TestNPYError: Error, CustomStringConvertible {
    case bad(String)
    var description: String { if case let .bad(m) = self { return m }; return "" }
}

enum TestNPY {
    static func read(path: String) throws -> TestArray {
        try parse(try Data(contentsOf: URL(fileURLWithPath: path)), name: path)
    }

    static func parse(_ data: Data, name: String) throws -> TestArray {
        let bytes = [UInt8](data)
        guard bytes.count > 10, bytes[0] == 0x93, Array(bytes[1...5]) == Array("NUMPY".utf8) else {
            throw TestNPYError.bad("\(name): not a .npy file")
        }
        let major = bytes[6]
        let headerLen: Int, start: Int
        if major == 1 {
            headerLen = Int(bytes[8]) | Int(bytes[9]) << 8
            start = 10
        } else {
            headerLen = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            start = 12
        }
        let header = String(decoding: bytes[start..<(start + headerLen)], as: UTF8.self)
        func field(_ key: String) -> String? {
            guard let r = header.range(of: "'\(key)':") else { return nil }
            return String(header[r.upperBound...]).trimmingCharacters(in: .whitespaces)
        }
        guard let descrField = field("descr"), let shapeField = field("shape") else {
            throw TestNPYError.bad("\(name): bad header \(header)")
        }
        let descr = String(descrField.dropFirst().prefix { $0 != "'" })
        if field("fortran_order")?.hasPrefix("True") == true { throw TestNPYError.bad("\(name): Fortran order") }
        let shapeText = shapeField.dropFirst().prefix { $0 != ")" }
        let shape = shapeText.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let count = shape.reduce(1, *)
        let body = Array(bytes[(start + headerLen)...])
        func load<T>(_ type: T.Type, _ convert: (T) -> Double) throws -> [Double] {
            let size = MemoryLayout<T>.size
            guard body.count >= count * size else { throw TestNPYError.bad("\(name): truncated data") }
            return body.withUnsafeBytes { raw in
                (0..<count).map { convert(raw.loadUnaligned(fromByteOffset: $0 * size, as: T.self)) }
            }
        }
        let values: [Double]
        switch descr {
        case "<f4": values = try load(Float.self) { Double($0) }
        case "<f8": values = try load(Double.self) { $0 }
        case "<i4": values = try load(Int32.self) { Double($0) }
        case "<i8": values = try load(Int64.self) { Double($0) }
        case "|b1": values = try load(UInt8.self) { $0 == 0 ? 0 : 1 }
        default: throw TestNPYError.bad("\(name): dtype \(descr) not supported by the test reader")
        }
        return TestArray(dtype: descr, shape: shape, values: values)
    }
}

enum TestNPZ {
    static func read(path: String) throws -> [String: TestArray] {
        let archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read)
        var out: [String: TestArray] = [:]
        for entry in archive {
            var data = Data()
            _ = try archive.extract(entry) { data.append($0) }
            var key = entry.path
            if key.hasSuffix(".npy") { key.removeLast(4) }
            out[key] = try TestNPY.parse(data, name: "\(path)/\(entry.path)")
        }
        return out
    }
}

enum TestZip {
    /// One entry of a zip file as UTF-8 text.
    static func entry(_ path: String, _ name: String) throws -> String {
        let archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read)
        guard let e = archive[name] else { throw TestNPYError.bad("\(path): no entry \(name)") }
        var data = Data()
        _ = try archive.extract(e) { data.append($0) }
        return String(decoding: data, as: UTF8.self)
    }
}
