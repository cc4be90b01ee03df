import CSQLite
import CSummaries
import Foundation
import GateScopeEngine

/// A recorded value by name: a gate (or state) of one of the cells in `CellKind`, with the range
/// the cell descriptor gives it. The same name means the same range in every cell that has it
/// (h is signed in all of them).
public struct Gate: RawRepresentable, Hashable, Sendable, Codable, CaseIterable, CustomStringConvertible {
    public let rawValue: String
    /// How the value saturates (and its histogram grid).
    public let range: GateRange

    /// The gate of that name in any cell, or nil.
    public init?(rawValue: String) {
        guard let g = Gate.allCases.first(where: { $0.rawValue == rawValue }) else { return nil }
        self = g
    }

    private init(_ d: GateDescriptor) {
        rawValue = d.name
        range = d.range
    }

    /// Every gate name of every cell, in cell order and then plane order, each once: i f g o c h z r n.
    public static let allCases: [Gate] = {
        var out: [Gate] = []
        for cell in CellKind.allCases {
            for d in cell.gates where !out.contains(where: { $0.rawValue == d.name }) { out.append(Gate(d)) }
        }
        return out
    }()

    /// The gates of one cell in plane order.
    public static func of(_ cell: CellKind) -> [Gate] { cell.planes.map { Gate(rawValue: $0)! } }

    public static let i = Gate(rawValue: "i")!, f = Gate(rawValue: "f")!, g = Gate(rawValue: "g")!
    public static let o = Gate(rawValue: "o")!, c = Gate(rawValue: "c")!, h = Gate(rawValue: "h")!
    public static let z = Gate(rawValue: "z")!, r = Gate(rawValue: "r")!, n = Gate(rawValue: "n")!

    /// Position among all gate names (a stable order for sorting across cells).
    public var order: Int { Gate.allCases.firstIndex(of: self)! }

    /// The histogram grid in thousandths, `lo*1000 ... hi*1000`: 0...1000 for the unit-range gates
    /// (i, f, o, z, r), -1000...1000 for the signed ones (g, h, n), nil for c (moments only).
    public var grid: ClosedRange<Int>? { range.grid }

    public var description: String { rawValue }

    public init(from decoder: Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        guard let g = Gate(rawValue: name) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown gate '\(name)'"))
        }
        self = g
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}

/// Summary of one gate of one unit over a run: count, moments, min/max and an exact fine histogram.
///
/// The histogram has bins of width 1/1000 between edges `e_k = Double(lo + k) / 1000.0`
/// (`lo` = `grid.lowerBound`), plus underflow and overflow; values exactly on an edge are also
/// counted in `edgeEqual`, so `countBelow`/`countAbove` are exact for any threshold on the grid.
/// `std` is the population standard deviation `sqrt(m2 / n)`. The moments come from `ExactSums`,
/// so they do not depend on the order of the values (runs recorded before schema version 5 keep
/// the Welford moments they stored).
public struct GateSummary: Equatable, Sendable {
    public let gate: Gate
    /// Number of values.
    public var n: Int64 = 0
    /// Exact, order-independent Σx and Σx².
    public var sums = ExactSums()
    /// Moments stored by an older release without sums (Welford), used instead of `sums`.
    public var storedMoments: StoredMoments?
    /// Mean and m2 as an older release stored them.
    public struct StoredMoments: Equatable, Sendable {
        public var mean: Double
        public var m2: Double
    }
    /// The mean (NaN-free: 0 when empty).
    public var mean: Double { storedMoments?.mean ?? sums.moments(n: n).mean }
    /// Sum of squared deviations from the mean.
    public var m2: Double { storedMoments?.m2 ?? sums.moments(n: n).m2 }
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
        // Recorded values are Float32s stored as Double: converting back is exact.
        sums.add(Float(v))
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
        if storedMoments != nil || other.storedMoments != nil {
            let (_, mean, m2) = Self.mergeMoments((n, self.mean, self.m2), (other.n, other.mean, other.m2))
            storedMoments = StoredMoments(mean: mean, m2: m2)
        }
        n += other.n
        sums.merge(other.sums)
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
        guard let k = gridIndex(of: t), histogram != nil else { return nil }
        // underflow + bins 0 ..< k (bin j is [e_j, e_j+1), so it lies below e_k for j < k)
        return count(inSlotsBelow: k + 1)
    }

    /// Values in the histogram slots before `slot` (0 = underflow, 1 + k = bin k): the sorted
    /// position where slot `slot` starts. 0 for c.
    func count(inSlotsBelow slot: Int) -> Int64 {
        guard let hist = histogram else { return 0 }
        var total: Int64 = 0
        for j in 0..<slot { total += hist[j] }
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
                histogram: Data?, edgeEqual: String?, sums: Data? = nil) throws {
        self.init(gate: gate)
        self.n = n
        if let sums {
            guard let decoded = ExactSums(encoded: sums) else {
                throw DatabaseError(code: SQLITE_CORRUPT, message: "unit_summaries: sums of gate \(gate) is malformed (\(sums.count) bytes)")
            }
            self.sums = decoded
        } else {
            storedMoments = StoredMoments(mean: mean ?? 0, m2: m2 ?? 0)
        }
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

    /// Adds the summaries of another part of a recording (a shard) to `total`, key by key.
    public static func merge(_ part: [UnitKey: [Gate: GateSummary]], into total: inout [UnitKey: [Gate: GateSummary]]) {
        for (key, gates) in part {
            for (gate, s) in gates {
                if total[key]?[gate] == nil { total[key, default: [:]][gate] = s } else { total[key]![gate]!.merge(s) }
            }
        }
    }

    /// The summaries of one run: (layer_id, unit) -> gate -> summary. Empty when the run has none.
    public static func load(from db: Database, runID: Int64) throws -> [UnitKey: [Gate: GateSummary]] {
        let rows = try db.query("""
            SELECT layer_id, unit, gate, n, mean, m2, min, max, hist, edge_eq, sums
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
                histogram: st.data(at: 8), edgeEqual: st.string(at: 9), sums: st.isNull(at: 10) ? nil : st.data(at: 10))
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

/// Accumulates `GateSummary` values for many (layer, unit) pairs in flat tables that the C loop
/// of CSummaries fills (the recorder's hot path). Gives the same results as `GateSummary.add`
/// value by value, in any order: every part of a summary is exact.
///
/// Each recorded layer has the gates of its cell (`Gate.of(cell)`, in plane order); the tables of
/// layer `li` are described by `tables[li]` (value slot `unit * width + gate`).
public final class SummaryAccumulator {
    /// Recorded layers: layer_id, units and the gates of each.
    let layerIDs: [Int]
    let units: [Int]
    let gates: [[Gate]]
    /// One C table descriptor per recorded layer (pointers into `allocations`).
    let tables: UnsafeMutablePointer<gs_summary_layer>
    let allocations: [UnsafeMutableRawPointer]

    /// Empty summaries for the recorded layers (`layerIDs`, with their units and cells).
    public init(layerIDs: [Int], units: [Int], cells: [CellKind]) {
        self.layerIDs = layerIDs
        self.units = units
        gates = cells.map { Gate.of($0) }
        var raw: [UnsafeMutableRawPointer] = []
        func buffer<T>(_ count: Int, _ value: T) -> UnsafeMutablePointer<T> {
            let p = UnsafeMutablePointer<T>.allocate(capacity: Swift.max(count, 1))
            p.initialize(repeating: value, count: Swift.max(count, 1))
            raw.append(UnsafeMutableRawPointer(p))
            return p
        }
        tables = UnsafeMutablePointer<gs_summary_layer>.allocate(capacity: Swift.max(units.count, 1))
        raw.append(UnsafeMutableRawPointer(tables))
        for li in units.indices {
            let u = units[li], w = gates[li].count
            precondition(w <= Int(GS_MAX_WIDTH), "a cell of \(w) planes is wider than the summary tables")
            var offsets = [Int32](repeating: -1, count: Int(GS_MAX_WIDTH)), lows = [Int32](repeating: 0, count: Int(GS_MAX_WIDTH))
            var stride = 0
            for (g, gate) in gates[li].enumerated() {
                guard let grid = gate.grid else { continue }
                offsets[g] = Int32(stride)
                lows[g] = Int32(grid.lowerBound)
                stride += grid.count - 1 + 2
            }
            var t = gs_summary_layer()
            t.units = Int32(u)
            t.width = Int32(w)
            t.n = buffer(u, Int64(0))
            t.sums = buffer(u * w * ExactSums.width, Int64(0))
            t.min = buffer(u * w, Double.infinity)
            t.max = buffer(u * w, -Double.infinity)
            t.hist = buffer(u * stride, Int64(0))
            t.hist_stride = Int32(stride)
            // The fixed-size C arrays arrive as tuples: fill them from the Swift arrays byte for byte.
            offsets.withUnsafeBytes { src in withUnsafeMutableBytes(of: &t.hist_offset) { $0.copyMemory(from: src) } }
            lows.withUnsafeBytes { src in withUnsafeMutableBytes(of: &t.grid_low) { $0.copyMemory(from: src) } }
            t.edge_eq = buffer(u * w * Int(GS_EDGE_SLOTS), Int64(0))
            (tables + li).initialize(to: t)
        }
        allocations = raw
    }

    deinit {
        for p in allocations { p.deallocate() }
    }

    /// Adds units `range` of `sequences` sequences of recorded layer `li`: sequence s has its
    /// `[steps, units, planes]` values at `values + s * valueStride`, and `active[s * activeStride + t]`
    /// says whether its step t was computed. Disjoint unit ranges may run at once.
    /// `path` picks the C loop (`gs_summary_add`; every path adds the same sums).
    public func add(layer li: Int, units range: Range<Int>, sequences: Int = 1, steps: Int,
                    values: UnsafePointer<Float>, valueStride: Int = 0, active: UnsafePointer<Bool>, activeStride: Int = 0,
                    path: Int32 = gs_summary_path()) {
        precondition(range.lowerBound >= 0 && range.upperBound <= units[li], "units \(range) of a layer of \(units[li])")
        gs_summary_add(path, tables + li, Int32(sequences), Int32(steps), values, valueStride, active, activeStride,
                       Int32(range.lowerBound), Int32(range.upperBound))
    }

    /// Adds one row of recorded layer `layer` (position in `layerIDs`): `values` holds its
    /// cell's gates in plane order.
    public func add(layer li: Int, unit: Int, _ values: UnsafePointer<Float>) {
        precondition(unit >= 0 && unit < units[li], "unit \(unit) of a layer of \(units[li])")
        gs_summary_add_row(tables + li, Int32(unit), values)
    }

    /// The summary of one unit and gate (index into the layer's `gates`).
    func summary(layer li: Int, unit: Int, gate g: Int) -> GateSummary {
        let gate = gates[li][g]
        let t = tables[li]
        var s = GateSummary(gate: gate)
        let at = unit * Int(t.width) + g
        s.n = t.n[unit]
        s.sums = ExactSums(copying: t.sums + at * ExactSums.width)
        s.min = t.min[at]
        s.max = t.max[at]
        let offset = withUnsafeBytes(of: t.hist_offset) { Int($0.load(fromByteOffset: g * 4, as: Int32.self)) }
        if offset >= 0, let grid = gate.grid {
            let start = unit * Int(t.hist_stride) + offset
            s.histogram = Array(UnsafeBufferPointer(start: t.hist + start, count: grid.count - 1 + 2))
            let step = Int(GS_EDGE_STEP)
            for j in 0...(s.binCount / step) {
                let c = t.edge_eq[at * Int(GS_EDGE_SLOTS) + j]
                if c != 0 { s.edgeEqual[j * step] = c }
            }
        }
        return s
    }

    /// Writes every (layer, unit, gate) summary of the run.
    func write(to db: Database, runID: Int64) throws {
        let insert = try db.prepare("""
            INSERT INTO unit_summaries (run_id, layer_id, unit, gate, n, mean, m2, min, max, hist, edge_eq, sums)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for (li, layerID) in layerIDs.enumerated() {
            for unit in 0..<units[li] {
                for (g, gate) in gates[li].enumerated() {
                    let s = summary(layer: li, unit: unit, gate: g)
                    let empty = s.n == 0
                    try insert.bind([runID, layerID, unit, gate.rawValue, s.n,
                                     empty ? nil : s.mean, empty ? nil : s.m2,
                                     empty ? nil : s.min, empty ? nil : s.max,
                                     s.encodedHistogram(), s.encodedEdgeEqual(), s.sums.encoded()] as [SQLiteBindable?])
                    try insert.run()
                }
            }
        }
    }
}
