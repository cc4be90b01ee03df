import CSQLite
import Foundation
import GateScopeEngine
import GateScopeInput
import GateScopeKeras
import Testing
@testable import GateScopeRecording
@testable import GateScopeStore

/// The named queries answered from what recording stored (summaries, pairs, spans) give exactly
/// the rows their SQL gives by scanning, on every kind of recorded layer; and the accumulators
/// behind them equal brute force.
@Suite struct StoredAnswersTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    /// (folder under Tests/Fixtures, input file): LSTM stacks with masks and go_backwards,
    /// Bidirectional, a ReLU LSTM (h leaves [-1, 1]: no pairs), GRU + SimpleRNN, a masked GRU,
    /// a CNN-LSTM.
    static let cases: [(String, String)] = [
        ("keras/lstm_stacked_masked", "input.npy"), ("keras/backwards_masked", "input.npy"),
        ("keras/bi_concat_masked", "input.npy"), ("keras/odd_units_relu", "input.npy"),
        ("graph/gru_simple", "inputs.npz"), ("graph/sequential_masked", "inputs.npz"), ("graph/cnn_lstm", "inputs.npz"),
    ]

    /// Parameter sets per query: defaults, other points of the stored grids, and off-grid
    /// thresholds (which scan on both paths).
    static let parameterSets: [String: [[String: String]]] = [
        "integrators": [[:], ["high": "0.5", "fraction": "0.1"], ["high": "0.95", "fraction": "0"], ["high": "0.1234", "fraction": "0"]],
        "dead-units": [[:], ["threshold": "0.5"], ["threshold": "2"]],
        "saturation": [[:], ["low": "0.2", "high": "0.8"], ["low": "0", "high": "1"], ["low": "0.1234", "high": "0.8766"]],
        "memory-spans": [[:], ["threshold": "0.5", "min_length": "2"], ["threshold": "0"], ["threshold": "1"],
                         ["threshold": "0.07"], ["threshold": "0.905"]],
        "unit-correlation": [[:], ["limit": "-1"]],
    ]

    /// Whether the stored path should answer: thresholds on the grids (0.001 for summaries, 0.01
    /// for spans), pairs kept by every selected layer.
    static func expectStored(_ name: String, _ p: [String: String], pairsKept: Bool) -> Bool {
        switch name {
        case "integrators": return p["high"] != "0.1234"
        case "saturation": return p["low"] != "0.1234"
        case "memory-spans": return p["threshold"] != "0.905"
        case "unit-correlation": return pairsKept
        default: return true
        }
    }

    @Test(arguments: cases) func storedAnswersEqualTheScan(folder: String, input: String) throws {
        let dir = Self.fixtures.appendingPathComponent(folder)
        let keras = dir.appendingPathComponent("model.keras").path
        let modelPath = FileManager.default.fileExists(atPath: keras) ? keras : dir.appendingPathComponent("model.h5").path
        let model = try KerasModelLoader.load(path: modelPath)
        let db = makeTempDir() + "/g.db"
        var options = RecordOptions()
        options.batchSize = 2
        _ = try Recorder.record(model: model, modelPath: modelPath, inputPath: dir.appendingPathComponent(input).path,
                                databasePath: db, options: options)
        let database = try ReadAccess.open(db)
        let pairsKept = try count(database, "SELECT count(*) FROM layers WHERE pairs_stored = 0") == 0
        for (name, sets) in Self.parameterSets.sorted(by: { $0.key < $1.key }) {
            let query = try NamedQuery.find(name)
            var rowsSeen = 0
            for p in sets {
                let stored = try query.run(on: database, values: p)
                let scan = try query.run(on: database, values: p, scan: true)
                #expect(scan.source == .scan)
                #expect(stored.source == (Self.expectStored(name, p, pairsKept: pairsKept) ? .stored : .scan), "\(folder) \(name) \(p)")
                #expect(stored.columnNames == scan.columnNames && stored.columnNames == query.columns)
                var a: [[SQLiteValue]] = [], b: [[SQLiteValue]] = []
                while let r = try stored.nextRow() { a.append(r) }
                while let r = try scan.nextRow() { b.append(r) }
                if a != b {
                    let k = (0..<Swift.min(a.count, b.count)).first { a[$0] != b[$0] } ?? Swift.min(a.count, b.count)
                    Issue.record("\(folder) \(name) \(p): \(a.count) stored rows vs \(b.count) scanned; first difference at row \(k): \(k < a.count ? "\(a[k])" : "none") vs \(k < b.count ? "\(b[k])" : "none")")
                }
                rowsSeen += a.count
            }
            // Every query gives rows on these fixtures (dead-units at threshold 2 at least), so
            // equality is not between two empty answers.
            let hasMemoryGate = try count(database, "SELECT count(*) FROM layers WHERE cell != 'simple_rnn'") > 0
            if name != "memory-spans" || hasMemoryGate {
                #expect(rowsSeen > 0, "\(folder) \(name) gave no rows at all")
            }
        }
    }

    @Test func odd_units_reluKeepsNoPairsAndScans() throws {
        let dir = Self.fixtures.appendingPathComponent("keras/odd_units_relu")
        let model = try KerasModelLoader.load(path: dir.appendingPathComponent("model.keras").path)
        let db = makeTempDir() + "/g.db"
        _ = try Recorder.record(model: model, modelPath: dir.appendingPathComponent("model.keras").path,
                                inputPath: dir.appendingPathComponent("input.npy").path, databasePath: db, options: RecordOptions())
        let database = try ReadAccess.open(db)
        let maxAbs = try database.scalar("SELECT max(abs(h)) FROM gates")?.doubleValue ?? 0
        let kept = try count(database, "SELECT count(*) FROM layers WHERE pairs_stored = 1")
        // Pairs are kept exactly when every h of the layer is within [-1, 1].
        #expect((maxAbs > 1) == (kept == 0))
    }

    /// PairAccumulator (staged rank-K updates in Doubles, or IFMA integer halves, flushed to
    /// Int128) equals the direct Int128 sums of quantized products, across stage and flush
    /// boundaries, with inactive steps, on every path of the C staging loop (2: AVX-512, 1: AVX2,
    /// each where the CPU has it, 0: portable) and both product sums (integer: where the CPU has IFMA).
    @Test(arguments: [Int32(0), 1, 2], [false, true]) func pairMomentsEqualDirectSums(path: Int32, integerProducts: Bool) throws {
        var rng = SplitMix(7)
        let units = 37, width = 2, steps = 9001  // 37: whole and partial tiles of every kernel
        var values = [Float](repeating: 0, count: steps * units * width)
        var active = [Bool](repeating: false, count: steps)
        let specials: [Float] = [1, -1, 0, -0.0, 1e-7, -3e-9, 0.999_999_94, -0.999_999_94, Float.leastNonzeroMagnitude,
                                 // ties of round(h * 2^40): h = (k + 1/2) 2^-40
                                 0x1.8p-40, -0x1.8p-40, 0x1.4p-39, -0x1.4p-39]
        for t in 0..<steps {
            active[t] = rng.int(0..<10) != 0
            for u in 0..<units {
                let v = rng.int(0..<8) == 0 ? specials[rng.int(0..<specials.count)] : rng.float()
                values[(t * units + u) * width + 1] = v
                values[(t * units + u) * width] = 99  // the other plane must not be read
            }
        }
        let acc = PairAccumulator(units: [units], hPlane: [1], width: [width], integerProducts: integerProducts)
        // Two calls, as two sequences.
        values.withUnsafeBufferPointer { v in
            active.withUnsafeBufferPointer { a in
                acc.add(layer: 0, steps: 4000, values: v.baseAddress!, active: a.baseAddress!, path: path)
                acc.add(layer: 0, steps: steps - 4000, values: v.baseAddress! + 4000 * units * width, active: a.baseAddress! + 4000, path: path)
            }
        }
        let m = try #require(acc.moments(layer: 0))
        var n: Int64 = 0
        var sum = [Int128](repeating: 0, count: units), sq = sum
        var pairs = [Int128](repeating: 0, count: units * (units - 1) / 2)
        for t in 0..<steps where active[t] {
            n += 1
            let q = (0..<units).map { Int128(PairMoments.quantized(Double(values[(t * units + $0) * width + 1]))) }
            for a in 0..<units {
                sum[a] += q[a]; sq[a] += q[a] * q[a]
                for b in (a + 1)..<units { pairs[PairAccumulator.pairIndex(a, b, units: units)] += q[a] * q[b] }
            }
        }
        #expect(m.steps == n && m.sum == sum && m.sumSq == sq && m.pairs == pairs)
        // A value outside [-1, 1] drops the layer's pairs.
        for outside: Float in [1.5, -1.0000001, .nan] {
            let relu = PairAccumulator(units: [2], hPlane: [0], width: [1], integerProducts: integerProducts)
            let big: [Float] = [0.5, outside], on = [true]
            big.withUnsafeBufferPointer { v in on.withUnsafeBufferPointer { relu.add(layer: 0, steps: 1, values: v.baseAddress!, active: $0.baseAddress!, path: path) } }
            #expect(relu.moments(layer: 0) == nil, "h = \(outside)")
        }
    }

    /// Pair sums at the top of their range stay exact: h at ±1 and just inside (A1 + A0 just below
    /// 2^21, its square just below 2^42) for more steps than a flush holds, on every path.
    @Test(arguments: [Int32(0), 1, 2], [false, true]) func pairMomentsAtTheTopOfTheRange(path: Int32, integerProducts: Bool) throws {
        let top: [Float] = [0.999_999_94, 1, -0.999_999_94, -1, 0.999_999_94 - 0x1p-20]
        let units = top.count, steps = 9000
        let values = (0..<(steps * units)).map { top[$0 % units] }
        let active = [Bool](repeating: true, count: steps)
        let acc = PairAccumulator(units: [units], hPlane: [0], width: [1], integerProducts: integerProducts)
        values.withUnsafeBufferPointer { v in
            active.withUnsafeBufferPointer { a in acc.add(layer: 0, steps: steps, values: v.baseAddress!, active: a.baseAddress!, path: path) }
        }
        let m = try #require(acc.moments(layer: 0))
        let q = top.map { Int128(PairMoments.quantized(Double($0))) }
        let n = Int128(steps)
        #expect(m.sum == q.map { $0 * n } && m.sumSq == q.map { $0 * $0 * n })
        for a in 0..<units {
            for b in (a + 1)..<units { #expect(m.pairs[PairAccumulator.pairIndex(a, b, units: units)] == q[a] * q[b] * n, "pair \(a), \(b)") }
        }
    }

    /// Sequences added several a call (the recorder's way: rising IDs take the 128-lane path,
    /// others the per-sequence one) give the spans that one call per sequence gives.
    @Test func batchedSpansEqualOneSequenceACall() throws {
        var rng = SplitMix(23)
        let units = 4, steps = 40, perCall = 10
        let one = SpanAccumulator(units: [units], memoryPlane: [1], width: [2])
        let batched = SpanAccumulator(units: [units], memoryPlane: [1], width: [2])
        for call in 0..<3 {
            // Call 1 gives its IDs falling.
            let ids = (0..<perCall).map { Int64(call * perCall + (call == 1 ? perCall - 1 - $0 : $0)) }
            var values = [Float](repeating: 0, count: perCall * steps * units * 2)
            var active = [Bool](repeating: true, count: perCall * steps)
            for i in active.indices { active[i] = rng.int(0..<9) != 0 }
            for i in values.indices { values[i] = rng.int(0..<4) == 0 ? 1 : Float(rng.int(0..<101)) / 100 }
            values.withUnsafeBufferPointer { v in
                active.withUnsafeBufferPointer { a in
                    batched.add(layer: 0, seqIDs: ids, steps: steps, values: v.baseAddress!, valueStride: steps * units * 2,
                                active: a.baseAddress!, activeStride: steps)
                    for (s, id) in ids.enumerated() {
                        one.add(layer: 0, seqID: id, steps: steps, values: v.baseAddress! + s * steps * units * 2,
                                active: a.baseAddress! + s * steps)
                    }
                }
            }
        }
        let got = try #require(batched.spans(layer: 0)), want = try #require(one.spans(layer: 0))
        for k in got.indices where got[k] != want[k] {
            Issue.record("unit \(k / (SpanAccumulator.grid + 1)) threshold \(k % (SpanAccumulator.grid + 1)): \(got[k]) vs \(want[k])")
            break
        }
        #expect(want.contains { $0.count > 1 && $0.longest > 3 })
    }

    /// SpanAccumulator equals a brute-force scan at every threshold, with masks, ties across and
    /// within sequences, and values exactly on thresholds.
    /// Every C path (2: AVX-512 levels and lanes, 1: AVX2 ones, 0: portable) against brute force, on 11 units
    /// (a whole vector and a partial one) of plane 1 of 2, with values on and next to thresholds.
    @Test(arguments: [Int32(0), 1, 2]) func spansEqualBruteForce(path: Int32) throws {
        var rng = SplitMix(11)
        let units = 11, width = 2, grid = SpanAccumulator.grid
        var levels: [Float] = [0, 0.5, 0.9, 0.905, 0.95, 1, 0.01, 0.3, 0.25, 0.75, -0.0, -0.5, .leastNonzeroMagnitude,
                               1.000_000_1, 2, .infinity, -.infinity, .nan]
        for k in [1, 3, 7, 25, 50, 99, 100] {
            let x = Float(k) / 100
            levels += [x, x.nextUp, x.nextDown]
        }
        let acc = SpanAccumulator(units: [units], memoryPlane: [1], width: [width])
        var want = [Span](repeating: Span(), count: units * (grid + 1))
        for seq in 0..<60 {
            // Up to 64 steps take the bit-mask path, longer ones the stack; sequence IDs out of
            // order exercise the tie-breaks; sequence 5 is one span of 64 steps at every threshold.
            let steps = [rng.int(1..<30), 64, rng.int(60..<70), rng.int(100..<150)][seq % 4]
            let seqID = Int64((seq * 37) % 60)
            var values = [Float](repeating: 0, count: steps * units * width)
            var active = [Bool](repeating: true, count: steps)
            for t in 0..<steps {
                active[t] = seq == 5 || rng.int(0..<7) != 0
                for u in 0..<units {
                    values[(t * units + u) * width + 1] = seq == 5 ? 1 : rng.int(0..<3) == 0 ? (rng.float() + 1) / 2 : levels[rng.int(0..<levels.count)]
                    values[(t * units + u) * width] = 0.99  // the other plane must not be read
                }
            }
            values.withUnsafeBufferPointer { v in
                active.withUnsafeBufferPointer {
                    acc.add(layer: 0, seqID: seqID, steps: steps, values: v.baseAddress!, active: $0.baseAddress!, path: path)
                }
            }
            for u in 0..<units {
                for k in 0...grid {
                    let t = Double(k) / Double(grid)
                    var run = 0
                    for step in 0...steps {
                        let hit = step < steps && active[step] && Double(values[(step * units + u) * width + 1]) > t
                        if hit { run += 1; continue }
                        if run > 0 {
                            want[u * (grid + 1) + k].merge(Span(longest: Int32(run), seqID: seqID, firstStep: Int32(step - run), count: 1))
                        }
                        run = 0
                    }
                }
            }
        }
        let got = try #require(acc.spans(layer: 0))
        for k in got.indices where got[k] != want[k] {
            Issue.record("unit \(k / (grid + 1)) threshold \(k % (grid + 1)): \(got[k]) vs brute force \(want[k])")
            break
        }
        #expect(want.contains { $0.count > 1 && $0.longest > 3 })
    }
}
