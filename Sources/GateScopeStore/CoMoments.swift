import CSummaries
import CSQLite
import Foundation

/// The co-moment `Σ h_a h_b` of two units of one layer half, kept exactly and independent of the
/// order the steps are added in, so that recording, a resumed run, merged shards and a full scan
/// of the rows all give bit-identical correlations.
///
/// Each h is quantized to a multiple of 2^-40 (`q(h) = round(h * 2^40)`, exact for every Float32
/// with |h| >= 2^-16, off by at most 2^-41 below) and the integer products are summed in an Int128.
public enum PairMoments {
    /// 2^40: the quantum of h is 2^-40.
    static let scale = 1_099_511_627_776.0

    /// `round(h * 2^40)`; valid for |h| < 2^23 (recording keeps pairs only when every |h| <= 1).
    @inline(__always)
    public static func quantized(_ h: Double) -> Int64 { Int64((h * scale).rounded(.toNearestOrEven)) }

    /// Pearson r of two units from their step count and the quantized sums Σq(a), Σq(b), Σq(a)²,
    /// Σq(b)² and Σq(a)q(b), in double-double arithmetic (the 2^-40 scale cancels); nil when either
    /// unit's h is constant. Clamped to [-1, 1].
    public static func correlation(n: Int64, sumA: Int128, sumB: Int128, sumSqA: Int128, sumSqB: Int128, sumAB: Int128) -> Double? {
        guard n > 1 else { return nil }
        let count = DoubleDouble(Double(n))
        let sa = DoubleDouble(int128: sumA), sb = DoubleDouble(int128: sumB)
        let cov = count * DoubleDouble(int128: sumAB) - sa * sb
        let va = count * DoubleDouble(int128: sumSqA) - sa * sa
        let vb = count * DoubleDouble(int128: sumSqB) - sb * sb
        guard va.value > 0, vb.value > 0 else { return nil }
        let r = cov.value / (va.value.squareRoot() * vb.value.squareRoot())
        return Swift.max(-1, Swift.min(1, r))
    }

    /// The `sum_ab` blob: 16 bytes, little-endian two's complement.
    public static func encoded(_ v: Int128) -> Data {
        withUnsafeBytes(of: v.littleEndian) { Data($0) }
    }

    /// Reads `encoded(_:)`; nil when the blob is not 16 bytes.
    public static func decoded(_ data: Data) -> Int128? {
        guard data.count == 16 else { return nil }
        return data.withUnsafeBytes { Int128(littleEndian: $0.loadUnaligned(as: Int128.self)) }
    }
}

extension DoubleDouble {
    /// An Int128 to about 106 bits.
    init(int128 v: Int128) {
        let hi = v.nearestDouble
        // hi is within 2^75 of v for |v| < 2^127, so the remainder fits an Int128 and is exact in a
        // Double to 53 bits.
        let rest = v - Int128(exactly: hi)
        self = DoubleDouble(hi) + DoubleDouble(rest.nearestDouble)
    }
}

// The standard library converts between Int128 and Double through its generic algorithm, which
// costs a microsecond a call and made writing a layer's pair correlations slower than recording
// them. These two do the same on 64-bit words.
extension Int128 {
    /// The nearest Double (ties to even), as `Double(self)`.
    var nearestDouble: Double {
        let low = UInt64(truncatingIfNeeded: self), high = Int64(truncatingIfNeeded: self >> 64)
        if high == Int64(bitPattern: low) >> 63 { return Double(Int64(bitPattern: low)) }
        let magnitude = self < 0 ? UInt128(bitPattern: 0 &- self) : UInt128(bitPattern: self)
        let shift = 64 - magnitude.leadingZeroBitCount
        // The top 64 bits, with a sticky bit for whatever is below them: Double(UInt64) then
        // rounds to 53 bits as the whole number would.
        let top = UInt64(truncatingIfNeeded: magnitude >> shift) | (magnitude & ((1 << shift) - 1) != 0 ? 1 : 0)
        let d = Double(top) * Double(sign: .plus, exponent: shift, significand: 1)
        return self < 0 ? -d : d
    }

    /// The integer `d` (a whole number with |d| < 2^127), as `Int128(d)`.
    init(exactly d: Double) {
        if d.magnitude < 0x1p63 { self = Int128(Int64(d)); return }
        let m = Int128(Int64(bitPattern: d.significandBitPattern | (1 << 52)))
        let v = m << (Int(d.exponent) - 52)
        self = d < 0 ? 0 - v : v
    }
}

/// Accumulates `Σ q(h_a) q(h_b)` for every pair of units of each recorded layer half (the
/// recorder's side; `PairScan` is the row-by-row side with the same result).
///
/// h is split into integer halves `q = A1 * 2^20 + A0` (A0 the low 20 bits) stored as Doubles, and
/// three symmetric rank-K updates (`gs_syrk_upper_exact`) sum A1ᵀA1, A0ᵀA0 and SᵀS for S = A1 + A0,
/// whose pair terms less the other two are the cross terms A1_a A0_b + A0_a A1_b: three products a
/// pair and step where [A1 | A0]ᵀ[A1 | A0] took four. |S| < 2^21, so each product is below 2^42 and
/// at most 2048 of them are summed before they move to Int128 totals: every partial sum is an
/// integer below 2^53, exact in whatever order it adds. A layer whose h leaves [-1, 1] (a ReLU
/// SimpleRNN), or with more than `maxUnits` units, keeps no pairs: queries then scan its rows.
///
/// On a CPU with AVX-512 IFMA (`integerProducts`), h is staged as `q + 2^40` in [0, 2^41] instead,
/// and `gs_pairs_ifma` sums the low and high 52 bits of each product in UInt64s (exact for 4096
/// rows): two instructions a pair and step, where the Double halves take three. The flush removes the offset with
/// the unit sums: Σ q_a q_b = Σ q'_a q'_b - 2^40 (Σ q_a + Σ q_b) - n 2^80. Both give the same totals.
public final class PairAccumulator {
    /// Largest layer for which pairs are kept (3u^2 Doubles of block sums).
    public static let maxUnits = 2048
    static let flushRows = 2048
    static let integerFlushRows = 4096
    static let stageRows = 256

    final class Layer {
        let units: Int
        let plane: Int
        let width: Int
        var valid: Bool
        var stage: [Double]     // [3, stageRows, u]: A1 of each staged step, then A0, then S = A1 + A0
        var staged = 0
        var block: [Double]     // [3, u, u], upper triangles: Σ A1ᵀA1, A0ᵀA0, SᵀS since the last flush
        let integer: Bool       // IFMA: stageQ and the halves below instead of stage and block
        var stageQ: [UInt64]    // [stageRows, u]: q + 2^40 of each staged step
        var low: [UInt64]       // [u, u], upper triangle: Σ of the products' low 52 bits since the last flush
        var high: [UInt64]      // the same of their bits from 52 on
        var sinceFlush = 0
        var totals: [Int128]    // pair (a, b), a < b, at pairIndex(a, b)
        var unitSum: [Int64]    // Σq per unit since the last flush (below 2^53)
        var sum: [Int128]       // Σq per unit
        var sumSq: [Int128]     // Σq² per unit
        var steps: Int64 = 0
        var path: Int32 = 0     // the C loops' path of the last add, for the products it drains

        init(units: Int, plane: Int, width: Int, integer: Bool) {
            self.units = units
            self.plane = plane
            self.width = width
            self.integer = integer
            valid = units <= PairAccumulator.maxUnits
            let n = valid ? units : 0
            stage = [Double](repeating: 0, count: integer ? 0 : 3 * PairAccumulator.stageRows * n)
            block = [Double](repeating: 0, count: integer ? 0 : 3 * n * n)
            stageQ = [UInt64](repeating: 0, count: integer ? PairAccumulator.stageRows * n : 0)
            low = [UInt64](repeating: 0, count: integer ? n * n : 0)
            high = low
            totals = [Int128](repeating: 0, count: n * Swift.max(n - 1, 0) / 2)
            unitSum = [Int64](repeating: 0, count: n)
            sum = [Int128](repeating: 0, count: n)
            sumSq = [Int128](repeating: 0, count: n)
        }
    }

    let layers: [Layer]

    /// Whether this CPU sums the products in IFMA integer halves (`integerProducts`' default).
    public static let integerProductsAvailable = gs_pairs_ifma_path() != 0

    /// Pairs of h for layers of `units` units whose h is plane `hPlane` of `width` planes;
    /// `integerProducts` picks the 52-bit integer halves over the Double ones (the default where
    /// IFMA runs them; elsewhere portable C computes the same halves, more slowly).
    public init(units: [Int], hPlane: [Int], width: [Int], integerProducts: Bool = integerProductsAvailable) {
        layers = units.indices.map { Layer(units: units[$0], plane: hPlane[$0], width: width[$0], integer: integerProducts) }
    }

    /// Index of pair (a, b), a < b, among the u(u-1)/2 pairs in row order.
    @inline(__always)
    static func pairIndex(_ a: Int, _ b: Int, units u: Int) -> Int { a * (2 * u - a - 1) / 2 + (b - a - 1) }

    /// Adds the active steps of one sequence of layer `li`: `values` is `[steps, units, width]`,
    /// `active[t]` says whether step t was computed. `path` picks the C loops (2: AVX-512, IFMA for the integer sums; 0: portable C), which give the same sums.
    public func add(layer li: Int, steps: Int, values: UnsafePointer<Float>, active: UnsafePointer<Bool>,
                    path: Int32 = gs_summary_path()) {
        let l = layers[li]
        guard l.valid else { return }
        let u = l.units, w = l.width
        l.path = path
        for t in 0..<steps where active[t] {
            // Every h of the step is checked before any is staged, so a layer that turns invalid
            // has staged nothing from this step.
            let h = values + t * u * w + l.plane
            let ok = l.unitSum.withUnsafeMutableBufferPointer { us in
                l.integer
                    ? l.stageQ.withUnsafeMutableBufferPointer { st in
                        gs_pairs_stage_q(path, h, Int32(u), Int32(w), st.baseAddress! + l.staged * u, us.baseAddress!)
                    }
                    : l.stage.withUnsafeMutableBufferPointer { st in
                        gs_pairs_stage(path, h, Int32(u), Int32(w), st.baseAddress! + l.staged * u, Self.stageRows * u, us.baseAddress!)
                    }
            }
            guard ok != 0 else {
                l.valid = false
                return
            }
            l.staged += 1
            l.steps += 1
            if l.staged == Self.stageRows { drain(l) }
        }
    }

    /// Runs the rank-K update of the staged rows; moves the block sums to the totals every `flushRows`.
    func drain(_ l: Layer) {
        guard l.staged > 0 else { return }
        if l.sinceFlush + l.staged > (l.integer ? Self.integerFlushRows : Self.flushRows) { flush(l) }
        defer {
            l.sinceFlush += l.staged
            l.staged = 0
        }
        if l.integer {
            l.stageQ.withUnsafeBufferPointer { a in
                l.low.withUnsafeMutableBufferPointer { lo in
                    l.high.withUnsafeMutableBufferPointer { hi in
                        gs_pairs_ifma(l.path, a.baseAddress!, Int32(l.staged), Int32(l.units), lo.baseAddress!, hi.baseAddress!)
                    }
                }
            }
            return
        }
        let u = l.units, plane = Self.stageRows * u
        l.stage.withUnsafeMutableBufferPointer { a in
            let a1 = a.baseAddress!, a0 = a1 + plane, s = a0 + plane
            for i in 0..<(l.staged * u) { s[i] = a1[i] + a0[i] }
            l.block.withUnsafeMutableBufferPointer { c in
                // C (upper) += Xᵀ X for X = A1, A0, S, each [staged, u] row-major; exact, so any path gives the same.
                for (x, block) in [(a1, 0), (a0, 1), (s, 2)] {
                    gs_syrk_upper_exact(gs_syrk_path(), x, Int32(l.staged), Int32(u), c.baseAddress! + block * u * u)
                }
            }
        }
    }

    /// Adds the block sums to the Int128 totals and clears them.
    func flush(_ l: Layer) {
        if l.integer { return flushIntegers(l) }
        let u = l.units, uu = u * u
        l.block.withUnsafeMutableBufferPointer { c in
            l.totals.withUnsafeMutableBufferPointer { tot in
                for a in 0..<u {
                    for b in a..<u {
                        let p11 = Int128(Int64(c[a * u + b]))            // Σ A1_a A1_b
                        let p00 = Int128(Int64(c[uu + a * u + b]))       // Σ A0_a A0_b
                        let cross = Int128(Int64(c[2 * uu + a * u + b])) - p11 - p00  // Σ A1_a A0_b + A0_a A1_b
                        let product = p11 << 40 + cross << 20 + p00
                        if b == a { l.sumSq[a] += product } else { tot[Self.pairIndex(a, b, units: u)] += product }
                    }
                    l.sum[a] += Int128(l.unitSum[a])
                    l.unitSum[a] = 0
                }
                c.baseAddress!.update(repeating: 0, count: c.count)
            }
        }
        l.sinceFlush = 0
    }

    /// `flush` of the IFMA halves: Σ q'_a q'_b = high 2^52 + low, less the 2^40 offsets.
    func flushIntegers(_ l: Layer) {
        let u = l.units, rows = Int128(l.sinceFlush)
        let offsetSquared = rows << 80                                    // n (2^40)^2
        l.low.withUnsafeMutableBufferPointer { lo in
            l.high.withUnsafeMutableBufferPointer { hi in
                l.totals.withUnsafeMutableBufferPointer { tot in
                    for a in 0..<u {
                        let sa = Int128(l.unitSum[a])
                        @inline(__always) func product(_ b: Int) -> Int128 {
                            Int128(hi[a * u + b]) << 52 + Int128(lo[a * u + b])
                        }
                        for b in (a + 1)..<Swift.max(a + 1, u) {
                            tot[Self.pairIndex(a, b, units: u)] += product(b) - (sa + Int128(l.unitSum[b])) << 40 - offsetSquared
                        }
                        l.sumSq[a] += product(a) - sa << 41 - offsetSquared
                    }
                    for a in 0..<u {
                        l.sum[a] += Int128(l.unitSum[a])
                        l.unitSum[a] = 0
                    }
                }
                lo.update(repeating: 0)
                hi.update(repeating: 0)
            }
        }
        l.sinceFlush = 0
    }

    /// What layer `li` kept, nil when it keeps no pairs.
    public func moments(layer li: Int) -> LayerPairMoments? {
        let l = layers[li]
        guard l.valid else { return nil }
        drain(l)
        flush(l)
        return LayerPairMoments(units: l.units, steps: l.steps, sum: l.sum, sumSq: l.sumSq, pairs: l.totals)
    }
}

/// The quantized moments of h of one layer half: per unit Σq and Σq², per pair Σq(a)q(b).
public struct LayerPairMoments: Equatable, Sendable {
    public var units: Int
    /// Steps added (every unit has one h per step).
    public var steps: Int64
    public var sum: [Int128]
    public var sumSq: [Int128]
    /// u(u-1)/2 pairs in `PairAccumulator.pairIndex` order.
    public var pairs: [Int128]

    /// Pearson r of units a < b.
    public func correlation(_ a: Int, _ b: Int) -> Double? {
        PairMoments.correlation(n: steps, sumA: sum[a], sumB: sum[b], sumSqA: sumSq[a], sumSqB: sumSq[b],
                                sumAB: pairs[PairAccumulator.pairIndex(a, b, units: units)])
    }

    /// Adds another part of the same layer's steps (a shard).
    public mutating func merge(_ o: LayerPairMoments) {
        precondition(o.units == units, "pair moments of \(o.units) units cannot merge into \(units)")
        steps += o.steps
        for k in sum.indices { sum[k] += o.sum[k]; sumSq[k] += o.sumSq[k] }
        for k in pairs.indices { pairs[k] += o.pairs[k] }
    }
}

extension LayerPairMoments {
    /// Writes `unit_h_moments` and `unit_pairs` of one layer half of run `runID`.
    func write(to db: Database, runID: Int64, layerID: Int) throws {
        let unitRow = try db.prepare("INSERT INTO unit_h_moments (run_id, layer_id, unit, n, sum, sum_sq) VALUES (?, ?, ?, ?, ?, ?)")
        for a in 0..<units {
            try unitRow.bind([runID, layerID, a, steps, PairMoments.encoded(sum[a]), PairMoments.encoded(sumSq[a])] as [SQLiteBindable?])
            try unitRow.run()
        }
        let pairRow = try db.prepare("INSERT INTO unit_pairs (run_id, layer_id, unit_a, unit_b, r, sum_ab) VALUES (?, ?, ?, ?, ?, ?)")
        for a in 0..<units {
            for b in (a + 1)..<Swift.max(a + 1, units) {
                try pairRow.bind([runID, layerID, a, b, correlation(a, b),
                                  PairMoments.encoded(pairs[PairAccumulator.pairIndex(a, b, units: units)])] as [SQLiteBindable?])
                try pairRow.run()
            }
        }
    }

    /// The stored moments of one layer half of `units` units; throws when rows are missing or malformed.
    static func load(from db: Database, runID: Int64, layerID: Int, units: Int) throws -> LayerPairMoments {
        var m = LayerPairMoments(units: units, steps: 0, sum: .init(repeating: 0, count: units), sumSq: .init(repeating: 0, count: units),
                                 pairs: .init(repeating: 0, count: units * Swift.max(units - 1, 0) / 2))
        func corrupt(_ what: String) -> DatabaseError {
            DatabaseError(code: SQLITE_CORRUPT, message: "run \(runID) layer \(layerID): \(what)")
        }
        let st = try db.prepare("SELECT unit, n, sum, sum_sq FROM unit_h_moments WHERE run_id = ? AND layer_id = ? ORDER BY unit")
        try st.bind([runID, layerID])
        var seen = 0
        while try st.step() {
            let a = st.int(at: 0)
            guard a == seen, a < units, let s = st.data(at: 2).flatMap(PairMoments.decoded), let q = st.data(at: 3).flatMap(PairMoments.decoded) else {
                throw corrupt("unit_h_moments row for unit \(st.int(at: 0)) is out of place or malformed")
            }
            if a == 0 { m.steps = st.int64(at: 1) } else if m.steps != st.int64(at: 1) { throw corrupt("unit_h_moments counts differ between units") }
            m.sum[a] = s; m.sumSq[a] = q
            seen += 1
        }
        guard seen == units else { throw corrupt("unit_h_moments has \(seen) of \(units) units") }
        let pr = try db.prepare("SELECT unit_a, unit_b, sum_ab FROM unit_pairs WHERE run_id = ? AND layer_id = ? ORDER BY unit_a, unit_b")
        try pr.bind([runID, layerID])
        var k = 0
        while try pr.step() {
            let a = pr.int(at: 0), b = pr.int(at: 1)
            guard a >= 0, b > a, b < units, PairAccumulator.pairIndex(a, b, units: units) == k, let v = pr.data(at: 2).flatMap(PairMoments.decoded) else {
                throw corrupt("unit_pairs row (\(a), \(b)) is out of place or malformed")
            }
            m.pairs[k] = v
            k += 1
        }
        guard k == m.pairs.count else { throw corrupt("unit_pairs has \(k) of \(m.pairs.count) pairs") }
        return m
    }
}
