import Foundation

/// An input file could not be read or holds invalid data; `description` is one line with the context.
public struct InputError: Error, CustomStringConvertible, LocalizedError, Equatable, Sendable {
    /// The file as the user named it (nil for in-memory data).
    public var file: String?
    /// 1-based line number in a text input (.jsonl, .csv, .txt).
    public var line: Int?
    /// 0-based sequence index in input order.
    public var sequence: Int?
    /// 0-based step (position in the sequence).
    public var step: Int?
    /// What is wrong, without the context above.
    public var message: String

    /// Creates an error; context fields are optional.
    public init(file: String? = nil, line: Int? = nil, sequence: Int? = nil, step: Int? = nil, _ message: String) {
        self.file = file
        self.line = line
        self.sequence = sequence
        self.step = step
        self.message = message
    }

    /// e.g. `data.jsonl: line 4 (sequence 3), step 7: NaN in feature 2`.
    public var description: String {
        var parts: [String] = []
        if let file { parts.append(file) }
        var location = ""
        if let line {
            location = "line \(line)"
            if let sequence { location += " (sequence \(sequence))" }
        } else if let sequence {
            location = "sequence \(sequence)"
        }
        if let step { location += location.isEmpty ? "step \(step)" : ", step \(step)" }
        if !location.isEmpty { parts.append(location) }
        parts.append(message)
        return Self.oneLine(parts.joined(separator: ": "))
    }

    /// The longest `description`, in characters.
    static let maxLength = 600

    /// An error message on one line whatever it quotes: any control character left is escaped,
    /// and it is never longer than a screenful (`maxLength`). Other modules' errors that quote a
    /// file (`KerasError`) use it too.
    public static func oneLine(_ text: String) -> String {
        let text = escapingControls(text)
        return text.count > maxLength ? String(text.prefix(maxLength - 3)) + "..." : text
    }

    /// `text` quoted for a message: `'...'`, invisible and control characters escaped, and cut
    /// to `limit` characters (with `...`) so that a hostile file cannot fill the terminal.
    public static func excerpt(_ text: String, limit: Int = 40) -> String {
        var out = "'"
        var count = 0
        for scalar in text.unicodeScalars {
            if count >= limit { return out + "'..." }
            count += 1
            if let escape = escape(scalar, strict: true) { out += escape } else { out.unicodeScalars.append(scalar) }
        }
        return out + "'"
    }

    /// `text` (e.g. a parsed value's repr) with control characters escaped, cut to `limit` characters.
    public static func clip(_ text: String, limit: Int = 60) -> String {
        let escaped = escapingControls(text)
        return escaped.count > limit ? String(escaped.prefix(limit)) + "..." : escaped
    }

    /// `text` on one line: line breaks, tabs and other control characters (also U+2028/U+2029)
    /// escaped as in `excerpt`; the rest kept.
    static func escapingControls(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { escape($0, strict: false) != nil }) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            if let escape = escape(scalar, strict: false) { out += escape } else { out.unicodeScalars.append(scalar) }
        }
        return out
    }

    /// How one character is written in a message, or nil to keep it: line breaks, tabs and other
    /// control characters always; when `strict` (quoted file content), also the quote itself,
    /// invisible format characters and combining marks.
    static func escape(_ scalar: Unicode.Scalar, strict: Bool) -> String? {
        switch scalar {
        case "\n": return "\\n"
        case "\r": return "\\r"
        case "\t": return "\\t"
        case "'" where strict: return "\\'"
        default:
            let category = scalar.properties.generalCategory
            let breaksLines = category == .lineSeparator || category == .paragraphSeparator
            guard category == .control || breaksLines || (strict && (category == .format || category == .nonspacingMark)) else { return nil }
            return "\\u{\(String(scalar.value, radix: 16))}"
        }
    }

    public var errorDescription: String? { description }

    /// The same error with the file filled in when it was not known where it was thrown.
    func inFile(_ path: String?) -> InputError {
        var copy = self
        if copy.file == nil { copy.file = path }
        return copy
    }
}

/// Runs `body`, attaching `file` to any `InputError` thrown without one.
@inline(__always)
func withFile<T>(_ file: String?, _ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as InputError { throw e.inFile(file) }
}
