import Foundation

/// Sums of Float32 values that do not depend on the order they are added in: Σx and Σx² are kept
/// exactly, as integer mantissas in one bucket per binary exponent. Shards of a recording, the
/// partitions of a parallel scan and a resumed run therefore combine (bucket by bucket, exact
/// integer additions) into bit-identical means and variances, which Welford's running update
/// cannot promise. An Int64 bucket takes 2^39 values before it could overflow.
///
/// Many bucket contents hold the same sums (a value may land in one bucket or, as the recorder's
/// fixed-point fast path does, in pieces spread over several), so equality, the encoding and the
/// moments all read the canonical form (`canonical()`), which depends on the sums alone.
public struct ExactSums: Equatable, Sendable {
    /// Σx: value = bucket * 2^(k - 150) (k = the float32 biased exponent; subnormals in bucket 1).
    static let linearCount = 256
    /// Σx²: a squared mantissa (48 bits) is split into two 24-bit halves; value = bucket * 2^(k - 300).
    static let squareCount = 536
    static let width = linearCount + squareCount

    /// `linearCount` then `squareCount` buckets.
    var buckets: [Int64]

    /// No values.
    public init() { buckets = [Int64](repeating: 0, count: Self.width) }

    /// Buckets copied from an accumulator (`width` of them at `p`).
    init(copying p: UnsafePointer<Int64>) { buckets = Array(UnsafeBufferPointer(start: p, count: Self.width)) }

    /// Adds `x` to the buckets at `p` (`width` of them): the recorder's hot path.
    @inline(__always)
    static func add(_ x: Float, into p: UnsafeMutablePointer<Int64>) {
        let bits = x.bitPattern
        var e = Int((bits >> 23) & 0xFF)
        var m = UInt64(bits & 0x7F_FFFF)
        if e == 0 { e = 1 } else { m |= 0x80_0000 }
        p[e] += bits >> 31 == 0 ? Int64(m) : -Int64(m)
        let sq = m * m
        p[linearCount + 2 * e] += Int64(sq & 0xFF_FFFF)
        p[linearCount + 2 * e + 24] += Int64(sq >> 24)
    }

    /// Adds one value.
    public mutating func add(_ x: Float) {
        buckets.withUnsafeMutableBufferPointer { Self.add(x, into: $0.baseAddress!) }
    }

    /// Adds the values of another part.
    public mutating func merge(_ other: ExactSums) {
        for k in buckets.indices { buckets[k] &+= other.buckets[k] }
    }

    /// Adds the buckets at `p` (an accumulator's) to these.
    mutating func merge(_ p: UnsafePointer<Int64>) {
        for k in buckets.indices { buckets[k] &+= p[k] }
    }

    /// Equal sums, whatever buckets they were added in.
    public static func == (a: ExactSums, b: ExactSums) -> Bool { a.canonical().buckets == b.canonical().buckets }

    /// Digits of the canonical form: one bucket every `digitBits` indices.
    static let digitBits = 32

    /// The same sums with every carry taken: each of Σx and Σx² as digits in [0, 2^32) at
    /// indices 0, 32, 64, ... of its range, the top digit keeping what fits below the range's
    /// last index and that last bucket the signed rest.
    public func canonical() -> ExactSums {
        var c = self
        c.buckets.withUnsafeMutableBufferPointer { b in
            Self.normalize(b.baseAddress!, count: Self.linearCount)
            Self.normalize(b.baseAddress! + Self.linearCount, count: Self.squareCount)
        }
        return c
    }

    /// Canonical form of the `count` buckets at `b` (bucket k weighs 2^k there).
    private static func normalize(_ b: UnsafeMutablePointer<Int64>, count: Int) {
        let digits = (count + digitBits - 1) / digitBits
        // Int128 digits hold 32 buckets shifted by up to 31 bits and every carry: no overflow
        // even for hostile stored buckets (|bucket| < 2^63).
        var d = [Int128](repeating: 0, count: digits)
        for k in 0..<count where b[k] != 0 {
            d[k / digitBits] += Int128(b[k]) << (k % digitBits)
            b[k] = 0
        }
        let mask = (Int128(1) << digitBits) - 1
        for j in 0..<(digits - 1) {
            d[j + 1] += d[j] >> digitBits
            d[j] &= mask
            b[j * digitBits] = Int64(d[j])
        }
        let top = (digits - 1) * digitBits, last = count - 1
        let shift = last - top
        b[top] = Int64(d[digits - 1] & ((Int128(1) << shift) - 1))
        // Sums of real values fit; a hostile blob's may not, and wraps rather than trapping.
        b[last] = Int64(truncatingIfNeeded: d[digits - 1] >> shift)
    }

    /// Mean and the sum of squared deviations `m2` of `n` values, from the exact sums in
    /// double-double arithmetic (about 32 digits before the final rounding to Double), read from
    /// the canonical form so that equal sums give equal moments.
    public func moments(n: Int64) -> (mean: Double, m2: Double) {
        guard n > 0 else { return (0, 0) }
        let buckets = canonical().buckets
        var s = DoubleDouble(0), q = DoubleDouble(0)
        for k in 0..<Self.linearCount where buckets[k] != 0 {
            s = s + DoubleDouble(Double(buckets[k]) * Double(sign: .plus, exponent: k - 150, significand: 1))
        }
        for k in 0..<Self.squareCount where buckets[Self.linearCount + k] != 0 {
            q = q + DoubleDouble(Double(buckets[Self.linearCount + k]) * Double(sign: .plus, exponent: k - 300, significand: 1))
        }
        let count = Double(n)
        let mean = s.divided(by: count)
        let m2 = q - (s * s).divided(by: count)
        return (mean.value, Swift.max(0, m2.value))
    }

    /// The nonzero buckets of the canonical form as little-endian (UInt16 index, Int64 value) pairs.
    public func encoded() -> Data {
        var out = Data()
        for (k, v) in canonical().buckets.enumerated() where v != 0 {
            withUnsafeBytes(of: UInt16(k).littleEndian) { out.append(contentsOf: $0) }
            withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
        }
        return out
    }

    /// Reads `encoded()`; nil when the blob is malformed.
    public init?(encoded data: Data) {
        guard data.count % 10 == 0 else { return nil }
        self.init()
        var ok = true
        data.withUnsafeBytes { raw in
            for r in 0..<(data.count / 10) {
                let k = Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: r * 10, as: UInt16.self)))
                guard k < Self.width else { ok = false; return }
                buckets[k] = Int64(littleEndian: raw.loadUnaligned(fromByteOffset: r * 10 + 2, as: Int64.self))
            }
        }
        if !ok { return nil }
    }
}

/// A double-double number (hi + lo, |lo| <= ulp(hi)/2): Dekker and Knuth's error-free sums and products.
struct DoubleDouble {
    var hi: Double
    var lo: Double
    init(_ v: Double) { hi = v; lo = 0 }
    init(hi: Double, lo: Double) { self.hi = hi; self.lo = lo }
    var value: Double { hi + lo }

    static func + (a: DoubleDouble, b: DoubleDouble) -> DoubleDouble {
        let s = a.hi + b.hi
        let bb = s - a.hi
        let err = (a.hi - (s - bb)) + (b.hi - bb) + a.lo + b.lo
        let h = s + err
        return DoubleDouble(hi: h, lo: err - (h - s))
    }

    static prefix func - (a: DoubleDouble) -> DoubleDouble { DoubleDouble(hi: -a.hi, lo: -a.lo) }
    static func - (a: DoubleDouble, b: DoubleDouble) -> DoubleDouble { a + (-b) }

    static func * (a: DoubleDouble, b: DoubleDouble) -> DoubleDouble {
        let p = a.hi * b.hi
        let e = (a.hi * b.hi).isFinite ? Foundation.fma(a.hi, b.hi, -p) : 0
        let lo = e + a.hi * b.lo + a.lo * b.hi
        let h = p + lo
        return DoubleDouble(hi: h, lo: lo - (h - p))
    }

    func divided(by d: Double) -> DoubleDouble {
        let q1 = hi / d
        // remainder r = self - q1 * d, computed exactly enough
        let p = DoubleDouble(q1) * DoubleDouble(d)
        let r = self - p
        let q2 = r.hi / d
        let h = q1 + q2
        return DoubleDouble(hi: h, lo: q2 - (h - q1))
    }
}
