/// The subset of Python literals that `.npy` headers use: a dict of strings, booleans, ints and tuples.
indirect enum PyLiteral: Equatable {
    case string(String)
    case int(Int)
    case bool(Bool)
    case none
    case tuple([PyLiteral])
    case list([PyLiteral])
    case dict([(String, PyLiteral)])

    static func == (a: PyLiteral, b: PyLiteral) -> Bool {
        switch (a, b) {
        case let (.string(x), .string(y)): return x == y
        case let (.int(x), .int(y)): return x == y
        case let (.bool(x), .bool(y)): return x == y
        case (.none, .none): return true
        case let (.tuple(x), .tuple(y)), let (.list(x), .list(y)): return x == y
        case let (.dict(x), .dict(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// Python-like rendering, for error messages.
    var repr: String {
        switch self {
        case .string(let s): return "'\(s)'"
        case .int(let i): return String(i)
        case .bool(let b): return b ? "True" : "False"
        case .none: return "None"
        case .tuple(let items): return "(" + items.map(\.repr).joined(separator: ", ") + (items.count == 1 ? ",)" : ")")
        case .list(let items): return "[" + items.map(\.repr).joined(separator: ", ") + "]"
        case .dict(let items): return "{" + items.map { "'\($0.0)': \($0.1.repr)" }.joined(separator: ", ") + "}"
        }
    }

    struct ParseError: Error { let message: String }

    /// Parses one literal that must span the whole text (surrounding whitespace allowed).
    static func parse(_ text: String) throws -> PyLiteral {
        var p = Parser(chars: Array(text.unicodeScalars))
        let value = try p.value()
        p.skipSpace()
        if p.pos != p.chars.count { throw ParseError(message: "unexpected text after the dict at offset \(p.pos)") }
        return value
    }

    private struct Parser {
        let chars: [Unicode.Scalar]
        var pos = 0

        mutating func skipSpace() {
            while pos < chars.count, chars[pos].properties.isWhitespace { pos += 1 }
        }

        func peek() -> Unicode.Scalar? { pos < chars.count ? chars[pos] : nil }

        mutating func expect(_ c: Unicode.Scalar) throws {
            skipSpace()
            guard peek() == c else { throw ParseError(message: "expected '\(c)' at offset \(pos)") }
            pos += 1
        }

        mutating func value() throws -> PyLiteral {
            skipSpace()
            guard let c = peek() else { throw ParseError(message: "unexpected end of header") }
            switch c {
            case "{": return try dict()
            case "(":
                pos += 1
                return .tuple(try items(closing: ")"))
            case "[":
                pos += 1
                return .list(try items(closing: "]"))
            case "'", "\"": return .string(try string())
            case "-", "0"..."9": return .int(try int())
            default:
                // String prefixes such as u'...' or b'...'.
                if c == "u" || c == "b" || c == "r", pos + 1 < chars.count, chars[pos + 1] == "'" || chars[pos + 1] == "\"" {
                    pos += 1
                    return .string(try string())
                }
                let word = identifier()
                switch word {
                case "True": return .bool(true)
                case "False": return .bool(false)
                case "None": return .none
                default: throw ParseError(message: "unexpected \(InputError.excerpt(word.isEmpty ? String(c) : word, limit: 20)) at offset \(pos)")
                }
            }
        }

        mutating func identifier() -> String {
            var s = ""
            while let c = peek(), c.properties.isAlphabetic || c == "_" || ("0"..."9").contains(c) {
                s.unicodeScalars.append(c)
                pos += 1
            }
            return s
        }

        mutating func int() throws -> Int {
            var s = ""
            if peek() == "-" { s = "-"; pos += 1 }
            while let c = peek(), ("0"..."9").contains(c) { s.unicodeScalars.append(c); pos += 1 }
            // Python 2 era numpy wrote longs as `3L`.
            if peek() == "L" { pos += 1 }
            guard let v = Int(s) else { throw ParseError(message: "bad integer \(InputError.excerpt(s, limit: 20)) at offset \(pos)") }
            return v
        }

        mutating func string() throws -> String {
            let quote = chars[pos]
            pos += 1
            var s = ""
            while let c = peek() {
                pos += 1
                if c == quote { return s }
                if c == "\\", let next = peek() {
                    pos += 1
                    switch next {
                    case "n": s += "\n"
                    case "t": s += "\t"
                    default: s.unicodeScalars.append(next)
                    }
                } else {
                    s.unicodeScalars.append(c)
                }
            }
            throw ParseError(message: "unterminated string")
        }

        mutating func items(closing: Unicode.Scalar) throws -> [PyLiteral] {
            var result: [PyLiteral] = []
            while true {
                skipSpace()
                if peek() == closing { pos += 1; return result }
                result.append(try value())
                skipSpace()
                if peek() == "," { pos += 1; continue }
                try expect(closing)
                return result
            }
        }

        mutating func dict() throws -> PyLiteral {
            pos += 1
            var result: [(String, PyLiteral)] = []
            while true {
                skipSpace()
                if peek() == "}" { pos += 1; return .dict(result) }
                guard case .string(let key) = try value() else {
                    throw ParseError(message: "dict keys must be strings (offset \(pos))")
                }
                try expect(":")
                result.append((key, try value()))
                skipSpace()
                if peek() == "," { pos += 1; continue }
                try expect("}")
                return .dict(result)
            }
        }
    }
}
