import Foundation

/// Checks a zip archive's directory against the file's real size before ZIPFoundation reads it.
///
/// ZIPFoundation turns the 64-bit offsets and sizes of a ZIP64 archive into `off_t` and adds them
/// without overflow checks: a hostile `.pt`, `.keras` or `.npz` whose ZIP64 fields hold values near
/// 2^64 stops the process (found by `scripts/fuzz.sh`, harness `pt`). Every such value it can read
/// is bounded here by the file size first: the ZIP64 end-of-directory record that ZIPFoundation
/// takes (the one just before the locator that precedes the end record), and the ZIP64 fields of
/// every central-directory entry and of its local header. A file that passes keeps every sum that
/// ZIPFoundation forms below 2^40 for any file this machine can hold. Structures it cannot find
/// are left to ZIPFoundation, which then refuses the file itself.
public enum ZipPrecheck {
    /// Why `path` must not be opened as a zip archive, or nil when it may (or cannot be read here).
    public static func problem(path: String) -> String? {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) else { return nil }
        return problem(data)
    }

    /// The same for the bytes of a whole archive.
    public static func problem(_ b: Data) -> String? {
        let size = UInt64(b.count)
        func u16(_ at: UInt64) -> UInt64? { at + 2 <= size ? UInt64(b[b.startIndex + Int(at)]) | UInt64(b[b.startIndex + Int(at) + 1]) << 8 : nil }
        func u32(_ at: UInt64) -> UInt64? { guard let lo = u16(at), let hi = u16(at + 2) else { return nil }; return lo | hi << 16 }
        func u64(_ at: UInt64) -> UInt64? { guard let lo = u32(at), let hi = u32(at + 4) else { return nil }; return lo | hi << 32 }

        // The end record: the last signature from the end, as ZIPFoundation scans.
        guard size >= 22 else { return nil }
        var eocd: UInt64?
        var at = size - 22
        while true {
            if u32(at) == 0x0605_4B50 { eocd = at; break }
            if at == 0 { break }
            at -= 1
        }
        guard let end = eocd, var entries = u16(end + 10), var cdSize = u32(end + 12), var cdOffset = u32(end + 16) else { return nil }
        // ZIPFoundation's ZIP64 record: 56 bytes before the 20-byte locator before the end record.
        if end > 20 + 56, u32(end - 20) == 0x0706_4B50, u32(end - 76) == 0x0606_4B50,
           let n = u64(end - 76 + 32), let s = u64(end - 76 + 40), let o = u64(end - 76 + 48) {
            guard o <= size, s <= size - o else {
                return "its ZIP64 directory record places the central directory at \(o) (\(s) bytes), past the file's \(size) bytes"
            }
            (entries, cdSize, cdOffset) = (n, s, o)
        }

        /// Every 8-byte value of a ZIP64 extra field (id 1) in `extra`, checked against the file.
        func zip64Values(_ extra: UInt64, _ length: UInt64, _ what: String) -> (values: [UInt64], problem: String?) {
            var values: [UInt64] = []
            var p = extra
            while p + 4 <= extra + length, let id = u16(p), let n = u16(p + 2) {
                if id == 1 {
                    var q = p + 4
                    while q + 8 <= min(p + 4 + n, extra + length), let v = u64(q) {
                        guard v <= size else { return ([], "\(what) has a ZIP64 size or offset of \(v), past the file's \(size) bytes") }
                        values.append(v)
                        q += 8
                    }
                }
                p += 4 + n
            }
            return (values, nil)
        }

        // The entries, as far as ZIPFoundation would walk them (it stops at the first it cannot read).
        var p = cdOffset
        var k: UInt64 = 0
        while k < entries, u32(p) == 0x0201_4B50, let compressed32 = u32(p + 20), let uncompressed32 = u32(p + 24),
              let nameLength = u16(p + 28), let extraLength = u16(p + 30), let commentLength = u16(p + 32), let offset32 = u32(p + 42) {
            let what = "zip entry \(k)"
            let (values, problem) = zip64Values(p + 46 + nameLength, extraLength, what)
            if let problem { return problem }
            // The local header's offset: from the ZIP64 field after the saturated sizes before it.
            var offset = offset32
            if offset32 == 0xFFFF_FFFF {
                let index = (uncompressed32 == 0xFFFF_FFFF ? 1 : 0) + (compressed32 == 0xFFFF_FFFF ? 1 : 0)
                if index < values.count { offset = values[index] }
            }
            if offset <= size, u32(offset) == 0x0403_4B50, let localName = u16(offset + 26), let localExtra = u16(offset + 28) {
                if let problem = zip64Values(offset + 30 + localName, localExtra, "\(what)'s local header").problem { return problem }
            }
            p += 46 + nameLength + extraLength + commentLength
            k += 1
        }
        return nil
    }
}
