import Foundation
import GateScopeEngine
import GateScopeInput
@testable import GateScopeRecording
@testable import GateScopeStore

/// A fresh temporary directory per test.
func makeTempDir(_ tag: String = #function) -> String {
    let safe = tag.filter { $0.isLetter || $0.isNumber }
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("gatescope-store-\(safe)-\(UUID().uuidString.prefix(8))").path
    try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

/// Deterministic pseudo-random numbers (SplitMix64).
struct SplitMix {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
    /// Uniform in [-scale, scale).
    mutating func float(_ scale: Float = 1) -> Float {
        Float(Double(next() >> 11) / Double(1 << 53) * 2 - 1) * scale
    }
    mutating func int(_ range: Range<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
}

func randomMatrix(_ rows: Int, _ cols: Int, _ rng: inout SplitMix, scale: Float = 0.5) -> Matrix {
    Matrix(rows: rows, cols: cols, values: (0..<(rows * cols)).map { _ in rng.float(scale) })
}

func lstmSpec(_ name: String, units: Int, inputDim: Int, returnSequences: Bool = true, goBackwards: Bool = false,
              rng: inout SplitMix, activation: Activation = .tanh, recurrent: Activation = .sigmoid) -> LSTMSpec {
    try! LSTMSpec(name: name, units: units, inputDim: inputDim, activation: activation, recurrentActivation: recurrent,
                  goBackwards: goBackwards, returnSequences: returnSequences, zeroOutputForMask: false,
                  kernel: randomMatrix(inputDim, 4 * units, &rng), recurrentKernel: randomMatrix(units, 4 * units, &rng),
                  bias: (0..<(4 * units)).map { _ in rng.float(0.3) })
}

/// Input(features) [-> Masking] -> LSTM(u1) -> LSTM(u2) -> Dense(2).
func stackedModel(features: Int = 3, units: (Int, Int) = (5, 4), masking: Bool = false, seed: UInt64 = 1) -> Model {
    var rng = SplitMix(seed)
    var layers = [Layer(name: "input", className: "InputLayer", kind: .input(featureDim: features))]
    if masking { layers.append(Layer(name: "masking", className: "Masking", kind: .masking(maskValue: 0))) }
    layers.append(Layer(name: "lstm_a", className: "LSTM", kind: .lstm(lstmSpec("lstm_a", units: units.0, inputDim: features, rng: &rng))))
    layers.append(Layer(name: "lstm_b", className: "LSTM", kind: .lstm(lstmSpec("lstm_b", units: units.1, inputDim: units.0, rng: &rng))))
    layers.append(Layer(name: "dense", className: "Dense", kind: .dense(kernel: randomMatrix(units.1, 2, &rng), bias: [0, 0], activation: .linear)))
    return try! Model(name: "stacked", format: "test", kerasVersion: "3.0.0", layers: layers)
}

/// Input(features) -> Bidirectional(LSTM(u)) -> LSTM(u2, go_backwards).
func bidirectionalModel(features: Int = 2, units: Int = 3, seed: UInt64 = 7) -> Model {
    var rng = SplitMix(seed)
    let f = lstmSpec("fwd", units: units, inputDim: features, rng: &rng)
    let b = lstmSpec("bwd", units: units, inputDim: features, goBackwards: true, rng: &rng)
    let layers = [
        Layer(name: "input", className: "InputLayer", kind: .input(featureDim: features)),
        Layer(name: "bi", className: "Bidirectional", kind: .bidirectional(forward: f, backward: b, merge: .concat)),
        Layer(name: "back", className: "LSTM", kind: .lstm(lstmSpec("back", units: 2, inputDim: 2 * units, goBackwards: true, rng: &rng))),
    ]
    return try! Model(name: "bi", format: "test", kerasVersion: "3.0.0", layers: layers)
}

/// Input(tokens) -> Embedding(vocab, mask_zero) -> LSTM(u).
func tokenModel(vocab: Int = 6, dim: Int = 3, units: Int = 4, maskZero: Bool = true, seed: UInt64 = 3) -> Model {
    var rng = SplitMix(seed)
    let layers = [
        Layer(name: "input", className: "InputLayer", kind: .input(featureDim: nil)),
        Layer(name: "embedding", className: "Embedding", kind: .embedding(embeddings: randomMatrix(vocab, dim, &rng), maskZero: maskZero)),
        Layer(name: "lstm", className: "LSTM", kind: .lstm(lstmSpec("lstm", units: units, inputDim: dim, rng: &rng))),
    ]
    return try! Model(name: "tok", format: "test", kerasVersion: "3.0.0", layers: layers)
}

/// A fake model file (the recorder fingerprints it).
func writeModelFile(_ dir: String, _ contents: String = "model") -> String {
    let path = dir + "/model.keras"
    try! contents.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

/// Float sequences of the given lengths, padded into x [n, maxLen, features] (+ lengths, ids) in an .npz.
struct FeatureInput {
    var sequences: [[Float]]  // each [length * features]
    var features: Int
    var lengths: [Int] { sequences.map { $0.count / features } }

    init(lengths: [Int], features: Int, seed: UInt64 = 11) {
        var rng = SplitMix(seed)
        self.features = features
        sequences = lengths.map { n in (0..<(n * features)).map { _ in rng.float(2) } }
    }

    func writeNPZ(_ path: String, withLengths: Bool = true) throws {
        let time = lengths.max() ?? 0
        var x = [Float](repeating: 0, count: sequences.count * time * features)
        for (b, s) in sequences.enumerated() { for k in s.indices { x[b * time * features + k] = s[k] } }
        var arrays: [String: NPYArray] = ["x": NPYArray(floats: x, shape: [sequences.count, time, features])]
        if withLengths { arrays["lengths"] = NPYArray(int64s: lengths.map(Int64.init), shape: [sequences.count]) }
        arrays["ids"] = NPYArray(strings: sequences.indices.map { "s\($0)" }, shape: [sequences.count])
        try NPZ.write(arrays, to: path)
    }
}

/// A reference row: every unmasked (seq, layer, step, unit) with its six values.
struct RowKey: Hashable, Comparable {
    var seq, layer, step, unit: Int
    static func < (a: RowKey, b: RowKey) -> Bool { (a.seq, a.layer, a.step, a.unit) < (b.seq, b.layer, b.step, b.unit) }
}

/// Collects gate steps directly from the engine.
final class ReferenceObserver: GateObserver {
    var rows: [RowKey: [Float]] = [:]
    var seqOffset = 0
    var observedLayers: Set<Int>?
    init(layers: Set<Int>? = nil) { observedLayers = layers }
    func observe(_ s: GateStep) throws {
        for b in 0..<s.batchSize where s.active[b] {
            for u in 0..<s.units {
                let k = b * s.units + u
                rows[RowKey(seq: seqOffset + b, layer: s.layer, step: s.step, unit: u)] = [s.i[k], s.f[k], s.g[k], s.o[k], s.c[k], s.h[k]]
            }
        }
    }
}

/// Runs the engine over `sequences` in consecutive batches as the recorder forms them when the
/// buffer budget is not hit (4, 8, 16, ... up to `batchSize`), collecting every reported row.
func referenceRows(model: Model, sequences: [[Float]], features: Int, batchSize: Int, layers: Set<Int>? = nil,
                   rampStart: Int = RecordOptions().batchRampStart) throws -> [RowKey: [Float]] {
    let observer = ReferenceObserver(layers: layers)
    var start = 0
    var batchIndex = 0
    while start < sequences.count {
        let size = rampStart > 0 ? min(batchSize, rampStart << batchIndex) : batchSize
        batchIndex += 1
        let group = Array(sequences[start..<min(start + size, sequences.count)])
        let lengths = group.map { $0.count / features }
        let time = lengths.max()!
        var x = [Float](repeating: 0, count: group.count * time * features)
        for (b, s) in group.enumerated() { for k in s.indices { x[b * time * features + k] = s[k] } }
        observer.seqOffset = start
        _ = try model.forward(SequenceBatch(features: x, batchSize: group.count, time: time, featureDim: features, lengths: lengths), observer: observer)
        start += group.count
    }
    return observer.rows
}

/// Every gates row of a run, keyed like the reference.
func storedRows(_ db: Database, run: Int64) throws -> [RowKey: [Float]] {
    var out: [RowKey: [Float]] = [:]
    let st = try db.prepare("SELECT seq_id, layer_id, step, unit, i, f, g, o, c, h FROM gates WHERE run_id = ?")
    try st.bind([run])
    while try st.step() {
        out[RowKey(seq: st.int(at: 0), layer: st.int(at: 1), step: st.int(at: 2), unit: st.int(at: 3))] =
            (4..<10).map { Float(st.double(at: $0)) }
    }
    return out
}

func count(_ db: Database, _ sql: String, _ args: SQLiteBindable...) throws -> Int64 {
    let st = try db.prepare(sql)
    try st.bind(args)
    guard try st.step() else { return 0 }
    return st.int64(at: 0)
}
