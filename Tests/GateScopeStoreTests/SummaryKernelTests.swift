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
    /// inactive steps) give every (layer, unit, gate) summary that `GateSummary.add` gives.
    @Test func sequenceBlocksMatchGateSummary() {
        let cells: [CellKind] = [.lstm, .gru, .simpleRNN]
        let units = [5, 3, 17]
        let acc = SummaryAccumulator(layerIDs: [0, 1, 2], units: units, cells: cells)
        var reference: [[[GateSummary]]] = cells.indices.map { li in
            (0..<units[li]).map { _ in Gate.of(cells[li]).map { GateSummary(gate: $0) } }
        }
        // Edges, both signs of zero, subnormals, values past the grid, and the grid's own ends.
        let special: [Float] = [0, -0.0, 1, -1, 0.5, -0.5, 0.125, 0.875, -0.375, 1e-45, -1e-40, 1.0000001, -1.0000001, 7, -3e20, 0.001, 0.999]
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
                        acc.add(layer: li, units: cut..<u, steps: steps, values: v.baseAddress!, active: a.baseAddress!)
                        acc.add(layer: li, units: 0..<cut, steps: steps, values: v.baseAddress!, active: a.baseAddress!)
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
