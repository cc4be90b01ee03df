import Foundation

/// An element type of a `.npy` array (little-endian only).
public enum NPYDType: Equatable, Hashable, Sendable, CustomStringConvertible {
    case bool, int8, uint8, int16, uint16, int32, uint32, int64, float32, float64
    /// numpy `<U n`: fixed-width UTF-32LE strings of `length` code points, NUL-padded.
    case unicode(length: Int)
    /// numpy `|S n`: fixed-width byte strings (read as UTF-8), NUL-padded.
    case bytes(length: Int)

    /// Bytes per element.
    public var itemSize: Int {
        switch self {
        case .bool, .int8, .uint8: return 1
        case .int16, .uint16: return 2
        case .int32, .uint32, .float32: return 4
        case .int64, .float64: return 8
        case .unicode(let n): return 4 * n
        case .bytes(let n): return n
        }
    }

    /// The numpy `descr` string, e.g. `<f4`.
    public var descr: String {
        switch self {
        case .bool: return "|b1"
        case .int8: return "|i1"
        case .uint8: return "|u1"
        case .int16: return "<i2"
        case .uint16: return "<u2"
        case .int32: return "<i4"
        case .uint32: return "<u4"
        case .int64: return "<i8"
        case .float32: return "<f4"
        case .float64: return "<f8"
        case .unicode(let n): return "<U\(n)"
        case .bytes(let n): return "|S\(n)"
        }
    }

    /// numpy's name, e.g. `float32`.
    public var description: String {
        switch self {
        case .bool: return "bool"
        case .int8: return "int8"
        case .uint8: return "uint8"
        case .int16: return "int16"
        case .uint16: return "uint16"
        case .int32: return "int32"
        case .uint32: return "uint32"
        case .int64: return "int64"
        case .float32: return "float32"
        case .float64: return "float64"
        case .unicode(let n): return "unicode<\(n)>"
        case .bytes(let n): return "bytes<\(n)>"
        }
    }

    /// float32 or float64.
    public var isFloat: Bool { self == .float32 || self == .float64 }

    /// A signed or unsigned integer type (not bool).
    public var isInteger: Bool {
        switch self {
        case .int8, .uint8, .int16, .uint16, .int32, .uint32, .int64: return true
        default: return false
        }
    }

    /// Numbers or booleans (not strings).
    public var isNumeric: Bool { isFloat || isInteger || self == .bool }

    /// Parses a numpy `descr`; the error text says what is wrong with it.
    static func parse(descr: String) -> Result<NPYDType, InputError> {
        var body = Substring(descr)
        var order: Character = "|"
        if let first = body.first, "<>|=".contains(first) {
            order = first
            body = body.dropFirst()
        }
        if body == "O" || body.hasPrefix("O") {
            return .failure(InputError("object arrays (dtype \(InputError.excerpt(descr))) are not supported; save plain numbers or strings (e.g. x.astype('float32'), ids.astype(str))"))
        }
        guard let kind = body.first, let size = Int(body.dropFirst()), size >= 0 else {
            return .failure(InputError("unsupported dtype \(InputError.excerpt(descr))"))
        }
        let perByte = kind == "U" ? 4 : 1
        if order == ">" && size * perByte > 1 {
            return .failure(InputError("big-endian dtype \(InputError.excerpt(descr)) is not supported; save little-endian data (e.g. x.astype('<\(InputError.clip(String(body), limit: 8))'))"))
        }
        switch (kind, size) {
        case ("b", 1): return .success(.bool)
        case ("i", 1): return .success(.int8)
        case ("u", 1): return .success(.uint8)
        case ("i", 2): return .success(.int16)
        case ("u", 2): return .success(.uint16)
        case ("i", 4): return .success(.int32)
        case ("u", 4): return .success(.uint32)
        case ("i", 8): return .success(.int64)
        case ("f", 4): return .success(.float32)
        case ("f", 8): return .success(.float64)
        case ("U", _) where size > 0: return .success(.unicode(length: size))
        case ("S", _) where size > 0: return .success(.bytes(length: size))
        default:
            return .failure(InputError("unsupported dtype \(InputError.excerpt(descr)) (supported: <f4 <f8 <i2 <i4 <i8 <u2 <u4 |i1 |u1 |b1 <U n |S n)"))
        }
    }
}

/// The parsed header of a `.npy` file.
public struct NPYHeader: Equatable, Sendable {
    /// Format version, e.g. (1, 0).
    public var majorVersion: Int
    public var minorVersion: Int
    public var dtype: NPYDType
    public var shape: [Int]
    /// Byte offset of the first element.
    public var dataOffset: Int

    /// Number of elements (product of the shape; 1 for a scalar).
    public var count: Int { shape.reduce(1, *) }
    /// Bytes of element data.
    public var byteCount: Int { count * dtype.itemSize }

    /// The shape as Python prints it, e.g. `(2, 3)`.
    public var shapeText: String { NPY.shapeText(shape) }
}

/// A whole `.npy` array in memory: raw little-endian element bytes plus dtype and shape.
public struct NPYArray: Equatable, Sendable {
    public var dtype: NPYDType
    public var shape: [Int]
    /// Little-endian element bytes, C order; `count * dtype.itemSize` long.
    public var data: [UInt8]

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }

    /// Wraps raw bytes; the byte count must match dtype and shape.
    public init(dtype: NPYDType, shape: [Int], data: [UInt8]) {
        precondition(data.count == shape.reduce(1, *) * dtype.itemSize, "NPYArray: \(data.count) bytes do not fit \(dtype) \(shape)")
        self.dtype = dtype
        self.shape = shape
        self.data = data
    }

    /// A float32 array.
    public init(floats: [Float], shape: [Int]) { self.init(dtype: .float32, shape: shape, data: Self.bytes(floats, shape)) }
    /// A float64 array.
    public init(doubles: [Double], shape: [Int]) { self.init(dtype: .float64, shape: shape, data: Self.bytes(doubles, shape)) }
    /// An int32 array.
    public init(int32s: [Int32], shape: [Int]) { self.init(dtype: .int32, shape: shape, data: Self.bytes(int32s, shape)) }
    /// An int64 array.
    public init(int64s: [Int64], shape: [Int]) { self.init(dtype: .int64, shape: shape, data: Self.bytes(int64s, shape)) }
    /// A bool array.
    public init(bools: [Bool], shape: [Int]) {
        self.init(dtype: .bool, shape: shape, data: Self.bytes(bools.map { $0 ? UInt8(1) : 0 }, shape))
    }
    /// A numpy unicode (`<U n`) array, n = the longest string in code points (at least 1).
    public init(strings: [String], shape: [Int]) {
        precondition(strings.count == shape.reduce(1, *), "NPYArray: \(strings.count) strings do not fit \(shape)")
        let width = max(1, strings.map { $0.unicodeScalars.count }.max() ?? 1)
        var data = [UInt8]()
        data.reserveCapacity(strings.count * width * 4)
        for s in strings {
            var n = 0
            for scalar in s.unicodeScalars {
                withUnsafeBytes(of: scalar.value.littleEndian) { data.append(contentsOf: $0) }
                n += 1
            }
            data.append(contentsOf: repeatElement(0, count: (width - n) * 4))
        }
        self.init(dtype: .unicode(length: width), shape: shape, data: data)
    }

    private static func bytes<T>(_ values: [T], _ shape: [Int]) -> [UInt8] {
        precondition(values.count == shape.reduce(1, *), "NPYArray: \(values.count) values do not fit \(shape)")
        #if _endian(little)
        return values.withUnsafeBytes { Array($0) }
        #else
        #error("GateScopeInput assumes a little-endian host")
        #endif
    }

    /// Elements as Float (numbers and booleans; float64 is rounded).
    public func floats() throws -> [Float] {
        try requireNumeric("numbers")
        return [Float](unsafeUninitializedCapacity: count) { buf, n in
            data.withUnsafeBytes { Convert.floats($0, dtype: dtype, count: count, into: buf.baseAddress!) }
            n = count
        }
    }

    /// Elements as Double (numbers and booleans).
    public func doubles() throws -> [Double] {
        try requireNumeric("numbers")
        return data.withUnsafeBytes { raw in (0..<count).map { Convert.double(raw, dtype: dtype, at: $0) } }
    }

    /// Elements as Int64 (integer and bool dtypes only).
    public func int64s() throws -> [Int64] {
        guard dtype.isInteger || dtype == .bool else {
            throw InputError("cannot read dtype \(dtype) (\(InputError.excerpt(dtype.descr))) as integers")
        }
        return data.withUnsafeBytes { raw in (0..<count).map { Convert.int64(raw, dtype: dtype, at: $0) } }
    }

    /// Elements as Bool (non-zero is true).
    public func bools() throws -> [Bool] {
        try requireNumeric("booleans")
        return data.withUnsafeBytes { raw in (0..<count).map { Convert.double(raw, dtype: dtype, at: $0) != 0 } }
    }

    /// Elements as strings (unicode and bytes dtypes; trailing NULs removed).
    public func strings() throws -> [String] {
        switch dtype {
        case .unicode, .bytes:
            return try data.withUnsafeBytes { raw in try (0..<count).map { try Convert.string(raw, dtype: dtype, at: $0) } }
        default:
            throw InputError("cannot read dtype \(dtype) (\(InputError.excerpt(dtype.descr))) as strings")
        }
    }

    private func requireNumeric(_ what: String) throws {
        guard dtype.isNumeric else { throw InputError("cannot read dtype \(dtype) (\(InputError.excerpt(dtype.descr))) as \(what)") }
    }
}

/// Reading and writing numpy `.npy` files (little-endian, C order, format versions 1.0, 2.0, 3.0).
public enum NPY {
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // "\x93NUMPY"

    /// Reads a whole `.npy` file into memory (for small arrays; use `NPYFile` to stream large ones).
    public static func read(path: String) throws -> NPYArray {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw InputError(file: path, "cannot read file: \(describeIOError(error))")
        }
        return try read(data: data, name: path)
    }

    /// Parses `.npy` bytes; `name` names the source in errors.
    public static func read(data: Data, name: String? = nil) throws -> NPYArray {
        try withFile(name) {
            let header = try parseHeader(fileSize: data.count) { offset, count in
                let lo = data.startIndex + min(offset, data.count), hi = data.startIndex + min(offset + count, data.count)
                return [UInt8](data[lo..<hi])
            }
            let start = data.startIndex + header.dataOffset
            return NPYArray(dtype: header.dtype, shape: header.shape, data: [UInt8](data[start..<(start + header.byteCount)]))
        }
    }

    /// Writes a float32 `.npy` file with the given shape.
    public static func write(floats: [Float], shape: [Int], to path: String) throws {
        guard floats.count == shape.reduce(1, *) else {
            throw InputError(file: path, "\(floats.count) values do not fit shape \(shapeText(shape))")
        }
        try write(NPYArray(floats: floats, shape: shape), to: path)
    }

    /// Writes any array as a `.npy` file (version 1.0, or 2.0 if the header needs it).
    public static func write(_ array: NPYArray, to path: String) throws {
        do {
            try encode(array).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw InputError(file: path, "cannot write file: \(describeIOError(error))")
        }
    }

    /// The complete `.npy` file bytes for `array`.
    public static func encode(_ array: NPYArray) -> Data {
        var out = header(dtype: array.dtype, shape: array.shape)
        out.append(contentsOf: array.data)
        return out
    }

    /// The `.npy` header (magic, version, padded dict) for data that follows it; lets callers
    /// write large files in chunks.
    public static func header(dtype: NPYDType, shape: [Int]) -> Data {
        let dict = "{'descr': '\(dtype.descr)', 'fortran_order': False, 'shape': \(shapeText(shape)), }"
        // numpy pads so that the data starts on a 64-byte boundary and ends the header with '\n'.
        func build(major: UInt8) -> Data? {
            let prefix = major == 1 ? 10 : 12
            var text = dict
            let total = prefix + text.utf8.count + 1
            text += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
            let len = text.utf8.count
            if major == 1 && len > 0xFFFF { return nil }
            var out = Data(magic)
            out.append(contentsOf: [major, 0])
            if major == 1 {
                withUnsafeBytes(of: UInt16(len).littleEndian) { out.append(contentsOf: $0) }
            } else {
                withUnsafeBytes(of: UInt32(len).littleEndian) { out.append(contentsOf: $0) }
            }
            out.append(contentsOf: Array(text.utf8))
            return out
        }
        return build(major: 1) ?? build(major: 2)!
    }

    /// Python tuple text for a shape: `()`, `(3,)`, `(2, 3)`.
    static func shapeText(_ shape: [Int]) -> String {
        shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    }

    /// Parses and validates a header; `read(offset, count)` returns up to `count` bytes.
    static func parseHeader(fileSize: Int, read: (_ offset: Int, _ count: Int) throws -> [UInt8]) throws -> NPYHeader {
        let prefix = try read(0, 12)
        guard prefix.count >= 6, Array(prefix[0..<6]) == magic else {
            throw InputError("not a .npy file (bad magic: expected \\x93NUMPY)")
        }
        guard prefix.count >= 10 else { throw InputError("truncated .npy header") }
        let major = Int(prefix[6]), minor = Int(prefix[7])
        let lengthSize: Int
        switch major {
        case 1: lengthSize = 2
        case 2, 3: lengthSize = 4
        default: throw InputError("unsupported .npy format version \(major).\(minor) (supported: 1.0, 2.0, 3.0)")
        }
        guard minor == 0 else {
            throw InputError("unsupported .npy format version \(major).\(minor) (supported: 1.0, 2.0, 3.0)")
        }
        guard prefix.count >= 8 + lengthSize else { throw InputError("truncated .npy header") }
        var headerLength = 0
        for k in 0..<lengthSize { headerLength |= Int(prefix[8 + k]) << (8 * k) }
        let dictStart = 8 + lengthSize
        // The declared length is believed only as far as the file reaches (and numpy's own
        // headers are a few hundred bytes): a hostile length must not allocate gigabytes.
        guard headerLength <= fileSize - dictStart, headerLength <= 1 << 20 else {
            throw InputError("truncated .npy header: \(headerLength) header bytes announced, the file has \(Swift.max(0, fileSize - dictStart)) after the prefix")
        }
        let dictBytes = try read(dictStart, headerLength)
        guard dictBytes.count == headerLength else {
            throw InputError("truncated .npy header: \(headerLength) header bytes announced, \(dictBytes.count) present")
        }
        // Versions 1 and 2 use latin-1, version 3 UTF-8.
        let text = major == 3
            ? String(decoding: dictBytes, as: UTF8.self)
            : String(String.UnicodeScalarView(dictBytes.map { Unicode.Scalar($0) }))
        let literal: PyLiteral
        do { literal = try PyLiteral.parse(text) } catch let e as PyLiteral.ParseError {
            throw InputError("malformed .npy header: \(e.message): \(InputError.clip(text.trimmingCharacters(in: .whitespacesAndNewlines), limit: 80))")
        }
        guard case .dict(let items) = literal else {
            throw InputError("malformed .npy header: expected a dict, got \(InputError.clip(literal.repr))")
        }
        func value(_ key: String) throws -> PyLiteral {
            guard let v = items.first(where: { $0.0 == key })?.1 else {
                throw InputError("malformed .npy header: missing key \(InputError.excerpt(key)) in \(InputError.clip(literal.repr))")
            }
            return v
        }
        let descrValue = try value("descr"), fortranValue = try value("fortran_order"), shapeValue = try value("shape")
        let dtype: NPYDType
        switch descrValue {
        case .string(let d):
            switch NPYDType.parse(descr: d) {
            case .success(let t): dtype = t
            case .failure(let e): throw e
            }
        case .list:
            throw InputError("structured dtype \(InputError.clip(descrValue.repr)) is not supported; save a plain numeric array")
        default:
            throw InputError("malformed .npy header: 'descr' must be a string, got \(InputError.clip(descrValue.repr))")
        }
        switch fortranValue {
        case .bool(false): break
        case .bool(true):
            throw InputError("fortran_order=True is not supported; save a C-order array (np.ascontiguousarray(x))")
        default:
            throw InputError("malformed .npy header: 'fortran_order' must be True or False, got \(InputError.clip(fortranValue.repr))")
        }
        guard case .tuple(let dims) = shapeValue else {
            throw InputError("malformed .npy header: 'shape' must be a tuple of non-negative integers, got \(InputError.clip(shapeValue.repr))")
        }
        var shape: [Int] = []
        var total = dtype.itemSize
        for d in dims {
            guard case .int(let n) = d, n >= 0 else {
                throw InputError("malformed .npy header: 'shape' must be a tuple of non-negative integers, got \(InputError.clip(shapeValue.repr))")
            }
            shape.append(n)
            let (product, overflow) = total.multipliedReportingOverflow(by: n)
            guard !overflow else { throw InputError("shape \(InputError.clip(shapeValue.repr)) is too large") }
            total = product
        }
        let header = NPYHeader(majorVersion: major, minorVersion: minor, dtype: dtype, shape: shape,
                               dataOffset: dictStart + headerLength)
        let available = max(0, fileSize - header.dataOffset)
        guard available >= header.byteCount else {
            throw InputError("data is truncated: shape \(header.shapeText) \(dtype) needs \(header.byteCount) bytes after the header, the file has \(available)")
        }
        return header
    }
}

/// A `.npy` file opened for random access by element; reads with `pread`, never loading it whole.
public final class NPYFile {
    /// The name used in errors (the path, or e.g. `data.npz (x.npy)`).
    public let name: String
    public let header: NPYHeader
    private let fd: Int32

    /// Opens and validates the header; `name` replaces the path in errors.
    public init(path: String, name: String? = nil) throws {
        self.name = name ?? path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw InputError(file: name ?? path, "cannot open file: \(String(cString: strerror(errno)))")
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw InputError(file: name ?? path, "cannot stat file: \(message)")
        }
        let fd = self.fd
        do {
            header = try withFile(name ?? path) {
                try NPY.parseHeader(fileSize: Int(st.st_size)) { offset, count in
                    var buf = [UInt8](repeating: 0, count: count)
                    let n = try NPYFile.preadFully(fd, &buf, count: count, offset: offset)
                    return Array(buf[0..<n])
                }
            }
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    /// Reads elements `[index, index + count)` as raw little-endian bytes into `buffer` (resized).
    public func readElements(from index: Int, count: Int, into buffer: inout [UInt8]) throws {
        precondition(index >= 0 && count >= 0 && index + count <= header.count, "element range out of bounds")
        let size = header.dtype.itemSize
        let bytes = count * size
        if buffer.count != bytes { buffer = [UInt8](repeating: 0, count: bytes) }
        let n = try withFile(name) {
            try NPYFile.preadFully(fd, &buffer, count: bytes, offset: header.dataOffset + index * size)
        }
        guard n == bytes else {
            throw InputError(file: name, "data is truncated: the file ended while reading (changed while open?)")
        }
    }

    /// Reads until `count` bytes or end of file; returns the number read.
    static func preadFully(_ fd: Int32, _ buffer: inout [UInt8], count: Int, offset: Int) throws -> Int {
        var done = 0
        try buffer.withUnsafeMutableBytes { raw in
            while done < count {
                let n = pread(fd, raw.baseAddress! + done, count - done, off_t(offset + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw InputError("read failed: \(String(cString: strerror(errno)))")
                }
                if n == 0 { break }
                done += n
            }
        }
        return done
    }
}

/// Element conversion from raw little-endian bytes.
enum Convert {
    @inline(__always)
    static func load<T>(_ raw: UnsafeRawBufferPointer, _ index: Int, _: T.Type) -> T {
        raw.loadUnaligned(fromByteOffset: index * MemoryLayout<T>.size, as: T.self)
    }

    /// Writes `count` elements (numeric or bool) starting at `raw` as Float.
    static func floats(_ raw: UnsafeRawBufferPointer, dtype: NPYDType, count: Int, into out: UnsafeMutablePointer<Float>) {
        switch dtype {
        case .float32:
            if count > 0 { memcpy(out, raw.baseAddress!, count * 4) }
        case .float64: for k in 0..<count { out[k] = Float(load(raw, k, Double.self)) }
        case .int64: for k in 0..<count { out[k] = Float(load(raw, k, Int64.self)) }
        case .int32: for k in 0..<count { out[k] = Float(load(raw, k, Int32.self)) }
        case .uint32: for k in 0..<count { out[k] = Float(load(raw, k, UInt32.self)) }
        case .int16: for k in 0..<count { out[k] = Float(load(raw, k, Int16.self)) }
        case .uint16: for k in 0..<count { out[k] = Float(load(raw, k, UInt16.self)) }
        case .int8: for k in 0..<count { out[k] = Float(load(raw, k, Int8.self)) }
        case .uint8, .bool: for k in 0..<count { out[k] = Float(load(raw, k, UInt8.self)) }
        case .unicode, .bytes: preconditionFailure("string dtype converted to floats")
        }
    }

    static func double(_ raw: UnsafeRawBufferPointer, dtype: NPYDType, at k: Int) -> Double {
        switch dtype {
        case .float32: return Double(load(raw, k, Float.self))
        case .float64: return load(raw, k, Double.self)
        default: return Double(int64(raw, dtype: dtype, at: k))
        }
    }

    static func int64(_ raw: UnsafeRawBufferPointer, dtype: NPYDType, at k: Int) -> Int64 {
        switch dtype {
        case .int64: return load(raw, k, Int64.self)
        case .int32: return Int64(load(raw, k, Int32.self))
        case .uint32: return Int64(load(raw, k, UInt32.self))
        case .int16: return Int64(load(raw, k, Int16.self))
        case .uint16: return Int64(load(raw, k, UInt16.self))
        case .int8: return Int64(load(raw, k, Int8.self))
        case .uint8, .bool: return Int64(load(raw, k, UInt8.self))
        case .float32: return Int64(exactly: load(raw, k, Float.self)) ?? 0
        case .float64: return Int64(exactly: load(raw, k, Double.self)) ?? 0
        case .unicode, .bytes: preconditionFailure("string dtype converted to integers")
        }
    }

    static func string(_ raw: UnsafeRawBufferPointer, dtype: NPYDType, at k: Int) throws -> String {
        switch dtype {
        case .unicode(let n):
            var s = String.UnicodeScalarView()
            for j in 0..<n {
                let v = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: (k * n + j) * 4, as: UInt32.self))
                if v == 0 { break }
                guard let scalar = Unicode.Scalar(v) else {
                    throw InputError("invalid code point 0x\(String(v, radix: 16)) in string \(k)")
                }
                s.append(scalar)
            }
            return String(s)
        case .bytes(let n):
            var bytes = Array(raw[(k * n)..<((k + 1) * n)])
            while bytes.last == 0 { bytes.removeLast() }
            guard let s = String(validating: bytes, as: UTF8.self) else {
                throw InputError("string \(k) is not valid UTF-8")
            }
            return s
        default:
            preconditionFailure("numeric dtype converted to strings")
        }
    }
}

/// A short reason for a Foundation file error.
func describeIOError(_ error: Error) -> String {
    let ns = error as NSError
    if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
        return String(cString: strerror(Int32(underlying.code)))
    }
    if ns.domain == NSCocoaErrorDomain {
        switch ns.code {
        case NSFileReadNoSuchFileError, NSFileNoSuchFileError: return "no such file"
        case NSFileReadNoPermissionError, NSFileWriteNoPermissionError: return "permission denied"
        default: break
        }
    }
    return ns.localizedDescription
}
