import Foundation
import GateScopeEngine

// The ONNX ops around the recurrent layers: folding at import (constants and shape
// computations) and engine calls for everything that depends on the inputs.
extension Importer {
    // MARK: symbolic sizes

    func broadcast(_ a: [Dim], _ b: [Dim]) throws -> [Dim] {
        let rank = max(a.count, b.count)
        let pa = Array(repeating: Dim.n(1), count: rank - a.count) + a
        let pb = Array(repeating: Dim.n(1), count: rank - b.count) + b
        return try zip(pa, pb).map { x, y in
            if x == y { return x }
            if x == .n(1) { return y }
            if y == .n(1) { return x }
            if x.known == nil, y.known != nil { return y }
            if y.known == nil, x.known != nil { return x }
            throw fail("shapes \(a) and \(b) do not broadcast")
        }
    }

    func arith(_ op: String, _ x: Dim, _ y: Dim) -> Dim {
        switch (x, y) {
        case let (.n(a), .n(b)):
            switch op {
            case "Add": return .n(a + b)
            case "Sub": return .n(a - b)
            case "Mul": return .n(a * b)
            default: return b == 0 ? .sym("(\(a)/0)") : .n(a / b)
            }
        default:
            if op == "Mul", x == .n(1) { return y }
            if (op == "Mul" || op == "Div"), y == .n(1) { return x }
            if (op == "Add" || op == "Sub"), y == .n(0) { return x }
            if op == "Add", x == .n(0) { return y }
            return .sym("(\(x)\(["Add": "+", "Sub": "-", "Mul": "*"][op] ?? "/")\(y))")
        }
    }

    /// Product of sizes as a coefficient and symbols (for Reshape's -1).
    func product(_ dims: [Dim]) -> (Int, [String: Int]) {
        var c = 1, syms: [String: Int] = [:]
        for d in dims { switch d { case let .n(v): c *= v; case let .sym(s): syms[s, default: 0] += 1 } }
        return (c, syms)
    }

    /// The target of a Reshape, with 0 (copy) and -1 (infer) resolved symbolically.
    func reshapeTarget(_ input: [Dim], _ target: [Dim], allowZero: Bool) throws -> [Dim] {
        var out = target
        for (k, d) in target.enumerated() where d == .n(0) && !allowZero {
            guard k < input.count else { throw fail("Reshape copies axis \(k) of a rank-\(input.count) tensor") }
            out[k] = input[k]
        }
        let holes = out.indices.filter { out[$0] == .n(-1) }
        guard holes.count <= 1 else { throw fail("Reshape has several -1 sizes") }
        if let k = holes.first {
            var (ci, si) = product(input)
            let (ct, st) = product(out.enumerated().filter { $0.offset != k }.map(\.element))
            for (s, e) in st {
                guard let have = si[s], have >= e else { throw fail("Reshape to \(target) cannot be worked out from \(input)") }
                si[s] = have - e == 0 ? nil : have - e
            }
            guard ct != 0, ci % ct == 0 else { throw fail("Reshape of \(input) to \(target): sizes do not divide") }
            ci /= ct
            if si.isEmpty { out[k] = .n(ci) }
            else if si.count == 1, si.first!.value == 1, ci == 1 { out[k] = .sym(si.first!.key) }
            else { out[k] = .sym("(\(input.map(\.description).joined(separator: "*"))/...)") }
        }
        return out
    }

    /// How a run-time op finds each size of `dims` from its first operand's shape (`input`).
    func sizeSpecs(_ dims: [Dim], from input: [Dim]) throws -> [SizeSpec] {
        var inferred = false
        return try dims.map { d in
            if let k = d.known { return .fixed(k) }
            if let axis = input.firstIndex(of: d) { return .fromInput(operand: 0, axis: axis) }
            guard !inferred else { throw fail("two sizes of \(dims) are only known at run time") }
            inferred = true
            return .infer
        }
    }

    // MARK: folding

    /// Sizes after an ONNX Slice of sizes `x` (symbols keep what can be known).
    func sliceDims(_ x: [Dim], starts: [Int], ends: [Int], axes: [Int], steps: [Int]) throws -> [Dim] {
        var d = x
        for (j, a) in axes.enumerated() {
            if let size = x[a].known {
                d[a] = .n(try NDArray(shape: [size], values: Array(repeating: 0, count: size))
                    .sliced(starts: [starts[j]], ends: [ends[j]], axes: [0], steps: [steps[j]]).count)
            } else if starts[j] == 0, ends[j] >= Int(Int32.max), steps[j] == 1 {
                d[a] = x[a]
            } else if starts[j] < 0, ends[j] >= Int(Int32.max), steps[j] == 1 {
                d[a] = .n(-starts[j])
            } else {
                d[a] = .sym("(slice of \(x[a]))")
            }
            if x[a] == .batch, d[a] != .batch { throw fail("Slice of the batch axis is not supported") }
        }
        return d
    }

    /// The parameters of a Slice node (attributes before opset 10, inputs after).
    func sliceParameters(_ n: Onnx_NodeProto, _ inputs: [Value], rank: Int) throws -> (starts: [Int], ends: [Int], axes: [Int], steps: [Int]) {
        let starts = try ints(n, "starts") ?? knownInts(inputs[1], what: "starts")
        let ends = try ints(n, "ends") ?? knownInts(inputs[2], what: "ends")
        var axesList = try ints(n, "axes") ?? (inputs.count > 3 && !isAbsent(inputs[3]) ? knownInts(inputs[3], what: "axes") : Array(0..<starts.count))
        axesList = try axesList.map { try axis($0, rank: rank) }
        let steps = inputs.count > 4 && !isAbsent(inputs[4]) ? try knownInts(inputs[4], what: "steps") : Array(repeating: 1, count: starts.count)
        guard starts.count == ends.count, starts.count == axesList.count, steps.count == starts.count else {
            throw fail("Slice starts, ends, axes and steps differ in length")
        }
        return (starts, ends, axesList, steps)
    }

    /// Shape ops on a run-time-sized constant (ConstantOfShape of a shape with the batch size):
    /// the value stays one number, only its sizes change.
    func foldFilled(_ n: Onnx_NodeProto, _ inputs: [Value], value: Float, dims x: [Dim]) throws -> Value {
        switch n.opType {
        case "Identity", "Cast", "Dropout": return .filled(value, x)
        case "Add", "Sub", "Mul", "Div":
            guard case let .floats(c) = inputs[1], c.count == 1 else { throw fail("\(n.opType) of a run-time-sized constant with a non-scalar is not supported") }
            let v = c.values[0]
            return .filled(n.opType == "Add" ? value + v : n.opType == "Sub" ? value - v : n.opType == "Mul" ? value * v : value / v, x)
        case "Slice":
            let p = try sliceParameters(n, inputs, rank: x.count)
            return .filled(value, try sliceDims(x, starts: p.starts, ends: p.ends, axes: p.axes, steps: p.steps))
        case "Unsqueeze":
            let axes = try ints(n, "axes") ?? knownInts(inputs[1], what: "axes")
            var d = x
            for k in try axes.map({ try axis($0, rank: x.count + axes.count) }).sorted() { d.insert(.n(1), at: k) }
            return .filled(value, d)
        case "Squeeze":
            let axes = try ints(n, "axes") ?? (inputs.count > 1 ? knownInts(inputs[1], what: "axes") : [])
            let drop = try Set(axes.map { try axis($0, rank: x.count) })
            return .filled(value, x.enumerated().filter { axes.isEmpty ? $0.element != .n(1) : !drop.contains($0.offset) }.map(\.element))
        case "Transpose":
            let perm = ints(n, "perm") ?? Array((0..<x.count).reversed())
            return .filled(value, perm.map { x[$0] })
        case "Reshape":
            guard case let .ints(t, _) = inputs[1] else { throw fail("Reshape needs an integer shape") }
            return .filled(value, try reshapeTarget(x, t, allowZero: int(n, "allowzero", 0) == 1))
        case "Expand":
            guard case let .ints(t, _) = inputs[1] else { throw fail("Expand needs an integer shape") }
            return .filled(value, try broadcast(x, t))
        default:
            throw fail("operator \(n.opType) of a run-time-sized constant is not supported")
        }
    }

    /// Ops whose inputs are all known at import: computed here, no engine call.
    func fold(_ n: Onnx_NodeProto, _ inputs: [Value]) throws -> [Value] {
        let op = n.opType
        if case let .filled(value, dims)? = inputs.first { return [try foldFilled(n, inputs, value: value, dims: dims)] }
        if op == "Expand", case let .floats(a)? = inputs.first, case let .ints(t, _) = inputs[1] {
            let target = try broadcast(a.shape.map { .n($0) }, t)
            if let known = try? target.map({ d -> Int in guard let k = d.known else { throw fail("") }; return k }) {
                return [.floats(try NDArray.broadcast(a, NDArray(shape: known, values: Array(repeating: 0, count: known.reduce(1, *))), { x, _ in x }))]
            }
            if a.values.allSatisfy({ $0 == a.values.first }) { return [.filled(a.values.first ?? 0, target)] }
            throw fail("Expand of a constant to a run-time size is not supported")
        }
        // Integer tensors (shape computations) keep their symbols.
        if case let .ints(d0, s0)? = inputs.first {
            switch op {
            case "Identity", "Cast":
                if op == "Cast", let to = attr(n, "to")?.i, [1, 10, 11, 16].contains(to) {
                    return [.floats(NDArray(shape: s0, values: try knownInts(inputs[0], what: "Cast input").map(Float.init)))]
                }
                return [.ints(d0, shape: s0)]
            case "Unsqueeze", "Squeeze":
                let axes = try ints(n, "axes") ?? (inputs.count > 1 ? knownInts(inputs[1], what: "axes") : [])
                var shape = s0
                if op == "Unsqueeze" {
                    let rank = shape.count + axes.count
                    for a in try axes.map({ try axis($0, rank: rank) }).sorted() { shape.insert(1, at: a) }
                } else {
                    let drop = try Set(axes.map { try axis($0, rank: shape.count) })
                    shape = shape.enumerated().filter { axes.isEmpty ? $0.element != 1 : !drop.contains($0.offset) }.map(\.element)
                }
                return [.ints(d0, shape: shape)]
            case "Gather":
                let idx = try knownInts(inputs[1], what: "Gather indices")
                guard s0.count == 1 else { break }
                let picked = try idx.map { i -> Dim in
                    let k = i < 0 ? i + d0.count : i
                    guard k >= 0, k < d0.count else { throw fail("Gather index \(i) outside 0..<\(d0.count)") }
                    return d0[k]
                }
                if case let .ints(_, si) = inputs[1] { return [.ints(picked, shape: si)] }
                return [.ints(picked, shape: [picked.count])]
            case "Concat":
                var all: [Dim] = []
                for v in inputs {
                    guard case let .ints(d, s) = v, s.count <= 1 else { throw fail("Concat of integer tensors that are not vectors") }
                    all += d
                }
                return [.ints(all, shape: [all.count])]
            case "Slice":
                guard s0.count == 1 else { break }
                let starts = try ints(n, "starts") ?? knownInts(inputs[1], what: "starts")
                let ends = try ints(n, "ends") ?? knownInts(inputs[2], what: "ends")
                let steps = inputs.count > 4 ? try knownInts(inputs[4], what: "steps") : [1]
                let idx = Array(0..<d0.count)
                let a = try NDArray(shape: [d0.count], values: idx.map(Float.init))
                    .sliced(starts: [starts[0]], ends: [ends[0]], axes: [0], steps: [steps.first ?? 1])
                let out = a.values.map { d0[Int($0)] }
                return [.ints(out, shape: [out.count])]
            case "Add", "Sub", "Mul", "Div":
                guard case let .ints(d1, s1) = inputs[1] else { break }
                let count = max(d0.count, d1.count)
                guard d0.count == count || d0.count == 1, d1.count == count || d1.count == 1 else { break }
                let out = (0..<count).map { k in arith(op, d0[d0.count == 1 ? 0 : k], d1[d1.count == 1 ? 0 : k]) }
                return [.ints(out, shape: s0.count >= s1.count ? s0 : s1)]
            case "Reshape":
                let target = try knownInts(inputs[1], what: "Reshape shape")
                return [.ints(d0, shape: target.map { $0 == -1 ? d0.count / max(1, target.filter { $0 != -1 }.reduce(1, *)) : $0 })]
            case "Equal":
                guard case let .ints(d1, _) = inputs[1], d0.count == d1.count else { break }
                return [.ints(zip(d0, d1).map { .n($0 == $1 ? 1 : 0) }, shape: s0)]
            case "Where":
                let c = try knownInts(inputs[0], what: "Where condition")
                guard case let .ints(x, _) = inputs[1], case let .ints(y, _) = inputs[2] else { break }
                let count = max(c.count, x.count, y.count)
                return [.ints((0..<count).map { k in c[c.count == 1 ? 0 : k] != 0 ? x[x.count == 1 ? 0 : k] : y[y.count == 1 ? 0 : k] }, shape: [count])]
            default: break
            }
        }
        // Float constants: computed with the same kernels the engine op uses.
        func array(_ v: Value) throws -> NDArray {
            switch v {
            case let .floats(a): return a
            case let .ints(_, s): return NDArray(shape: s, values: try knownInts(v, what: "operand").map(Float.init))
            default: throw fail("\(op) of a value that is only known at run time")
            }
        }
        let a = try array(inputs[0])
        switch op {
        case "Identity", "Dropout": return [.floats(a)]
        case "Cast":
            if let to = attr(n, "to")?.i, ![1, 10, 11, 16].contains(to) { return [.ints(a.values.map { .n(Int($0)) }, shape: a.shape)] }
            return [.floats(a)]
        case "Transpose":
            let perm = ints(n, "perm") ?? Array((0..<a.shape.count).reversed())
            return [.floats(a.transposed(perm))]
        case "Unsqueeze", "Squeeze", "Reshape", "Flatten":
            var shape = a.shape
            switch op {
            case "Unsqueeze":
                let axes = try ints(n, "axes") ?? knownInts(inputs[1], what: "axes")
                for k in try axes.map({ try axis($0, rank: shape.count + axes.count) }).sorted() { shape.insert(1, at: k) }
            case "Squeeze":
                let axes = try ints(n, "axes") ?? (inputs.count > 1 ? knownInts(inputs[1], what: "axes") : [])
                let drop = try Set(axes.map { try axis($0, rank: shape.count) })
                shape = shape.enumerated().filter { axes.isEmpty ? $0.element != 1 : !drop.contains($0.offset) }.map(\.element)
            case "Flatten":
                let k = try axis(int(n, "axis", 1), rank: shape.count + 1)
                shape = [shape[..<k].reduce(1, *), shape[k...].reduce(1, *)]
            default:
                let dims = try reshapeTarget(a.shape.map { .n($0) }, try knownInts(inputs[1], what: "Reshape shape").map { .n($0) },
                                             allowZero: int(n, "allowzero", 0) == 1)
                shape = try dims.map { guard let k = $0.known else { throw fail("bad Reshape") }; return k }
            }
            guard shape.reduce(1, *) == a.count else { throw fail("cannot reshape \(a.shape) to \(shape)") }
            return [.floats(NDArray(shape: shape, values: a.values))]
        case "Add", "Sub", "Mul", "Div":
            let b = try array(inputs[1])
            let f: (Float, Float) -> Float
            switch op {
            case "Add": f = { $0 + $1 }
            case "Sub": f = { $0 - $1 }
            case "Mul": f = { $0 * $1 }
            default: f = { $0 / $1 }
            }
            return [.floats(try NDArray.broadcast(a, b, f))]
        case "MatMul": return [.floats(try NDArray.matmul(a, try array(inputs[1])))]
        case "Concat":
            let k = try axis(int(n, "axis", 0), rank: a.shape.count)
            return [.floats(NDArray.concat(try inputs.map(array), axis: k))]
        case "Gather":
            let k = try axis(int(n, "axis", 0), rank: a.shape.count)
            return [.floats(try a.gather(try array(inputs[1]), axis: k))]
        case "Relu": return [.floats(NDArray(shape: a.shape, values: a.values.map { max($0, 0) }))]
        case "Tanh": return [.floats(NDArray(shape: a.shape, values: a.values.map { Foundation.tanh($0) }))]
        case "Sigmoid": return [.floats(NDArray(shape: a.shape, values: a.values.map { 1 / (1 + Foundation.exp(-$0)) }))]
        default:
            throw fail("operator \(op) is not supported (on constants)")
        }
    }

    // MARK: run-time ops

    mutating func runtimeOp(_ n: Onnx_NodeProto, name: String, inputs: [Value]) throws {
        let op = n.opType
        var engineInputs: [TensorID] = []
        var operands: [Operand] = []
        var shapes: [[Dim]] = []
        var batchAxes: [Int?] = []
        var isInt: [Bool] = []
        for v in inputs {
            switch v {
            case let .runtime(r):
                operands.append(.runtime(input: engineInputs.count, batchAxis: r.batchAxis))
                engineInputs.append(r.tensor)
                shapes.append(r.shape); batchAxes.append(r.batchAxis); isInt.append(r.isInt)
            case let .floats(a):
                operands.append(.constant(a)); shapes.append(a.shape.map { .n($0) }); batchAxes.append(nil); isInt.append(false)
            case let .ints(d, s):
                if let known = try? knownInts(v, what: "") {
                    operands.append(.constant(NDArray(shape: s, values: known.map(Float.init))))
                } else {
                    operands.append(.constant(NDArray(shape: [0], values: [])))  // symbolic: read by the op's parameters
                }
                shapes.append(s.map { .n($0) }); batchAxes.append(nil); isInt.append(true)
                _ = d
            case let .filled(value, dims):
                guard dims.allSatisfy({ $0.known != nil }) else {
                    throw fail("a run-time-sized constant (ConstantOfShape) cannot feed \(op) here")
                }
                let shape = dims.map { $0.known! }
                operands.append(.constant(NDArray(shape: shape, values: Array(repeating: value, count: shape.reduce(1, *)))))
                shapes.append(dims); batchAxes.append(nil); isInt.append(false)
            case .absent:
                operands.append(.constant(NDArray(shape: [0], values: []))); shapes.append([]); batchAxes.append(nil); isInt.append(false)
            }
        }
        guard let first = batchAxes.firstIndex(where: { $0 != nil }) else { throw fail("no run-time input") }
        let x = shapes[0]
        var kind: ONNXTensorOp.Kind
        var outDims: [[Dim]]
        var outInt = [isInt[0]]
        // Only the first operand (or the indices of an embedding Gather) may be a run-time value for most ops.
        func onlyFirstRuntime() throws {
            guard batchAxes[0] != nil, batchAxes.dropFirst().allSatisfy({ $0 == nil }) else {
                throw fail("\(op) with a run-time value in another operand than the first is not supported")
            }
        }
        switch op {
        case "Relu", "Tanh", "Sigmoid", "Identity", "Dropout":
            try onlyFirstRuntime()
            kind = ["Relu": .relu, "Tanh": .tanh, "Sigmoid": .sigmoid][op] ?? .identity
            outDims = [x]
        case "Cast":
            try onlyFirstRuntime()
            let to = attr(n, "to")?.i ?? 1
            let toInt = ![1, 10, 11, 16].contains(to)
            kind = toInt && !isInt[0] ? .castToInt : .identity
            outDims = [x]; outInt = [toInt]
        case "Add", "Sub", "Mul", "Div", "Greater", "Less":
            let kinds: [String: ONNXTensorOp.Kind] = ["Add": .add, "Sub": .sub, "Mul": .mul, "Div": .div, "Greater": .greater, "Less": .less]
            kind = kinds[op]!
            outDims = [try broadcast(x, shapes[1])]
            outInt = [op == "Greater" || op == "Less" || (isInt[0] && isInt[1])]
        case "Clip":
            try onlyFirstRuntime()
            func bound(_ k: Int, _ attrName: String, _ def: Float) throws -> Float {
                if let a = attr(n, attrName) { return a.f }
                guard k < inputs.count, !isAbsent(inputs[k]) else { return def }
                guard case let .floats(c) = inputs[k], c.count == 1 else { throw fail("Clip bounds must be scalar constants") }
                return c.values[0]
            }
            kind = .clip(min: try bound(1, "min", -.infinity), max: try bound(2, "max", .infinity)); outDims = [x]
        case "ReduceSum":
            try onlyFirstRuntime()
            let keep = int(n, "keepdims", 1) == 1
            var axesList = try ints(n, "axes") ?? (inputs.count > 1 && !isAbsent(inputs[1]) ? knownInts(inputs[1], what: "axes") : [])
            if axesList.isEmpty {
                guard int(n, "noop_with_empty_axes", 0) == 0 else { kind = .identity; outDims = [x]; break }
                axesList = Array(x.indices)
            }
            axesList = try axesList.map { try axis($0, rank: x.count) }.sorted()
            if axesList.contains(where: { x[$0] == .batch }) { throw fail("ReduceSum over the batch axis is not supported") }
            kind = .reduceSum(axes: axesList, keepDims: keep)
            outDims = [keep ? x.enumerated().map { axesList.contains($0.offset) ? .n(1) : $0.element }
                            : x.enumerated().filter { !axesList.contains($0.offset) }.map(\.element)]
        case "Transpose":
            try onlyFirstRuntime()
            let perm = ints(n, "perm") ?? Array((0..<x.count).reversed())
            kind = .transpose(perm); outDims = [perm.map { x[$0] }]
        case "Reshape", "Squeeze", "Unsqueeze", "Flatten":
            try onlyFirstRuntime()
            var target: [Dim]
            switch op {
            case "Reshape":
                guard case let .ints(t, _) = inputs[1] else { throw fail("Reshape needs an integer shape") }
                target = try reshapeTarget(x, t, allowZero: int(n, "allowzero", 0) == 1)
            case "Squeeze":
                let axes = try ints(n, "axes") ?? (inputs.count > 1 ? knownInts(inputs[1], what: "axes") : [])
                let drop = try Set(axes.map { try axis($0, rank: x.count) })
                target = x.enumerated().filter { axes.isEmpty ? $0.element != .n(1) : !drop.contains($0.offset) }.map(\.element)
            case "Unsqueeze":
                let axes = try ints(n, "axes") ?? knownInts(inputs[1], what: "axes")
                target = x
                for k in try axes.map({ try axis($0, rank: x.count + axes.count) }).sorted() { target.insert(.n(1), at: k) }
            default:
                let k = try axis(int(n, "axis", 1), rank: x.count + 1)
                func group(_ d: ArraySlice<Dim>) -> Dim {
                    let (c, s) = product(Array(d))
                    if s.isEmpty { return .n(c) }
                    if c == 1, s.count == 1, s.first!.value == 1 { return .sym(s.first!.key) }
                    return .sym("(" + d.map(\.description).joined(separator: "*") + ")")
                }
                target = [group(x[..<k]), group(x[k...])]
            }
            kind = .reshape(try sizeSpecs(target, from: x)); outDims = [target]
        case "Expand":
            try onlyFirstRuntime()
            guard case let .ints(t, _) = inputs[1] else { throw fail("Expand needs an integer shape") }
            let target = try broadcast(x, t)
            kind = .expand(try sizeSpecs(target, from: x)); outDims = [target]
        case "Concat":
            guard batchAxes.allSatisfy({ $0 != nil }) else { throw fail("Concat of run-time values with constants is not supported") }
            let k = try axis(int(n, "axis", 0), rank: x.count)
            let sizes = shapes.map { $0[k] }
            let total = sizes.allSatisfy { $0.known != nil } ? Dim.n(sizes.reduce(0) { $0 + $1.known! }) : .sym("(concat)")
            var d = x; d[k] = total
            kind = .concat(axis: k); outDims = [d]
        case "Slice":
            try onlyFirstRuntime()
            let p = try sliceParameters(n, inputs, rank: x.count)
            kind = .slice(starts: p.starts, ends: p.ends, axes: p.axes, steps: p.steps)
            outDims = [try sliceDims(x, starts: p.starts, ends: p.ends, axes: p.axes, steps: p.steps)]
        case "Split":
            try onlyFirstRuntime()
            let k = try axis(int(n, "axis", 0), rank: x.count)
            guard let size = x[k].known else { throw fail("Split of an axis whose size is only known at run time") }
            var sizes = try ints(n, "split") ?? (inputs.count > 1 && !isAbsent(inputs[1]) ? knownInts(inputs[1], what: "split") : [])
            if sizes.isEmpty {
                let parts = int(n, "num_outputs", n.output.count)
                sizes = (0..<parts).map { p in (size + parts - 1) / parts * (p + 1) > size ? size - (size + parts - 1) / parts * p : (size + parts - 1) / parts }
            }
            guard sizes.reduce(0, +) == size else { throw fail("Split sizes \(sizes) do not add up to \(size)") }
            kind = .split(axis: k, sizes: sizes)
            outDims = sizes.map { s in var d = x; d[k] = .n(s); return d }
            outInt = sizes.map { _ in isInt[0] }
        case "Gather":
            let k = try axis(int(n, "axis", 0), rank: x.count)
            if batchAxes[0] != nil {
                try onlyFirstRuntime()
                guard x[k] != .batch else { throw fail("Gather along the batch axis is not supported") }
                outDims = [Array(x[..<k]) + shapes[1] + Array(x[(k + 1)...])]
            } else {
                // An embedding: constant table, run-time indices.
                guard k == 0 else { throw fail("Gather of a constant along axis \(k) with run-time indices is not supported") }
                outDims = [shapes[1] + Array(x.dropFirst())]
                outInt = [false]
            }
            kind = .gather(axis: k)
        case "MatMul":
            let a = x, b = shapes[1]
            guard a.count >= 1, b.count >= 1 else { throw fail("MatMul of scalars") }
            let av = a.count == 1 ? [.n(1)] + a : a, bv = b.count == 1 ? b + [.n(1)] : b
            let batchDims = try broadcast(Array(av.dropLast(2)), Array(bv.dropLast(2)))
            var d = batchDims + [av[av.count - 2], bv[bv.count - 1]]
            if a.count == 1 { d.remove(at: d.count - 2) }
            if b.count == 1 { d.removeLast() }
            if av.last == .batch || bv[bv.count - 2] == .batch { throw fail("MatMul over the batch axis is not supported") }
            kind = .matmul; outDims = [d]
        case "Gemm":
            let transA = int(n, "transA", 0) == 1, transB = int(n, "transB", 0) == 1
            guard x.count == 2, shapes[1].count == 2 else { throw fail("Gemm needs matrices") }
            let m = transA ? x[1] : x[0], cols = transB ? shapes[1][0] : shapes[1][1]
            kind = .gemm(transA: transA, transB: transB, alpha: float(n, "alpha", 1), beta: float(n, "beta", 1)); outDims = [[m, cols]]
        case "Softmax", "LogSoftmax":
            try onlyFirstRuntime()
            let def = opset >= 13 ? -1 : 1
            let k = try axis(int(n, "axis", def), rank: x.count)
            if opset < 13, k != x.count - 1 { throw fail("\(op) before opset 13 over axes \(k)... (not the last) is not supported") }
            guard x[k] != .batch else { throw fail("\(op) over the batch axis is not supported") }
            kind = op == "Softmax" ? .softmax(axis: k) : .logSoftmax(axis: k); outDims = [x]
        default:
            throw fail("operator \(op) is not supported")
        }
        _ = first
        var outputBatchAxes: [Int] = []
        var infos: [TensorInfo] = []
        for (k, d) in outDims.enumerated() {
            let hits = d.indices.filter { d[$0] == .batch }
            guard hits.count == 1 else {
                throw fail(hits.isEmpty ? "the output loses the batch axis" : "the output has the batch size on several axes")
            }
            outputBatchAxes.append(hits[0])
            infos.append(info(d, batchAxis: hits[0], isInt: outInt[min(k, outInt.count - 1)], time: nil))
        }
        let tensorOp = ONNXTensorOp(className: op, kind: kind, operands: operands, outputBatchAxes: outputBatchAxes, outputInfos: infos)
        let outs = try addNode(name, tensorOp, engineInputs)
        set(n, outs.enumerated().map { k, t in
            .runtime(Runtime(tensor: t, shape: outDims[k], batchAxis: outputBatchAxes[k], isInt: outInt[min(k, outInt.count - 1)]))
        })
    }

    func isAbsent(_ v: Value) -> Bool { if case .absent = v { return true }; return false }

    mutating func addNode(_ name: String, _ op: any Op, _ inputs: [TensorID]) throws -> [TensorID] {
        do { return try builder.add(layer: name, op: op, inputs: inputs) } catch let e as EngineError {
            throw fail("\(e)")
        }
    }
}
