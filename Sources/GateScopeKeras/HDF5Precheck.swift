import Foundation

/// Checks an HDF5 file's global heap collections before libhdf5 sees the file.
///
/// Keras stores its strings (`model_config`, weight names) as variable-length strings, whose
/// bytes live in global heap collections ("GCOL"). libhdf5 1.10 trusts a collection's sizes
/// when it loads one (H5HG__cache_heap_deserialize):
/// - a free-space object of size 0 makes its object walk stop advancing: 100% CPU forever;
/// - an object larger than its collection makes H5HG_read copy from past the buffer: a crash;
/// - the collection size is allocated as declared: 14 KB files asked for 2.9 GB.
/// Found by fuzzing (scripts/fuzz.sh, harnesses h5 and keras-zip). This check walks every
/// collection in the file the way libhdf5 would and refuses the file, in one line naming the
/// offset, if any walk would not end inside its collection or the collection inside the file.
///
/// A collection starts with "GCOL" and version 1, wherever the file puts it, so the whole file
/// is searched for that signature; a match inside unrelated data that does not walk cleanly is
/// refused too (the chance that 5 given bytes and a plausible size appear by accident is tiny).
enum HDF5Precheck {
    /// What the walk learned: each collection's objects, for checking string references later.
    struct Heaps: Sendable {
        /// Where the superblock is (file addresses are relative to it) and its field widths.
        var base: Int
        var offsetSize: Int
        var lengthSize: Int
        /// Collection (file address, relative to `base`) -> object index -> object size.
        var objects: [UInt64: [UInt64: UInt64]] = [:]
    }

    /// Refuses `bytes` (the whole file) with a `KerasError.corrupt` naming `name` and the offset;
    /// nil when there is no superblock (libhdf5 then refuses the file itself).
    static func check(_ bytes: UnsafeRawBufferPointer, name: String) throws -> Heaps? {
        guard let base = bytes.baseAddress, let superblock = superblock(bytes) else { return nil }
        var heaps = Heaps(base: superblock.at, offsetSize: superblock.offsets, lengthSize: superblock.lengths)
        let lengthSize = superblock.lengths
        let count = bytes.count
        let header = 8 + lengthSize            // "GCOL", version, 3 reserved, collection size
        let objectHeader = 8 + lengthSize      // index u16, refcount u16, reserved u32, size
        var offset = 0
        let signature: [UInt8] = [0x47, 0x43, 0x4F, 0x4C, 0x01]  // "GCOL", version 1
        while offset + 5 <= count {
            guard let hit = memchr(base + offset, 0x47, count - offset - 4) else { break }
            let start = base.distance(to: UnsafeRawPointer(hit))
            offset = start + 1
            guard memcmp(base + start, signature, 5) == 0 else { continue }
            func refuse(_ what: String) -> KerasError {
                KerasError.corrupt(file: name, reason: "the global heap collection at byte \(start) \(what) (libhdf5 would loop or read past it)")
            }
            guard start + header <= count else { throw refuse("is cut off by the end of the file") }
            let size = decode(bytes, at: start + 8, width: lengthSize)
            guard size >= UInt64(header), size <= UInt64(count - start) else {
                throw refuse("declares \(size) bytes, more than the \(count - start) left in the file")
            }
            let end = start + Int(size)
            var p = start + header
            var objects: [UInt64: UInt64] = [:]
            while p < end {
                if p + objectHeader > end { break }  // a tail too small for an object: free space
                let index = decode(bytes, at: p, width: 2)
                let objectSize = decode(bytes, at: p + 8, width: lengthSize)
                let room = UInt64(end - p)
                if index == 0 {
                    // Free space: libhdf5 advances by its size alone.
                    guard objectSize > 0, objectSize <= room else {
                        throw refuse("has a free-space entry of \(objectSize) bytes at byte \(p), with \(room) left")
                    }
                    p += Int(objectSize)
                } else {
                    let aligned = (objectSize &+ 7) & ~7
                    guard objectSize <= room, aligned <= room - UInt64(objectHeader) else {
                        throw refuse("has object \(index) of \(objectSize) bytes at byte \(p), with \(room) left")
                    }
                    // Two objects with one index make H5HG_read copy the wrong one's bytes.
                    guard objects.updateValue(objectSize, forKey: index) == nil else {
                        throw refuse("has two objects with index \(index)")
                    }
                    p += objectHeader + Int(aligned)
                }
            }
            if start >= superblock.at { heaps.objects[UInt64(start - superblock.at)] = objects }
        }
        return heaps
    }

    /// The superblock at 0, 512, 1024, ...: its offset and "size of offsets" / "size of
    /// lengths" (2, 4, 8 or 16); nil if there is none.
    static func superblock(_ bytes: UnsafeRawBufferPointer) -> (at: Int, offsets: Int, lengths: Int)? {
        var at = 0
        while at + 16 <= bytes.count {
            if bytes[at..<(at + 8)].elementsEqual(HDF5Lib.signature) {
                let version = bytes[at + 8]
                let field = version <= 1 ? at + 13 : at + 9
                guard field + 1 < bytes.count else { return nil }
                let offsets = Int(bytes[field]), lengths = Int(bytes[field + 1])
                guard [2, 4, 8].contains(offsets), [2, 4, 8].contains(lengths) else { return nil }
                return (at, offsets, lengths)
            }
            at = at == 0 ? 512 : at * 2
        }
        return nil
    }

    /// Checks the object header at `header` (relative file address) before libhdf5 decodes its
    /// attributes: every attribute message's name, datatype and dataspace must fit inside the
    /// message (libhdf5 copies the name by its declared size: a heap over-read found by fuzzing),
    /// and variable-length strings must point at objects of checked collections whose size is the
    /// string's length, because libhdf5 allocates the length it reads (a 14 KB file asked for
    /// 3 GB) and copies the object's size into that buffer.
    /// Version-1 object headers only (what h5py writes by default); others are left to libhdf5.
    static func checkObjectHeader(_ bytes: UnsafeRawBufferPointer, heaps: Heaps, header: UInt64,
                                  name: String, path: String) throws {
        let count = bytes.count
        func refuse(_ what: String) -> KerasError {
            KerasError.unreadableObject(file: name, path: path, reason: what + " (corrupt file?)")
        }
        func u16(_ at: Int) -> Int { Int(decode(bytes, at: at, width: 2)) }
        guard header < UInt64(count), heaps.base + Int(header) + 16 <= count else { throw refuse("its object header is outside the file") }
        let start = heaps.base + Int(header)
        guard bytes[start] == 1 else { return }
        var blocks = [(start + 16, Int(decode(bytes, at: start + 8, width: 4)))]
        var visited = Set<Int>()
        var messages = 0
        while let (blockStart, blockSize) = blocks.popLast() {
            guard visited.insert(blockStart).inserted else { continue }
            guard blockSize >= 0, blockStart <= count, blockSize <= count - blockStart else { throw refuse("a header block lies outside the file") }
            var p = blockStart
            let blockEnd = blockStart + blockSize
            while p + 8 <= blockEnd {
                messages += 1
                guard messages <= 1 << 16 else { throw refuse("its object header has too many messages") }
                let type = u16(p), size = u16(p + 2)
                let data = p + 8
                guard size <= blockEnd - data else { throw refuse("a header message runs past its block") }
                if type == 0x10 {  // continuation
                    guard size >= heaps.offsetSize + heaps.lengthSize else { throw refuse("a header continuation is cut off") }
                    let offset = decode(bytes, at: data, width: heaps.offsetSize)
                    let length = decode(bytes, at: data + heaps.offsetSize, width: heaps.lengthSize)
                    guard offset < UInt64(count), length < UInt64(count) else { throw refuse("a header continuation lies outside the file") }
                    blocks.append((heaps.base + Int(offset), Int(length)))
                } else if type == 0x0C {
                    guard size >= 8 else { throw refuse("an attribute message is cut off") }
                    try checkAttributeMessage(bytes, heaps: heaps, data: data, end: data + size, refuse: refuse)
                }
                p = data + size
            }
        }
    }

    private static func checkAttributeMessage(_ bytes: UnsafeRawBufferPointer, heaps: Heaps, data: Int, end: Int,
                                              refuse: (String) -> KerasError) throws {
        func u16(_ at: Int) -> Int { Int(decode(bytes, at: at, width: 2)) }
        let version = bytes[data]
        let nameSize = u16(data + 2), typeSize = u16(data + 4), spaceSize = u16(data + 6)
        let pad = { (n: Int) in version == 1 ? (n + 7) & ~7 : n }
        let nameAt = version == 3 ? data + 9 : data + 8
        let typeAt = nameAt + pad(nameSize), spaceAt = typeAt + pad(typeSize), rawAt = spaceAt + pad(spaceSize)
        guard nameSize >= 1, typeSize >= 8, rawAt <= end else { throw refuse("an attribute's name, type and shape do not fit in its message") }
        let stored = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[nameAt..<(nameAt + nameSize - 1)]), as: UTF8.self)
        // A shared datatype or dataspace (flags of versions 2 and 3) is a reference, not the
        // description: leave such attributes to libhdf5 (h5py does not write them by default).
        if version >= 2, bytes[data + 1] & 0x03 != 0 { return }
        // Dataspace: version 1 has 5 reserved bytes before the dimensions, version 2 a type byte.
        let spaceVersion = bytes[spaceAt], rank = Int(bytes[spaceAt + 1])
        guard spaceSize >= 4 else { throw refuse("attribute '\(InputSafe.clip(stored))': its dataspace is cut off") }
        var points: UInt64 = 1
        if spaceVersion >= 2, bytes[spaceAt + 3] == 2 { points = 0 }  // null dataspace
        let dimsAt = spaceVersion == 1 ? spaceAt + 8 : spaceAt + 4
        guard dimsAt + rank * heaps.lengthSize <= spaceAt + spaceSize else { throw refuse("attribute '\(InputSafe.clip(stored))': its dataspace is cut off") }
        for k in 0..<rank {
            let (product, overflow) = points.multipliedReportingOverflow(by: decode(bytes, at: dimsAt + k * heaps.lengthSize, width: heaps.lengthSize))
            guard !overflow else { throw refuse("attribute '\(InputSafe.clip(stored))': its dataspace declares more values than can exist") }
            points = product
        }
        try checkDatatype(bytes, at: typeAt, size: typeSize, depth: 0) {
            refuse("attribute '\(InputSafe.clip(stored))' " + $0)
        }
        // Every value is stored in the message (libhdf5 copies points x size bytes out of it):
        // variable-length values as a length and a heap reference, others at the type's size.
        let isVariable = bytes[typeAt] & 0x0F == 9
        let referenceSize = 4 + heaps.offsetSize + 4
        let declaredSize = decode(bytes, at: typeAt + 4, width: 4)
        // libhdf5 moves variable-length values at the declared size: it must be a reference's.
        guard !isVariable || declaredSize == UInt64(referenceSize) else {
            throw refuse("attribute '\(InputSafe.clip(stored))' is variable-length with a \(declaredSize)-byte value, not \(referenceSize)")
        }
        let valueSize = isVariable ? UInt64(referenceSize) : max(declaredSize, 1)
        let (valueBytes, tooMany) = points.multipliedReportingOverflow(by: valueSize)
        guard !tooMany, valueBytes <= UInt64(end - rawAt) else {
            throw refuse("attribute '\(InputSafe.clip(stored))' declares \(points) values of \(valueSize) bytes, more than its \(end - rawAt) bytes of data")
        }
        guard isVariable, typeSize >= 16 else { return }
        // The variable-length base type follows the 8-byte datatype header.
        let baseSize = decode(bytes, at: typeAt + 8 + 4, width: 4)
        for k in 0..<Int(points) {
            let at = rawAt + k * referenceSize
            let length = decode(bytes, at: at, width: 4)
            let collection = decode(bytes, at: at + 4, width: heaps.offsetSize)
            // Only address 0 is a null string; any other is read from its heap, whatever the length.
            guard collection != 0 else { continue }
            let index = decode(bytes, at: at + 4 + heaps.offsetSize, width: 4)
            guard let objects = heaps.objects[collection], let objectSize = objects[index] else {
                throw refuse("attribute '\(InputSafe.clip(stored))': string \(k) refers to object \(index) of a global heap collection at \(collection) that does not exist")
            }
            let (bytesNeeded, overflow) = length.multipliedReportingOverflow(by: max(baseSize, 1))
            guard !overflow, bytesNeeded == objectSize else {
                throw refuse("attribute '\(InputSafe.clip(stored))': string \(k) declares \(length) characters, its heap object holds \(objectSize) bytes")
            }
        }
    }

    /// A datatype message that libhdf5 can decode without reading past it: the classes Keras
    /// and h5py write for attributes and weights (integers, floats, strings, bitfields,
    /// references, variable-length of those), with their properties inside `size` bytes.
    /// Enumerations, compounds, arrays and opaque types are refused: their nested descriptions
    /// are where fuzzing found libhdf5 reading past the message (H5T_copy_reopen).
    static func checkDatatype(_ bytes: UnsafeRawBufferPointer, at: Int, size: Int, depth: Int,
                              refuse: (String) -> KerasError) throws {
        guard size >= 8, at + size <= bytes.count, depth < 4 else { throw refuse("has a datatype cut off") }
        let typeClass = bytes[at] & 0x0F
        // Properties after the 8-byte header, per class (HDF5 file format, datatype message).
        let properties: [UInt8: Int] = [0: 4, 1: 12, 2: 2, 3: 0, 4: 4, 7: 0]
        if let need = properties[typeClass] {
            guard size >= 8 + need else { throw refuse("has a datatype of class \(typeClass) cut off") }
            return
        }
        guard typeClass == 9 else {
            let names: [UInt8: String] = [5: "opaque", 6: "compound", 8: "enumeration", 10: "array"]
            throw refuse("has a datatype (\(names[typeClass] ?? "class \(typeClass)")) that gatescope does not read")
        }
        // Variable-length: the base type follows, with its own 8-byte header and properties.
        try checkDatatype(bytes, at: at + 8, size: size - 8, depth: depth + 1, refuse: refuse)
    }

    /// Names quoted from the file: control characters escaped, cut short.
    enum InputSafe {
        static func clip(_ text: String) -> String {
            let cleaned = String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : Character($0) })
            return cleaned.count > 40 ? String(cleaned.prefix(40)) + "..." : cleaned
        }
    }

    /// A little-endian unsigned integer of `width` bytes (wider than 8: the high bytes must be 0).
    static func decode(_ bytes: UnsafeRawBufferPointer, at offset: Int, width: Int) -> UInt64 {
        var value: UInt64 = 0
        for k in 0..<min(width, 8) { value |= UInt64(bytes[offset + k]) << (8 * UInt64(k)) }
        if width > 8, (8..<width).contains(where: { bytes[offset + $0] != 0 }) { return .max }
        return value
    }
}
