import CBLAS
import CSummaries
import Foundation
import GateScopeEngine
import Testing
@testable import GateScopeStore

/// The C loops behind the recorder's summaries and pair moments, against the Swift definitions.
@Suite struct SummaryKernelTests {
    /// The C loop counts exact edge hits in one slot per multiple of 1/8: that is only right if no
    /// other edge k/1000 is a float32. Checked for every edge of both grids.
    @Test func onlyMultiplesOfAnEighthAreFloatEdges() {
        for k in -1000...1000 {
            let edge = Double(k) / 1000.0
            let isFloat = Double(Float(edge)) == edge
            #expect(isFloat == (k % Int(GS_EDGE_STEP) == 0), "edge \(k)/1000")
        }
    }

    /// Whole sequences through `add(layer:units:steps:...)` (split into unit ranges, with
    /// inactive steps) give every (layer, unit, gate) summary that `GateSummary.add` gives, on
    /// every path of the C loop (2: AVX-512, 1: AVX2, each where the CPU has it, 0: portable).
    @Test(arguments: [Int32(0), 1, 2]) func sequenceBlocksMatchGateSummary(path: Int32) {
        let cells: [CellKind] = [.lstm, .gru, .simpleRNN]
        let units = [5, 3, 17]
        let acc = SummaryAccumulator(layerIDs: [0, 1, 2], units: units, cells: cells)
        var reference: [[[GateSummary]]] = cells.indices.map { li in
            (0..<units[li]).map { _ in Gate.of(cells[li]).map { GateSummary(gate: $0) } }
        }
        // Edges, both signs of zero, subnormals, values past the grid, the grid's own ends, and
        // both sides of the fixed-point window's ends (2^(T-27) and 2^T for T = 1 and 3).
        let special: [Float] = [0, -0.0, 1, -1, 0.5, -0.5, 0.125, 0.875, -0.375, 1e-45, -1e-40, 1.0000001, -1.0000001, 7, -3e20, 0.001, 0.999,
                                0x1p-26, -0x1p-26, Float(0x1p-26).nextDown, 0x1p-24, Float(0x1p-24).nextDown, 2, Float(2).nextDown, -Float(2).nextDown,
                                8, Float(8).nextDown, 1e-30, .infinity]
        var rng = SplitMix(2026)
        for seq in 0..<40 {
            for li in cells.indices {
                let u = units[li], w = cells[li].planes.count
                let steps = 1 + rng.int(0..<30)
                let active = (0..<steps).map { _ in rng.int(0..<5) != 0 }
                let gates = Gate.of(cells[li])
                var values = [Float](repeating: 0, count: steps * u * w)
                for t in 0..<steps {
                    for unit in 0..<u {
                        for g in 0..<w {
                            let v = rng.int(0..<6) == 0 ? special[rng.int(0..<special.count)]
                                : (gates[g].grid == nil ? rng.float(5) : rng.float(1.05))
                            values[(t * u + unit) * w + g] = v
                            if active[t] { reference[li][unit][g].add(Double(v)) }
                        }
                    }
                }
                let cut = seq % (u + 1)
                values.withUnsafeBufferPointer { v in
                    active.withUnsafeBufferPointer { a in
                        acc.add(layer: li, units: cut..<u, steps: steps, values: v.baseAddress!, active: a.baseAddress!, path: path)
                        acc.add(layer: li, units: 0..<cut, steps: steps, values: v.baseAddress!, active: a.baseAddress!, path: path)
                    }
                }
            }
        }
        for li in cells.indices {
            for unit in 0..<units[li] {
                for (g, gate) in Gate.of(cells[li]).enumerated() {
                    let got = acc.summary(layer: li, unit: unit, gate: g), want = reference[li][unit][g]
                    #expect(got == want, "layer \(li) unit \(unit) gate \(gate): n \(got.n) vs \(want.n), edges \(got.edgeEqual) vs \(want.edgeEqual)")
                }
            }
        }
    }

    /// The C loops place a value in the histogram by t = x * 1000 (exact) instead of the table of
    /// edges: every float32 within 4 ulps of every edge of both grids, and past both ends, lands
    /// in the slot (and edge count) that `GateSummary.add` gives, on every path.
    @Test(arguments: [Int32(0), 1, 2]) func valuesNearEveryEdgeLandInTheSameSlot(path: Int32) {
        var near: [Float] = []
        for k in -1001...1001 {
            var x = Float(Double(k) / 1000.0)
            for _ in 0..<4 { x = x.nextDown }
            for _ in 0..<9 {
                near.append(x)
                x = x.nextUp
            }
        }
        near += [-.infinity, .infinity, -2, 2, 1e-30, -1e-30, .leastNonzeroMagnitude, -.leastNonzeroMagnitude]
        // One LSTM unit: planes 0 and 1 have the [0, 1] grid, 2 the [-1, 1] grid.
        let w = CellKind.lstm.planes.count, steps = near.count
        let acc = SummaryAccumulator(layerIDs: [0], units: [1], cells: [.lstm])
        var reference = Gate.of(.lstm).map { GateSummary(gate: $0) }
        var values = [Float](repeating: 0.5, count: steps * w)
        for (t, x) in near.enumerated() {
            for g in 0..<w { values[t * w + g] = g == 3 ? x : (g % 2 == 0 ? x : -x) }
            for g in 0..<w { reference[g].add(Double(values[t * w + g])) }
        }
        let active = [Bool](repeating: true, count: steps)
        values.withUnsafeBufferPointer { v in
            active.withUnsafeBufferPointer { a in
                acc.add(layer: 0, units: 0..<1, steps: steps, values: v.baseAddress!, active: a.baseAddress!, path: path)
            }
        }
        for (g, gate) in Gate.of(.lstm).enumerated() {
            let got = acc.summary(layer: 0, unit: 0, gate: g)
            #expect(got.histogram == reference[g].histogram, "gate \(gate)")
            #expect(got.edgeEqual == reference[g].edgeEqual, "gate \(gate)")
            #expect(got == reference[g], "gate \(gate)")
        }
    }

    /// A batch longer than the fixed-point accumulators' 8192 rows and than a 16-bit histogram
    /// counter's range (every value of a plane in one bin), every value at the top of the window
    /// (|x| just below 2^T: terms just below 2^50, sums just below 2^63), in one call and then
    /// row by row: equal summaries, equal to `GateSummary.add`.
    @Test(arguments: [Int32(0), 1, 2]) func longBatchesAtTheWindowTop(path: Int32) {
        let steps = 70_000, w = CellKind.lstm.planes.count
        let batch = SummaryAccumulator(layerIDs: [0], units: [1], cells: [.lstm])
        let rows = SummaryAccumulator(layerIDs: [0], units: [1], cells: [.lstm])
        var reference = Gate.of(.lstm).map { GateSummary(gate: $0) }
        var values = [Float](repeating: 0, count: steps * w)
        for t in 0..<steps {
            for g in 0..<w {
                // The first batch saw |x| < 2 (T = 1); the plane's last value starts T = 3 for later calls.
                let v: Float = t == steps - 1 && g == 0 ? 7.5 : (g % 2 == 0 ? Float(2).nextDown : -Float(2).nextDown)
                values[t * w + g] = v
                reference[g].add(Double(v))
            }
        }
        let active = [Bool](repeating: true, count: steps)
        for _ in 0..<2 {
            values.withUnsafeBufferPointer { v in
                active.withUnsafeBufferPointer { a in
                    batch.add(layer: 0, units: 0..<1, steps: steps, values: v.baseAddress!, active: a.baseAddress!, path: path)
                    for t in 0..<steps { rows.add(layer: 0, unit: 0, v.baseAddress! + t * w) }
                }
            }
        }
        for g in 0..<w {
            var want = reference[g]
            want.merge(reference[g])
            #expect(batch.summary(layer: 0, unit: 0, gate: g) == want, "gate \(g)")
            #expect(rows.summary(layer: 0, unit: 0, gate: g) == want, "gate \(g), row by row")
            #expect(batch.summary(layer: 0, unit: 0, gate: g).sums.encoded() == want.sums.encoded(), "gate \(g): the stored blob")
            // The fixed-point path ran: its split over the buckets is not add_exact's.
            #expect(batch.summary(layer: 0, unit: 0, gate: g).sums.buckets != rows.summary(layer: 0, unit: 0, gate: g).sums.buckets, "gate \(g)")
        }
    }

    /// Sums split over different buckets are equal, encode alike and give bit-equal moments.
    @Test func canonicalFormHidesTheSplit() {
        var rng = SplitMix(7)
        for _ in 0..<200 {
            var a = ExactSums(), b = ExactSums()
            var n: Int64 = 0
            for _ in 0..<(1 + rng.int(0..<50)) {
                let x = rng.float(3) * Float(sign: .plus, exponent: rng.int(-40..<40), significand: 1)
                a.add(x)
                n += 1
                // The same value as two parts that are exact float32s (x = hi + lo).
                let hi = Float(Double(x).rounded(.towardZero)), lo = x - hi
                b.add(hi)
                b.add(lo)
                // b's square sum lacks 2 hi lo: add it through the raw buckets.
                let cross = 2 * Double(hi) * Double(lo)
                if cross != 0 {
                    let e = cross.exponent, m = Int64(cross.magnitude.significand * 0x1p52) * (cross < 0 ? -1 : 1)
                    // cross = m 2^(e - 52) = bucket (e - 52 + 300) of the square range
                    b.buckets[ExactSums.linearCount + e - 52 + 300] += m
                }
            }
            #expect(a == b)
            #expect(a.encoded() == b.encoded())
            let ma = a.moments(n: n), mb = b.moments(n: n)
            #expect(ma.mean.bitPattern == mb.mean.bitPattern && ma.m2.bitPattern == mb.m2.bitPattern)
            #expect(ExactSums(encoded: a.encoded()) == a)
        }
    }

    /// Every path of the exact rank-k update equals BLAS dsyrk on the upper triangle, for sizes
    /// that are and are not multiples of the tiles, and leaves the caller's old values added in.
    @Test func syrkPathsEqualBLAS() {
        var rng = SplitMix(9)
        for (k, n) in [(1, 1), (3, 5), (7, 8), (2, 15), (9, 16), (5, 17), (31, 33), (256, 40), (64, 256), (13, 200)] {
            // Integers below 2^20 as PairAccumulator stages them: every partial sum stays below 2^53.
            let a = (0..<(k * n)).map { _ in Double(rng.int(-(1 << 20)..<(1 << 20))) }
            let start = (0..<(n * n)).map { _ in Double(rng.int(-1000..<1000)) }
            var want = start
            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(n), Int32(k), 1, a, Int32(n), 1, &want, Int32(n))
            for path: Int32 in [0, 1, 2] where path <= gs_syrk_path() {
                var got = start
                gs_syrk_upper_exact(path, a, Int32(k), Int32(n), &got)
                var worst = 0.0
                for i in 0..<n { for j in i..<n { worst = max(worst, abs(got[i * n + j] - want[i * n + j])) } }
                #expect(worst == 0, "path \(path), k \(k), n \(n): largest difference \(worst)")
            }
        }
    }
}
