import Foundation
import GateScopeEngine
import GateScopeInput
import SwiftProtobuf

/// What goes wrong reading an ONNX model: the file, the node (name and op type) and why, in one line.
public struct ONNXError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var node: String?
    public var message: String
    public var description: String { InputError.oneLine("\(file): " + (node.map { "node \($0): " } ?? "") + message) }
}

/// Loads `.onnx` files into engine models: the same graph of layer calls the Keras importer
/// builds, with ONNX's LSTM, GRU and RNN ops as recurrent calls named after their nodes.
public enum ONNXModelLoader {
    /// Files larger than this are refused before anything is read (ONNX's own 2 GB protobuf limit).
    public static let maxFileBytes = 2_000_000_000

    /// Reads and converts `path`.
    public static func load(path: String) throws -> Model {
        let url = URL(fileURLWithPath: path)
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
        guard let size else { throw ONNXError(file: path, message: "no such file") }
        guard size <= maxFileBytes else { throw ONNXError(file: path, message: "file of \(size) bytes is larger than ONNX's 2 GB limit") }
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw ONNXError(file: path, message: "cannot read: \(error.localizedDescription)") }
        let proto: Onnx_ModelProto
        do {
            var options = BinaryDecodingOptions()
            options.messageDepthLimit = 64
            proto = try Onnx_ModelProto(serializedBytes: data, options: options)
        } catch {
            throw ONNXError(file: path, message: "not an ONNX model (protobuf: \(error))")
        }
        guard proto.hasGraph else { throw ONNXError(file: path, message: "not an ONNX model (no graph)") }
        var importer = Importer(file: path, model: proto)
        return try importer.build()
    }
}

/// A size in the importer's symbolic shapes: known, or a symbol (the batch, an input's time axis,
/// or a size only known at run time).
enum Dim: Hashable, CustomStringConvertible {
    case n(Int)
    case sym(String)
    static let batch = Dim.sym("batch")
    var known: Int? { if case let .n(v) = self { return v }; return nil }
    var description: String { switch self { case let .n(v): return "\(v)"; case let .sym(s): return s } }
}

/// What the importer knows of an ONNX value.
enum Value {
    /// A float constant (initializer, Constant or folded).
    case floats(NDArray)
    /// An integer constant or a shape computation: elements may be symbols (Shape of a runtime value).
    case ints([Dim], shape: [Int])
    /// A value computed at run time: an engine tensor holding it with its batch axis first.
    case runtime(Runtime)
    /// ConstantOfShape of a shape with symbols: every element is `value`.
    case filled(Float, [Dim])
    /// An omitted optional input.
    case absent
}

struct Runtime {
    var tensor: TensorID
    /// The ONNX shape, batch axis included.
    var shape: [Dim]
    var batchAxis: Int
    var isInt: Bool
}

struct Importer {
    let file: String
    let model: Onnx_ModelProto
    var builder = GraphBuilder()
    var values: [String: Value] = [:]
    var opset = 13
    var node = ""

    init(file: String, model: Onnx_ModelProto) {
        self.file = file
        self.model = model
        if let v = model.opsetImport.first(where: { $0.domain.isEmpty || $0.domain == "ai.onnx" })?.version { opset = Int(v) }
    }

    func fail(_ message: String) -> ONNXError { ONNXError(file: file, node: node.isEmpty ? nil : node, message: message) }

    mutating func build() throws -> Model {
        let graph = model.graph
        for t in graph.initializer { values[t.name] = try constant(t) }
        // Graph inputs that are not initializers feed the model. The batch is axis 0, except for
        // inputs a time-major recurrent op reads directly (layout 0: X [time, batch, features],
        // initial states [directions, batch, hidden]); sequence_lens [batch] inputs are lengths.
        var batchAxisOf: [String: Int] = [:], lengthsFor: [String: String] = [:]
        // Walk back from a recurrent op through ops that keep the layout (Identity, Cast, unary and
        // elementwise ops) to the graph input.
        var producer: [String: Onnx_NodeProto] = [:]
        for n in graph.node { for o in n.output { producer[o] = n } }
        let keepsLayout: Set<String> = ["Identity", "Cast", "Relu", "Tanh", "Sigmoid", "Dropout", "Add", "Sub", "Mul", "Div"]
        func source(_ name: String) -> String {
            var v = name, hops = 0
            while let p = producer[v], keepsLayout.contains(p.opType), let first = p.input.first, hops < 64 { v = first; hops += 1 }
            return v
        }
        for n in graph.node where ["LSTM", "GRU", "RNN"].contains(n.opType) {
            let layout = int(n, "layout", 0)
            for k in [0, 5, 6] where k < n.input.count && !n.input[k].isEmpty { batchAxisOf[source(n.input[k])] = layout == 0 ? 1 : 0 }
            if n.input.count > 4, !n.input[4].isEmpty, !n.input[0].isEmpty { lengthsFor[source(n.input[4])] = source(n.input[0]) }
        }
        var inputIndex: [String: Int] = [:]
        for input in graph.input where values[input.name] == nil {
            node = "input '\(input.name)'"
            let type = input.type.tensorType
            let batchAxis = min(batchAxisOf[input.name] ?? 0, max(0, type.shape.dim.count - 1))
            var dims: [Dim] = type.shape.dim.enumerated().map { k, d in
                if k == batchAxis { return .batch }
                if case let .dimValue(v)? = d.value, v > 0 { return .n(Int(v)) }
                let firstOther = batchAxis == 0 ? 1 : 0
                return .sym(k == firstOther ? "T:\(input.name)" : "\(input.name):\(k)")
            }
            if dims.isEmpty { dims = [.batch] }
            let isInt: Bool
            switch type.elemType {
            case 1, 10, 11, 16: isInt = false
            case 6, 7, 2, 3, 4, 5, 12, 13: isInt = true
            default: throw fail("element type \(type.elemType) cannot be a model input (float or integer tensors only)")
            }
            var rest = dims
            rest.remove(at: batchAxis)
            let id: TensorID
            do {
                id = try builder.addInput(name: input.name, shape: rest.map(\.known), dtype: isInt ? .int32 : .float32, fileBatchAxis: batchAxis)
            } catch let e as EngineError { throw fail("\(e)") }
            inputIndex[input.name] = builder.inputs.count - 1
            values[input.name] = .runtime(Runtime(tensor: id, shape: dims, batchAxis: batchAxis, isInt: isInt))
        }
        for (lengths, x) in lengthsFor {
            if let k = inputIndex[lengths], let j = inputIndex[x], builder.inputs[k].lengthsOf == nil { builder.setLengths(input: k, of: j) }
        }
        for (index, n) in graph.node.enumerated() {
            node = "'\(n.name.isEmpty ? "\(n.opType)_\(index)" : n.name)' (\(n.opType))"
            guard n.domain.isEmpty || n.domain == "ai.onnx" else { throw fail("operator domain '\(n.domain)' is not supported") }
            try convert(n, index: index)
        }
        node = ""
        for output in graph.output {
            guard case let .runtime(r)? = values[output.name] else {
                throw fail("output '\(output.name)' does not depend on the inputs (a constant)")
            }
            // predict gives it back in the ONNX layout: the batch axis where the graph has it.
            builder.addOutput(name: output.name, tensor: r.tensor, fileBatchAxis: r.batchAxis)
        }
        do {
            var m = Model(name: graph.name.isEmpty ? URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent : graph.name,
                          format: "onnx", kerasVersion: "", graph: try Graph(builder))
            m.producer = [model.producerName, model.producerVersion].filter { !$0.isEmpty }.joined(separator: " ") + " (opset \(opset))"
            return m
        } catch let e as EngineError {
            throw fail("\(e)")
        }
    }

    // MARK: constants

    func constant(_ t: Onnx_TensorProto) throws -> Value {
        let shape = t.dims.map { Int($0) }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw fail("tensor '\(t.name)' has a negative dimension") }
        var count = 1
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, p <= 1 << 31 else { throw fail("tensor '\(t.name)' declares \(shape) elements, too many") }
            count = p
        }
        guard t.dataLocation != .external, t.externalData.isEmpty else {
            throw fail("tensor '\(t.name)' keeps its data in an external file, which is not supported")
        }
        let raw = t.rawData
        func need(_ bytes: Int) throws {
            guard raw.count == count * bytes else { throw fail("tensor '\(t.name)' has \(raw.count) bytes of data for \(shape) (\(count * bytes) expected)") }
        }
        func le<T: FixedWidthInteger>(_: T.Type) -> [T] {
            raw.withUnsafeBytes { p in (0..<count).map { T(littleEndian: p.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self)) } }
        }
        switch t.dataType {
        case 1:  // float
            if !raw.isEmpty { try need(4); return .floats(NDArray(shape: shape, values: le(UInt32.self).map(Float.init(bitPattern:)))) }
            guard t.floatData.count == count else { throw fail("tensor '\(t.name)' has \(t.floatData.count) values for \(shape)") }
            return .floats(NDArray(shape: shape, values: t.floatData))
        case 11:  // double
            if !raw.isEmpty { try need(8); return .floats(NDArray(shape: shape, values: le(UInt64.self).map { Float(Double(bitPattern: $0)) })) }
            guard t.doubleData.count == count else { throw fail("tensor '\(t.name)' has \(t.doubleData.count) values for \(shape)") }
            return .floats(NDArray(shape: shape, values: t.doubleData.map(Float.init)))
        case 10, 16:  // float16, bfloat16
            let bits: [UInt16]
            if !raw.isEmpty { try need(2); bits = le(UInt16.self) } else {
                guard t.int32Data.count == count else { throw fail("tensor '\(t.name)' has \(t.int32Data.count) values for \(shape)") }
                bits = t.int32Data.map { UInt16(truncatingIfNeeded: $0) }
            }
            return .floats(NDArray(shape: shape, values: bits.map { t.dataType == 10 ? Float(Float16(bitPattern: $0)) : Float(bitPattern: UInt32($0) << 16) }))
        case 7:  // int64
            let v: [Int64]
            if !raw.isEmpty { try need(8); v = le(Int64.self) } else {
                guard t.int64Data.count == count else { throw fail("tensor '\(t.name)' has \(t.int64Data.count) values for \(shape)") }
                v = t.int64Data
            }
            return .ints(v.map { .n(Int($0)) }, shape: shape)
        case 6, 5, 4, 3, 2, 9:  // int32, int16, uint16, int8, uint8, bool
            let size = [6: 4, 5: 2, 4: 2, 3: 1, 2: 1, 9: 1][Int(t.dataType)]!
            var v: [Int] = []
            if !raw.isEmpty {
                try need(size)
                switch t.dataType {
                case 6: v = le(Int32.self).map(Int.init)
                case 5: v = le(Int16.self).map(Int.init)
                case 4: v = le(UInt16.self).map(Int.init)
                case 3: v = le(Int8.self).map(Int.init)
                default: v = le(UInt8.self).map(Int.init)
                }
            } else {
                guard t.int32Data.count == count else { throw fail("tensor '\(t.name)' has \(t.int32Data.count) values for \(shape)") }
                v = t.int32Data.map(Int.init)
            }
            return .ints(v.map { .n($0) }, shape: shape)
        default:
            throw fail("tensor '\(t.name)' has data type \(t.dataType), which is not supported")
        }
    }

    // MARK: attributes and operands

    func attr(_ n: Onnx_NodeProto, _ name: String) -> Onnx_AttributeProto? { n.attribute.first { $0.name == name } }
    func int(_ n: Onnx_NodeProto, _ name: String, _ def: Int) -> Int { attr(n, name).map { Int($0.i) } ?? def }
    func float(_ n: Onnx_NodeProto, _ name: String, _ def: Float) -> Float { attr(n, name).map(\.f) ?? def }
    func ints(_ n: Onnx_NodeProto, _ name: String) -> [Int]? { attr(n, name).map { $0.ints.map { Int($0) } } }
    func string(_ n: Onnx_NodeProto, _ name: String) -> String? { attr(n, name).map { String(decoding: $0.s, as: UTF8.self) } }

    func input(_ n: Onnx_NodeProto, _ k: Int) throws -> Value {
        guard k < n.input.count, !n.input[k].isEmpty else { return .absent }
        guard let v = values[n.input[k]] else { throw fail("input '\(n.input[k])' is not computed before this node") }
        return v
    }

    /// Known integers of a constant input (axes, starts, shapes); symbols are refused.
    func knownInts(_ v: Value, what: String) throws -> [Int] {
        switch v {
        case let .ints(dims, _):
            return try dims.map { d in
                guard let k = d.known else { throw fail("\(what) depends on a run-time size (\(d))") }
                return k
            }
        case let .floats(a): return a.values.map { Int($0) }
        default: throw fail("\(what) must be a constant")
        }
    }

    mutating func set(_ n: Onnx_NodeProto, _ outs: [Value]) {
        for (name, v) in zip(n.output, outs) where !name.isEmpty { values[name] = v }
    }

    /// Normalizes a possibly negative axis for rank `rank`.
    func axis(_ a: Int, rank: Int) throws -> Int {
        let k = a < 0 ? a + rank : a
        guard k >= 0, k < rank else { throw fail("axis \(a) is outside a rank-\(rank) tensor") }
        return k
    }

    func info(_ dims: [Dim], batchAxis: Int, isInt: Bool, time: TimeAxis?) -> TensorInfo {
        var rest = dims
        rest.remove(at: batchAxis)
        let t: TimeAxis? = rest.first.flatMap { d in
            if case let .sym(s) = d, s.hasPrefix("T:") { return TimeAxis(input: String(s.dropFirst(2)), aligned: true) }
            return nil
        } ?? (rest.isEmpty ? nil : time)
        return TensorInfo(shape: rest.map(\.known), dtype: isInt ? .int32 : .float32, masked: false, time: rest.isEmpty ? nil : t)
    }

    // MARK: nodes

    /// Inputs the conversion of `n` reads by position: the op's required ones, and those that
    /// stand in for an attribute the node does not have (Slice's starts and ends, Unsqueeze's axes
    /// from opset 13). Checked before any is read, so a file that omits one is refused, not read
    /// past the end of its input list.
    func requiredInputs(_ n: Onnx_NodeProto) -> Int {
        switch n.opType {
        case "Constant": return 0
        case "LSTM", "GRU", "RNN", "Where": return 3
        case "Slice": return attr(n, "starts") != nil && attr(n, "ends") != nil ? 1 : 3
        case "Unsqueeze": return attr(n, "axes") != nil ? 1 : 2
        case "Add", "Sub", "Mul", "Div", "Greater", "Less", "Equal", "MatMul", "Gemm", "Reshape", "Expand", "Gather": return 2
        default: return 1
        }
    }

    mutating func convert(_ n: Onnx_NodeProto, index: Int) throws {
        let name = n.name.isEmpty ? "\(n.opType)_\(index)" : n.name
        let required = requiredInputs(n)
        guard n.input.count >= required else {
            throw fail("\(n.opType.isEmpty ? "a node without an op type" : n.opType) needs \(required) input\(required == 1 ? "" : "s"), it has \(n.input.count)")
        }
        let inputs = try (0..<n.input.count).map { try input(n, $0) }
        let runtime = inputs.contains { if case .runtime = $0 { return true }; return false }
        switch n.opType {
        case "LSTM", "GRU", "RNN":
            try recurrent(n, name: name, inputs: inputs)
            return
        case "Constant":
            if let t = attr(n, "value") { set(n, [try constant(t.t)]); return }
            if let a = attr(n, "value_float") { set(n, [.floats(NDArray(shape: [], values: [a.f]))]); return }
            if let a = attr(n, "value_floats") { set(n, [.floats(NDArray(shape: [a.floats.count], values: a.floats))]); return }
            if let a = attr(n, "value_int") { set(n, [.ints([.n(Int(a.i))], shape: [])]); return }
            if let a = attr(n, "value_ints") { set(n, [.ints(a.ints.map { .n(Int($0)) }, shape: [a.ints.count])]); return }
            throw fail("a Constant without a supported value attribute")
        case "Shape":
            guard let v = inputs.first else { throw fail("Shape needs an input") }
            var dims: [Dim]
            switch v {
            case let .runtime(r): dims = r.shape
            case let .floats(a): dims = a.shape.map { .n($0) }
            case let .ints(_, shape): dims = shape.map { .n($0) }
            case let .filled(_, d): dims = d
            case .absent: throw fail("Shape of an omitted input")
            }
            let start = try attr(n, "start").map { try axis(Int($0.i), rank: dims.count + 1) } ?? 0
            let end = attr(n, "end").map { Int($0.i) } ?? dims.count
            let e = min(end < 0 ? end + dims.count : end, dims.count)
            dims = start < e ? Array(dims[start..<e]) : []
            set(n, [.ints(dims, shape: [dims.count])])
            return
        case "ConstantOfShape":
            let shape = try inputs.first.map { v -> [Dim] in
                guard case let .ints(d, _) = v else { throw fail("ConstantOfShape needs an integer shape") }
                return d
            } ?? []
            var fill: Float = 0
            var isInt = false
            if let t = attr(n, "value") {
                switch try constant(t.t) {
                case let .floats(a): fill = a.values.first ?? 0
                case let .ints(d, _): fill = Float(d.first?.known ?? 0); isInt = true
                default: break
                }
            }
            if let known = try? shape.map({ d -> Int in guard let k = d.known else { throw fail("") }; return k }) {
                let count = known.reduce(1, *)
                guard count <= 1 << 26 else { throw fail("ConstantOfShape of \(known) is too large") }
                set(n, [isInt ? .ints(Array(repeating: .n(Int(fill)), count: count), shape: known)
                             : .floats(NDArray(shape: known, values: Array(repeating: fill, count: count)))])
            } else {
                set(n, [.filled(fill, shape)])
            }
            return
        default:
            break
        }
        if !runtime {
            set(n, try fold(n, inputs))
            return
        }
        try runtimeOp(n, name: name, inputs: inputs)
    }
}
