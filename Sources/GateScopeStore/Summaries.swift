import CSQLite
import Foundation

/// One of the six recorded values of an LSTM step, in `gates` column order.
public enum Gate: String, CaseIterable, Sendable, Codable {
    case i, f, g, o, c, h

    /// Position in the `gates` value columns (i = 0 ... h = 5).
    public var column: Int {
        switch self {
        case .i: return 0
        case .f: return 1
        case .g: return 2
        case .o: return 3
        case .c: return 4
        case .h: return 5
        }
    }

    /// The histogram grid in thousandths, `lo*1000 ... hi*1000`: 0...1000 for i, f, o (sigmoid range),
    /// -1000...1000 for g, h (tanh range), nil for c (unbounded: moments only).
    public var grid: ClosedRange<Int>? {
        switch self {
        case .i, .f, .o: return 0...1000
        case .g, .h: return -1000...1000
        case .c: return nil
        }
    }
}

/// Summary of one gate of one unit over a run: count, moments, min/max and an exact fine histogram.
///
/// The histogram has bins of width 1/1000 between edges `e_k = Double(lo + k) / 1000.0`
/// (`lo` = `grid.lowerBound`), plus underflow and overflow; values exactly on an edge are also
/// counted in `edgeEqual`, so `countBelow`/`countAbove` are exact for any threshold on the grid.
/// `std` is the population standard deviation `sqrt(m2 / n)`.
public struct GateSummary: Equatable, Sendable {
    public let gate: Gate
    /// Number of values.
    public var n: Int64 = 0
    /// Running mean (Welford).
    public var mean: Double = 0
    /// Sum of squared deviations from the mean.
    public var m2: Double = 0
    /// Smallest and largest value (+inf / -inf while empty).
    public var min: Double = .infinity
    public var max: Double = -.infinity
    /// `[underflow] + bins + [overflow]`, nil for c.
    public var histogram: [Int64]?
    /// Edge index k -> number of values exactly equal to `edge(k)`.
    public var edgeEqual: [Int: Int64] = [:]

    /// An empty summary.
    public init(gate: Gate) {
        self.gate = gate
        if let grid = gate.grid { histogram = [Int64](repeating: 0, count: grid.count - 1 + 2) }
    }

    /// Number of histogram bins (2 fewer than the blob's counts), 0 for c.
    public var binCount: Int { gate.grid.map { $0.count - 1 } ?? 0 }

    /// Edge k of the grid: `Double(lo + k) / 1000.0`, bit-identical to the parsed decimal.
    @inline(__always)
    public func edge(_ k: Int) -> Double { Double(gate.grid!.lowerBound + k) / 1000.0 }

    /// Population variance `m2 / n` (NaN when empty).
    public var variance: Double { n > 0 ? m2 / Double(n) : .nan }
    /// Population standard deviation `sqrt(m2 / n)` (NaN when empty).
    public var std: Double { variance.squareRoot() }

    /// Adds one value.
    public mutating func add(_ v: Double) {
        n += 1
        let delta = v - mean
        mean += delta / Double(n)
        m2 += delta * (v - mean)
        if v < min { min = v }
        if v > max { max = v }
        guard let grid = gate.grid else { return }
        let (slot, onEdge) = HistogramGrid.locate(v, lo: grid.lowerBound, bins: binCount)
        histogram![slot] += 1
        if let onEdge { edgeEqual[onEdge, default: 0] += 1 }
    }

    /// Count, mean and m2 of two parts of the values combined (Chan et al.'s parallel formula).
    static func mergeMoments(_ a: (n: Int64, mean: Double, m2: Double),
                             _ b: (n: Int64, mean: Double, m2: Double)) -> (n: Int64, mean: Double, m2: Double) {
        guard b.n > 0 else { return a }
        guard a.n > 0 else { return b }
        let total = a.n + b.n
        let delta = b.mean - a.mean
        return (total, a.mean + delta * Double(b.n) / Double(total),
                a.m2 + b.m2 + delta * delta * Double(a.n) * Double(b.n) / Double(total))
    }

    /// Combines with a summary of other values of the same gate (Chan et al.'s parallel formula).
    public mutating func merge(_ other: GateSummary) {
        precondition(other.gate == gate, "cannot merge \(other.gate) into \(gate)")
        guard other.n > 0 else { return }
        guard n > 0 else { self = other; return }
        (n, mean, m2) = Self.mergeMoments((n, mean, m2), (other.n, other.mean, other.m2))
        min = Swift.min(min, other.min)
        max = Swift.max(max, other.max)
        if histogram != nil, let o = other.histogram {
            for k in o.indices { histogram![k] += o[k] }
        }
        for (k, c) in other.edgeEqual { edgeEqual[k, default: 0] += c }
    }

    /// The edge index k with `edge(k) == t` exactly, or nil if `t` is off the grid (or c).
    public func gridIndex(of t: Double) -> Int? {
        guard let grid = gate.grid, t.isFinite else { return nil }
        let scaled = (t * 1000).rounded()
        guard abs(scaled) < 1e9 else { return nil }
        let m = Int(scaled)
        guard grid.contains(m), Double(m) / 1000.0 == t else { return nil }
        return m - grid.lowerBound
    }

    /// Exact number of values `< t` for a threshold on the grid, nil otherwise.
    public func countBelow(_ t: Double) -> Int64? {
        guard let k = gridIndex(of: t), let hist = histogram else { return nil }
        // underflow + bins 0 ..< k (bin j is [e_j, e_j+1), so it lies below e_k for j < k)
        var total: Int64 = 0
        for j in 0...k { total += hist[j] }
        return total
    }

    /// Exact number of values `> t` for a threshold on the grid, nil otherwise.
    public func countAbove(_ t: Double) -> Int64? {
        guard let k = gridIndex(of: t), let below = countBelow(t) else { return nil }
        return n - below - (edgeEqual[k] ?? 0)
    }

    /// The `hist` blob: little-endian Int64 counts, nil for c.
    public func encodedHistogram() -> Data? {
        guard let hist = histogram else { return nil }
        #if _endian(little)
        return hist.withUnsafeBytes { Data($0) }
        #else
        return Data(hist.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } })
        #endif
    }

    /// The `edge_eq` JSON object `{"k": count}` (keys in ascending order), nil for c.
    public func encodedEdgeEqual() -> String? {
        guard gate.grid != nil else { return nil }
        return "{" + edgeEqual.keys.sorted().map { "\"\($0)\":\(edgeEqual[$0]!)" }.joined(separator: ",") + "}"
    }

    /// Rebuilds a summary from a `unit_summaries` row; throws if the blob or JSON is malformed.
    public init(gate: Gate, n: Int64, mean: Double?, m2: Double?, min: Double?, max: Double?,
                histogram: Data?, edgeEqual: String?) throws {
        self.init(gate: gate)
        self.n = n
        self.mean = mean ?? 0
        self.m2 = m2 ?? 0
        self.min = min ?? .infinity
        self.max = max ?? -.infinity
        guard gate.grid != nil else { return }
        let want = binCount + 2
        guard let histogram, histogram.count == want * 8 else {
            throw DatabaseError(code: SQLITE_CORRUPT,
                                message: "unit_summaries: hist of gate \(gate) has \(histogram?.count ?? 0) bytes, expected \(want * 8)")
        }
        var counts = [Int64](repeating: 0, count: want)
        histogram.withUnsafeBytes { raw in
            for k in 0..<want { counts[k] = Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * k, as: Int64.self)) }
        }
        self.histogram = counts
        guard let text = edgeEqual, let data = text.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw DatabaseError(code: SQLITE_CORRUPT, message: "unit_summaries: edge_eq of gate \(gate) is not a JSON object: \(edgeEqual ?? "NULL")")
        }
        for (key, value) in object {
            guard let k = Int(key), (0...binCount).contains(k), let count = (value as? NSNumber)?.int64Value else {
                throw DatabaseError(code: SQLITE_CORRUPT, message: "unit_summaries: bad edge_eq entry \"\(key)\" of gate \(gate)")
            }
            self.edgeEqual[k] = count
        }
    }

    /// The summaries of one run: (layer_id, unit) -> gate -> summary. Empty when the run has none.
    public static func load(from db: Database, runID: Int64) throws -> [UnitKey: [Gate: GateSummary]] {
        let rows = try db.query("""
            SELECT layer_id, unit, gate, n, mean, m2, min, max, hist, edge_eq
            FROM unit_summaries WHERE run_id = ?
            """, [runID])
        var out: [UnitKey: [Gate: GateSummary]] = [:]
        let st = rows.statement
        while try st.step() {
            guard let gate = Gate(rawValue: st.string(at: 2) ?? "") else { continue }
            let key = UnitKey(layerID: st.int(at: 0), unit: st.int(at: 1))
            func opt(_ k: Int) -> Double? { st.isNull(at: k) ? nil : st.double(at: k) }
            out[key, default: [:]][gate] = try GateSummary(
                gate: gate, n: st.int64(at: 3), mean: opt(4), m2: opt(5), min: opt(6), max: opt(7),
                histogram: st.data(at: 8), edgeEqual: st.string(at: 9))
        }
        return out
    }
}

/// A (layer_id, unit) pair.
public struct UnitKey: Hashable, Sendable, Comparable {
    public var layerID: Int
    public var unit: Int
    /// Creates a key.
    public init(layerID: Int, unit: Int) {
        self.layerID = layerID
        self.unit = unit
    }
    public static func < (a: UnitKey, b: UnitKey) -> Bool { (a.layerID, a.unit) < (b.layerID, b.unit) }
}

/// Exact bin placement on a 1/1000 grid.
enum HistogramGrid {
    /// Edge tables for lo = 0 and lo = -1000 (indexed by k), so the hot path does not divide.
    static let edges0: [Double] = (0...1000).map { Double($0) / 1000.0 }
    static let edgesMinus1000: [Double] = (0...2000).map { Double(-1000 + $0) / 1000.0 }

    /// The blob slot of `v` (0 = underflow, 1 + k = bin k, bins + 1 = overflow) and the edge index
    /// it equals exactly, if any.
    @inline(__always)
    static func locate(_ v: Double, lo: Int, bins: Int) -> (slot: Int, onEdge: Int?) {
        lo == 0 ? locate(v, lo: 0, bins: bins, edges: edges0) : locate(v, lo: lo, bins: bins, edges: edgesMinus1000)
    }

    @inline(__always)
    static func locate(_ v: Double, lo: Int, bins: Int, edges: [Double]) -> (slot: Int, onEdge: Int?) {
        if !(v >= edges[0]) { return (0, nil) }  // underflow (also NaN, which the recorder never stores)
        if v >= edges[bins] { return (bins + 1, v == edges[bins] ? bins : nil) }
        // A guess from floor, corrected against the exact edges (the product may round across one).
        var k = Int((v * 1000).rounded(.down)) - lo
        if k < 0 { k = 0 } else if k >= bins { k = bins - 1 }
        while v < edges[k] { k -= 1 }
        while v >= edges[k + 1] { k += 1 }
        return (1 + k, v == edges[k] ? k : nil)
    }
}

/// Accumulates `GateSummary` values for many (layer, unit) pairs with flat buffers (the recorder's hot path).
/// Gives the same results as `GateSummary.add` value by value in the same order.
final class SummaryAccumulator {
    /// Recorded layers: layer_id -> slot base and units.
    let layerIDs: [Int]
    let units: [Int]
    let base: [Int]          // first unit slot of each recorded layer
    let slotCount: Int
    // Raw buffers: this loop runs for every stored value, and Swift arrays held by a class would
    // pay an exclusivity check per access.
    let n: UnsafeMutablePointer<Int64>        // [slot]
    let mean: UnsafeMutablePointer<Double>    // [slot * 6 + gate]
    let m2: UnsafeMutablePointer<Double>
    let minV: UnsafeMutablePointer<Double>
    let maxV: UnsafeMutablePointer<Double>
    let histI: UnsafeMutablePointer<Int64>    // [(slot * 3 + {i,f,o}) * 1002 + index]
    let histT: UnsafeMutablePointer<Int64>    // [(slot * 2 + {g,h}) * 2002 + index]
    let edges01: UnsafeMutablePointer<Double>  // the 1001 edges of [0, 1]
    let edges11: UnsafeMutablePointer<Double>  // the 2001 edges of [-1, 1]
    var edges: [Int: Int64] = [:]  // key: (slot * 6 + gate) << 12 | k

    static let sigmoidWidth = 1002, tanhWidth = 2002

    init(layerIDs: [Int], units: [Int]) {
        self.layerIDs = layerIDs
        self.units = units
        var b: [Int] = []
        var total = 0
        for u in units { b.append(total); total += u }
        base = b
        slotCount = total
        func buffer<T>(_ count: Int, _ value: T) -> UnsafeMutablePointer<T> {
            let p = UnsafeMutablePointer<T>.allocate(capacity: Swift.max(count, 1))
            p.initialize(repeating: value, count: Swift.max(count, 1))
            return p
        }
        n = buffer(total, 0)
        mean = buffer(total * 6, 0)
        m2 = buffer(total * 6, 0)
        minV = buffer(total * 6, .infinity)
        maxV = buffer(total * 6, -.infinity)
        histI = buffer(total * 3 * Self.sigmoidWidth, 0)
        histT = buffer(total * 2 * Self.tanhWidth, 0)
        edges01 = buffer(1001, 0)
        edges11 = buffer(2001, 0)
        for k in 0...1000 { edges01[k] = Double(k) / 1000.0 }
        for k in 0...2000 { edges11[k] = Double(-1000 + k) / 1000.0 }
    }

    deinit {
        for p in [n, histI, histT] as [UnsafeMutablePointer<Int64>] { p.deallocate() }
        for p in [mean, m2, minV, maxV, edges01, edges11] as [UnsafeMutablePointer<Double>] { p.deallocate() }
    }

    /// Blob slot of `v` on a grid with `bins` bins starting at thousandth `lo`, and the edge it equals.
    @inline(__always)
    static func locate(_ v: Double, lo: Int, bins: Int, edges: UnsafeMutablePointer<Double>) -> (slot: Int, onEdge: Int) {
        if !(v >= edges[0]) { return (0, -1) }
        if v >= edges[bins] { return (bins + 1, v == edges[bins] ? bins : -1) }
        var k = Int((v * 1000).rounded(.down)) - lo
        if k < 0 { k = 0 } else if k >= bins { k = bins - 1 }
        while v < edges[k] { k -= 1 }
        while v >= edges[k + 1] { k += 1 }
        return (1 + k, v == edges[k] ? k : -1)
    }

    /// Adds one row: `values` holds i, f, g, o, c, h.
    @inline(__always)
    func add(slot: Int, _ values: UnsafePointer<Float>) {
        n[slot] += 1
        let count = Double(n[slot])
        let b6 = slot * 6
        for gate in 0..<6 {
            let v = Double(values[gate])
            let at = b6 + gate
            let delta = v - mean[at]
            mean[at] += delta / count
            m2[at] += delta * (v - mean[at])
            if v < minV[at] { minV[at] = v }
            if v > maxV[at] { maxV[at] = v }
        }
        // i, f, o on [0, 1]; g, h on [-1, 1]
        sigmoidBin(slot: slot, gate: 0, hist: 0, Double(values[0]))
        sigmoidBin(slot: slot, gate: 1, hist: 1, Double(values[1]))
        sigmoidBin(slot: slot, gate: 3, hist: 2, Double(values[3]))
        tanhBin(slot: slot, gate: 2, hist: 0, Double(values[2]))
        tanhBin(slot: slot, gate: 5, hist: 1, Double(values[5]))
    }

    @inline(__always)
    private func sigmoidBin(slot: Int, gate: Int, hist: Int, _ v: Double) {
        let (s, e) = Self.locate(v, lo: 0, bins: 1000, edges: edges01)
        histI[(slot * 3 + hist) * Self.sigmoidWidth + s] += 1
        if e >= 0 { edges[(slot * 6 + gate) << 12 | e, default: 0] += 1 }
    }

    @inline(__always)
    private func tanhBin(slot: Int, gate: Int, hist: Int, _ v: Double) {
        let (s, e) = Self.locate(v, lo: -1000, bins: 2000, edges: edges11)
        histT[(slot * 2 + hist) * Self.tanhWidth + s] += 1
        if e >= 0 { edges[(slot * 6 + gate) << 12 | e, default: 0] += 1 }
    }

    /// The slot of unit `unit` of the recorded layer at position `layerIndex` in `layerIDs`.
    @inline(__always)
    func slot(layerIndex: Int, unit: Int) -> Int { base[layerIndex] + unit }

    /// The summary of one slot and gate.
    func summary(slot: Int, gate: Gate) -> GateSummary {
        var s = GateSummary(gate: gate)
        let g = gate.column
        s.n = n[slot]
        s.mean = mean[slot * 6 + g]
        s.m2 = m2[slot * 6 + g]
        s.min = minV[slot * 6 + g]
        s.max = maxV[slot * 6 + g]
        switch gate {
        case .i, .f, .o:
            let start = (slot * 3 + (gate == .o ? 2 : g)) * Self.sigmoidWidth
            s.histogram = Array(UnsafeBufferPointer(start: histI + start, count: Self.sigmoidWidth))
        case .g, .h:
            let start = (slot * 2 + (gate == .g ? 0 : 1)) * Self.tanhWidth
            s.histogram = Array(UnsafeBufferPointer(start: histT + start, count: Self.tanhWidth))
        case .c:
            break
        }
        if gate.grid != nil {
            let key = (slot * 6 + g) << 12
            for k in 0...s.binCount { if let c = edges[key | k] { s.edgeEqual[k] = c } }
        }
        return s
    }

    /// Writes every (layer, unit, gate) summary of the run.
    func write(to db: Database, runID: Int64) throws {
        let insert = try db.prepare("""
            INSERT INTO unit_summaries (run_id, layer_id, unit, gate, n, mean, m2, min, max, hist, edge_eq)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for (li, layerID) in layerIDs.enumerated() {
            for unit in 0..<units[li] {
                let sl = base[li] + unit
                for gate in Gate.allCases {
                    let s = summary(slot: sl, gate: gate)
                    let empty = s.n == 0
                    try insert.bind([runID, layerID, unit, gate.rawValue, s.n,
                                     empty ? nil : s.mean, empty ? nil : s.m2,
                                     empty ? nil : s.min, empty ? nil : s.max,
                                     s.encodedHistogram(), s.encodedEdgeEqual()] as [SQLiteBindable?])
                    try insert.run()
                }
            }
        }
    }
}
