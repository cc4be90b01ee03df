import CHDF5
import Foundation

/// Serializes every libhdf5 call: the library is only thread-safe in some builds, and Swift
/// Testing (or a caller) may load models from several threads at once.
enum HDF5Lib {
    static let lock = NSRecursiveLock()

    static func call<T>(_ file: String, _ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        // Per-thread setting in thread-safe builds, so it is renewed on whichever thread calls.
        _ = shim_silence_errors()
        return try body()
    }

    /// The HDF5 file signature at offset 0 (a user block can move it to 512, 1024, ...).
    static let signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]
}

/// A read-only HDF5 file (on disk or in memory); every failure throws `KerasError` naming the file and path.
public final class HDF5File {
    /// The name used in error messages.
    public let name: String
    private let fid: hid_t
    /// The file's bytes (mapped) and its checked global heaps, for checking string attributes
    /// before libhdf5 reads them (see `HDF5Precheck`).
    private var image = Data()
    private var heaps: HDF5Precheck.Heaps?
    /// The file's size (unbounded if it could not be mapped): no dataset can need more bytes
    /// than this, uncompressed.
    private var fileSize: Int { image.isEmpty ? Int.max : image.count }
    /// Paths whose object headers are already checked.
    private var checkedHeaders = Set<String>()

    /// Opens the file at `path` read-only.
    public init(path: String, name: String? = nil) throws {
        let label = name ?? path
        self.name = label
        // Mapped, not read: only the pages the checks touch are loaded.
        if let mapped = try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) {
            heaps = try mapped.withUnsafeBytes { try HDF5Precheck.check($0, name: label) }
            image = mapped
        }
        let id: hid_t = HDF5Lib.call(label) { H5Fopen(path, shim_acc_rdonly(), shim_p_default()) }
        guard id >= 0 else {
            throw KerasError.corrupt(file: label, reason: "libhdf5 cannot open it as an HDF5 file")
        }
        fid = id
    }

    /// Opens an HDF5 image held in memory (the core driver), e.g. `model.weights.h5` from a `.keras` zip.
    public init(bytes: Data, name: String) throws {
        self.name = name
        heaps = try bytes.withUnsafeBytes { try HDF5Precheck.check($0, name: name) }
        image = bytes
        let id: hid_t = HDF5Lib.call(name) {
            guard bytes.starts(with: HDF5Lib.signature) else { return -1 }
            let fapl = H5Pcreate(shim_p_file_access())
            guard fapl >= 0 else { return -1 }
            defer { H5Pclose(fapl) }
            guard H5Pset_fapl_core(fapl, 1 << 16, false) >= 0 else { return -1 }
            // H5Pset_file_image copies the buffer, so `bytes` need not outlive this call.
            let ok = bytes.withUnsafeBytes { raw -> Bool in
                H5Pset_file_image(fapl, UnsafeMutableRawPointer(mutating: raw.baseAddress), raw.count) >= 0
            }
            guard ok else { return -1 }
            return H5Fopen(name, shim_acc_rdonly(), fapl)
        }
        guard id >= 0 else {
            throw KerasError.corrupt(file: name, reason: "libhdf5 cannot open it as an HDF5 file")
        }
        fid = id
    }

    deinit {
        HDF5Lib.call(name) { _ = H5Fclose(fid) }
    }

    // MARK: structure

    /// True if a group or dataset exists at `path` (absolute or relative to the root).
    public func exists(_ path: String) -> Bool {
        HDF5Lib.call(name) {
            var prefix = ""
            for part in path.split(separator: "/") {
                prefix += (prefix.isEmpty ? "" : "/") + part
                if H5Lexists(fid, prefix, shim_p_default()) <= 0 { return false }
            }
            return true
        }
    }

    /// True if `path` is a group.
    public func isGroup(_ path: String) -> Bool {
        guard exists(path) else { return false }
        return HDF5Lib.call(name) {
            let oid = H5Oopen(fid, path.isEmpty ? "/" : path, shim_p_default())
            guard oid >= 0 else { return false }
            defer { H5Oclose(oid) }
            return H5Iget_type(oid) == H5I_GROUP
        }
    }

    /// Names of the links in group `path`, in name order.
    public func members(_ path: String) throws -> [String] {
        guard exists(path) else { throw KerasError.missing(file: name, path: path, what: "group") }
        return try HDF5Lib.call(name) {
            let gid = H5Gopen2(fid, path.isEmpty ? "/" : path, shim_p_default())
            guard gid >= 0 else { throw KerasError.unreadableObject(file: name, path: path, reason: "not a group") }
            defer { H5Gclose(gid) }
            var info = H5G_info_t()
            guard H5Gget_info(gid, &info) >= 0 else {
                throw KerasError.unreadableObject(file: name, path: path, reason: "cannot list the group")
            }
            var names: [String] = []
            for k in 0..<info.nlinks {
                let size = H5Lget_name_by_idx(gid, ".", H5_INDEX_NAME, H5_ITER_INC, k, nil, 0, shim_p_default())
                guard size >= 0 else {
                    throw KerasError.unreadableObject(file: name, path: path, reason: "cannot read member \(k)")
                }
                var buf = [CChar](repeating: 0, count: Int(size) + 1)
                _ = H5Lget_name_by_idx(gid, ".", H5_INDEX_NAME, H5_ITER_INC, k, &buf, buf.count, shim_p_default())
                names.append(String(cString: buf))
            }
            return names
        }
    }

    // MARK: attributes

    /// True if the object at `path` exists and has attribute `attribute`; throws if its object
    /// header is damaged (see `checkHeader`).
    public func hasAttribute(_ path: String, _ attribute: String) throws -> Bool {
        guard path.isEmpty || path == "/" || exists(path) else { return false }
        try checkHeader(path)
        return HDF5Lib.call(name) { H5Aexists_by_name(fid, path.isEmpty ? "/" : path, attribute, shim_p_default()) > 0 }
    }

    /// Checks the object header of `path`, its attributes and their string references, once,
    /// before libhdf5 decodes any of them; see `HDF5Precheck`.
    private func checkHeader(_ path: String) throws {
        guard let heaps, !checkedHeaders.contains(path) else { return }
        var info = H5O_info_t()
        let found = HDF5Lib.call(name) { H5Oget_info_by_name2(fid, path.isEmpty ? "/" : path, &info, H5O_INFO_BASIC, shim_p_default()) }
        guard found >= 0 else {
            throw KerasError.unreadableObject(file: name, path: path.isEmpty ? "/" : path, reason: "cannot locate its object header")
        }
        try image.withUnsafeBytes {
            try HDF5Precheck.checkObjectHeader($0, heaps: heaps, header: UInt64(info.addr), name: name, path: path.isEmpty ? "/" : path)
        }
        checkedHeaders.insert(path)
    }

    /// A scalar string attribute (variable- or fixed-length).
    public func stringAttribute(_ path: String, _ attribute: String) throws -> String {
        let values = try stringArrayAttribute(path, attribute)
        guard values.count == 1 else {
            throw KerasError.unreadableObject(file: name, path: attributePath(path, attribute),
                                              reason: "expected one string, found \(values.count)")
        }
        return values[0]
    }

    /// A string-array attribute; an empty array of any type (Keras writes an empty float64 array
    /// as `weight_names` of a layer without weights) gives `[]`.
    public func stringArrayAttribute(_ path: String, _ attribute: String) throws -> [String] {
        let where_ = attributePath(path, attribute)
        guard try hasAttribute(path, attribute) else { throw KerasError.missing(file: name, path: where_, what: "") }
        return try HDF5Lib.call(name) {
            let aid = H5Aopen_by_name(fid, path.isEmpty ? "/" : path, attribute, shim_p_default(), shim_p_default())
            guard aid >= 0 else { throw KerasError.unreadableObject(file: name, path: where_, reason: "cannot open attribute") }
            defer { H5Aclose(aid) }
            let tid = H5Aget_type(aid)
            guard tid >= 0 else { throw KerasError.unreadableObject(file: name, path: where_, reason: "cannot read its type") }
            defer { H5Tclose(tid) }
            let sid = H5Aget_space(aid)
            guard sid >= 0 else { throw KerasError.unreadableObject(file: name, path: where_, reason: "cannot read its shape") }
            defer { H5Sclose(sid) }
            let count = Int(H5Sget_simple_extent_npoints(sid))
            guard count >= 0 else { throw KerasError.unreadableObject(file: name, path: where_, reason: "cannot read its shape") }
            if count == 0 { return [] }
            // Every string's bytes (fixed) or 16-byte reference (variable) are in the file.
            let perString = H5Tis_variable_str(tid) > 0 ? 16 : max(Int(H5Tget_size(tid)), 1)
            guard count <= fileSize / perString else {
                throw KerasError.unreadableObject(file: name, path: where_, reason: "it declares \(count) strings, more than the \(fileSize)-byte file holds (corrupt file?)")
            }
            guard H5Tget_class(tid) == H5T_STRING else {
                throw KerasError.unreadableObject(file: name, path: where_, reason: "expected strings, found \(Self.className(H5Tget_class(tid)))")
            }
            let cset = H5Tget_cset(tid)
            if H5Tis_variable_str(tid) > 0 {
                let mem = H5Tcopy(shim_c_s1())
                defer { H5Tclose(mem) }
                H5Tset_size(mem, shim_variable())
                H5Tset_cset(mem, cset)
                var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
                guard H5Aread(aid, mem, &pointers) >= 0 else {
                    throw KerasError.unreadableObject(file: name, path: where_, reason: "cannot read the strings")
                }
                defer { for p in pointers where p != nil { H5free_memory(p) } }
                return pointers.map { $0.map { String(cString: $0) } ?? "" }
            }
            let size = H5Tget_size(tid)
            guard size > 0 else { throw KerasError.unreadableObject(file: name, path: where_, reason: "zero-size strings") }
            let mem = H5Tcopy(shim_c_s1())
            defer { H5Tclose(mem) }
            H5Tset_size(mem, size)
            H5Tset_cset(mem, cset)
            H5Tset_strpad(mem, H5T_STR_NULLPAD)
            var bytes = [UInt8](repeating: 0, count: size * count)
            guard H5Aread(aid, mem, &bytes) >= 0 else {
                throw KerasError.unreadableObject(file: name, path: where_, reason: "cannot read the strings")
            }
            return (0..<count).map { k in
                var item = bytes[(k * size)..<((k + 1) * size)]
                while let last = item.last, last == 0 || last == 0x20 { item = item.dropLast() }
                return String(decoding: item, as: UTF8.self)
            }
        }
    }

    // MARK: datasets

    /// A float dataset (any float or integer type on disk) converted to Float32, row-major.
    public func floatDataset(_ path: String) throws -> (shape: [Int], values: [Float]) {
        guard exists(path) else { throw KerasError.missing(file: name, path: path, what: "dataset") }
        return try HDF5Lib.call(name) {
            let did = H5Dopen2(fid, path, shim_p_default())
            guard did >= 0 else { throw KerasError.unreadableObject(file: name, path: path, reason: "not a dataset") }
            defer { H5Dclose(did) }
            let tid = H5Dget_type(did)
            guard tid >= 0 else { throw KerasError.unreadableObject(file: name, path: path, reason: "cannot read its type") }
            defer { H5Tclose(tid) }
            let cls = H5Tget_class(tid)
            guard cls == H5T_FLOAT || cls == H5T_INTEGER else {
                throw KerasError.unreadableObject(file: name, path: path, reason: "expected numbers, found \(Self.className(cls))")
            }
            let sid = H5Dget_space(did)
            guard sid >= 0 else { throw KerasError.unreadableObject(file: name, path: path, reason: "cannot read its shape") }
            defer { H5Sclose(sid) }
            let rank = Int(H5Sget_simple_extent_ndims(sid))
            guard rank >= 0 else { throw KerasError.unreadableObject(file: name, path: path, reason: "cannot read its shape") }
            var dims = [hsize_t](repeating: 0, count: rank)
            if rank > 0 { H5Sget_simple_extent_dims(sid, &dims, nil) }
            let shape = dims.map { Int(clamping: $0) }
            // A damaged dataspace can claim absurd sizes; refuse before allocating.
            var total = 1
            for d in shape {
                let (p, overflow) = total.multipliedReportingOverflow(by: d)
                guard !overflow, p <= 1 << 31 else {
                    throw KerasError.unreadableObject(file: name, path: path, reason: "implausible shape \(shape) (corrupt file?)")
                }
                total = p
            }
            // And no larger than the file could hold: uncompressed data is in the file byte for
            // byte, compressed data expands at most 1032:1 (deflate's limit).
            let dcpl = H5Dget_create_plist(did)
            let filters = dcpl >= 0 ? Int(H5Pget_nfilters(dcpl)) : 0
            let layout = dcpl >= 0 ? H5Pget_layout(dcpl) : H5D_LAYOUT_ERROR
            if dcpl >= 0 { H5Pclose(dcpl) }
            let elementSize = max(Int(H5Tget_size(tid)), 1)
            let (bytesNeeded, overflow) = total.multipliedReportingOverflow(by: elementSize)
            let limit = filters > 0 ? fileSize.multipliedReportingOverflow(by: 1032).partialValue : fileSize
            guard !overflow, bytesNeeded <= limit else {
                throw KerasError.unreadableObject(file: name, path: path, reason: "shape \(shape) needs \(bytesNeeded) bytes, more than the \(fileSize)-byte file holds (corrupt file?)")
            }
            // libhdf5 1.10 copies compact data by the dataset's size from the buffer the layout
            // message declares, whatever that buffer's size: a short or empty one is read past
            // (a crash found by fuzzing; libhdf5 1.14 refuses such files when it opens them).
            let stored = Int(clamping: H5Dget_storage_size(did))
            if layout == H5D_COMPACT, stored != bytesNeeded {
                throw KerasError.unreadableObject(file: name, path: path, reason: "its compact data holds \(stored) bytes, its shape \(shape) needs \(bytesNeeded) (corrupt file?)")
            }
            if layout == H5D_CONTIGUOUS, filters == 0, stored != 0, stored < bytesNeeded {
                throw KerasError.unreadableObject(file: name, path: path, reason: "its data holds \(stored) bytes, its shape \(shape) needs \(bytesNeeded) (corrupt file?)")
            }
            var values = [Float](repeating: 0, count: shape.reduce(1, *))
            if !values.isEmpty {
                let status = values.withUnsafeMutableBytes { H5Dread(did, shim_native_float(), shim_s_all(), shim_s_all(), shim_p_default(), $0.baseAddress) }
                guard status >= 0 else {
                    throw KerasError.unreadableObject(file: name, path: path, reason: "libhdf5 cannot read the data (truncated file?)")
                }
            }
            return (shape, values)
        }
    }

    private func attributePath(_ path: String, _ attribute: String) -> String {
        "attribute '\(attribute)' of \(path.isEmpty ? "/" : path)"
    }

    private static func className(_ cls: H5T_class_t) -> String {
        switch cls {
        case H5T_INTEGER: return "integers"
        case H5T_FLOAT: return "floats"
        case H5T_STRING: return "strings"
        case H5T_COMPOUND: return "a compound type"
        case H5T_ENUM: return "an enum"
        case H5T_VLEN: return "variable-length data"
        case H5T_ARRAY: return "an array type"
        default: return "type class \(cls.rawValue)"
        }
    }
}
