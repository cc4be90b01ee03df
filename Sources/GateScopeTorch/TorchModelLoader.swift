import Foundation
import GateScopeEngine

/// Loads nn.LSTM / nn.GRU / nn.RNN modules from PyTorch state dicts (`.pt` from `torch.save`, or
/// `.safetensors`) into engine models: input `x` `[batch, time, features]`, outputs `output`
/// (the last layer's sequence, zero past a sequence's length), `h_n` and `c_n` in torch's
/// `[layers*directions, batch, size]` layout. Layers are named `P.l0`, `P.l1`, ... (`l0` when the
/// keys have no prefix), each with fwd/bwd halves.
public enum TorchModelLoader {
    /// A recurrent module found by its keys.
    struct Module {
        var prefix: String
        var layers: Int
        var bidirectional: Bool
    }

    /// The recurrent modules of a state dict: prefixes of `weight_ih_l0` keys ("" for none).
    static func modules(_ tensors: [String: StateTensor]) -> [Module] {
        var prefixes = Set<String>()
        for key in tensors.keys {
            guard let r = key.range(of: "weight_ih_l", options: .backwards) else { continue }
            let suffix = key[r.upperBound...]
            guard !suffix.isEmpty, suffix.hasSuffix("_reverse") ? suffix.dropLast(8).allSatisfy(\.isNumber) : suffix.allSatisfy(\.isNumber) else { continue }
            prefixes.insert(String(key[..<r.lowerBound]))
        }
        return prefixes.sorted().map { p in
            var layers = 0
            while tensors["\(p)weight_ih_l\(layers)"] != nil { layers += 1 }
            return Module(prefix: p, layers: layers, bidirectional: tensors["\(p)weight_ih_l0_reverse"] != nil)
        }
    }

    /// Loads `path`; `module` picks one recurrent module when the file holds several.
    public static func load(path: String, module wanted: String? = nil) throws -> Model {
        let (tensors, format, producer) = try StateDictFiles.read(path: path)
        let found = modules(tensors)
        func name(_ m: Module) -> String { m.prefix.hasSuffix(".") ? String(m.prefix.dropLast()) : m.prefix }
        guard !found.isEmpty else {
            throw TorchError(file: path, message: "no nn.LSTM, nn.GRU or nn.RNN weights (keys like weight_ih_l0) in the file")
        }
        let module: Module
        if let wanted {
            guard let m = found.first(where: { name($0) == wanted }) else {
                throw TorchError(file: path, message: "no recurrent module '\(wanted)' (modules: \(found.map { name($0).isEmpty ? "(no prefix)" : name($0) }.joined(separator: ", ")))")
            }
            module = m
        } else {
            guard found.count == 1 else {
                throw TorchError(file: path, message: "the file holds several recurrent modules (\(found.map(name).joined(separator: ", "))); pick one with --module NAME")
            }
            module = found[0]
        }
        do {
            var model = Model(name: name(module).isEmpty ? URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent : name(module),
                              format: format, kerasVersion: "", graph: try graph(module, tensors, label: name(module)))
            model.producer = producer
            return model
        } catch let e as EngineError {
            throw TorchError(file: path, message: "\(e)")
        } catch let e as TorchError {
            throw TorchError(file: path, message: e.message)
        }
    }

    /// `[rows, cols]` weights as a Matrix transposed to `[cols, rows]`, gate blocks reordered.
    static func transposed(_ t: StateTensor, blocks order: [Int], blockRows: Int) -> Matrix {
        let rows = t.shape[0], cols = t.shape[1]
        var out = [Float](repeating: 0, count: rows * cols)
        for (ours, theirs) in order.enumerated() {
            for j in 0..<blockRows {
                let src = (theirs * blockRows + j) * cols, dst = ours * blockRows + j
                for i in 0..<cols { out[i * rows + dst] = t.values[src + i] }
            }
        }
        return Matrix(rows: cols, cols: rows, values: out)
    }

    static func reordered(_ v: [Float], blocks order: [Int], size: Int) -> [Float] {
        order.flatMap { v[($0 * size)..<(($0 + 1) * size)] }
    }

    static func graph(_ m: Module, _ tensors: [String: StateTensor], label: String) throws -> Graph {
        let p = m.prefix
        func tensor(_ key: String, rank: Int) throws -> StateTensor {
            guard let t = tensors[p + key] else { throw TorchError(file: "", message: "missing \(p + key)") }
            guard t.shape.count == rank else { throw TorchError(file: "", message: "\(p + key) has shape \(t.shape), expected rank \(rank)") }
            return t
        }
        let hh0 = try tensor("weight_hh_l0", rank: 2)
        let hr0 = tensors[p + "weight_hr_l0"] == nil ? nil : try tensor("weight_hr_l0", rank: 2)
        let hidden = hr0?.shape[1] ?? hh0.shape[1]
        guard hidden > 0, hh0.shape[0] % hidden == 0 else { throw TorchError(file: "", message: "\(p)weight_hh_l0 has shape \(hh0.shape), not a multiple of the hidden size") }
        let gates = hh0.shape[0] / hidden
        let cell: CellKind
        switch gates {
        case 4: cell = .lstm
        case 3: cell = .gru
        case 1: cell = .simpleRNN
        default: throw TorchError(file: "", message: "\(p)weight_hh_l0 has \(hh0.shape[0]) rows for hidden size \(hidden): not an LSTM, GRU or RNN")
        }
        let proj = hr0?.shape[0] ?? 0
        let out = proj > 0 ? proj : hidden
        let dirs = m.bidirectional ? 2 : 1
        let inputSize = try tensor("weight_ih_l0", rank: 2).shape[1]
        // Torch gate blocks: LSTM i f g o (GateScope's order); GRU r z n -> z r n.
        let order = cell == .gru ? [1, 0, 2] : Array(0..<gates)

        var b = GraphBuilder()
        var x = try b.addInput(name: "x", shape: [nil, inputSize], dtype: .float32)
        var hs: [TensorID] = [], cs: [TensorID] = []
        let className = cell == .lstm ? "nn.LSTM" : cell == .gru ? "nn.GRU" : "nn.RNN"
        for l in 0..<m.layers {
            var cells: [RecurrentCell] = []
            for d in 0..<dirs {
                let sfx = "_l\(l)" + (d == 1 ? "_reverse" : "")
                let wih = try tensor("weight_ih" + sfx, rank: 2), whh = try tensor("weight_hh" + sfx, rank: 2)
                let features = l == 0 ? inputSize : dirs * out
                guard wih.shape == [gates * hidden, features] else {
                    throw TorchError(file: "", message: "\(p)weight_ih\(sfx) has shape \(wih.shape), expected [\(gates * hidden), \(features)]")
                }
                guard whh.shape == [gates * hidden, out] else {
                    throw TorchError(file: "", message: "\(p)weight_hh\(sfx) has shape \(whh.shape), expected [\(gates * hidden), \(out)]")
                }
                let kernel = transposed(wih, blocks: order, blockRows: hidden), recurrent = transposed(whh, blocks: order, blockRows: hidden)
                // Counted before the gate blocks are reordered, which reads every block.
                for key in ["bias_ih", "bias_hh"] {
                    if let bias = tensors[p + key + sfx], bias.values.count != gates * hidden {
                        throw TorchError(file: "", message: "\(p)\(key)\(sfx) has \(bias.values.count) values, expected \(gates * hidden)")
                    }
                }
                let bih = tensors[p + "bias_ih" + sfx].map { reordered($0.values, blocks: order, size: hidden) }
                let bhh = tensors[p + "bias_hh" + sfx].map { reordered($0.values, blocks: order, size: hidden) }
                let summed: [Float]? = bih.map { a in zip(a, bhh ?? Array(repeating: 0, count: a.count)).map { $0 + $1 } }
                let name = "\(label.isEmpty ? "" : label + ".")l\(l) \(d == 0 ? "forward" : "reverse")"
                switch cell {
                case .lstm where proj > 0:
                    let hr = try tensor("weight_hr" + sfx, rank: 2)
                    guard hr.shape == [proj, hidden] else { throw TorchError(file: "", message: "\(p)weight_hr\(sfx) has shape \(hr.shape), expected [\(proj), \(hidden)]") }
                    cells.append(.generalLSTM(try GeneralLSTMSpec(name: name, units: hidden, inputDim: features, gateActivation: .sigmoid,
                                                                  cellActivation: .tanh, outputActivation: .tanh, goBackwards: d == 1,
                                                                  kernel: kernel, recurrentKernel: recurrent, bias: summed,
                                                                  projection: transposed(hr, blocks: [0], blockRows: proj))))
                case .lstm:
                    cells.append(.lstm(try LSTMSpec(name: name, units: hidden, inputDim: features, activation: .tanh, recurrentActivation: .sigmoid,
                                                    goBackwards: d == 1, returnSequences: true, zeroOutputForMask: false,
                                                    kernel: kernel, recurrentKernel: recurrent, bias: summed)))
                case .gru:
                    cells.append(.gru(try GRUSpec(name: name, units: hidden, inputDim: features, activation: .tanh, recurrentActivation: .sigmoid,
                                                  goBackwards: d == 1, returnSequences: true, zeroOutputForMask: false, resetAfter: true,
                                                  kernel: kernel, recurrentKernel: recurrent, inputBias: bih, recurrentBias: bhh)))
                case .simpleRNN:
                    // A state dict does not say nn.RNN's nonlinearity; tanh is torch's default.
                    cells.append(.simpleRNN(try SimpleRNNSpec(name: name, units: hidden, inputDim: features, activation: .tanh, goBackwards: d == 1,
                                                              returnSequences: true, zeroOutputForMask: false, kernel: kernel,
                                                              recurrentKernel: recurrent, bias: summed)))
                }
            }
            let op = try FrameworkRecurrentOp(className: className, directions: cells, hasLengths: false, hasInitialH: false, hasInitialC: false)
            let layerName = "\(label.isEmpty ? "" : label + ".")l\(l)"
            let outs = try b.add(layer: layerName, op: op, inputs: [x])
            x = try b.add(layer: "\(layerName) output", op: MergeDirectionsOp(), inputs: [outs[0]])[0]
            hs.append(outs[1])
            if cell == .lstm { cs.append(outs[2]) }
        }
        b.addOutput(name: "output", tensor: x)
        // h_n, c_n: [batch, layers*directions, size] here, torch's [layers*directions, batch, size] for predict.
        let hn = hs.count == 1 ? hs[0] : try b.add(layer: "h_n", op: StackStatesOp(), inputs: hs)[0]
        b.addOutput(name: "h_n", tensor: hn, fileBatchAxis: 1)
        if cell == .lstm {
            let cn = cs.count == 1 ? cs[0] : try b.add(layer: "c_n", op: StackStatesOp(), inputs: cs)[0]
            b.addOutput(name: "c_n", tensor: cn, fileBatchAxis: 1)
        }
        return try Graph(b)
    }
}
