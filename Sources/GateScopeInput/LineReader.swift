import Foundation

/// Reads a file line by line through a fixed buffer (lines split at `\n`, a trailing `\r` and a
/// leading UTF-8 byte-order mark removed).
final class LineReader {
    let name: String
    /// 1-based number of the line last returned.
    private(set) var lineNumber = 0
    private let fd: Int32
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    private var offset = 0
    private var eof = false

    init(path: String, bufferSize: Int = 1 << 18) throws {
        name = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw InputError(file: path, errno == ENOENT ? "no such file" : "cannot open file: \(String(cString: strerror(errno)))")
        }
        buffer = [UInt8](repeating: 0, count: bufferSize)
    }

    deinit { close(fd) }

    /// The next line's bytes, or nil at the end of the file.
    func next() throws -> ArraySlice<UInt8>? {
        while true {
            if let nl = newline() {
                let line = buffer[start..<nl]
                start = nl + 1
                return finish(line)
            }
            if eof {
                guard start < end else { return nil }
                let line = buffer[start..<end]
                start = end
                return finish(line)
            }
            try fill()
        }
    }

    private func newline() -> Int? {
        guard start < end else { return nil }
        return buffer.withUnsafeBytes { raw in
            memchr(raw.baseAddress! + start, 0x0A, end - start).map { $0 - UnsafeMutableRawPointer(mutating: raw.baseAddress!) }
        }
    }

    private func finish(_ line: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        lineNumber += 1
        var line = line
        if line.last == 0x0D { line = line.dropLast() }
        if lineNumber == 1, line.starts(with: [0xEF, 0xBB, 0xBF]) { line = line.dropFirst(3) }
        return line
    }

    private func fill() throws {
        // Move the partial line to the front; grow only for a line longer than the buffer.
        if start > 0 {
            buffer.replaceSubrange(0..<(end - start), with: buffer[start..<end])
            end -= start
            start = 0
        }
        if end == buffer.count { buffer.append(contentsOf: repeatElement(0, count: buffer.count)) }
        let n = try buffer.withUnsafeMutableBytes { raw -> Int in
            while true {
                let n = pread(fd, raw.baseAddress! + end, raw.count - end, off_t(offset))
                if n < 0 && errno == EINTR { continue }
                if n < 0 { throw InputError(file: name, "read failed: \(String(cString: strerror(errno)))") }
                return n
            }
        }
        if n == 0 { eof = true }
        end += n
        offset += n
    }

    /// Counts lines for which `keep` is true, reading the file once more (for progress totals).
    static func countLines(path: String, where keep: (ArraySlice<UInt8>) -> Bool) throws -> Int {
        let reader = try LineReader(path: path, bufferSize: 1 << 20)
        var n = 0
        while let line = try reader.next() {
            if keep(line) { n += 1 }
        }
        return n
    }
}

/// Decodes a line as UTF-8 or throws naming the line.
func decodeLine(_ bytes: ArraySlice<UInt8>, file: String, line: Int) throws -> String {
    guard let s = String(validating: bytes, as: UTF8.self) else {
        throw InputError(file: file, line: line, "not valid UTF-8")
    }
    return s
}
