import Testing
@testable import GateScopeStore

/// The word-by-word Int128 <-> Double conversions behind the pair correlations equal the
/// standard library's.
@Suite struct Int128ConversionTests {
    @Test func nearestDoubleEqualsTheStandardConversion() {
        var rng = SplitMix(128)
        var values: [Int128] = [0, 1, -1, Int128(Int64.max), Int128(Int64.min), Int128(Int64.max) + 1, Int128(Int64.min) - 1,
                                .max, .min, .max - 1, .min + 1,
                                // ties at 53 bits: 2^53 + 1, 2^64 + 2^11, 2^64 + 2^11 + 1, 2^100 + 2^47 (+/- 1)
                                (1 << 53) + 1, (1 << 64) + (1 << 11), (1 << 64) + (1 << 11) + 1, (1 << 64) + (3 << 11),
                                (1 << 100) + (1 << 47), (1 << 100) + (1 << 47) + 1, (1 << 100) + (1 << 47) - 1]
        for _ in 0..<20_000 {
            let bits = rng.int(0..<127)
            let v = Int128(truncatingIfNeeded: rng.next()) << 64 | Int128(rng.next())
            let shifted = v >> (127 - bits)
            values.append(rng.int(0..<2) == 0 ? shifted : 0 - shifted)
        }
        for v in values + values.map({ 0 &- $0 }) {
            #expect(v.nearestDouble.bitPattern == Double(v).bitPattern, "\(v)")
            let d = Double(v)
            if d.magnitude < 0x1p127 { #expect(Int128(exactly: d) == Int128(d), "\(d)") }
        }
    }
}
