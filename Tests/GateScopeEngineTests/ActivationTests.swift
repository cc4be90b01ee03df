import Foundation
import Testing
@testable import GateScopeEngine

/// Hand-checked values (float64 math, rounded) for every activation.
@Test(arguments: [
    (Activation.sigmoid, Float(0), Float(0.5)),
    (.sigmoid, 2, 0.880797078),
    (.sigmoid, -20, 2.06115362e-9),
    (.tanh, 0.5, 0.462117157),
    (.hardSigmoidKeras2, 1, 0.7),
    (.hardSigmoidKeras2, -3, 0),
    (.hardSigmoidKeras3, 1, 0.666666667),
    (.hardSigmoidKeras3, 3.5, 1),
    (.relu, -2, 0),
    (.relu, 1.5, 1.5),
    (.relu6, 7, 6),
    (.linear, -3.25, -3.25),
    (.elu, -1, -0.632120559),
    (.selu, -1, -1.111330738),
    (.selu, 2, 2.101401975),
    (.softsign, 1, 0.5),
    (.softplus, 0, 0.693147181),
    (.softplus, 100, 100),
    (.swish, 1, 0.731058579),
    (.gelu, 1, 0.841344746),
    (.exponential, 1, 2.718281828),
    (.leakyRelu, -1, -0.2),
    (.mish, 1, 0.865098388),
    (.hardSilu, 1, 0.666666667),
])
func activationValue(_ a: Activation, _ x: Float, _ expected: Float) {
    let got = a.scalar(x)
    #expect(abs(got - expected) <= 1e-6 + 1e-6 * abs(expected), "\(a.kerasName)(\(x)) = \(got), want \(expected)")
}

@Test func softmaxIsPerRow() {
    var v: [Float] = [1, 2, 3, 0, 0, 0]
    v.withUnsafeMutableBufferPointer { Activation.softmax.apply($0, rowLength: 3) }
    let want: [Float] = [0.090030573, 0.244728471, 0.665240956, 1.0 / 3, 1.0 / 3, 1.0 / 3]
    #expect(maxDiff(v, want) < 1e-6)
}

@Test func hardSigmoidDependsOnKerasVersion() {
    #expect(Activation(kerasName: "hard_sigmoid", kerasMajorVersion: 2) == .hardSigmoidKeras2)
    #expect(Activation(kerasName: "hard_sigmoid", kerasMajorVersion: 3) == .hardSigmoidKeras3)
    #expect(Activation(kerasName: "silu", kerasMajorVersion: 3) == .swish)
    #expect(Activation(kerasName: "no_such_thing", kerasMajorVersion: 3) == nil)
}

/// The vectorized sigmoid/tanh of the LSTM hot loop agree with libm to a few float32 ulps.
@Test func fastMathMatchesLibm() {
    var worstSigmoid: Float = 0, worstTanh: Float = 0
    var x: Float = -30
    while x <= 30 {
        let s = FastMath.sigmoid(x), t = FastMath.tanh(x)
        let sRef = Float(1 / (1 + Foundation.exp(-Double(x)))), tRef = Float(Foundation.tanh(Double(x)))
        worstSigmoid = max(worstSigmoid, abs(s - sRef) / max(abs(sRef), 1e-30))
        worstTanh = max(worstTanh, abs(t - tRef) - 2e-7 * abs(tRef))
        x += 0.001
    }
    print("FastMath: largest relative sigmoid error \(worstSigmoid), tanh excess error \(worstTanh)")
    #expect(worstSigmoid < 1e-6)
    #expect(worstTanh < 1e-7)
    // Lanes and the scalar tail give the same answer.
    var v: [Float] = (0..<11).map { Float($0) - 5 }
    v.withUnsafeMutableBufferPointer { Activation.tanh.apply($0, rowLength: 11) }
    #expect(v[10] == FastMath.tanh(5) && v[0] == -FastMath.tanh(5))
    #expect(FastMath.sigmoid(-200) == 0 || FastMath.sigmoid(-200) < 1e-37)
    #expect(FastMath.sigmoid(200) == 1)
}
