import Foundation

/// Combines masks of a merge the way the Keras version that wrote the file does:
/// Keras 3 ORs them (no mask if any input has none); Keras 2 ANDs the inputs that have one.
func mergeMasks(_ masks: [[Bool]?], kerasMajor: Int) -> [Bool]? {
    if kerasMajor >= 3 {
        guard let first = masks.first ?? nil, !masks.contains(where: { $0 == nil }) else { return nil }
        return masks.dropFirst().reduce(first) { acc, m in zip(acc, m!).map { $0 || $1 } }
    }
    let present = masks.compactMap { $0 }
    guard let first = present.first else { return nil }
    return present.dropFirst().reduce(first) { acc, m in zip(acc, m).map { $0 && $1 } }
}

/// Keras Add, Subtract, Multiply, Average, Maximum, Minimum: elementwise over inputs of one shape
/// (a lower-rank input gets axes after the batch, then sizes of 1 broadcast, as in Keras).
public struct ElementwiseMergeOp: Op {
    public enum Kind: String, Sendable { case add = "Add", subtract = "Subtract", multiply = "Multiply", average = "Average", maximum = "Maximum", minimum = "Minimum" }
    public let kind: Kind
    public let kerasMajor: Int
    /// A merge of `kind`; masks combine as Keras `kerasMajor` does.
    public init(_ kind: Kind, kerasMajor: Int) {
        self.kind = kind
        self.kerasMajor = kerasMajor
    }
    public var className: String { kind.rawValue }
    public var lengthSafe: Bool { true }

    static func broadcast(_ shapes: [[Int?]]) throws -> [Int?] {
        let rank = shapes.map(\.count).max() ?? 0
        var out = [Int?](repeating: 1, count: rank)
        for s in shapes {
            let padded = [Int?](repeating: 1, count: rank - s.count) + s
            for k in 0..<rank {
                switch (out[k], padded[k]) {
                case (1, let b): out[k] = b
                case (_, 1): break
                case let (a?, b?) where a != b: throw incompatible("inputs of shapes \(shapes.map { shapeText([nil] + $0) }.joined(separator: ", ")) do not broadcast")
                case (nil, let b): out[k] = b
                default: break
                }
            }
        }
        return out
    }

    public func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        guard inputs.count >= 2 else { throw incompatible("\(kind.rawValue) needs at least 2 inputs") }
        if kind == .subtract && inputs.count != 2 { throw incompatible("Subtract takes exactly 2 inputs") }
        let shape = try Self.broadcast(inputs.map(\.shape))
        let masked = kerasMajor >= 3 ? inputs.allSatisfy(\.masked) : inputs.contains(where: \.masked)
        let times = inputs.map(\.time)
        let time = inputs.first(where: { $0.rank == shape.count })?.time
        let aligned = times.allSatisfy { $0 == time }
        return [TensorInfo(shape: shape, masked: masked, time: aligned ? time : time?.shifted)]
    }

    public func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        if kerasMajor >= 3, [.multiply, .maximum, .minimum].contains(kind), masks.contains(where: { $0 != nil }),
           inputs.allSatisfy({ $0.shape == inputs[0].shape }), inputs[0].shape.count >= 3 {
            return [maskedMerge(inputs, masks)]
        }
        let rank = inputs.map(\.shape.count).max()!
        // Lower-rank inputs get new axes right after the batch axis (Keras `expand_dims(x, 1)`).
        let shapes = inputs.map { x -> [Int] in
            [x.shape[0]] + [Int](repeating: 1, count: rank - x.shape.count) + x.shape.dropFirst()
        }
        let shape = try Self.broadcast(shapes.map { $0.map { Optional($0) } }).map { $0! }
        let n = shape.reduce(1, *)
        func strides(_ s: [Int]) -> [Int] {
            var st = [Int](repeating: 0, count: rank)
            var acc = 1
            for k in stride(from: rank - 1, through: 0, by: -1) {
                st[k] = s[k] == 1 ? 0 : acc
                acc *= s[k]
            }
            return st
        }
        let st = shapes.map(strides)
        var out = [Float](repeating: 0, count: n)
        var index = [Int](repeating: 0, count: rank)
        for o in 0..<n {
            var acc: Float = 0
            for (k, x) in inputs.enumerated() {
                var src = 0
                for a in 0..<rank { src += index[a] * st[k][a] }
                let v = x.values[src]
                if k == 0 { acc = v; continue }
                switch kind {
                case .add, .average: acc += v
                case .subtract: acc -= v
                case .multiply: acc *= v
                case .maximum: acc = Swift.max(acc, v)
                case .minimum: acc = Swift.min(acc, v)
                }
            }
            out[o] = kind == .average ? acc / Float(inputs.count) : acc
            var a = rank - 1
            while a >= 0 { index[a] += 1; if index[a] < shape[a] { break }; index[a] = 0; a -= 1 }
        }
        return [Output(Tensor(shape: shape, values: out), mask: mergeMasks(masks, kerasMajor: kerasMajor))]
    }
}

extension ElementwiseMergeOp {
    /// Keras 3's Multiply, Maximum and Minimum look at the masks: a masked step of an input takes
    /// no part (1 for a product; the other operand for max/min), and with every input masked the
    /// steps masked in all of them become 0 (product) and the output mask is their OR.
    func maskedMerge(_ inputs: [Tensor], _ masks: [[Bool]?]) -> Output {
        let shape = inputs[0].shape, n = inputs[0].values.count
        let per = shape.dropFirst(2).reduce(1, *)  // values per (sequence, step)
        let allMasked = !masks.contains { $0 == nil }
        var out = [Float](repeating: 0, count: n)
        var outMask: [Bool]? = nil
        if kind == .multiply {
            for o in 0..<n {
                var acc: Float = 1
                var any = false
                for (x, m) in zip(inputs, masks) {
                    let keep = m?[o / per] ?? true
                    any = any || (m != nil && keep)
                    acc *= keep ? x.values[o] : 1
                }
                out[o] = allMasked && !any ? 0 : acc
            }
            if allMasked { outMask = (0..<(n / max(per, 1))).map { p in masks.contains { $0![p] } } }
            return Output(Tensor(shape: shape, values: out), mask: outMask)
        }
        let op: (Float, Float) -> Float = kind == .maximum ? { Swift.max($0, $1) } : { Swift.min($0, $1) }
        var running = masks[0]
        out = inputs[0].values
        for (x, m) in zip(inputs.dropFirst(), masks.dropFirst()) {
            for o in 0..<n {
                let xv = (m?[o / per] ?? true) ? x.values[o] : out[o]
                let ov = (running?[o / per] ?? true) ? out[o] : xv
                out[o] = op(ov, xv)
            }
            if let r = running, let m { running = zip(r, m).map { $0 || $1 } } else { running = nil }
        }
        return Output(Tensor(shape: shape, values: out), mask: running)
    }
}

/// Keras Concatenate along `axis` (negative counts from the end, 0 is the batch axis).
public struct ConcatenateOp: Op {
    public let axis: Int
    public let kerasMajor: Int
    /// A concatenation along `axis` of the full shape (Keras's own numbering).
    public init(axis: Int, kerasMajor: Int) {
        self.axis = axis
        self.kerasMajor = kerasMajor
    }
    public var className: String { "Concatenate" }
    public var details: [String] { ["axis=\(axis)"] }
    public var lengthSafe: Bool { axis == -1 }

    /// The axis in shapes without the batch axis.
    func inner(_ rank: Int) throws -> Int {
        let a = axis < 0 ? axis + rank + 1 : axis
        guard a >= 1, a <= rank else { throw incompatible("axis \(axis) is outside the inputs' rank \(rank + 1)") }
        return a - 1
    }

    public func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        guard inputs.count >= 2, let rank = inputs.first?.rank, inputs.allSatisfy({ $0.rank == rank }) else {
            throw incompatible("Concatenate needs at least 2 inputs of the same rank")
        }
        let a = try inner(rank)
        var shape = inputs[0].shape
        for x in inputs.dropFirst() {
            for k in 0..<rank where k != a {
                if let p = shape[k], let q = x.shape[k], p != q {
                    throw incompatible("inputs \(inputs.map { shapeText([nil] + $0.shape) }.joined(separator: ", ")) differ outside axis \(axis)")
                }
                if shape[k] == nil { shape[k] = x.shape[k] }
            }
            shape[a] = shape[a].flatMap { s in x.shape[a].map { s + $0 } }
        }
        let masked = inputs.contains(where: \.masked) && rank >= 2
        let time = inputs[0].time
        let aligned = a != 0 && inputs.allSatisfy { $0.time == time }
        return [TensorInfo(shape: shape, masked: masked, time: aligned ? time : (a == 0 ? time?.shifted : time?.shifted))]
    }

    public func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        let rank = inputs[0].shape.count - 1
        let a = try inner(rank) + 1  // in full shapes
        let outer = inputs[0].shape[..<a].reduce(1, *)
        let rowSizes = inputs.map { $0.shape[a...].reduce(1, *) }
        var shape = inputs[0].shape
        shape[a] = inputs.map { $0.shape[a] }.reduce(0, +)
        var out = [Float]()
        out.reserveCapacity(outer * rowSizes.reduce(0, +))
        for o in 0..<outer {
            for (k, x) in inputs.enumerated() {
                out += x.values[(o * rowSizes[k])..<((o + 1) * rowSizes[k])]
            }
        }
        return [Output(Tensor(shape: shape, values: out), mask: mask(inputs, masks, axis: a))]
    }

    /// Keras's Concatenate.compute_mask: missing masks count as all true, masks are broadcast to the
    /// inputs, concatenated along the axis and reduced over the last axis (any in Keras 3, all in Keras 2).
    func mask(_ inputs: [Tensor], _ masks: [[Bool]?], axis a: Int) -> [Bool]? {
        guard masks.contains(where: { $0 != nil }), inputs[0].shape.count >= 3 else { return nil }
        let batch = inputs[0].shape[0]
        if a == 1 {
            // Along time: each input's steps keep their own mask.
            var out = [Bool]()
            for b in 0..<batch {
                for (k, x) in inputs.enumerated() {
                    let t = x.shape[1]
                    for s in 0..<t { out.append(masks[k]?[b * t + s] ?? true) }
                }
            }
            return out
        }
        let time = inputs[0].shape[1]
        var out = [Bool](repeating: kerasMajor < 3, count: batch * time)
        for p in 0..<(batch * time) {
            for m in masks {
                let v = m?[p] ?? true
                out[p] = kerasMajor >= 3 ? (out[p] || v) : (out[p] && v)
            }
        }
        return out
    }
}

/// Keras Dot: batchwise dot product along `axes` (full-shape numbering), optional L2 normalization.
public struct DotOp: Op {
    public let axes: [Int]
    public let normalize: Bool
    public let kerasMajor: Int
    /// A dot product; `axes` holds one axis for each input (Keras's int form gives both the same).
    public init(axes: [Int], normalize: Bool, kerasMajor: Int) {
        self.axes = axes
        self.normalize = normalize
        self.kerasMajor = kerasMajor
    }
    public var className: String { "Dot" }
    public var details: [String] { ["axes=\(axes)"] + (normalize ? ["normalize"] : []) }

    func resolved(_ ranks: [Int]) throws -> [Int] {
        try zip(axes, ranks).map { a, r in
            let k = a < 0 ? a % (r + 1) + (a % (r + 1) < 0 ? r + 1 : 0) : a
            guard k >= 1, k <= r else { throw incompatible("Dot axis \(a) is outside rank \(r + 1)") }
            return k - 1
        }
    }

    public func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        guard inputs.count == 2, (1...2).contains(inputs[0].rank), (1...2).contains(inputs[1].rank) else {
            throw incompatible("Dot needs 2 inputs of rank 2 or 3")
        }
        let ax = try resolved(inputs.map(\.rank))
        if let p = inputs[0].shape[ax[0]], let q = inputs[1].shape[ax[1]], p != q {
            throw incompatible("Dot axes \(axes) pair sizes \(p) and \(q)")
        }
        var shape = inputs[0].shape
        shape.remove(at: ax[0])
        var other = inputs[1].shape
        other.remove(at: ax[1])
        shape += other
        if shape.isEmpty { shape = [1] }
        let keepsTime = ax[0] != 0 && inputs[0].rank == 2
        return [TensorInfo(shape: shape, time: keepsTime ? inputs[0].time?.shifted : nil)]
    }

    /// L2-normalizes `x` along inner axis `axis` as the Keras version does.
    func l2(_ x: Tensor, axis: Int) -> Tensor {
        var v = x.values
        let a = axis + 1
        let outer = x.shape[..<a].reduce(1, *), n = x.shape[a], inner = x.shape[(a + 1)...].reduce(1, *)
        for o in 0..<outer {
            for i in 0..<inner {
                var ss: Float = 0
                for k in 0..<n { let e = x.values[(o * n + k) * inner + i]; ss += e * e }
                // Keras 3: x * min(rsqrt(sum), 1/epsilon), epsilon 1e-7; Keras 2: x * rsqrt(max(sum, 1e-12)).
                let scale = kerasMajor >= 3 ? Swift.min(1 / ss.squareRoot(), 1e7) : 1 / Swift.max(ss, 1e-12).squareRoot()
                for k in 0..<n { v[(o * n + k) * inner + i] *= scale }
            }
        }
        return Tensor(shape: x.shape, values: v)
    }

    public func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        let ax = try resolved(inputs.map { $0.shape.count - 1 })
        var x = inputs[0], y = inputs[1]
        if normalize { x = l2(x, axis: ax[0]); y = l2(y, axis: ax[1]) }
        // Move the contracted axis last in x and first (after the batch) in y: [B, m, k] x [B, k, n].
        func moved(_ t: Tensor, _ axis: Int, last: Bool) -> Tensor {
            var perm = Array(0..<t.shape.count)
            perm.remove(at: axis + 1)
            if last { perm.append(axis + 1) } else { perm.insert(axis + 1, at: 1) }
            return transpose(t, perm)
        }
        let xm = moved(x, ax[0], last: true), ym = moved(y, ax[1], last: false)
        let batch = x.shape[0], k = xm.shape.last!
        let m = xm.values.count / max(batch * k, 1), n = ym.values.count / max(batch * k, 1)
        var out = [Float](repeating: 0, count: batch * m * n)
        for b in 0..<batch {
            for i in 0..<m {
                for j in 0..<n {
                    var acc: Float = 0
                    for p in 0..<k { acc += xm.values[(b * m + i) * k + p] * ym.values[(b * k + p) * n + j] }
                    out[(b * m + i) * n + j] = acc
                }
            }
        }
        var shape = [batch] + Array(xm.shape.dropFirst().dropLast()) + Array(ym.shape.dropFirst(2))
        if shape.count == 1 { shape.append(1) }
        return [Output(Tensor(shape: shape, values: out))]
    }
}
