import Foundation
import ZIPFoundation

/// Reading and writing numpy `.npz` archives (a zip of `.npy` files, stored or deflated).
public enum NPZ {
    /// Reads every `*.npy` entry of an `.npz` file into memory, keyed by name without `.npy`.
    public static func read(path: String) throws -> [String: NPYArray] {
        let archive = try openArchive(path: path)
        return try readAll(archive, name: path)
    }

    /// Parses `.npz` bytes; `name` names the source in errors.
    public static func read(data: Data, name: String? = nil) throws -> [String: NPYArray] {
        if let problem = ZipPrecheck.problem(data) { throw InputError(file: name, "not a valid .npz (zip) archive: \(problem)") }
        let archive: Archive
        do { archive = try Archive(data: data, accessMode: .read) } catch {
            throw InputError(file: name, "not a valid .npz (zip) archive: \(error)")
        }
        return try readAll(archive, name: name)
    }

    /// Writes arrays as an `.npz` (deflated when `compressed`, like `np.savez_compressed`).
    public static func write(_ arrays: [String: NPYArray], to path: String, compressed: Bool = false) throws {
        let url = URL(fileURLWithPath: path)
        try? FileManager.default.removeItem(at: url)
        do {
            let archive = try Archive(url: url, accessMode: .create)
            for name in arrays.keys.sorted() {
                let bytes = NPY.encode(arrays[name]!)
                try archive.addEntry(with: name + ".npy", type: .file, uncompressedSize: Int64(bytes.count),
                                     compressionMethod: compressed ? .deflate : .none) { position, size in
                    bytes.subdata(in: Int(position)..<(Int(position) + size))
                }
            }
        } catch {
            throw InputError(file: path, "cannot write .npz: \(error)")
        }
    }

    /// The array names of an `.npz` (entry names without `.npy`), in archive order.
    public static func arrayNames(path: String) throws -> [String] {
        try openArchive(path: path).compactMap(entryName)
    }

    static func openArchive(path: String) throws -> Archive {
        guard FileManager.default.fileExists(atPath: path) else { throw InputError(file: path, "no such file") }
        if let problem = ZipPrecheck.problem(path: path) { throw InputError(file: path, "not a valid .npz (zip) archive: \(problem)") }
        do { return try Archive(url: URL(fileURLWithPath: path), accessMode: .read) } catch {
            throw InputError(file: path, "not a valid .npz (zip) archive: \(error)")
        }
    }

    static func entryName(_ entry: Entry) -> String? {
        guard entry.type == .file, entry.path.hasSuffix(".npy") else { return nil }
        return String(entry.path.dropLast(4))
    }

    private static func readAll(_ archive: Archive, name: String?) throws -> [String: NPYArray] {
        var result: [String: NPYArray] = [:]
        for entry in archive {
            guard let key = entryName(entry) else { continue }
            var bytes = Data()
            do {
                _ = try archive.extract(entry) { bytes.append($0) }
            } catch {
                throw InputError(file: name, "cannot extract \(entry.path): \(error)")
            }
            result[key] = try NPY.read(data: bytes, name: "\(name ?? "npz") (\(entry.path))")
        }
        return result
    }
}

/// `.npy` entries of an `.npz` extracted into a private temporary directory and opened.
///
/// Streaming from a zip entry needs random access, so the recorder's `.npz` reader extracts
/// the arrays it needs (`x`, `lengths`, `ids`) to `$TMPDIR/gatescope-npz-*`, opens them as
/// `NPYFile`s and unlinks them at once: this needs free disk space for the uncompressed arrays
/// while the reader lives, but no memory.
final class ExtractedNPZ {
    let directory: URL
    /// Opened files by array name.
    private(set) var files: [String: NPYFile] = [:]

    init(path: String, names: [String]) throws {
        let archive = try NPZ.openArchive(path: path)
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("gatescope-npz-\(getpid())-\(UUID().uuidString)")
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw InputError(file: path, "cannot create a temporary directory: \(describeIOError(error))")
        }
        do {
            for entry in archive {
                guard let key = NPZ.entryName(entry), names.contains(key) else { continue }
                let target = directory.appendingPathComponent("\(key).npy")
                do {
                    _ = try archive.extract(entry, to: target, bufferSize: 1 << 20)
                } catch {
                    throw InputError(file: path, "cannot extract \(entry.path): \(error)")
                }
                files[key] = try NPYFile(path: target.path, name: "\(path) (\(entry.path))")
            }
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
        // The open descriptors keep the data readable; unlinking now means nothing is left
        // behind even if the process is killed.
        try? FileManager.default.removeItem(at: directory)
    }
}
