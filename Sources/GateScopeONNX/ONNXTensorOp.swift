import Foundation
import GateScopeEngine

/// A size in a shape the importer could not fix: known, taken from an input axis at run time
/// (a batch or time size), or inferred (Reshape's -1).
enum SizeSpec: Equatable, Sendable {
    case fixed(Int)
    case fromInput(operand: Int, axis: Int)
    case infer
}

/// One operand of an ONNX node: an engine input (with the position of its batch axis in the
/// node's own layout) or a constant folded at import.
enum Operand: Sendable {
    case runtime(input: Int, batchAxis: Int)
    case constant(NDArray)
}

/// An ONNX tensor op (the ops exporters put around recurrent layers), run in the node's own
/// layout: engine tensors are batch first, so each runtime operand has its batch axis moved to
/// where the ONNX graph has it, the op is computed as the ONNX operator defines it, and each
/// output's batch axis is moved back to the front. Shapes were worked out by the importer.
struct ONNXTensorOp: Op {
    enum Kind: Sendable {
        case relu, tanh, sigmoid, identity
        case castToInt
        case add, sub, mul, div
        case greater, less
        case clip(min: Float, max: Float)
        case reduceSum(axes: [Int], keepDims: Bool)
        case transpose([Int])
        case reshape([SizeSpec])
        case concat(axis: Int)
        case slice(starts: [Int], ends: [Int], axes: [Int], steps: [Int])
        case split(axis: Int, sizes: [Int])
        case gather(axis: Int)
        case matmul
        case gemm(transA: Bool, transB: Bool, alpha: Float, beta: Float)
        case softmax(axis: Int), logSoftmax(axis: Int)
        case expand([SizeSpec])
        /// `value` everywhere, in the ONNX shape `shape` whose axis `batchAxis` takes the batch size
        /// of the first engine input (a ConstantOfShape of a run-time size).
        case fill(value: Float, shape: [Int], batchAxis: Int)
    }
    let className: String
    let kind: Kind
    let operands: [Operand]
    /// Where each output's batch axis is in the ONNX layout.
    let outputBatchAxes: [Int]
    let outputInfos: [TensorInfo]

    func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] { outputInfos }

    var lengthSafe: Bool {
        switch kind {
        case .relu, .tanh, .sigmoid, .identity, .castToInt, .add, .sub, .mul, .div, .gather: return true
        default: return false
        }
    }

    func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        let arrays: [NDArray] = operands.map { operand in
            switch operand {
            case let .constant(a): return a
            case let .runtime(k, axis): return NDArray(shape: inputs[k].shape, values: inputs[k].values).movingAxis(0, to: axis)
            }
        }
        func resolve(_ specs: [SizeSpec], total: Int) throws -> [Int] {
            var shape = specs.map { spec -> Int in
                switch spec {
                case let .fixed(n): return n
                case let .fromInput(operand, axis): return arrays[operand].shape[axis]
                case .infer: return -1
                }
            }
            if let k = shape.firstIndex(of: -1) {
                let known = shape.enumerated().filter { $0.offset != k }.reduce(1) { $0 * $1.element }
                guard known > 0, total % known == 0 else { throw EngineError.badInput("cannot reshape \(total) values to \(shape)") }
                shape[k] = total / known
            }
            return shape
        }
        var outs: [NDArray]
        let a = arrays[0]
        switch kind {
        case .relu: outs = [NDArray(shape: a.shape, values: a.values.map { max($0, 0) })]
        case .tanh: outs = [NDArray(shape: a.shape, values: a.values.map { Float(Foundation.tanh(Double($0))) })]
        case .sigmoid: outs = [NDArray(shape: a.shape, values: a.values.map { 1 / (1 + _exp(-$0)) })]
        case .identity: outs = [a]
        case .castToInt: outs = [NDArray(shape: a.shape, values: a.values.map { $0.rounded(.towardZero) })]
        case .add: outs = [try NDArray.broadcast(a, arrays[1], +)]
        case .sub: outs = [try NDArray.broadcast(a, arrays[1], -)]
        case .mul: outs = [try NDArray.broadcast(a, arrays[1], *)]
        case .div: outs = [try NDArray.broadcast(a, arrays[1], /)]
        case .greater: outs = [try NDArray.broadcast(a, arrays[1]) { $0 > $1 ? 1 : 0 }]
        case .less: outs = [try NDArray.broadcast(a, arrays[1]) { $0 < $1 ? 1 : 0 }]
        case let .clip(lo, hi): outs = [NDArray(shape: a.shape, values: a.values.map { Swift.min(Swift.max($0, lo), hi) })]
        case let .reduceSum(axes, keepDims):
            var shape = a.shape
            for k in axes { shape[k] = 1 }
            var out = [Float](repeating: 0, count: shape.reduce(1, *))
            let inStrides = NDArray.strides(a.shape), outStrides = NDArray.strides(shape)
            for i in 0..<a.count {
                var rest = i, o = 0
                for k in 0..<a.shape.count {
                    let idx = rest / inStrides[k]
                    rest %= inStrides[k]
                    if shape[k] != 1 || a.shape[k] == 1 { o += idx * outStrides[k] }
                }
                out[o] += a.values[i]
            }
            let final = keepDims ? shape : shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
            outs = [NDArray(shape: final, values: out)]
        case let .transpose(perm): outs = [a.transposed(perm)]
        case let .reshape(specs):
            let shape = try resolve(specs, total: a.count)
            guard shape.reduce(1, *) == a.count else { throw EngineError.badInput("cannot reshape \(a.shape) to \(shape)") }
            outs = [NDArray(shape: shape, values: a.values)]
        case let .expand(specs):
            let target = try resolve(specs, total: -1)
            outs = [try NDArray.broadcast(a, NDArray(shape: target, values: [Float](repeating: 0, count: target.reduce(1, *))), { x, _ in x })]
        case let .concat(axis): outs = [NDArray.concat(arrays, axis: axis)]
        case let .slice(starts, ends, axes, steps): outs = [try a.sliced(starts: starts, ends: ends, axes: axes, steps: steps)]
        case let .split(axis, sizes):
            var start = 0
            outs = []
            for size in sizes {
                outs.append(try a.sliced(starts: [start], ends: [start + size], axes: [axis], steps: [1]))
                start += size
            }
        case let .gather(axis): outs = [try a.gather(arrays[1], axis: axis)]
        case .matmul: outs = [try NDArray.matmul(a, arrays[1])]
        case let .gemm(transA, transB, alpha, beta):
            let x = transA ? a.transposed([1, 0]) : a
            let w = transB ? arrays[1].transposed([1, 0]) : arrays[1]
            var y = try NDArray.matmul(x, w)
            if alpha != 1 { y.values = y.values.map { $0 * alpha } }
            if arrays.count > 2 {
                let c = arrays[2]
                y = try NDArray.broadcast(y, c) { $0 + beta * $1 }
            }
            outs = [y]
        case let .fill(value, shape, batchAxis):
            var full = shape
            full[batchAxis] = inputs[0].shape[0]
            outs = [NDArray(shape: full, values: Array(repeating: value, count: full.reduce(1, *)))]
        case let .softmax(axis): outs = [a.softmax(axis: axis, log: false)]
        case let .logSoftmax(axis): outs = [a.softmax(axis: axis, log: true)]
        }
        return zip(outs, zip(outputBatchAxes, outputInfos)).map { array, meta in
            let moved = array.movingAxis(meta.0, to: 0)
            return Output(Tensor(shape: moved.shape, values: moved.values, dtype: meta.1.dtype))
        }
    }
}

