import Foundation
import GateScopeEngine

/// A dense row-major array in an ONNX node's own layout, for the tensor ops around the
/// recurrent layers (values as Float; integer tensors hold exact integers).
struct NDArray: Sendable {
    var shape: [Int]
    var values: [Float]

    init(shape: [Int], values: [Float]) {
        precondition(values.count == shape.reduce(1, *), "array \(shape) needs \(shape.reduce(1, *)) values, got \(values.count)")
        self.shape = shape
        self.values = values
    }

    var count: Int { values.count }
    static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for k in stride(from: shape.count - 1, through: 0, by: -1) { s[k] = acc; acc *= shape[k] }
        return s
    }

    /// Axes permuted: output axis k is input axis perm[k] (the engine's `Tensor.transposed`).
    func transposed(_ perm: [Int]) -> NDArray {
        let t = Tensor(shape: shape, values: values).transposed(perm)
        return NDArray(shape: t.shape, values: t.values)
    }

    /// Moves axis `from` to position `to`, keeping the others in order.
    func movingAxis(_ from: Int, to: Int) -> NDArray {
        let t = Tensor(shape: shape, values: values).movingAxis(from, to: to)
        return NDArray(shape: t.shape, values: t.values)
    }

    /// numpy broadcasting of two arrays with `op` applied elementwise.
    static func broadcast(_ a: NDArray, _ b: NDArray, _ op: (Float, Float) -> Float) throws -> NDArray {
        let rank = max(a.shape.count, b.shape.count)
        let sa = [Int](repeating: 1, count: rank - a.shape.count) + a.shape
        let sb = [Int](repeating: 1, count: rank - b.shape.count) + b.shape
        var out: [Int] = []
        for k in 0..<rank {
            guard sa[k] == sb[k] || sa[k] == 1 || sb[k] == 1 else {
                throw EngineError.badInput("shapes \(a.shape) and \(b.shape) do not broadcast")
            }
            out.append(max(sa[k], sb[k]))
        }
        let stA = NDArray.strides(sa).enumerated().map { sa[$0.offset] == 1 ? 0 : $0.element }
        let stB = NDArray.strides(sb).enumerated().map { sb[$0.offset] == 1 ? 0 : $0.element }
        let n = out.reduce(1, *)
        var result = [Float](repeating: 0, count: n)
        if sa == out && sb == out {
            for i in 0..<n { result[i] = op(a.values[i], b.values[i]) }
            return NDArray(shape: out, values: result)
        }
        var index = [Int](repeating: 0, count: rank)
        for o in 0..<n {
            var ia = 0, ib = 0
            for k in 0..<rank { ia += index[k] * stA[k]; ib += index[k] * stB[k] }
            result[o] = op(a.values[ia], b.values[ib])
            var k = rank - 1
            while k >= 0 { index[k] += 1; if index[k] < out[k] { break }; index[k] = 0; k -= 1 }
        }
        return NDArray(shape: out, values: result)
    }

    /// Gather along `axis` with integer `indices` (negative ones count from the end).
    func gather(_ indices: NDArray, axis: Int) throws -> NDArray {
        let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *), size = shape[axis]
        var out = [Float](repeating: 0, count: outer * indices.count * inner)
        for (j, raw) in indices.values.enumerated() {
            var i = Int(raw)
            if i < 0 { i += size }
            guard i >= 0, i < size else { throw EngineError.badInput("Gather index \(Int(raw)) is outside 0..<\(size)") }
            for o in 0..<outer {
                let src = (o * size + i) * inner, dst = (o * indices.count + j) * inner
                for k in 0..<inner { out[dst + k] = values[src + k] }
            }
        }
        return NDArray(shape: Array(shape[..<axis]) + indices.shape + Array(shape[(axis + 1)...]), values: out)
    }

    /// Elements `start, start+step, ...` before `end` along each of `axes` (ONNX Slice, clamped).
    func sliced(starts: [Int], ends: [Int], axes: [Int], steps: [Int]) throws -> NDArray {
        var lo = [Int](repeating: 0, count: shape.count), st = [Int](repeating: 1, count: shape.count)
        var outShape = shape
        for (k, axis) in axes.enumerated() {
            let dim = shape[axis], step = steps[k]
            guard step != 0 else { throw EngineError.badInput("Slice step 0") }
            var s = starts[k], e = ends[k]
            if s < 0 { s += dim }
            if e < 0 { e += dim }
            if step > 0 {
                s = min(max(s, 0), dim); e = min(max(e, 0), dim)
                outShape[axis] = max(0, (e - s + step - 1) / step)
            } else {
                s = min(max(s, -1), dim - 1); e = min(max(e, -1), dim - 1)
                outShape[axis] = max(0, (s - e + (-step) - 1) / (-step))
            }
            lo[axis] = s; st[axis] = step
        }
        let inStrides = NDArray.strides(shape)
        let n = outShape.reduce(1, *)
        var out = [Float](repeating: 0, count: n)
        var index = [Int](repeating: 0, count: shape.count)
        for o in 0..<n {
            var src = 0
            for k in 0..<shape.count { src += (lo[k] + index[k] * st[k]) * inStrides[k] }
            out[o] = values[src]
            var k = shape.count - 1
            while k >= 0 { index[k] += 1; if index[k] < outShape[k] { break }; index[k] = 0; k -= 1 }
        }
        return NDArray(shape: outShape, values: out)
    }

    /// Arrays joined along `axis`.
    static func concat(_ parts: [NDArray], axis: Int) -> NDArray {
        let first = parts[0]
        let outer = first.shape[..<axis].reduce(1, *), inner = first.shape[(axis + 1)...].reduce(1, *)
        var shape = first.shape
        shape[axis] = parts.reduce(0) { $0 + $1.shape[axis] }
        var out = [Float](); out.reserveCapacity(shape.reduce(1, *))
        for o in 0..<outer {
            for p in parts {
                let block = p.shape[axis] * inner
                out += p.values[(o * block)..<((o + 1) * block)]
            }
        }
        return NDArray(shape: shape, values: out)
    }

    /// numpy matmul: the last two axes multiply, the others broadcast.
    static func matmul(_ a: NDArray, _ b: NDArray) throws -> NDArray {
        var a = a, b = b
        let vectorA = a.shape.count == 1, vectorB = b.shape.count == 1
        if vectorA { a = NDArray(shape: [1] + a.shape, values: a.values) }
        if vectorB { b = NDArray(shape: b.shape + [1], values: b.values) }
        let m = a.shape[a.shape.count - 2], k = a.shape[a.shape.count - 1]
        let k2 = b.shape[b.shape.count - 2], n = b.shape[b.shape.count - 1]
        guard k == k2 else { throw EngineError.badInput("MatMul of \(a.shape) and \(b.shape): inner sizes differ") }
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        let rank = max(batchA.count, batchB.count)
        let pa = [Int](repeating: 1, count: rank - batchA.count) + batchA
        let pb = [Int](repeating: 1, count: rank - batchB.count) + batchB
        var batch: [Int] = []
        for i in 0..<rank {
            guard pa[i] == pb[i] || pa[i] == 1 || pb[i] == 1 else { throw EngineError.badInput("MatMul batch axes \(batchA) and \(batchB) do not broadcast") }
            batch.append(max(pa[i], pb[i]))
        }
        let count = batch.reduce(1, *)
        var out = [Float](repeating: 0, count: count * m * n)
        let sa = NDArray.strides(pa).enumerated().map { pa[$0.offset] == 1 ? 0 : $0.element }
        let sb = NDArray.strides(pb).enumerated().map { pb[$0.offset] == 1 ? 0 : $0.element }
        var index = [Int](repeating: 0, count: rank)
        for g in 0..<count {
            var ia = 0, ib = 0
            for i in 0..<rank { ia += index[i] * sa[i]; ib += index[i] * sb[i] }
            let offA = ia * m * k, offB = ib * k * n, offC = g * m * n
            for r in 0..<m {
                for c in 0..<n {
                    var s: Float = 0
                    for j in 0..<k { s += a.values[offA + r * k + j] * b.values[offB + j * n + c] }
                    out[offC + r * n + c] = s
                }
            }
            var i = rank - 1
            while i >= 0 { index[i] += 1; if index[i] < batch[i] { break }; index[i] = 0; i -= 1 }
        }
        var shape = batch + [m, n]
        if vectorA { shape.remove(at: shape.count - 2) }
        if vectorB { shape.removeLast() }
        return NDArray(shape: shape, values: out)
    }

    /// Softmax (or log-softmax) along `axis`.
    func softmax(axis: Int, log: Bool) -> NDArray {
        let outer = shape[..<axis].reduce(1, *), size = shape[axis], inner = shape[(axis + 1)...].reduce(1, *)
        var out = values
        for o in 0..<outer {
            for i in 0..<inner {
                var mx = -Float.infinity
                for k in 0..<size { mx = max(mx, values[(o * size + k) * inner + i]) }
                var sum: Float = 0
                for k in 0..<size { sum += _exp(values[(o * size + k) * inner + i] - mx) }
                for k in 0..<size {
                    let at = (o * size + k) * inner + i
                    out[at] = log ? values[at] - mx - _log(sum) : _exp(values[at] - mx) / sum
                }
            }
        }
        return NDArray(shape: shape, values: out)
    }
}

@inline(__always) func _exp(_ x: Float) -> Float { Float(Foundation.exp(Double(x))) }
@inline(__always) func _expd(_ x: Double) -> Double { Foundation.exp(x) }
@inline(__always) func _log(_ x: Float) -> Float { Float(Foundation.log(Double(x))) }
