// Engine-only throughput benchmark (prints figures; not a test).
//
//   gatescope-bench MODEL.keras X.npy [--batch B] [--repeat R]
//   gatescope-bench --synthetic UNITS,UNITS,... --features F --time T [--batch B] [--repeat R]
//   options: --threads N (default every core), --min-seconds S (repeat until S seconds are timed),
//            --no-observer (engine alone, gates not read), --sequences N (synthetic: sequences per run)
//
// Times `Model.forward` with an observer that reads every gate value (so the cost of exposing
// the gates is included), over all sequences of X in batches of B, R times; prints the median.
// The process keeps freed memory for reuse, as gatescope does (gs_keep_freed_memory).
import CMalloc
import Foundation
import GateScopeEngine
import GateScopeInput
import GateScopeKeras

/// Touches every reported value, so nothing can be optimized away.
final class Checksum: GateObserver {
    var sum: Double = 0
    func observe(_ s: GateStep) throws {
        var acc: Float = 0
        for k in 0..<(s.batchSize * s.units) { acc += s.i[k] + s.f[k] + s.g[k] + s.o[k] + s.c[k] + s.h[k] }
        sum += Double(acc)
    }
}

func option(_ name: String) -> String? {
    let a = CommandLine.arguments
    guard let k = a.firstIndex(of: name), k + 1 < a.count else { return nil }
    return a[k + 1]
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write((message + "\n").data(using: .utf8)!)
    exit(2)
}

_ = gs_keep_freed_memory()
let batchSize = Int(option("--batch") ?? "64")!
let repeats = Int(option("--repeat") ?? "7")!
let threads = option("--threads").map { Int($0)! }
let minSeconds = Double(option("--min-seconds") ?? "0")!
let observe = !CommandLine.arguments.contains("--no-observer")
let model: Model
var x: [Float]
let n: Int, time: Int, features: Int

if let sizes = option("--synthetic") {
    features = Int(option("--features") ?? "64")!
    time = Int(option("--time") ?? "100")!
    n = Int(option("--sequences") ?? String(batchSize))!
    var seed: UInt64 = 42
    func rnd(_ count: Int, _ scale: Float) -> [Float] {
        (0..<count).map { _ in
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return (Float(seed >> 40) / Float(1 << 24) * 2 - 1) * scale
        }
    }
    var layers = [Layer(name: "input", className: "InputLayer", kind: .input(featureDim: features))]
    var inDim = features
    for (k, s) in sizes.split(separator: ",").enumerated() {
        let u = Int(s)!
        let spec = try LSTMSpec(name: "lstm_\(k)", units: u, inputDim: inDim, activation: .tanh, recurrentActivation: .sigmoid,
                                goBackwards: false, returnSequences: true, zeroOutputForMask: false,
                                kernel: Matrix(rows: inDim, cols: 4 * u, values: rnd(inDim * 4 * u, 0.1)),
                                recurrentKernel: Matrix(rows: u, cols: 4 * u, values: rnd(u * 4 * u, 0.1)),
                                bias: rnd(4 * u, 0.1))
        layers.append(Layer(name: spec.name, className: "LSTM", kind: .lstm(spec)))
        inDim = u
    }
    model = try Model(name: "synthetic", format: "synthetic", kerasVersion: "3", layers: layers)
    x = rnd(n * time * features, 1)
} else {
    let positional = CommandLine.arguments.dropFirst().filter { !$0.hasPrefix("--") }
    guard positional.count >= 2 else { fail("usage: gatescope-bench MODEL X.npy [--batch B] [--repeat R]") }
    let args = Array(positional)
    model = try KerasModelLoader.load(path: args[0])
    let array = try NPY.read(path: args[1])
    guard array.shape.count == 3 else { fail("X.npy must be float [batch, time, features]") }
    (n, time, features) = (array.shape[0], array.shape[1], array.shape[2])
    x = try array.floats()
}

var times: [Double] = []
let observer = Checksum()
var total = 0.0
while times.count < repeats || total < minSeconds {
    let start = DispatchTime.now().uptimeNanoseconds
    var b = 0
    while b < n {
        let m = min(batchSize, n - b)
        let slice = Array(x[(b * time * features)..<((b + m) * time * features)])
        _ = try model.forward(SequenceBatch(features: slice, batchSize: m, time: time, featureDim: features), observer: observe ? observer : nil, threads: threads)
        b += m
    }
    times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    total += times.last!
}
times.sort()
let median = times[times.count / 2]
let units = model.recurrentLayers.map { String($0.units) }.joined(separator: ",")
print(String(format: "gatescope-engine batch=%d: median %.4f s over %d runs, %.0f steps*seqs/s (LSTM %@, %d seqs x %d steps, kernels %@)",
             batchSize, median, times.count, Double(n * time) / median, units, n, time, KernelPath.current.rawValue))
