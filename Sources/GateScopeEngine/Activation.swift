import Foundation

/// An elementwise activation (or softmax over the last axis) with Keras's exact definition.
public enum Activation: Equatable, Sendable {
    case linear, sigmoid, tanh, relu, relu6, elu, selu, softsign, softplus, swish, gelu, exponential
    case leakyRelu, mish, hardSilu
    /// Keras 2 / tf-keras: `clip(0.2x + 0.5, 0, 1)`.
    case hardSigmoidKeras2
    /// Keras 3: `clip(x/6 + 0.5, 0, 1)`.
    case hardSigmoidKeras3
    /// ONNX's parameterized functions of the recurrent ops: HardSigmoid `clip(alpha*x + beta, 0, 1)`,
    /// LeakyRelu, ThresholdedRelu, ScaledTanh `alpha*tanh(beta*x)`, Affine `alpha*x + beta`, Elu.
    case onnxHardSigmoid(alpha: Float, beta: Float)
    case onnxLeakyRelu(alpha: Float)
    case onnxThresholdedRelu(alpha: Float)
    case onnxScaledTanh(alpha: Float, beta: Float)
    case onnxAffine(alpha: Float, beta: Float)
    case onnxElu(alpha: Float)
    /// Softmax over the last axis (Dense / Activation layers only).
    case softmax
    case logSoftmax

    /// Names accepted in configs, for error messages.
    public static let supportedNames = [
        "linear", "sigmoid", "tanh", "hard_sigmoid", "relu", "relu6", "elu", "selu", "softsign",
        "softplus", "swish", "silu", "gelu", "exponential", "leaky_relu", "mish", "hard_silu",
        "hard_swish", "softmax", "log_softmax",
    ]

    /// Maps a Keras activation name; `hard_sigmoid` depends on the Keras major version that wrote the file.
    public init?(kerasName: String, kerasMajorVersion: Int) {
        switch kerasName {
        case "linear", "None": self = .linear
        case "sigmoid": self = .sigmoid
        case "tanh": self = .tanh
        case "relu": self = .relu
        case "relu6": self = .relu6
        case "elu": self = .elu
        case "selu": self = .selu
        case "softsign": self = .softsign
        case "softplus": self = .softplus
        case "swish", "silu": self = .swish
        case "gelu": self = .gelu
        case "exponential": self = .exponential
        case "leaky_relu": self = .leakyRelu
        case "mish": self = .mish
        case "hard_silu", "hard_swish": self = .hardSilu
        case "hard_sigmoid": self = kerasMajorVersion <= 2 ? .hardSigmoidKeras2 : .hardSigmoidKeras3
        case "softmax": self = .softmax
        case "log_softmax": self = .logSoftmax
        default: return nil
        }
    }

    /// The Keras name, for `inspect` and the `layers` table.
    public var kerasName: String {
        switch self {
        case .linear: return "linear"
        case .sigmoid: return "sigmoid"
        case .tanh: return "tanh"
        case .relu: return "relu"
        case .relu6: return "relu6"
        case .elu: return "elu"
        case .selu: return "selu"
        case .softsign: return "softsign"
        case .softplus: return "softplus"
        case .swish: return "swish"
        case .gelu: return "gelu"
        case .exponential: return "exponential"
        case .leakyRelu: return "leaky_relu"
        case .mish: return "mish"
        case .hardSilu: return "hard_silu"
        case .hardSigmoidKeras2, .hardSigmoidKeras3: return "hard_sigmoid"
        case let .onnxHardSigmoid(a, b): return "HardSigmoid(alpha=\(a),beta=\(b))"
        case let .onnxLeakyRelu(a): return "LeakyRelu(alpha=\(a))"
        case let .onnxThresholdedRelu(a): return "ThresholdedRelu(alpha=\(a))"
        case let .onnxScaledTanh(a, b): return "ScaledTanh(alpha=\(a),beta=\(b))"
        case let .onnxAffine(a, b): return "Affine(alpha=\(a),beta=\(b))"
        case let .onnxElu(a): return "Elu(alpha=\(a))"
        case .softmax: return "softmax"
        case .logSoftmax: return "log_softmax"
        }
    }

    /// True for activations that mix values along the last axis.
    public var isAxisWise: Bool { self == .softmax || self == .logSoftmax }

    /// Applies the activation to one value; axis-wise activations are handled by `apply(_:rowLength:)`.
    @inline(__always)
    public func scalar(_ x: Float) -> Float {
        switch self {
        case .linear: return x
        case .sigmoid:
            // Split by sign so exp never overflows: same value as 1/(1+e^-x) in float32.
            if x >= 0 { return 1 / (1 + Foundation.exp(-x)) }
            let e = Foundation.exp(x)
            return e / (1 + e)
        case .tanh: return Foundation.tanh(x)
        case .relu: return Swift.max(x, 0)
        case .relu6: return Swift.min(Swift.max(x, 0), 6)
        case .elu: return x > 0 ? x : Foundation.expm1(x)
        case .selu:
            let alpha: Float = 1.6732632423543772848170429916717
            let scale: Float = 1.0507009873554804934193349852946
            return x > 0 ? scale * x : scale * alpha * Foundation.expm1(x)
        case .softsign: return x / (1 + Swift.abs(x))
        case .softplus: return Activation.softplus(x)
        case .swish: return x * Activation.sigmoid.scalar(x)
        case .gelu: return 0.5 * x * (1 + Foundation.erf(x / Float(2).squareRoot()))
        case .exponential: return Foundation.exp(x)
        case .leakyRelu: return x >= 0 ? x : 0.2 * x  // Keras 3 default negative_slope
        case .mish: return x * Foundation.tanh(Activation.softplus(x))
        case .hardSilu: return x * Swift.min(Swift.max(x / 6 + 0.5, 0), 1)
        case .hardSigmoidKeras2: return Swift.min(Swift.max(0.2 * x + 0.5, 0), 1)
        case .hardSigmoidKeras3: return Swift.min(Swift.max(x / 6 + 0.5, 0), 1)
        case let .onnxHardSigmoid(a, b): return Swift.min(Swift.max(a * x + b, 0), 1)
        case let .onnxLeakyRelu(a): return x >= 0 ? x : a * x
        case let .onnxThresholdedRelu(a): return x > a ? x : 0
        case let .onnxScaledTanh(a, b): return a * Foundation.tanh(b * x)
        case let .onnxAffine(a, b): return a * x + b
        case let .onnxElu(a): return x >= 0 ? x : a * Foundation.expm1(x)
        case .softmax, .logSoftmax:
            preconditionFailure("\(kerasName) is applied per row, not per value")
        }
    }

    @inline(__always)
    static func softplus(_ x: Float) -> Float {
        // log(1+e^x) without overflow for large x.
        x > 0 ? x + Foundation.log1p(Foundation.exp(-x)) : Foundation.log1p(Foundation.exp(x))
    }

    /// Applies the activation in place to `values`, rows of `rowLength` (the last axis).
    public func apply(_ values: UnsafeMutableBufferPointer<Float>, rowLength: Int) {
        switch self {
        case .linear: return
        case .softmax, .logSoftmax:
            precondition(rowLength > 0 && values.count % rowLength == 0)
            var start = 0
            while start < values.count {
                let row = UnsafeMutableBufferPointer(rebasing: values[start..<start + rowLength])
                var m = -Float.infinity
                for v in row { m = Swift.max(m, v) }
                var sum: Float = 0
                for k in row.indices { sum += Foundation.exp(row[k] - m) }
                if self == .softmax {
                    for k in row.indices { row[k] = Foundation.exp(row[k] - m) / sum }
                } else {
                    let logSum = Foundation.log(sum)
                    for k in row.indices { row[k] = row[k] - m - logSum }
                }
                start += rowLength
            }
        case .sigmoid:
            // The hot path of every LSTM step: 8 lanes at a time.
            FastMath.map(values, FastMath.sigmoid8, FastMath.sigmoid)
        case .tanh:
            FastMath.map(values, FastMath.tanh8, FastMath.tanh)
        default:
            for k in values.indices { values[k] = scalar(values[k]) }
        }
    }
}

/// Float32 exp/sigmoid/tanh for the LSTM hot loop, 8 lanes at a time.
///
/// exp uses Cephes' range reduction and degree-6 polynomial (relative error about 2e-7, a few
/// float32 ulps, the same class of approximation XLA uses on CPU); checked against libm in tests.
enum FastMath {
    typealias V = SIMD8<Float>

    @inline(__always)
    static func exp8(_ x: V) -> V {
        var x = x
        x.replace(with: -87.3, where: x .< -87.3)
        x.replace(with: 88.3, where: x .> 88.3)
        // x = n*ln2 + r, |r| <= ln2/2, n = round(x/ln2): adding and subtracting 1.5*2^23 rounds a
        // float to the nearest integer in two vector instructions (SIMD rounded() calls floorf per lane).
        let n = (x * 1.44269504088896341 + 12_582_912) - 12_582_912
        var r = x - n * 0.693359375
        r = r + n * 2.12194440e-4
        var p = V(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let e = p * (r * r) + r + 1
        // 2^n: for a whole float m in [0, 2^23), the bits of m + 2^23 are 0x4B000000 + m.
        let biased = unsafeBitCast(n + (127 + 8_388_608), to: SIMD8<UInt32>.self) &- 0x4B00_0000
        return e * unsafeBitCast(biased &<< 23, to: V.self)
    }

    @inline(__always)
    static func sigmoid8(_ x: V) -> V { 1 / (1 + exp8(-x)) }

    @inline(__always)
    static func tanh8(_ x: V) -> V {
        // tanh(|x|) = (1 - e) / (1 + e), e = exp(-2|x|); the sign bit is copied back.
        let a = unsafeBitCast(unsafeBitCast(x, to: SIMD8<UInt32>.self) & 0x7fff_ffff, to: V.self)
        let e = exp8(-2 * a)
        let t = (1 - e) / (1 + e)
        let sign = unsafeBitCast(x, to: SIMD8<UInt32>.self) & 0x8000_0000
        return unsafeBitCast(unsafeBitCast(t, to: SIMD8<UInt32>.self) | sign, to: V.self)
    }

    @inline(__always)
    static func sigmoid(_ x: Float) -> Float { sigmoid8(V(repeating: x))[0] }

    @inline(__always)
    static func tanh(_ x: Float) -> Float { tanh8(V(repeating: x))[0] }

    /// Applies `f8` to whole 8-lane chunks and `f1` to the tail.
    @inline(__always)
    static func map(_ values: UnsafeMutableBufferPointer<Float>, _ f8: (V) -> V, _ f1: (Float) -> Float) {
        guard let p = values.baseAddress else { return }
        let n = values.count
        var k = 0
        let raw = UnsafeMutableRawPointer(p)
        while k + 8 <= n {
            let v = raw.loadUnaligned(fromByteOffset: k * 4, as: V.self)
            raw.storeBytes(of: f8(v), toByteOffset: k * 4, as: V.self)
            k += 8
        }
        while k < n { p[k] = f1(p[k]); k += 1 }
    }
}
