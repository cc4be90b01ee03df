import Foundation

/// Keras LayerNormalization over the last axis, and BatchNormalization at inference on the last
/// axis; both pass the mask on. Both compute `x * inv + (beta - mean * inv)` with
/// `inv = gamma / sqrt(var + epsilon)`, as Keras does.
public struct NormalizationOp: Op {
    public enum Kind: Sendable, Equatable {
        /// Mean and variance of each row, over the last axis.
        case layer
        /// Stored moving statistics per feature.
        case batch(mean: [Float], variance: [Float])
    }
    public let kind: Kind
    public let gamma: [Float]?
    public let beta: [Float]?
    public let epsilon: Float
    /// Features on the normalized (last) axis.
    public let features: Int

    /// Checks every vector against `features`.
    public init(kind: Kind, features: Int, gamma: [Float]?, beta: [Float]?, epsilon: Float) throws {
        var vectors = [("gamma", gamma), ("beta", beta)]
        if case let .batch(m, v) = kind { vectors += [("moving_mean", m), ("moving_variance", v)] }
        for (name, v) in vectors {
            if let v, v.count != features { throw EngineError.weightShape(layer: "", weight: name, expected: [features], got: [v.count]) }
        }
        self.kind = kind
        self.gamma = gamma
        self.beta = beta
        self.epsilon = epsilon
        self.features = features
    }

    public var className: String { kind == .layer ? "LayerNormalization" : "BatchNormalization" }
    public var parameterCount: Int {
        var n = (gamma?.count ?? 0) + (beta?.count ?? 0)
        if case .batch = kind { n += 2 * features }
        return n
    }
    public var details: [String] { ["epsilon=\(epsilon)"] + (gamma == nil ? ["scale=false"] : []) + (beta == nil ? ["center=false"] : []) }
    public var lengthSafe: Bool { true }

    public func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        guard inputs.count == 1, inputs[0].dtype == .float32, inputs[0].features == features else {
            throw incompatible("\(className) over \(features) features needs input with \(features) on its last axis, got \(inputs.first.map { shapeText([nil] + $0.shape) } ?? "none")")
        }
        return [inputs[0]]
    }

    public func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        var v = inputs[0].values
        let n = features, rows = v.count / max(n, 1)
        for r in 0..<rows {
            let base = r * n
            var mean: Float = 0, variance: Float = 0
            var perFeature: (mean: [Float], variance: [Float])? = nil
            switch kind {
            case .layer:
                for j in 0..<n { mean += v[base + j] }
                mean /= Float(n)
                for j in 0..<n { let d = v[base + j] - mean; variance += d * d }
                variance /= Float(n)
            case let .batch(m, s):
                perFeature = (m, s)
            }
            for j in 0..<n {
                let mu = perFeature?.mean[j] ?? mean, va = perFeature?.variance[j] ?? variance
                var inv = 1 / (va + epsilon).squareRoot()
                if let gamma { inv *= gamma[j] }
                var res = -mu * inv
                if let beta { res += beta[j] }
                v[base + j] = v[base + j] * inv + res
            }
        }
        return [Output(Tensor(shape: inputs[0].shape, values: v), mask: masks[0])]
    }
}

/// Keras Attention (Luong: dot or concat scores) and AdditiveAttention (Bahdanau), inputs
/// `[query, value]` or `[query, value, key]`. Masked value steps get `-1e9` before the softmax;
/// masked query steps output zeros; the output carries the query's mask.
public struct AttentionOp: Op {
    public enum Score: Sendable, Equatable {
        /// `q . k` (times `scale` with use_scale).
        case dot(scale: Float?)
        /// `concatWeight * sum(tanh(scale * (q + k)))`.
        case concat(scale: Float?, weight: Float)
        /// AdditiveAttention: `sum(scale * tanh(q + k))`, `scale` per feature (ones without use_scale).
        case additive(scale: [Float]?)
    }
    public let score: Score
    public let causal: Bool
    /// With return_attention_scores: a second output, the softmax weights `[batch, Tq, Tv]`.
    public let returnScores: Bool

    /// An attention with its learned scalars.
    public init(score: Score, causal: Bool, returnScores: Bool = false) {
        self.score = score
        self.causal = causal
        self.returnScores = returnScores
    }

    public var className: String {
        if case .additive = score { return "AdditiveAttention" }
        return "Attention"
    }
    public var parameterCount: Int {
        switch score {
        case let .dot(s): return s == nil ? 0 : 1
        case let .concat(s, _): return (s == nil ? 0 : 1) + 1
        case let .additive(s): return s?.count ?? 0
        }
    }
    public var details: [String] {
        var d: [String]
        switch score {
        case let .dot(s): d = ["score_mode=dot"] + (s == nil ? [] : ["use_scale"])
        case let .concat(s, _): d = ["score_mode=concat"] + (s == nil ? [] : ["use_scale"])
        case let .additive(s): d = s == nil ? [] : ["use_scale"]
        }
        return d + (causal ? ["use_causal_mask"] : []) + (returnScores ? ["return_attention_scores"] : [])
    }

    public func infer(_ inputs: [TensorInfo]) throws -> [TensorInfo] {
        guard (2...3).contains(inputs.count), inputs.allSatisfy({ $0.rank == 2 && $0.dtype == .float32 }) else {
            throw incompatible("\(className) needs [query, value] or [query, value, key], each [batch, steps, dim]")
        }
        let q = inputs[0], v = inputs[1], k = inputs.count > 2 ? inputs[2] : v
        if let a = q.features, let b = k.features, a != b { throw incompatible("query dim \(a) differs from key dim \(b)") }
        if let a = v.shape[0], let b = k.shape[0], a != b { throw incompatible("value has \(a) steps, key \(b)") }
        if case let .additive(s?) = score, let d = q.features, s.count != d {
            throw EngineError.weightShape(layer: "", weight: "scale", expected: [d], got: [s.count])
        }
        let out = TensorInfo(shape: [q.shape[0], v.shape[1]], masked: q.masked, time: q.time)
        return returnScores ? [out, TensorInfo(shape: [q.shape[0], v.shape[0]], time: q.time)] : [out]
    }

    public func run(_ inputs: [Tensor], masks: [[Bool]?], context: OpContext) throws -> [Output] {
        let q = inputs[0], v = inputs[1], k = inputs.count > 2 ? inputs[2] : v
        let batch = q.shape[0], tq = q.shape[1], tv = v.shape[1], d = q.shape[2], dv = v.shape[2]
        let qMask = masks[0], vMask = masks.count > 1 ? masks[1] : nil
        var out = [Float](repeating: 0, count: batch * tq * dv)
        var weights = [Float](repeating: 0, count: returnScores ? batch * tq * tv : 0)  // [batch, Tq, Tv]
        var scores = [Float](repeating: 0, count: tv)
        for b in 0..<batch {
            for i in 0..<tq {
                let qr = (b * tq + i) * d
                for j in 0..<tv {
                    let kr = (b * tv + j) * d
                    var s: Float = 0
                    switch score {
                    case let .dot(scale):
                        for p in 0..<d { s += q.values[qr + p] * k.values[kr + p] }
                        if let scale { s *= scale }
                    case let .concat(scale, weight):
                        for p in 0..<d { s += Foundation.tanh((scale ?? 1) * (q.values[qr + p] + k.values[kr + p])) }
                        s *= weight
                    case let .additive(scale):
                        for p in 0..<d { s += (scale?[p] ?? 1) * Foundation.tanh(q.values[qr + p] + k.values[kr + p]) }
                    }
                    let keep = (vMask?[b * tv + j] ?? true) && (!causal || j <= i)
                    scores[j] = keep ? s : s - 1e9
                }
                // Softmax over the value steps.
                let top = scores.max() ?? 0
                var sum: Float = 0
                for j in 0..<tv { scores[j] = Foundation.exp(scores[j] - top); sum += scores[j] }
                let o = (b * tq + i) * dv
                if returnScores { for j in 0..<tv { weights[(b * tq + i) * tv + j] = scores[j] / sum } }
                if let qMask, !qMask[b * tq + i] { continue }  // zeros
                for j in 0..<tv {
                    let w = scores[j] / sum, vr = (b * tv + j) * dv
                    for p in 0..<dv { out[o + p] += w * v.values[vr + p] }
                }
            }
        }
        let result = Output(Tensor(shape: [batch, tq, dv], values: out), mask: qMask)
        return returnScores ? [result, Output(Tensor(shape: [batch, tq, tv], values: weights))] : [result]
    }
}
