/// Keras's LSTM over a batch, step by step, reporting every computed step to an observer.
///
/// Per step t (Keras `LSTMCell.call`, gate order i, f, c, o in the weight columns):
///   z = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias      // [batch, 4*units]
///   i = ra(z_i)  f = ra(z_f)  g = a(z_c)  o = ra(z_o)
///   c_t = f * c_{t-1} + i * g
///   h_t = o * a(c_t)
/// A masked step keeps h and c; its output is the previous output, or zeros with
/// `zeroOutputForMask` (Keras `backend.rnn`).
struct LSTMForward {
    let spec: LSTMSpec
    let batch: Int
    let time: Int

    struct Result {
        /// [batch, time, units] in processing order (reversed for go_backwards), or empty.
        var sequence: [Float]
        /// [batch, units]: the output of the last processed step.
        var last: [Float]
    }

    /// Runs the layer on `x` [batch, time, inputDim] with `mask` [batch, time] (nil: all steps).
    func run(_ x: [Float], mask: [Bool]?, layerIndex: Int, observer: GateObserver?) throws -> Result {
        let u = spec.units, u4 = 4 * spec.units, d = spec.inputDim
        precondition(x.count == batch * time * d)

        // Input projection for every (sequence, step) at once: one large matrix product.
        var xproj = [Float](repeating: 0, count: batch * time * u4)  // [batch*time, 4u]
        x.withUnsafeBufferPointer { xp in
            spec.kernel.values.withUnsafeBufferPointer { kp in
                xproj.withUnsafeMutableBufferPointer { zp in
                    matmul(xp.baseAddress!, kp.baseAddress!, zp.baseAddress!, m: batch * time, k: d, n: u4)
                }
            }
        }
        if let bias = spec.bias {
            xproj.withUnsafeMutableBufferPointer { zp in
                for row in 0..<(batch * time) {
                    let base = row * u4
                    for k in 0..<u4 { zp[base + k] += bias[k] }
                }
            }
        }

        // Buffers allocated once for the whole sequence.
        var h = [Float](repeating: 0, count: batch * u)      // [batch, units]
        var c = [Float](repeating: 0, count: batch * u)      // [batch, units]
        var z = [Float](repeating: 0, count: batch * u4)     // [batch, 4u]
        var gi = [Float](repeating: 0, count: batch * u)     // [batch, units] each
        var gf = gi, gg = gi, go = gi, actC = [Float](repeating: 0, count: u)
        var active = [Bool](repeating: true, count: batch)
        var sequence = spec.returnSequences ? [Float](repeating: 0, count: batch * time * u) : []
        var last = [Float](repeating: 0, count: batch * u)
        let report = observer.map { $0.observedLayers?.contains(layerIndex) ?? true } ?? false
        let ra = spec.recurrentActivation, a = spec.activation

        for k in 0..<time {
            let t = spec.goBackwards ? time - 1 - k : k
            h.withUnsafeBufferPointer { hp in
                spec.recurrentKernel.values.withUnsafeBufferPointer { up in
                    z.withUnsafeMutableBufferPointer { zp in
                        matmul(hp.baseAddress!, up.baseAddress!, zp.baseAddress!, m: batch, k: u, n: u4)
                    }
                }
            }
            for b in 0..<batch {
                active[b] = mask?[b * time + t] ?? true
                guard active[b] else { continue }
                let zb = b * u4, xb = (b * time + t) * u4, sb = b * u
                xproj.withUnsafeBufferPointer { xp in
                    z.withUnsafeMutableBufferPointer { zp in
                        for j in 0..<u4 { zp[zb + j] += xp[xb + j] }
                        ra.apply(UnsafeMutableBufferPointer(rebasing: zp[zb..<zb + 2 * u]), rowLength: u)  // i, f
                        a.apply(UnsafeMutableBufferPointer(rebasing: zp[(zb + 2 * u)..<(zb + 3 * u)]), rowLength: u)  // g
                        ra.apply(UnsafeMutableBufferPointer(rebasing: zp[(zb + 3 * u)..<(zb + u4)]), rowLength: u)  // o
                    }
                }
                for j in 0..<u {
                    let iv = z[zb + j], fv = z[zb + u + j], gv = z[zb + 2 * u + j]
                    gi[sb + j] = iv
                    gf[sb + j] = fv
                    gg[sb + j] = gv
                    go[sb + j] = z[zb + 3 * u + j]
                    c[sb + j] = fv * c[sb + j] + iv * gv
                    actC[j] = c[sb + j]
                }
                actC.withUnsafeMutableBufferPointer { a.apply($0, rowLength: u) }
                for j in 0..<u { h[sb + j] = go[sb + j] * actC[j] }
            }
            // Output of this step, in processing order.
            for b in 0..<batch {
                let useZero = !active[b] && spec.zeroOutputForMask
                let sb = b * u
                if spec.returnSequences {
                    let ob = (b * time + k) * u
                    for j in 0..<u { sequence[ob + j] = useZero ? 0 : h[sb + j] }
                }
                if k == time - 1 {
                    for j in 0..<u { last[sb + j] = useZero ? 0 : h[sb + j] }
                }
            }
            if report, let observer, active.contains(true) {
                try active.withUnsafeBufferPointer { ap in
                    try gi.withUnsafeBufferPointer { ip in
                        try gf.withUnsafeBufferPointer { fp in
                            try gg.withUnsafeBufferPointer { gp in
                                try go.withUnsafeBufferPointer { op in
                                    try c.withUnsafeBufferPointer { cp in
                                        try h.withUnsafeBufferPointer { hp in
                                            try observer.observe(GateStep(
                                                layer: layerIndex, step: t, batchSize: batch, units: u, active: ap,
                                                i: ip, f: fp, g: gp, o: op, c: cp, h: hp))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return Result(sequence: sequence, last: last)
    }
}
