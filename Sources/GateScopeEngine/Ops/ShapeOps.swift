// Keras's reshaping layers. None of them supports masking, so the mask stops at each, as in Keras.

private func one(_ inputs: [TensorInfo], _ what: String, minRank: Int = 1) throws -> TensorInfo {
    guard inputs.count == 1, inputs[0].rank >= minRank else {
        throw incompatible("\(what) needs one input of rank \(minRank + 1) or more (with the batch axis)")
    }
    return inputs[0]
}

/// Keras Flatten: `[batch, ...] -> [batch, product]`.
public struct FlattenOp: Op {
    /// A flatten.
    public init() {}
    public var className: String { "Flatten" }
    public func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        let x = try one(inputs, "Flatten")
        let n = x.shape.reduce(Optional(1)) { a, b in a.flatMap { a in b.map { a * $0 } } }
        return [TensorInfo(shape: [n], dtype: x.dtype)]
    }
    public func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        let x = inputs[0], batch = x.shape[0]
        return [Output(Tensor(shape: [batch, batch == 0 ? 0 : x.values.count / batch], values: x.values))]
    }
}

/// Keras Reshape to `target` (without the batch axis; one entry may be -1).
public struct ReshapeOp: Op {
    public let target: [Int]
    /// A reshape; at most one -1.
    public init(target: [Int]) throws {
        guard target.filter({ $0 == -1 }).count <= 1, target.allSatisfy({ $0 > 0 || $0 == -1 }) else {
            throw incompatible("Reshape target_shape \(target) needs positive sizes and at most one -1")
        }
        self.target = target
    }
    public var className: String { "Reshape" }
    public var details: [String] { ["target_shape=\(shapeText(target.map { $0 }))"] }

    func resolve(_ count: Int?) throws -> [Int?] {
        guard let k = target.firstIndex(of: -1) else { return target }
        let known = target.filter { $0 != -1 }.reduce(1, *)
        guard let count else { var t: [Int?] = target; t[k] = nil; return t }
        guard known > 0, count % known == 0 else { throw incompatible("cannot reshape \(count) values to \(shapeText(target))") }
        var t: [Int?] = target
        t[k] = count / known
        return t
    }

    public func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        let x = try one(inputs, "Reshape")
        let count = x.shape.reduce(Optional(1)) { a, b in a.flatMap { a in b.map { a * $0 } } }
        let shape = try resolve(count)
        if let count, let n = shape.reduce(Optional(1), { a, b in a.flatMap { a in b.map { a * $0 } } }), n != count {
            throw incompatible("cannot reshape \(shapeText([nil] + x.shape)) to \(shapeText([nil] + shape))")
        }
        let keepsTime = shape.count >= 2 && x.rank >= 2 && shape[0] != nil && shape[0] == x.shape[0]
        return [TensorInfo(shape: shape, dtype: x.dtype, time: keepsTime ? x.time : nil)]
    }

    public func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        let x = inputs[0], batch = x.shape[0]
        let per = batch == 0 ? 0 : x.values.count / batch
        let shape = try resolve(per).map { $0! }
        guard shape.reduce(1, *) == per else {
            throw EngineError.badInput("layer '\(context.node)': cannot reshape \(x.shape) to \([batch] + shape)")
        }
        return [Output(Tensor(shape: [batch] + shape, values: x.values))]
    }
}

/// Keras Permute: `dims` is a 1-based permutation of the non-batch axes.
public struct PermuteOp: Op {
    public let dims: [Int]
    /// A permutation of 1...n.
    public init(dims: [Int]) throws {
        guard dims.sorted() == Array(1...max(dims.count, 1)) else { throw incompatible("Permute dims \(dims) are not a permutation of 1...\(dims.count)") }
        self.dims = dims
    }
    public var className: String { "Permute" }
    public var details: [String] { ["dims=\(dims)"] }
    public func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        let x = try one(inputs, "Permute")
        guard x.rank == dims.count else { throw incompatible("Permute dims \(dims) do not fit input \(shapeText([nil] + x.shape))") }
        return [TensorInfo(shape: dims.map { x.shape[$0 - 1] }, dtype: x.dtype, time: dims[0] == 1 ? x.time : nil)]
    }
    public func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        let x = inputs[0]
        let perm = [0] + dims
        return [Output(transpose(x, perm))]
    }
}

/// Reorders the axes of `x` so that output axis k is input axis `perm[k]`.
func transpose(_ x: Tensor, _ perm: [Int]) -> Tensor {
    let shape = perm.map { x.shape[$0] }
    var inStrides = [Int](repeating: 1, count: x.shape.count)
    for k in stride(from: x.shape.count - 2, through: 0, by: -1) { inStrides[k] = inStrides[k + 1] * x.shape[k + 1] }
    let strides = perm.map { inStrides[$0] }
    var out = [Float](repeating: 0, count: x.values.count)
    var index = [Int](repeating: 0, count: shape.count)
    for o in 0..<out.count {
        var src = 0
        for k in 0..<shape.count { src += index[k] * strides[k] }
        out[o] = x.values[src]
        var k = shape.count - 1
        while k >= 0 { index[k] += 1; if index[k] < shape[k] { break }; index[k] = 0; k -= 1 }
    }
    return Tensor(shape: shape, values: out)
}

/// Keras RepeatVector: `[batch, f] -> [batch, n, f]`, a time axis made inside the model.
public struct RepeatVectorOp: Op {
    public let n: Int
    /// Repeats `n` times.
    public init(n: Int) { self.n = n }
    public var className: String { "RepeatVector" }
    public var details: [String] { ["n=\(n)"] }
    public func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        guard inputs.count == 1, inputs[0].rank == 1 else { throw incompatible("RepeatVector needs [batch, features] input") }
        return [TensorInfo(shape: [n, inputs[0].shape[0]], time: TimeAxis(input: nil, aligned: false))]
    }
    public func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        let x = inputs[0], batch = x.shape[0], f = x.shape[1]
        var out = [Float](repeating: 0, count: batch * n * f)
        for b in 0..<batch { for t in 0..<n { for j in 0..<f { out[(b * n + t) * f + j] = x.values[b * f + j] } } }
        return [Output(Tensor(shape: [batch, n, f], values: out))]
    }
}

/// Keras ZeroPadding1D, Cropping1D and UpSampling1D on the steps axis of `[batch, steps, c]`.
public struct StepsOp: Op {
    public enum Kind: Sendable, Equatable {
        case pad(left: Int, right: Int)
        case crop(left: Int, right: Int)
        case upsample(Int)
    }
    public let kind: Kind
    /// One of the three step-axis edits.
    public init(_ kind: Kind) { self.kind = kind }
    public var className: String {
        switch kind { case .pad: return "ZeroPadding1D"; case .crop: return "Cropping1D"; case .upsample: return "UpSampling1D" }
    }
    public var details: [String] {
        switch kind {
        case let .pad(l, r): return ["padding=(\(l), \(r))"]
        case let .crop(l, r): return ["cropping=(\(l), \(r))"]
        case let .upsample(n): return ["size=\(n)"]
        }
    }
    func length(_ t: Int) -> Int {
        switch kind {
        case let .pad(l, r): return t + l + r
        case let .crop(l, r): return max(t - l - r, 0)
        case let .upsample(n): return t * n
        }
    }
    public func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        guard inputs.count == 1, inputs[0].rank == 2 else { throw incompatible("\(className) needs [batch, steps, channels] input") }
        let x = inputs[0]
        if case let .crop(l, r) = kind, let t = x.shape[0], l + r >= t {
            throw incompatible("cropping (\(l), \(r)) removes all \(t) steps")
        }
        let aligned: Bool
        switch kind {
        case let .pad(l, _), let .crop(l, _): aligned = l == 0
        case let .upsample(n): aligned = n == 1
        }
        return [TensorInfo(shape: [x.shape[0].map(length), x.shape[1]], time: aligned ? x.time : x.time?.shifted)]
    }
    public func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        let x = inputs[0], batch = x.shape[0], t = x.shape[1], c = x.shape[2], n = length(t)
        var out = [Float](repeating: 0, count: batch * n * c)
        for b in 0..<batch {
            for s in 0..<n {
                let src: Int?
                switch kind {
                case let .pad(l, _): src = s - l >= 0 && s - l < t ? s - l : nil
                case let .crop(l, _): src = s + l
                case let .upsample(k): src = s / k
                }
                guard let src else { continue }
                for j in 0..<c { out[(b * n + s) * c + j] = x.values[(b * t + src) * c + j] }
            }
        }
        return [Output(Tensor(shape: [batch, n, c], values: out))]
    }
}
