import Foundation

/// A token -> id vocabulary (a JSON object, as char-level models ship it) and its inverse.
///
/// Text is split into **Unicode scalars** (code points), the way Python iterates a `str`, which
/// is how such vocabularies are built (`sorted(set(text))`); so "é" written as e + U+0301 is two
/// tokens, as in Python. Only if some key is a single grapheme made of several scalars (e.g. an
/// emoji with a modifier, or "e\u{301}") is text split into grapheme clusters (`Character`)
/// instead. Keys longer than one unit (e.g. "<unk>") are never matched in text but still name
/// their ids. Columns in errors count these units from 1.
public struct Vocab: Sendable {
    /// How text is split into tokens.
    public enum Unit: Sendable, Equatable {
        /// One token per Unicode scalar (code point), like Python.
        case unicodeScalar
        /// One token per grapheme cluster (Swift `Character`).
        case character
    }

    /// A character missing from the vocabulary, at a 1-based column of the text.
    public struct Miss: Error, Equatable, Sendable {
        public var column: Int
        public var text: String
    }

    /// The split used for text.
    public let unit: Unit
    /// Number of entries.
    public var count: Int { tokenIDs.count }
    /// The largest id.
    public let maxID: Int32
    private let tokenIDs: [String: Int32]
    private let scalarIDs: [UInt32: Int32]
    private let idTokens: [Int32: String]

    /// Builds a vocabulary from token -> id pairs (ids must be >= 0).
    public init(_ tokenToID: [String: Int32]) throws {
        var scalars: [UInt32: Int32] = [:]
        var inverse: [Int32: String] = [:]
        var needsGraphemes = false
        for (token, id) in tokenToID.sorted(by: { $0.key < $1.key }) {
            guard id >= 0 else { throw InputError("token \(Vocab.quote(token)) has id \(id); ids must be non-negative integers") }
            if inverse[id] == nil { inverse[id] = token }
            let units = Array(token.unicodeScalars)
            if units.count == 1 {
                scalars[units[0].value] = id
            } else if token.count == 1 {
                needsGraphemes = true
            }
        }
        tokenIDs = tokenToID
        scalarIDs = scalars
        idTokens = inverse
        unit = needsGraphemes ? .character : .unicodeScalar
        maxID = tokenToID.values.max() ?? -1
    }

    /// Reads a JSON object token -> id from a file.
    public init(path: String) throws {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw InputError(file: path, "cannot read vocabulary: \(describeIOError(error))")
        }
        try self.init(data: data, name: path)
    }

    /// Parses a JSON object token -> id; `name` names the source in errors.
    public init(data: Data, name: String? = nil) throws {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            throw InputError(file: name, "vocabulary is not valid JSON")
        }
        guard let dict = object as? [String: Any] else {
            throw InputError(file: name, "vocabulary must be a JSON object mapping token -> id")
        }
        var map: [String: Int32] = [:]
        for (token, value) in dict {
            guard let number = value as? NSNumber,
                  let id = Int32(exactly: number.doubleValue), id >= 0 else {
                throw InputError(file: name, "token \(Vocab.quote(token)) has id \(value); ids must be non-negative integers")
            }
            map[token] = id
        }
        do { try self.init(map) } catch let e as InputError { throw e.inFile(name) }
    }

    /// The id of a token (exact key match).
    public func id(for token: String) -> Int32? { tokenIDs[token] }

    /// The token text for an id (the smallest key if several share it), nil if unknown.
    public func token(for id: Int32) -> String? { idTokens[id] }

    /// Maps text to ids; an unknown unit becomes `unknownID`, or fails with its column.
    public func encode(_ text: String, unknownID: Int32? = nil) -> Result<[Int32], Miss> {
        var ids: [Int32] = []
        switch unit {
        case .unicodeScalar:
            ids.reserveCapacity(text.utf8.count)
            for (k, scalar) in text.unicodeScalars.enumerated() {
                if let id = scalarIDs[scalar.value] ?? unknownID {
                    ids.append(id)
                } else {
                    return .failure(Miss(column: k + 1, text: String(scalar)))
                }
            }
        case .character:
            for (k, ch) in text.enumerated() {
                if let id = tokenIDs[String(ch)] ?? unknownID {
                    ids.append(id)
                } else {
                    return .failure(Miss(column: k + 1, text: String(ch)))
                }
            }
        }
        return .success(ids)
    }

    /// A token quoted for messages, with invisible characters escaped and long tokens cut.
    static func quote(_ s: String) -> String { InputError.excerpt(s, limit: 60) }
}
