import Foundation

/// What a state dict's pickle may hold: the values `torch.save(model.state_dict())` writes.
indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int64)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleValue])
    case list([PickleValue])
    case dict([(PickleValue, PickleValue)])
    /// A global the unpickler allows, by `module.name`.
    case global(String)
    /// A persistent id `('storage', storage class, key, location, numel)`.
    case storage(type: String, key: String, count: Int)
    /// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`.
    case tensor(TensorRef)
    case mark
}

/// A tensor in a torch zip: which storage record holds it and how.
struct TensorRef {
    var storageType: String
    var key: String
    var storageCount: Int
    var offset: Int
    var size: [Int]
    var stride: [Int]
}

/// A pickle reader that knows only the opcodes and globals a state dict uses, and never runs
/// code from the file: `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`,
/// `torch._utils._rebuild_parameter` and the storage classes. Any other global is refused by
/// name before anything is called (torch.load without weights_only would import and call it).
struct RestrictedUnpickler {
    static let storageTypes: Set<String> = [
        "torch.FloatStorage", "torch.HalfStorage", "torch.BFloat16Storage", "torch.DoubleStorage",
        "torch.LongStorage", "torch.IntStorage", "torch.ShortStorage", "torch.CharStorage",
        "torch.ByteStorage", "torch.BoolStorage",
    ]
    static let allowedGlobals: Set<String> = storageTypes.union([
        "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
    ])

    let data: [UInt8]
    let file: String
    var position = 0
    var stack: [PickleValue] = []
    var memo: [Int: PickleValue] = [:]

    init(data: [UInt8], file: String) {
        self.data = data
        self.file = file
    }

    struct Refused: Error, CustomStringConvertible { let description: String }
    func fail(_ message: String) -> Refused { Refused(description: "\(file): \(message)") }

    mutating func byte() throws -> UInt8 {
        guard position < data.count else { throw fail("pickle ends early at byte \(position)") }
        defer { position += 1 }
        return data[position]
    }

    mutating func bytes(_ n: Int) throws -> ArraySlice<UInt8> {
        // Every declared length is bounded by what is left of the pickle.
        guard n >= 0, n <= data.count - position else { throw fail("pickle declares \(n) bytes at byte \(position) but has \(data.count - position) left") }
        defer { position += n }
        return data[position..<(position + n)]
    }

    mutating func le(_ n: Int) throws -> UInt64 {
        var v: UInt64 = 0
        for (k, b) in try bytes(n).enumerated() { v |= UInt64(b) << (8 * UInt64(k)) }
        return v
    }

    mutating func line() throws -> String {
        guard let end = data[position...].firstIndex(of: 0x0A), end - position < 256 else { throw fail("bad GLOBAL at byte \(position)") }
        defer { position = end + 1 }
        return String(decoding: data[position..<end], as: UTF8.self)
    }

    mutating func pop() throws -> PickleValue {
        guard let v = stack.popLast() else { throw fail("pickle stack underflow at byte \(position)") }
        return v
    }

    /// Values above the topmost MARK (which is removed).
    mutating func popMark() throws -> [PickleValue] {
        guard let k = stack.lastIndex(where: { if case .mark = $0 { return true }; return false }) else {
            throw fail("pickle has no MARK at byte \(position)")
        }
        let items = Array(stack[(k + 1)...])
        stack.removeSubrange(k...)
        return items
    }

    mutating func push(_ v: PickleValue) throws {
        guard stack.count < 100_000 else { throw fail("pickle stack deeper than 100000") }
        stack.append(v)
    }

    /// Reads the whole pickle and returns its value.
    mutating func load() throws -> PickleValue {
        while true {
            let at = position
            let op = try byte()
            switch op {
            case 0x80: _ = try byte()                                   // PROTO
            case 0x95: _ = try bytes(8)                                 // FRAME
            case 0x2E: return try pop()                                 // STOP
            case 0x7D: try push(.dict([]))                              // EMPTY_DICT
            case 0x5D: try push(.list([]))                              // EMPTY_LIST
            case 0x29: try push(.tuple([]))                             // EMPTY_TUPLE
            case 0x28: try push(.mark)                                  // MARK
            case 0x4E: try push(.none)                                  // NONE
            case 0x88: try push(.bool(true))                            // NEWTRUE
            case 0x89: try push(.bool(false))                           // NEWFALSE
            case 0x4B: try push(.int(Int64(try byte())))                // BININT1
            case 0x4D: try push(.int(Int64(try le(2))))                 // BININT2
            case 0x4A: try push(.int(Int64(Int32(truncatingIfNeeded: try le(4)))))  // BININT
            case 0x8A:                                                  // LONG1
                let n = Int(try byte())
                guard n <= 8 else { throw fail("integer of \(n) bytes at byte \(at) is too large") }
                let raw = try bytes(n)
                var v: Int64 = 0
                for (k, b) in raw.enumerated() { v |= Int64(b) << (8 * Int64(k)) }
                if n > 0, n < 8, raw.last! & 0x80 != 0 { v -= Int64(1) << (8 * Int64(n)) }
                try push(.int(v))
            case 0x47: try push(.float(Double(bitPattern: UInt64(bigEndian: UInt64(littleEndianBytes: try bytes(8))))))  // BINFLOAT
            case 0x58: try push(.string(String(decoding: try bytes(Int(try le(4))), as: UTF8.self)))     // BINUNICODE
            case 0x8C: try push(.string(String(decoding: try bytes(Int(try byte())), as: UTF8.self)))    // SHORT_BINUNICODE
            case 0x8D: try push(.string(String(decoding: try bytes(Int(clamping: try le(8))), as: UTF8.self)))  // BINUNICODE8
            case 0x43: try push(.bytes(Array(try bytes(Int(try byte())))))    // SHORT_BINBYTES
            case 0x42: try push(.bytes(Array(try bytes(Int(try le(4))))))     // BINBYTES
            case 0x71: memo[Int(try byte())] = stack.last ?? PickleValue.none            // BINPUT
            case 0x72: memo[Int(try le(4))] = stack.last ?? PickleValue.none             // LONG_BINPUT
            case 0x94: memo[memo.count] = stack.last ?? PickleValue.none                 // MEMOIZE
            case 0x68, 0x6A:                                                  // BINGET, LONG_BINGET
                let k = op == 0x68 ? Int(try byte()) : Int(try le(4))
                guard let v = memo[k] else { throw fail("pickle refers to memo \(k), which was never stored") }
                try push(v)
            case 0x85: try push(.tuple([try pop()]))                          // TUPLE1
            case 0x86: let b = try pop(), a = try pop(); try push(.tuple([a, b]))  // TUPLE2
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); try push(.tuple([a, b, c]))  // TUPLE3
            case 0x74: try push(.tuple(try popMark()))                        // TUPLE
            case 0x63:                                                        // GLOBAL
                let name = try line() + "." + line()
                guard Self.allowedGlobals.contains(name) else {
                    throw fail("refused: the pickle names global \(name), which a state dict never needs (only OrderedDict, tensors and storages are read; nothing from the file is run)")
                }
                try push(.global(name))
            case 0x93:                                                        // STACK_GLOBAL
                guard case let .string(n) = try pop(), case let .string(m) = try pop() else { throw fail("bad STACK_GLOBAL at byte \(at)") }
                let name = m + "." + n
                guard Self.allowedGlobals.contains(name) else {
                    throw fail("refused: the pickle names global \(name), which a state dict never needs (only OrderedDict, tensors and storages are read; nothing from the file is run)")
                }
                try push(.global(name))
            case 0x51:                                                        // BINPERSID
                guard case let .tuple(t) = try pop(), t.count >= 5, case .string("storage") = t[0],
                      case let .global(type) = t[1], Self.storageTypes.contains(type),
                      case let .string(key) = t[2], case let .int(count) = t[4], count >= 0 else {
                    throw fail("unexpected persistent id at byte \(at) (only torch storages are read)")
                }
                try push(.storage(type: type, key: key, count: Int(count)))
            case 0x52:                                                        // REDUCE
                let args = try pop(), callable = try pop()
                try push(try reduce(callable, args, at: at))
            case 0x81:                                                        // NEWOBJ
                let args = try pop(), cls = try pop()
                try push(try reduce(cls, args, at: at))
            case 0x62:                                                        // BUILD: OrderedDict state (_metadata) is ignored
                _ = try pop()
            case 0x73:                                                        // SETITEM
                let v = try pop(), k = try pop()
                guard case var .dict(items) = try pop() else { throw fail("SETITEM on a non-dict at byte \(at)") }
                items.append((k, v)); try push(.dict(items))
            case 0x75:                                                        // SETITEMS
                let kv = try popMark()
                guard kv.count % 2 == 0, case var .dict(items) = try pop() else { throw fail("SETITEMS on a non-dict at byte \(at)") }
                for k in stride(from: 0, to: kv.count, by: 2) { items.append((kv[k], kv[k + 1])) }
                try push(.dict(items))
            case 0x61:                                                        // APPEND
                let v = try pop()
                guard case var .list(items) = try pop() else { throw fail("APPEND on a non-list at byte \(at)") }
                items.append(v); try push(.list(items))
            case 0x65:                                                        // APPENDS
                let vs = try popMark()
                guard case var .list(items) = try pop() else { throw fail("APPENDS on a non-list at byte \(at)") }
                items += vs; try push(.list(items))
            default:
                throw fail(String(format: "refused: pickle opcode 0x%02x at byte %d is not one a state dict uses", op, at))
            }
        }
    }

    func reduce(_ callable: PickleValue, _ args: PickleValue, at: Int) throws -> PickleValue {
        guard case let .global(name) = callable, case let .tuple(a) = args else { throw fail("REDUCE of something that is not an allowed global at byte \(at)") }
        switch name {
        case "collections.OrderedDict": return .dict([])
        case "torch._utils._rebuild_parameter":
            guard let first = a.first else { throw fail("bad _rebuild_parameter at byte \(at)") }
            return first
        case "torch._utils._rebuild_tensor_v2":
            guard a.count >= 4, case let .storage(type, key, count) = a[0], case let .int(offset) = a[1],
                  case let .tuple(size) = a[2], case let .tuple(stride) = a[3] else { throw fail("bad _rebuild_tensor_v2 at byte \(at)") }
            func ints(_ t: [PickleValue]) throws -> [Int] {
                try t.map { guard case let .int(v) = $0, v >= 0, v < Int64(Int32.max) else { throw fail("bad tensor size at byte \(at)") }; return Int(v) }
            }
            return .tensor(TensorRef(storageType: type, key: key, storageCount: count, offset: Int(offset),
                                     size: try ints(size), stride: try ints(stride)))
        default:
            throw fail("refused: REDUCE of \(name)")
        }
    }
}

extension UInt64 {
    /// Eight bytes as stored in a pickle's BINFLOAT (big-endian), read here in order.
    init(littleEndianBytes b: ArraySlice<UInt8>) {
        var v: UInt64 = 0
        for (k, x) in b.enumerated() { v |= UInt64(x) << (8 * UInt64(k)) }
        self = v
    }
}
