import GateScopeEngine

// ONNX's LSTM, GRU and RNN operators as engine recurrent calls (FrameworkRecurrentOp).
//
// Weights per direction d (ONNX operator spec): W [D, G*H, F], R [D, G*H, H], B [D, 2*G*H]
// (input biases, then recurrent ones), with gate blocks LSTM i, o, f, c; GRU z, r, h; RNN one.
// GateScope keeps LSTM gates as i, f, g, o and GRU's as z, r, n; the recorded gates are the ones
// the op computes, peepholes and clip included.
extension Importer {
    /// An ONNX recurrent activation with its alpha/beta (defaults from the operator spec).
    func activation(_ name: String, alpha: Float?, beta: Float?) throws -> Activation {
        switch name.lowercased() {
        case "sigmoid": return .sigmoid
        case "tanh": return .tanh
        case "relu": return .relu
        case "softsign": return .softsign
        case "softplus": return .softplus
        case "elu": return alpha == nil || alpha == 1 ? .elu : .onnxElu(alpha: alpha!)
        case "hardsigmoid": return .onnxHardSigmoid(alpha: alpha ?? 0.2, beta: beta ?? 0.5)
        case "leakyrelu": return .onnxLeakyRelu(alpha: alpha ?? 0.01)
        case "thresholdedrelu": return .onnxThresholdedRelu(alpha: alpha ?? 1)
        case "scaledtanh": return .onnxScaledTanh(alpha: alpha ?? 1, beta: beta ?? 1)
        case "affine": return .onnxAffine(alpha: alpha ?? 1, beta: beta ?? 0)
        default: throw fail("recurrent activation \(name) is not supported")
        }
    }

    mutating func recurrent(_ n: Onnx_NodeProto, name: String, inputs: [Value]) throws {
        let op = n.opType
        let gates = op == "LSTM" ? 4 : op == "GRU" ? 3 : 1
        guard let h = attr(n, "hidden_size").map({ Int($0.i) }), h > 0 else { throw fail("hidden_size is missing") }
        let direction = string(n, "direction") ?? "forward"
        let dirs = direction == "bidirectional" ? 2 : 1
        guard ["forward", "reverse", "bidirectional"].contains(direction) else { throw fail("direction '\(direction)' is not supported") }
        let layout = int(n, "layout", 0)
        guard layout == 0 || layout == 1 else { throw fail("layout \(layout) is not supported") }
        guard case let .runtime(x) = inputs[0] else { throw fail("X must depend on the model inputs") }
        guard x.shape.count == 3, x.batchAxis == (layout == 0 ? 1 : 0) else {
            throw fail("X must be \(layout == 0 ? "[time, batch, features]" : "[batch, time, features]") (layout \(layout)), got \(x.shape)")
        }
        guard let features = x.shape[2].known else { throw fail("the feature size of X must be known") }
        func weights(_ k: Int, _ what: String, _ shape: [Int]) throws -> NDArray? {
            guard k < inputs.count else { return nil }
            switch inputs[k] {
            case .absent: return nil
            case let .floats(a):
                guard a.shape == shape else { throw fail("\(what) has shape \(a.shape), expected \(shape)") }
                return a
            case let .filled(v, d) where d.allSatisfy({ $0.known != nil }):
                let s = d.map { $0.known! }
                guard s == shape else { throw fail("\(what) has shape \(s), expected \(shape)") }
                return NDArray(shape: s, values: Array(repeating: v, count: s.reduce(1, *)))
            default: throw fail("\(what) must be a constant (initializer)")
            }
        }
        guard let w = try weights(1, "W", [dirs, gates * h, features]) else { throw fail("W is missing") }
        guard let r = try weights(2, "R", [dirs, gates * h, h]) else { throw fail("R is missing") }
        let b = try weights(3, "B", [dirs, 2 * gates * h])
        let peep = op == "LSTM" ? try weights(7, "P", [dirs, 3 * h]) : nil

        // Sequence lengths and initial states: run-time inputs, or omitted / all-zero constants.
        var engineInputs = [x.tensor]
        var hasLengths = false, hasH = false, hasC = false
        if inputs.count > 4, case let .runtime(s) = inputs[4] {
            guard s.shape.count == 1 else { throw fail("sequence_lens must be [batch]") }
            engineInputs.append(s.tensor); hasLengths = true
        } else if inputs.count > 4, !isAbsent(inputs[4]) {
            throw fail("sequence_lens given as a constant is not supported; make it a graph input")
        }
        let stateBatchAxis = layout == 0 ? 1 : 0
        func state(_ k: Int, _ what: String) throws -> Runtime? {
            guard k < inputs.count else { return nil }
            switch inputs[k] {
            case .absent: return nil
            case let .runtime(s):
                guard s.shape.count == 3, s.batchAxis == stateBatchAxis else { throw fail("\(what) must have the batch on axis \(stateBatchAxis) of 3") }
                return s
            case let .filled(v, _) where v == 0: return nil
            case let .filled(v, dims):
                // A run-time-sized constant state: filled per batch from X's batch size.
                guard dims.count == 3, dims[stateBatchAxis] == .batch,
                      let shape = try? dims.enumerated().map({ k, d -> Int in
                          if k == stateBatchAxis { return 0 }
                          guard let v = d.known else { throw fail("") }
                          return v
                      }) else { throw fail("\(what) must be [directions, batch, hidden]") }
                let rest = shape.enumerated().filter { $0.offset != stateBatchAxis }.map { Optional($0.element) }
                let op = ONNXTensorOp(className: "ConstantOfShape", kind: .fill(value: v, shape: shape, batchAxis: stateBatchAxis),
                                      operands: [.runtime(input: 0, batchAxis: x.batchAxis)], outputBatchAxes: [stateBatchAxis],
                                      outputInfos: [TensorInfo(shape: rest)])
                let t = try addNode("\(name) \(what)", op, [x.tensor])[0]
                return Runtime(tensor: t, shape: dims, batchAxis: stateBatchAxis, isInt: false)
            case let .floats(a) where a.values.allSatisfy({ $0 == 0 }): return nil
            case let .floats(a):
                // A constant state fixes the batch size; the op refuses other batches at run time.
                guard a.shape.count == 3 else { throw fail("\(what) must be 3-D") }
                let rest = a.shape.enumerated().filter { $0.offset != stateBatchAxis }.map { Optional($0.element) }
                let op = ONNXTensorOp(className: "Constant", kind: .identity, operands: [.constant(a)], outputBatchAxes: [stateBatchAxis],
                                      outputInfos: [TensorInfo(shape: rest)])
                let t = try addNode("\(name) \(what)", op, [])[0]
                return Runtime(tensor: t, shape: a.shape.map { .n($0) }, batchAxis: stateBatchAxis, isInt: false)
            default: throw fail("\(what) must be a graph input, a constant or omitted")
            }
        }
        if let s = try state(5, "initial_h") { engineInputs.append(s.tensor); hasH = true }
        if op == "LSTM", let s = try state(6, "initial_c") { engineInputs.append(s.tensor); hasC = true }

        let names = attr(n, "activations")?.strings.map { String(decoding: $0, as: UTF8.self) }
        let alphas = attr(n, "activation_alpha")?.floats ?? []
        let betas = attr(n, "activation_beta")?.floats ?? []
        let perDir = op == "LSTM" ? 3 : op == "GRU" ? 2 : 1
        let defaults = op == "LSTM" ? ["Sigmoid", "Tanh", "Tanh"] : op == "GRU" ? ["Sigmoid", "Tanh"] : ["Tanh"]
        if let names, names.count != perDir * dirs { throw fail("activations lists \(names.count) functions, expected \(perDir * dirs)") }
        // alpha/beta are listed for the activations that take them, in order.
        var acts: [Activation] = []
        var ai = 0, bi = 0
        for (k, fname) in (names ?? Array(repeating: defaults, count: dirs).flatMap { $0 }).enumerated() {
            _ = k
            let takesAlpha = ["hardsigmoid", "leakyrelu", "elu", "thresholdedrelu", "scaledtanh", "affine"].contains(fname.lowercased())
            let takesBeta = ["hardsigmoid", "scaledtanh", "affine"].contains(fname.lowercased())
            let a: Float? = takesAlpha && ai < alphas.count ? alphas[ai] : nil
            let bb: Float? = takesBeta && bi < betas.count ? betas[bi] : nil
            if takesAlpha { ai += 1 }
            if takesBeta { bi += 1 }
            acts.append(try activation(fname, alpha: a, beta: bb))
        }
        let clip = attr(n, "clip").map(\.f)
        let inputForget = int(n, "input_forget", 0) == 1
        if op != "LSTM", clip != nil { throw fail("clip is supported on LSTM only") }

        var cells: [RecurrentCell] = []
        for d in 0..<dirs {
            let backward = direction == "reverse" || d == 1
            // [features, G*h] from W[d] ([G*h, features]) with blocks reordered.
            let order: [Int] = op == "LSTM" ? [0, 2, 3, 1] : Array(0..<gates)  // ours i f g o <- onnx i o f c
            func columns(_ m: NDArray, rows: Int) -> Matrix {
                var out = [Float](repeating: 0, count: rows * gates * h)
                for (ours, theirs) in order.enumerated() {
                    for j in 0..<h {
                        let src = ((d * gates + theirs) * h + j) * rows
                        for i in 0..<rows { out[i * gates * h + ours * h + j] = m.values[src + i] }
                    }
                }
                return Matrix(rows: rows, cols: gates * h, values: out)
            }
            func biasPart(_ part: Int) -> [Float]? {
                guard let b else { return nil }
                var out = [Float](repeating: 0, count: gates * h)
                for (ours, theirs) in order.enumerated() {
                    for j in 0..<h { out[ours * h + j] = b.values[d * 2 * gates * h + part * gates * h + theirs * h + j] }
                }
                return out
            }
            let kernel = columns(w, rows: features), recurrentKernel = columns(r, rows: h)
            let wb = biasPart(0), rb = biasPart(1)
            let summed: [Float]? = wb.map { zip($0, rb!).map { $0 + $1 } }
            let a = Array(acts[(d * perDir)..<((d + 1) * perDir)])
            let cellName = dirs == 2 ? "\(name) \(d == 0 ? "forward" : "backward")" : name
            do {
                switch op {
                case "LSTM":
                    let p = peep.map { p -> (i: [Float], f: [Float], o: [Float]) in
                        let base = d * 3 * h
                        return (Array(p.values[base..<(base + h)]), Array(p.values[(base + 2 * h)..<(base + 3 * h)]),
                                Array(p.values[(base + h)..<(base + 2 * h)]))  // ONNX P is i, o, f
                    }
                    if p == nil, clip == nil, !inputForget, a[1] == a[2] {
                        cells.append(.lstm(try LSTMSpec(name: cellName, units: h, inputDim: features, activation: a[1], recurrentActivation: a[0],
                                                        goBackwards: backward, returnSequences: true, zeroOutputForMask: false,
                                                        kernel: kernel, recurrentKernel: recurrentKernel, bias: summed)))
                    } else {
                        cells.append(.generalLSTM(try GeneralLSTMSpec(name: cellName, units: h, inputDim: features, gateActivation: a[0],
                                                                      cellActivation: a[1], outputActivation: a[2], goBackwards: backward,
                                                                      kernel: kernel, recurrentKernel: recurrentKernel, bias: summed,
                                                                      peepholes: p, clip: clip, inputForget: inputForget)))
                    }
                case "GRU":
                    let lbr = int(n, "linear_before_reset", 0) == 1
                    cells.append(.gru(try GRUSpec(name: cellName, units: h, inputDim: features, activation: a[1], recurrentActivation: a[0],
                                                  goBackwards: backward, returnSequences: true, zeroOutputForMask: false, resetAfter: lbr,
                                                  kernel: kernel, recurrentKernel: recurrentKernel,
                                                  inputBias: lbr ? wb ?? Array(repeating: 0, count: 3 * h) : summed,
                                                  recurrentBias: lbr ? rb : nil)))
                default:
                    cells.append(.simpleRNN(try SimpleRNNSpec(name: cellName, units: h, inputDim: features, activation: a[0], goBackwards: backward,
                                                              returnSequences: true, zeroOutputForMask: false, kernel: kernel,
                                                              recurrentKernel: recurrentKernel, bias: summed)))
                }
            } catch let e as EngineError { throw fail("\(e)") }
        }
        let recurrentOp: FrameworkRecurrentOp
        do {
            recurrentOp = try FrameworkRecurrentOp(className: op, directions: cells, hasLengths: hasLengths, hasInitialH: hasH, hasInitialC: hasC)
        } catch let e as EngineError { throw fail("\(e)") }
        let outs = try addNode(name, recurrentOp, engineInputs)
        // ONNX layouts of Y, Y_h, Y_c; the engine keeps each batch first.
        let t = x.shape[layout == 0 ? 0 : 1], bdim = Dim.batch
        let y: [Dim] = layout == 0 ? [t, .n(dirs), bdim, .n(h)] : [bdim, t, .n(dirs), .n(h)]
        let st: [Dim] = layout == 0 ? [.n(dirs), bdim, .n(h)] : [bdim, .n(dirs), .n(h)]
        var results: [Value] = [.runtime(Runtime(tensor: outs[0], shape: y, batchAxis: layout == 0 ? 2 : 0, isInt: false)),
                                .runtime(Runtime(tensor: outs[1], shape: st, batchAxis: layout == 0 ? 1 : 0, isInt: false))]
        if op == "LSTM" { results.append(.runtime(Runtime(tensor: outs[2], shape: st, batchAxis: layout == 0 ? 1 : 0, isInt: false))) }
        set(n, results)
    }
}
