import CSV
import Foundation
import GateScopeStore

// Formatting of result sets for every read command: aligned table, RFC 4180 CSV, JSON.
// Writers stream (CSV and JSON hold one row at a time); the table has to see every row to
// align the columns, so it buffers.

/// Writing results failed (a file that cannot be created or written); one line.
public struct OutputError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public var description: String { message }
}

/// How a read command prints its rows.
public enum OutputFormat: String, CaseIterable, Sendable {
    /// Aligned columns for people (numbers rounded to 6 significant digits).
    case table
    /// RFC 4180 CSV (fields with `,` `"` or line breaks quoted; `"` doubled), LF line ends.
    case csv
    /// A JSON array of objects (arrays with `--no-header`).
    case json
}

/// Text forms of values shared by the writers.
public enum ValueText {
    /// The exact text of a REAL. With `float32` (a recorded gate value, stored as Double(Float32)):
    /// the shortest decimal that reads back as that Float32 (`Float.description`, e.g. `0.9`).
    /// Otherwise the shortest decimal that reads back as the same Double (`Double.description`).
    @inline(__always)
    public static func real(_ value: Double, float32: Bool = false) -> String {
        if float32 {
            let narrow = Float(value)
            if Double(narrow) == value || value.isNaN { return narrow.description }
        }
        return value.description
    }

    /// A REAL rounded for reading: 6 significant digits (Float32 values shorter than that as they are).
    public static func roundedReal(_ value: Double, float32: Bool = false) -> String {
        if float32 {
            let narrow = Float(value)
            if Double(narrow) == value, narrow.description.count <= 8 { return narrow.description }
        }
        if !value.isFinite || value == 0 { return value.description }
        var text = String(format: "%.6g", value)
        // Drop trailing zeros of a fixed-point fraction; %g's exponent form (1e-07) stays as it is.
        if text.contains("."), !text.contains("e") {
            while text.hasSuffix("0") { text.removeLast() }
            if text.hasSuffix(".") { text.removeLast() }
        }
        return text
    }

    /// Exact text of any value; nil for NULL; blobs as lowercase hex.
    public static func exact(_ value: SQLiteValue, float32: Bool = false) -> String? {
        switch value {
        case .null: return nil
        case let .integer(v): return String(v)
        case let .real(v): return real(v, float32: float32)
        case let .text(s): return s
        case let .blob(d): return d.map { String(format: "%02x", $0) }.joined()
        }
    }

    /// Per-column flags from a set of indices.
    static func flags(_ indices: Set<Int>, count: Int) -> [Bool] {
        (0..<count).map { indices.contains($0) }
    }
}

/// A buffered byte sink on a file descriptor (stdout or a file opened for `-o FILE`).
public final class OutputSink {
    private let fd: Int32
    private let ownsDescriptor: Bool
    private var buffer: [UInt8] = []
    private let capacity = 1 << 16
    /// Where the bytes go, for messages.
    public let name: String

    /// Standard output.
    public static func standardOutput() -> OutputSink { OutputSink(fd: 1, owns: false, name: "standard output") }

    /// Creates or truncates `path`.
    public static func file(_ path: String) throws -> OutputSink {
        let fd = Foundation.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 {
            throw OutputError(message: "cannot write '\(path)': \(String(cString: strerror(errno)))")
        }
        return OutputSink(fd: fd, owns: true, name: path)
    }

    private init(fd: Int32, owns: Bool, name: String) {
        self.fd = fd
        self.ownsDescriptor = owns
        self.name = name
        buffer.reserveCapacity(capacity)
    }

    deinit {
        try? flush()
        if ownsDescriptor { Foundation.close(fd) }
    }

    /// True when the descriptor is a terminal (the default format is then `table`).
    public var isTerminal: Bool { isatty(fd) != 0 }

    /// Appends UTF-8 text.
    public func write(_ text: String) throws {
        var text = text
        text.withUTF8 { buffer.append(contentsOf: $0) }
        if buffer.count >= capacity { try flush() }
    }

    /// Appends raw bytes.
    public func write(bytes: UnsafeBufferPointer<UInt8>) throws {
        buffer.append(contentsOf: bytes)
        if buffer.count >= capacity { try flush() }
    }

    /// Writes everything buffered so far.
    public func flush() throws {
        var offset = 0
        while offset < buffer.count {
            let n = buffer.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                let message = String(cString: strerror(errno))
                buffer.removeAll(keepingCapacity: true)
                throw OutputError(message: "cannot write to \(name): \(message)")
            }
            offset += n
        }
        buffer.removeAll(keepingCapacity: true)
    }
}

/// An `OutputStream` that collects what CSV.swift's `CSVWriter` writes.
final class CollectingStream: OutputStream {
    private var status: Stream.Status = .notOpen
    var bytes: [UInt8] = []

    init() { super.init(toMemory: ()) }
    required init(toMemory: ()) { super.init(toMemory: ()) }

    override func open() { status = .open }
    override func close() { status = .closed }
    override var streamStatus: Stream.Status { status }
    override var hasSpaceAvailable: Bool { true }

    override func write(_ buffer: UnsafePointer<UInt8>, maxLength len: Int) -> Int {
        bytes.append(contentsOf: UnsafeBufferPointer(start: buffer, count: len))
        return len
    }
}

/// RFC 4180 CSV: fields with `,` `"` CR or LF are quoted with `"` doubled, by CSV.swift's
/// `CSVWriter`. NULL is an empty field; lines end with LF, the last one too.
///
/// CSVWriter writes one byte per call, too slow for exports of millions of rows, so it quotes
/// only the text fields that need it (remembered, as tokens and names repeat); numbers and plain
/// text never need quoting and go straight to the buffered sink.
public final class CSVRowWriter: RowWriter {
    private let sink: OutputSink
    private let header: Bool
    private var float32: [Bool] = []
    private var quoted: [String: String] = [:]
    private var line = ""

    /// Writes to `sink`; `header` false leaves out the column-name line.
    public init(sink: OutputSink, header: Bool = true) throws {
        self.sink = sink
        self.header = header
    }

    public func begin(columns: [String], float32Columns: Set<Int>) throws {
        float32 = ValueText.flags(float32Columns, count: columns.count)
        if header { try writeFields(columns) }
    }

    public func write(_ row: [SQLiteValue]) throws {
        line.removeAll(keepingCapacity: true)
        for (k, value) in row.enumerated() {
            if k > 0 { line += "," }
            switch value {
            case .null: break
            case let .integer(v): line += String(v)
            case let .real(v): line += ValueText.real(v, float32: k < float32.count && float32[k])
            case let .text(s): line += try field(s)
            case .blob: line += ValueText.exact(value) ?? ""
            }
        }
        line += "\n"
        try sink.write(line)
    }

    /// Writes one row of text fields.
    public func writeFields(_ values: [String]) throws {
        line.removeAll(keepingCapacity: true)
        for (k, value) in values.enumerated() {
            if k > 0 { line += "," }
            line += try field(value)
        }
        line += "\n"
        try sink.write(line)
    }

    public func finish() throws { try sink.flush() }

    /// `text` as a CSV field: unchanged, or quoted by `CSVWriter` when it holds `,` `"` CR or LF.
    func field(_ text: String) throws -> String {
        let special = text.utf8.contains { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 13 || $0 == 10 }
        guard special else { return text }
        if let done = quoted[text] { return done }
        let stream = CollectingStream()
        let csv = try CSVWriter(stream: stream, delimiter: ",", newline: .lf)
        // We only get here when the field needs quotes; CSVWriter's own test compares Characters,
        // for which "\r\n" is one, so say so explicitly.
        try csv.write(field: text, quoted: true)
        let result = String(decoding: stream.bytes, as: UTF8.self)
        if quoted.count >= 100_000 { quoted.removeAll() }
        quoted[text] = result
        return result
    }
}

/// A JSON array of objects keyed by column name (arrays of values when `header` is false).
/// REALs print exactly as in CSV; non-finite numbers become null.
public final class JSONRowWriter: RowWriter {
    private let sink: OutputSink
    private let header: Bool
    private var keys: [String] = []
    private var float32: [Bool] = []
    private var count = 0

    /// Writes to `sink`.
    public init(sink: OutputSink, header: Bool = true) {
        self.sink = sink
        self.header = header
    }

    public func begin(columns: [String], float32Columns: Set<Int>) throws {
        keys = columns.map(JSONRowWriter.quote)
        float32 = ValueText.flags(float32Columns, count: columns.count)
        try sink.write("[")
    }

    public func write(_ row: [SQLiteValue]) throws {
        var line = count == 0 ? "\n" : ",\n"
        line += header ? "{" : "["
        for (k, value) in row.enumerated() {
            if k > 0 { line += ", " }
            if header { line += keys[k] + ": " }
            line += JSONRowWriter.json(value, float32: k < float32.count && float32[k])
        }
        line += header ? "}" : "]"
        try sink.write(line)
        count += 1
    }

    public func finish() throws {
        try sink.write(count == 0 ? "]\n" : "\n]\n")
        try sink.flush()
    }

    static func json(_ value: SQLiteValue, float32: Bool = false) -> String {
        switch value {
        case .null: return "null"
        case let .integer(v): return String(v)
        case let .real(v): return v.isFinite ? ValueText.real(v, float32: float32) : "null"
        case .text, .blob: return quote(ValueText.exact(value) ?? "")
        }
    }

    /// A JSON string literal.
    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x2028 || scalar.value == 0x2029 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// Aligned columns separated by two spaces, a dashed line under the header; numbers right-aligned,
/// text left-aligned, control characters shown escaped (`\n`), NULL empty. Column widths come from
/// the first 1000 rows; later rows stream out with those widths (a longer cell just pushes its
/// line wider), so memory stays bounded for any result size.
public final class TableRowWriter: RowWriter {
    private let sink: OutputSink
    private let header: Bool
    private let sampleSize: Int
    private var columns: [String] = []
    private var pending: [[String]] = []
    private var numeric: [Bool] = []
    private var float32: [Bool] = []
    private var widths: [Int]?

    /// Writes to `sink`; `sampleSize` rows are buffered to choose the column widths.
    public init(sink: OutputSink, header: Bool = true, sampleSize: Int = 1000) {
        self.sink = sink
        self.header = header
        self.sampleSize = sampleSize
    }

    public func begin(columns: [String], float32Columns: Set<Int>) throws {
        self.columns = columns
        numeric = Array(repeating: false, count: columns.count)
        float32 = ValueText.flags(float32Columns, count: columns.count)
    }

    public func write(_ row: [SQLiteValue]) throws {
        var cells: [String] = []
        cells.reserveCapacity(row.count)
        for (k, value) in row.enumerated() {
            switch value {
            case .null: cells.append("")
            case let .integer(v):
                cells.append(String(v))
                if widths == nil { numeric[k] = true }
            case let .real(v):
                cells.append(ValueText.roundedReal(v, float32: k < float32.count && float32[k]))
                if widths == nil { numeric[k] = true }
            case .text, .blob:
                cells.append(TableRowWriter.visible(ValueText.exact(value) ?? ""))
            }
        }
        if widths != nil {
            try sink.write(line(cells))
        } else {
            pending.append(cells)
            if pending.count >= sampleSize { try flushPending() }
        }
    }

    public func finish() throws {
        if widths == nil { try flushPending() }
        try sink.flush()
    }

    private func flushPending() throws {
        var w = header ? columns.map(\.count) : Array(repeating: 0, count: columns.count)
        for row in pending {
            for (k, cell) in row.enumerated() { w[k] = max(w[k], cell.count) }
        }
        widths = w
        if header {
            try sink.write(line(columns))
            try sink.write(line(w.map { String(repeating: "-", count: $0) }))
        }
        for row in pending { try sink.write(line(row)) }
        pending = []
    }

    private func line(_ cells: [String]) -> String {
        let widths = self.widths ?? []
        var text = ""
        for (k, cell) in cells.enumerated() {
            if k > 0 { text += "  " }
            let pad = String(repeating: " ", count: max(0, (k < widths.count ? widths[k] : 0) - cell.count))
            text += numeric[k] ? pad + cell : cell + pad
        }
        while text.hasSuffix(" ") { text.removeLast() }
        return text + "\n"
    }

    /// Control characters as escapes, so one value stays on one line.
    static func visible(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    out += String(format: "\\x%02x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}

extension OutputFormat {
    /// A writer of this format on `sink`.
    public func makeWriter(sink: OutputSink, header: Bool) throws -> RowWriter {
        switch self {
        case .table: return TableRowWriter(sink: sink, header: header)
        case .csv: return try CSVRowWriter(sink: sink, header: header)
        case .json: return JSONRowWriter(sink: sink, header: header)
        }
    }
}
