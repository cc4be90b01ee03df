import Foundation
import GateScopeEngine
import Testing
@testable import GateScopeStore

@Suite struct SHA256Tests {
    @Test func knownVectors() {
        #expect(SHA256.hex(Data()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Data("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // One million 'a', fed in odd-sized pieces.
        var hash = SHA256()
        let piece = Data(repeating: UInt8(ascii: "a"), count: 999)
        var fed = 0
        while fed < 1_000_000 {
            let n = min(piece.count, 1_000_000 - fed)
            hash.update(piece.prefix(n))
            fed += n
        }
        #expect(hash.finalizeHex() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// The SHA-extension blocks (where the CPU has them) give the portable C digest, for every
    /// length around the block and padding boundaries and for pieces that split blocks.
    @Test func hardwareBlocksEqualPortableC() {
        var rng = SplitMix(256)
        let data = (0..<4_200).map { _ in UInt8(truncatingIfNeeded: rng.int(0..<256)) }
        for length in Array(0...200) + [1_000, 4_095, 4_096, 4_097, 4_200] {
            var fast = SHA256(), slow = SHA256(softwareOnly: true)
            let cut = length / 3
            fast.update(Data(data[0..<cut])); fast.update(Data(data[cut..<length]))
            slow.update(Data(data[0..<length]))
            #expect(fast.finalizeHex() == slow.finalizeHex(), "length \(length)")
        }
    }

    @Test func fileHashMatchesDataHash() throws {
        let dir = makeTempDir()
        var bytes = [UInt8](repeating: 0, count: 3_000_000)
        for k in bytes.indices { bytes[k] = UInt8(truncatingIfNeeded: k &* 31) }
        let data = Data(bytes)
        try data.write(to: URL(fileURLWithPath: dir + "/f.bin"))
        #expect(try SHA256.hex(fileAt: dir + "/f.bin") == SHA256.hex(data))
    }
}

@Suite struct SummariesTests {
    /// Values with many exact edges (0, 0.5, 1, -1, 0.125) and ordinary ones, some out of range.
    func sample(_ gate: Gate, seed: UInt64) -> [Double] {
        var rng = SplitMix(seed)
        var values: [Double] = []
        for _ in 0..<5000 {
            let r = rng.int(0..<10)
            switch r {
            case 0: values.append(0)
            case 1: values.append(1)
            case 2: values.append(0.5)
            case 3: values.append(-1)
            case 4: values.append(Double(Float(0.125)))
            case 5: values.append(Double(Float(rng.float(3))))  // out of range too
            default: values.append(Double(Float(gate.grid == nil ? rng.float(5) : (gate.grid!.lowerBound < 0 ? rng.float(1) : (rng.float(1) + 1) / 2))))
            }
        }
        return values
    }

    @Test(arguments: Gate.allCases)
    func countsAreExactOnTheGrid(gate: Gate) throws {
        let values = sample(gate, seed: 5)
        var s = GateSummary(gate: gate)
        for v in values { s.add(v) }
        #expect(s.n == Int64(values.count))
        #expect(s.min == values.min()!)
        #expect(s.max == values.max()!)
        let mean = values.reduce(0, +) / Double(values.count)
        #expect(abs(s.mean - mean) < 1e-9)
        let m2 = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        #expect(abs(s.m2 - m2) < 1e-6 * m2)
        guard let grid = gate.grid else {
            #expect(s.histogram == nil)
            #expect(s.encodedHistogram() == nil)
            #expect(s.countBelow(0.5) == nil)
            return
        }
        // Every threshold on the grid, parsed from its decimal text like a user's --high 0.9.
        for m in stride(from: grid.lowerBound, through: grid.upperBound, by: 1) {
            let t = Double(String(format: "%.3f", Double(m) / 1000))!
            #expect(s.countBelow(t) == Int64(values.filter { $0 < t }.count), "below \(t)")
            #expect(s.countAbove(t) == Int64(values.filter { $0 > t }.count), "above \(t)")
        }
        #expect(s.countBelow(0.0005) == nil)  // off the grid
        #expect(s.countBelow(Double(grid.upperBound) / 1000 + 0.001) == nil)  // outside the range

        // The blobs and JSON round-trip.
        let back = try GateSummary(gate: gate, n: s.n, mean: s.mean, m2: s.m2, min: s.min, max: s.max,
                                   histogram: s.encodedHistogram(), edgeEqual: s.encodedEdgeEqual(), sums: s.sums.encoded())
        #expect(back == s)
        // A summary of an older release (no sums) keeps the moments it stored.
        let old = try GateSummary(gate: gate, n: s.n, mean: 0.25, m2: 7, min: s.min, max: s.max,
                                  histogram: s.encodedHistogram(), edgeEqual: s.encodedEdgeEqual())
        #expect(old.mean == 0.25 && old.m2 == 7)
        #expect(s.encodedHistogram()!.count == (grid.count - 1 + 2) * 8)
        #expect(s.edgeEqual[0 - grid.lowerBound] != nil)  // exact 0.0 values are on edge e_k with k = -lo
    }

    @Test func mergeEqualsSequentialAdd() {
        let values = sample(.f, seed: 9)
        var all = GateSummary(gate: .f)
        for v in values { all.add(v) }
        var a = GateSummary(gate: .f), b = GateSummary(gate: .f)
        for v in values[..<1234] { a.add(v) }
        for v in values[1234...] { b.add(v) }
        a.merge(b)
        #expect(a.n == all.n)
        #expect(a.histogram == all.histogram)
        #expect(a.edgeEqual == all.edgeEqual)
        #expect(abs(a.mean - all.mean) < 1e-12)
        #expect(abs(a.m2 - all.m2) < 1e-9 * all.m2)
        #expect(a.min == all.min && a.max == all.max)
    }

    /// Layers of every cell kind side by side: each (layer, unit, gate) equals `GateSummary.add`.
    @Test func accumulatorMatchesGateSummary() {
        let cells: [CellKind] = [.lstm, .gru, .simpleRNN, .lstm]
        let units = [2, 3, 2, 1]
        let acc = SummaryAccumulator(layerIDs: [0, 2, 3, 5], units: units, cells: cells)
        var reference: [[[GateSummary]]] = cells.indices.map { li in
            (0..<units[li]).map { _ in Gate.of(cells[li]).map { GateSummary(gate: $0) } }
        }
        var rng = SplitMix(77)
        for _ in 0..<4000 {
            let li = rng.int(0..<cells.count), unit = rng.int(0..<units[li])
            let gates = Gate.of(cells[li])
            let row: [Float] = gates.map { g in
                rng.int(0..<8) == 0 ? [0, 1, -1, 0.5][rng.int(0..<4)] : (g.grid == nil ? rng.float(4) : rng.float(1.1))
            }
            row.withUnsafeBufferPointer { acc.add(layer: li, unit: unit, $0.baseAddress!) }
            for g in gates.indices { reference[li][unit][g].add(Double(row[g])) }
        }
        for li in cells.indices {
            for unit in 0..<units[li] {
                for (g, gate) in Gate.of(cells[li]).enumerated() {
                    #expect(acc.summary(layer: li, unit: unit, gate: g) == reference[li][unit][g], "layer \(li) unit \(unit) gate \(gate)")
                }
            }
        }
    }

    /// The moments do not depend on the order of the values, and parts combine bit for bit.
    @Test func exactSumsAreOrderIndependent() {
        var rng = SplitMix(5)
        let values: [Float] = (0..<20_000).map { k in k % 97 == 0 ? [0, 1, -1, 1e-30, 1e30][k % 5] : rng.float(3) }
        var forward = GateSummary(gate: .c), backward = GateSummary(gate: .c)
        for v in values { forward.add(Double(v)) }
        for v in values.reversed() { backward.add(Double(v)) }
        #expect(forward.mean == backward.mean && forward.m2 == backward.m2)
        var a = GateSummary(gate: .c), b = GateSummary(gate: .c)
        for v in values[..<7_777] { a.add(Double(v)) }
        for v in values[7_777...] { b.add(Double(v)) }
        a.merge(b)
        #expect(a.mean == forward.mean && a.m2 == forward.m2 && a.n == forward.n)
        // Against float64 two-pass moments: the same to the last few bits.
        let mean = values.reduce(0.0) { $0 + Double($1) } / Double(values.count)
        let m2 = values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) }
        #expect(abs(forward.mean - mean) <= 1e-12 * max(1, abs(mean)))
        #expect(abs(forward.m2 - m2) <= 1e-10 * m2)
    }

    @Test func malformedBlobsAreErrors() {
        #expect(throws: DatabaseError.self) {
            try GateSummary(gate: .i, n: 1, mean: 0, m2: 0, min: 0, max: 0, histogram: Data([1, 2, 3]), edgeEqual: "{}")
        }
        #expect(throws: DatabaseError.self) {
            try GateSummary(gate: .i, n: 1, mean: 0, m2: 0, min: 0, max: 0, histogram: Data(count: 1002 * 8), edgeEqual: "[1]")
        }
    }
}
