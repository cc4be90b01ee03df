import CDigest
import Foundation

/// A small streaming SHA-256 (FIPS 180-4), to fingerprint model and input files for `--resume`;
/// the compression function is C (`CDigest`).
public struct SHA256 {
    private var state: [UInt32] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]
    private var pending: [UInt8] = []
    private var length: UInt64 = 0
    /// Whether blocks use the CPU's SHA extensions when it has them (else portable C).
    private let hardware: Bool

    /// A fresh hash.
    public init() { hardware = true }

    /// A fresh hash that compresses in portable C even where the CPU has SHA extensions (tests).
    init(softwareOnly: Bool) { hardware = !softwareOnly }

    /// Feeds bytes.
    public mutating func update<D: DataProtocol>(_ data: D) {
        for region in data.regions {
            region.withUnsafeBytes { update(raw: $0) }
        }
    }

    /// Feeds raw bytes.
    public mutating func update(raw: UnsafeRawBufferPointer) {
        guard let base = raw.baseAddress, raw.count > 0 else { return }
        length &+= UInt64(raw.count)
        var offset = 0
        if !pending.isEmpty {
            let take = Swift.min(64 - pending.count, raw.count)
            pending.append(contentsOf: UnsafeRawBufferPointer(start: base, count: take))
            offset = take
            if pending.count == 64 {
                let block = pending
                block.withUnsafeBytes { compress($0.baseAddress!, blocks: 1) }
                pending.removeAll(keepingCapacity: true)
            }
        }
        let blocks = (raw.count - offset) / 64
        if blocks > 0 {
            compress(base + offset, blocks: blocks)
            offset += 64 * blocks
        }
        if offset < raw.count {
            pending.append(contentsOf: UnsafeRawBufferPointer(start: base + offset, count: raw.count - offset))
        }
    }

    /// The digest; the hash must not be updated afterwards.
    public mutating func finalize() -> [UInt8] {
        let bitLength = length &* 8
        var tail: [UInt8] = [0x80]
        let padded = (pending.count + 1 + 8 + 63) / 64 * 64
        tail += [UInt8](repeating: 0, count: padded - pending.count - 1 - 8)
        for k in (0..<8).reversed() { tail.append(UInt8(truncatingIfNeeded: bitLength >> (UInt64(k) * 8))) }
        let savedLength = length
        tail.withUnsafeBytes { update(raw: $0) }
        length = savedLength
        precondition(pending.isEmpty)
        var out: [UInt8] = []
        for word in state { for k in (0..<4).reversed() { out.append(UInt8(truncatingIfNeeded: word >> (UInt32(k) * 8))) } }
        return out
    }

    /// The digest as lowercase hex.
    public mutating func finalizeHex() -> String {
        finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// Compresses `blocks` whole blocks from `data` (`gs_sha256_blocks`).
    private mutating func compress(_ data: UnsafeRawPointer, blocks: Int) {
        state.withUnsafeMutableBufferPointer {
            _ = gs_sha256_blocks(hardware ? 1 : 0, $0.baseAddress!, data.assumingMemoryBound(to: UInt8.self), blocks)
        }
    }

    /// SHA-256 hex of `data`.
    public static func hex<D: DataProtocol>(_ data: D) -> String {
        var hash = SHA256()
        hash.update(data)
        return hash.finalizeHex()
    }

    /// SHA-256 hex of a file, read in 1 MiB chunks (constant memory).
    public static func hex(fileAt path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw DatabaseError(code: 14 /* SQLITE_CANTOPEN */, message: "cannot read '\(path)' to fingerprint it")
        }
        defer { try? handle.close() }
        var hash = SHA256()
        while true {
            let chunk: Data
            do { chunk = try handle.read(upToCount: 1 << 20) ?? Data() } catch {
                throw DatabaseError(code: 10 /* SQLITE_IOERR */, message: "cannot read '\(path)': \(error.localizedDescription)")
            }
            if chunk.isEmpty { break }
            hash.update(chunk)
        }
        return hash.finalizeHex()
    }
}
