import Foundation
import GateScopeInput
import ZIPFoundation

/// A weight tensor of a state dict, converted to Float32.
struct StateTensor {
    var shape: [Int]
    var values: [Float]
    var dtype: String
}

/// Errors reading PyTorch files: the file and what is wrong, in one line.
public struct TorchError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var message: String
    public var description: String { InputError.oneLine("\(file): \(message)") }
}

/// Reads the tensors of a `torch.save(state_dict)` zip or a `.safetensors` file, without running
/// anything from the file.
enum StateDictFiles {
    /// Tensors by key, and a description of the container.
    static func read(path: String) throws -> (tensors: [String: StateTensor], format: String, producer: String) {
        guard let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil else {
            throw TorchError(file: path, message: "no such file")
        }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw TorchError(file: path, message: "cannot open file") }
        let head = [UInt8](handle.readData(ofLength: 8))
        try? handle.close()
        if URL(fileURLWithPath: path).pathExtension.lowercased() == "safetensors" {
            return (try safetensors(path: path, size: size), "safetensors", "safetensors")
        }
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) { return try torchZip(path: path, size: size) }
        if head.first == 0x80 {
            throw TorchError(file: path, message: "legacy (non-zip) torch.save format is not supported; re-save it with torch.save(model.state_dict(), path) from torch 1.6 or later")
        }
        throw TorchError(file: path, message: "not a torch.save zip or a .safetensors file")
    }

    static func itemSize(_ dtype: String) -> Int? {
        ["F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1][dtype]
    }

    /// Little-endian elements of `dtype` as Float32.
    static func floats(_ raw: UnsafeRawBufferPointer, dtype: String, count: Int, from start: Int = 0, stride: Int? = nil) -> [Float] {
        let size = itemSize(dtype)!
        return (0..<count).map { k in
            let at = (start + k) * size
            switch dtype {
            case "F32": return Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
            case "F16": return Float(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt16.self))))
            case "BF16": return Float(bitPattern: UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt16.self))) << 16)
            case "F64": return Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self))))
            case "I64": return Float(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: Int64.self)))
            case "I32": return Float(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: Int32.self)))
            case "I16": return Float(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: Int16.self)))
            case "I8": return Float(raw.load(fromByteOffset: at, as: Int8.self))
            default: return Float(raw.load(fromByteOffset: at, as: UInt8.self))
            }
        }
    }

    /// The element count of `shape`, nil when a size is negative or any partial product overflows
    /// (a 0 after huge sizes must not hide an overflow before it).
    static func elementCount(_ shape: [Int]) -> Int? {
        var count = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (next, overflow) = count.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            count = next
        }
        return count
    }

    // MARK: safetensors

    static func safetensors(path: String, size: Int) throws -> [String: StateTensor] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw TorchError(file: path, message: "cannot read: \(error.localizedDescription)")
        }
        guard data.count >= 8 else { throw TorchError(file: path, message: "too short for a .safetensors file") }
        // The declared length is a UInt64: bounded by the file before it becomes an Int.
        let declared = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard declared > 0, declared <= UInt64(data.count - 8), declared <= 100 << 20 else {
            throw TorchError(file: path, message: "header length \(declared) does not fit the file's \(data.count) bytes")
        }
        let n = Int(declared)
        guard let header = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as? [String: Any] else {
            throw TorchError(file: path, message: "the header is not a JSON object")
        }
        var out: [String: StateTensor] = [:]
        let base = 8 + n
        for (key, value) in header where key != "__metadata__" {
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String, let item = itemSize(dtype),
                  let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2 else {
                throw TorchError(file: path, message: "tensor '\(key)': bad header entry")
            }
            guard let count = elementCount(shape), count <= data.count else {
                throw TorchError(file: path, message: "tensor '\(key)': shape \(shape) is larger than the file")
            }
            guard offsets[0] >= 0, offsets[1] >= offsets[0], offsets[1] <= data.count - base, offsets[1] - offsets[0] == count * item else {
                throw TorchError(file: path, message: "tensor '\(key)': data_offsets \(offsets) do not hold \(shape) \(dtype) in the file")
            }
            let values = data.withUnsafeBytes { raw in
                floats(UnsafeRawBufferPointer(rebasing: raw[(base + offsets[0])..<(base + offsets[1])]), dtype: dtype, count: count)
            }
            out[key] = StateTensor(shape: shape, values: values, dtype: dtype)
        }
        return out
    }

    // MARK: torch zip

    static let storageDType: [String: String] = [
        "torch.FloatStorage": "F32", "torch.HalfStorage": "F16", "torch.BFloat16Storage": "BF16", "torch.DoubleStorage": "F64",
        "torch.LongStorage": "I64", "torch.IntStorage": "I32", "torch.ShortStorage": "I16", "torch.CharStorage": "I8",
        "torch.ByteStorage": "U8", "torch.BoolStorage": "BOOL",
    ]

    static func torchZip(path: String, size: Int) throws -> (tensors: [String: StateTensor], format: String, producer: String) {
        if let problem = ZipPrecheck.problem(path: path) { throw TorchError(file: path, message: "not a readable zip: \(problem)") }
        let archive: Archive
        do { archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read) } catch {
            throw TorchError(file: path, message: "not a readable zip: \(error)")
        }
        func extract(_ entry: Entry, limit: Int) throws -> [UInt8] {
            // Declared sizes are bounded by the file's real size before anything is read.
            guard entry.uncompressedSize <= UInt64(limit) else {
                throw TorchError(file: path, message: "zip entry \(entry.path) declares \(entry.uncompressedSize) bytes, more than the file can hold")
            }
            var out: [UInt8] = []
            out.reserveCapacity(Int(entry.uncompressedSize))
            do { _ = try archive.extract(entry, skipCRC32: false) { out += $0 } } catch {
                throw TorchError(file: path, message: "cannot read zip entry \(entry.path): \(error)")
            }
            guard out.count <= limit else { throw TorchError(file: path, message: "zip entry \(entry.path) is larger than declared") }
            return out
        }
        guard let pickleEntry = archive.first(where: { $0.path.hasSuffix("/data.pkl") || $0.path == "data.pkl" }) else {
            throw TorchError(file: path, message: "a zip without data.pkl is not a torch.save file")
        }
        let prefix = String(pickleEntry.path.dropLast("data.pkl".count))
        let limit = size * 4 + (1 << 20)
        if let order = archive[prefix + "byteorder"], String(decoding: try extract(order, limit: 64), as: UTF8.self) != "little" {
            throw TorchError(file: path, message: "big-endian torch files are not supported")
        }
        let version = archive[prefix + "version"].flatMap { try? extract($0, limit: 64) }.map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) }
        var unpickler = RestrictedUnpickler(data: try extract(pickleEntry, limit: min(limit, 256 << 20)), file: path)
        let root: PickleValue
        do { root = try unpickler.load() } catch let e as RestrictedUnpickler.Refused { throw TorchError(file: path, message: String(e.description.dropFirst(path.count + 2))) }
        guard case let .dict(items) = root else { throw TorchError(file: path, message: "the pickle is not a dict of tensors (a state dict)") }
        var storages: [String: [UInt8]] = [:]
        var out: [String: StateTensor] = [:]
        for (k, v) in items {
            guard case let .string(key) = k else { continue }
            guard case let .tensor(t) = v else { continue }  // e.g. num_batches_tracked ints, metadata
            guard let dtype = storageDType[t.storageType], let item = itemSize(dtype) else {
                throw TorchError(file: path, message: "tensor '\(key)': storage \(t.storageType) is not supported")
            }
            if storages[t.key] == nil {
                guard let entry = archive[prefix + "data/" + t.key] else {
                    throw TorchError(file: path, message: "tensor '\(key)': storage record data/\(t.key) is missing")
                }
                storages[t.key] = try extract(entry, limit: limit)
            }
            let raw = storages[t.key]!
            guard raw.count == t.storageCount * item else {
                throw TorchError(file: path, message: "tensor '\(key)': storage data/\(t.key) has \(raw.count) bytes for \(t.storageCount) \(dtype) values")
            }
            guard t.size.count == t.stride.count else { throw TorchError(file: path, message: "tensor '\(key)': size and stride differ in rank") }
            guard let count = elementCount(t.size), count <= t.storageCount else {
                throw TorchError(file: path, message: "tensor '\(key)': \(t.size) is larger than its storage")
            }
            // Bounded first, so that adding the strided index to it cannot overflow.
            guard t.offset >= 0, t.offset <= t.storageCount else {
                throw TorchError(file: path, message: "tensor '\(key)': offset \(t.offset) is outside its storage of \(t.storageCount)")
            }
            // Elements by stride (state dicts are contiguous; views of one storage also work).
            var index = [Int](repeating: 0, count: t.size.count)
            var offsets: [Int] = []
            offsets.reserveCapacity(count)
            for _ in 0..<count {
                var at = t.offset
                for d in 0..<index.count { at += index[d] * t.stride[d] }
                guard at >= 0, at < t.storageCount else { throw TorchError(file: path, message: "tensor '\(key)': element outside its storage") }
                offsets.append(at)
                var d = index.count - 1
                while d >= 0 { index[d] += 1; if index[d] < t.size[d] { break }; index[d] = 0; d -= 1 }
            }
            let values = raw.withUnsafeBytes { buffer in offsets.map { floats(buffer, dtype: dtype, count: 1, from: $0)[0] } }
            out[key] = StateTensor(shape: t.size, values: values, dtype: dtype)
        }
        return (out, "pytorch", "torch.save zip" + (version.map { " (format \($0))" } ?? ""))
    }
}
