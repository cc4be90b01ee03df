/// Padding of a 1-D convolution or pooling window, as Keras names it.
public enum Padding1D: String, Sendable {
    case valid, same, causal

    /// Output length and left padding for `length` steps, window `size`, `stride`, `dilation`
    /// (TensorFlow/XLA "SAME": pad_total = max((out-1)*stride + span - length, 0), left half rounded down).
    func geometry(length: Int, size: Int, stride: Int, dilation: Int) -> (out: Int, left: Int) {
        let span = dilation * (size - 1) + 1
        switch self {
        case .valid: return (length >= span ? (length - span) / stride + 1 : 0, 0)
        case .causal: return (length > 0 ? (length - 1) / stride + 1 : 0, span - 1)
        case .same:
            let out = (length + stride - 1) / stride
            let total = max((out - 1) * stride + span - length, 0)
            return (out, total / 2)
        }
    }

    /// Static output length (nil stays nil).
    func length(_ length: Int?, size: Int, stride: Int, dilation: Int) -> Int? {
        length.map { geometry(length: $0, size: size, stride: stride, dilation: dilation).out }
    }
}

/// The time axis after a windowed op: still lined up only for stride 1 with same/causal padding.
private func windowedTime(_ t: TimeAxis?, stride: Int, padding: Padding1D) -> TimeAxis? {
    guard let t else { return nil }
    return stride == 1 && padding != .valid ? t : t.shifted
}

private func needsSequence(_ inputs: [TensorInfo], _ what: String) throws -> TensorInfo {
    guard inputs.count == 1, inputs[0].rank == 2, inputs[0].dtype == .float32 else {
        throw incompatible("\(what) needs [batch, steps, channels] float input, got \(inputs.first.map { shapeText([nil] + $0.shape) } ?? "none")")
    }
    return inputs[0]
}

/// Keras Conv1D (channels_last): kernel `[size, in/groups, filters]`, bias `[filters]`, then the activation.
/// Conv1D does not support masking: the mask stops here, as in Keras.
public struct Conv1DOp: Op {
    public let kernel: [Float]  // [size, inPerGroup, filters]
    public let bias: [Float]?
    public let size, inputChannels, filters, stride, dilation, groups: Int
    public let padding: Padding1D
    public let activation: Activation

    /// Checks the weight shapes against the settings.
    public init(kernel: [Float], bias: [Float]?, size: Int, inputChannels: Int, filters: Int, stride: Int,
                dilation: Int, groups: Int, padding: Padding1D, activation: Activation) throws {
        guard size > 0, filters > 0, stride > 0, dilation > 0, groups > 0, inputChannels % groups == 0, filters % groups == 0 else {
            throw incompatible("Conv1D needs positive sizes and channels/filters divisible by groups=\(groups)")
        }
        guard kernel.count == size * (inputChannels / groups) * filters else {
            throw EngineError.weightShape(layer: "", weight: "kernel", expected: [size, inputChannels / groups, filters], got: [kernel.count])
        }
        if let bias, bias.count != filters {
            throw EngineError.weightShape(layer: "", weight: "bias", expected: [filters], got: [bias.count])
        }
        if stride > 1 && dilation > 1 { throw incompatible("Conv1D with both strides > 1 and dilation_rate > 1 is not allowed (Keras refuses it too)") }
        self.kernel = kernel
        self.bias = bias
        self.size = size
        self.inputChannels = inputChannels
        self.filters = filters
        self.stride = stride
        self.dilation = dilation
        self.groups = groups
        self.padding = padding
        self.activation = activation
    }

    public var className: String { "Conv1D" }
    public var parameterCount: Int { kernel.count + (bias?.count ?? 0) }
    public var details: [String] {
        var d = ["filters=\(filters)", "kernel_size=\(size)", "padding=\(padding.rawValue)"]
        if stride != 1 { d.append("strides=\(stride)") }
        if dilation != 1 { d.append("dilation_rate=\(dilation)") }
        if groups != 1 { d.append("groups=\(groups)") }
        if bias == nil { d.append("use_bias=false") }
        return d + ["activation=\(activation.kerasName)"]
    }

    public func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        let x = try needsSequence(inputs, "Conv1D")
        guard x.features == inputChannels else {
            throw incompatible("Conv1D kernel expects \(inputChannels) channels, the input has \(x.features.map(String.init) ?? "an unknown number")")
        }
        return [TensorInfo(shape: [padding.length(x.shape[0], size: size, stride: stride, dilation: dilation), filters],
                           masked: false, time: windowedTime(x.time, stride: stride, padding: padding))]
    }

    public func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        let x = inputs[0], batch = x.shape[0], length = x.shape[1], cin = inputChannels
        let (outLen, left) = padding.geometry(length: length, size: size, stride: stride, dilation: dilation)
        let gin = cin / groups, gout = filters / groups
        var out = [Float](repeating: 0, count: batch * outLen * filters)  // [batch, outLen, filters]
        x.values.withUnsafeBufferPointer { xp in
            kernel.withUnsafeBufferPointer { kp in
                for b in 0..<batch {
                    for t in 0..<outLen {
                        let o = (b * outLen + t) * filters
                        for k in 0..<size {
                            let s = t * stride + k * dilation - left
                            guard s >= 0, s < length else { continue }  // zero padding
                            let xr = (b * length + s) * cin
                            for g in 0..<groups {
                                for ci in 0..<gin {
                                    let v = xp[xr + g * gin + ci]
                                    let kr = (k * gin + ci) * filters + g * gout
                                    for f in 0..<gout { out[o + g * gout + f] += v * kp[kr + f] }
                                }
                            }
                        }
                        if let bias { for f in 0..<filters { out[o + f] += bias[f] } }
                    }
                }
            }
        }
        out.withUnsafeMutableBufferPointer { activation.apply($0, rowLength: filters) }
        return [Output(Tensor(shape: [batch, outLen, filters], values: out))]
    }
}

/// Keras MaxPooling1D and AveragePooling1D (channels_last); neither supports masking.
public struct Pool1DOp: Op {
    public enum Kind: String, Sendable { case max = "MaxPooling1D", average = "AveragePooling1D" }
    public let kind: Kind
    public let size, stride: Int
    public let padding: Padding1D

    /// A pooling window; `stride` defaults to `size` in Keras.
    public init(kind: Kind, size: Int, stride: Int, padding: Padding1D) throws {
        guard size > 0, stride > 0, padding != .causal else { throw incompatible("pooling needs positive pool_size and strides, padding valid or same") }
        self.kind = kind
        self.size = size
        self.stride = stride
        self.padding = padding
    }

    public var className: String { kind.rawValue }
    public var details: [String] { ["pool_size=\(size)", "strides=\(stride)", "padding=\(padding.rawValue)"] }

    public func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        let x = try needsSequence(inputs, kind.rawValue)
        let time = size == 1 && stride == 1 ? x.time : x.time?.shifted
        return [TensorInfo(shape: [padding.length(x.shape[0], size: size, stride: stride, dilation: 1), x.shape[1]], time: time)]
    }

    public func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        let x = inputs[0], batch = x.shape[0], length = x.shape[1], c = x.shape[2]
        let (outLen, left) = padding.geometry(length: length, size: size, stride: stride, dilation: 1)
        var out = [Float](repeating: 0, count: batch * outLen * c)
        for b in 0..<batch {
            for t in 0..<outLen {
                let o = (b * outLen + t) * c
                let lo = max(t * stride - left, 0), hi = min(t * stride - left + size, length)
                // Padding takes no part: max ignores it, the average divides by the steps inside.
                for ch in 0..<c {
                    var acc: Float = kind == .max ? -.infinity : 0
                    for s in lo..<max(hi, lo) {
                        let v = x.values[(b * length + s) * c + ch]
                        if kind == .max { acc = Swift.max(acc, v) } else { acc += v }
                    }
                    out[o + ch] = kind == .max ? acc : acc / Float(hi - lo)
                }
            }
        }
        return [Output(Tensor(shape: [batch, outLen, c], values: out))]
    }
}

/// Keras GlobalMaxPooling1D / GlobalAveragePooling1D: `[batch, steps, c] -> [batch, c]`
/// (keepdims: `[batch, 1, c]`). The average is mask-aware (masked steps left out), the max is not.
public struct GlobalPool1DOp: Op {
    public let average: Bool
    public let keepDims: Bool

    /// A global pooling over the steps.
    public init(average: Bool, keepDims: Bool) {
        self.average = average
        self.keepDims = keepDims
    }

    public var className: String { average ? "GlobalAveragePooling1D" : "GlobalMaxPooling1D" }
    public var details: [String] { keepDims ? ["keepdims"] : [] }

    public func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        let x = try needsSequence(inputs, className)
        return [TensorInfo(shape: keepDims ? [1, x.shape[1]] : [x.shape[1]], time: keepDims ? x.time?.shifted : nil)]
    }

    public func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        let x = inputs[0], batch = x.shape[0], length = x.shape[1], c = x.shape[2]
        let mask = average ? masks[0] : nil
        var out = [Float](repeating: 0, count: batch * c)
        for b in 0..<batch {
            var count: Float = 0
            for ch in 0..<c { out[b * c + ch] = average ? 0 : -.infinity }
            for t in 0..<length {
                if let mask, !mask[b * length + t] { continue }
                count += 1
                for ch in 0..<c {
                    let v = x.values[(b * length + t) * c + ch]
                    out[b * c + ch] = average ? out[b * c + ch] + v : Swift.max(out[b * c + ch], v)
                }
            }
            // Keras divides by the unmasked count (0/0 = NaN when every step is masked, as there).
            if average { for ch in 0..<c { out[b * c + ch] /= count } }
        }
        return [Output(Tensor(shape: keepDims ? [batch, 1, c] : [batch, c], values: out))]
    }
}
