/// One direction of an LSTM as ONNX's LSTM op and PyTorch's nn.LSTM define it, for the variants
/// Keras's cell cannot express: peepholes, a cell clip, coupled input and forget gates, three
/// separate activations and a projection of h (PyTorch `proj_size`). Weights are stored in
/// GateScope's column order i, f, g, o (importers reorder ONNX's i, o, f, c and PyTorch's i, f, g, o).
public struct GeneralLSTMSpec: Equatable, Sendable {
    public var name: String
    public var units: Int
    public var inputDim: Int
    /// f: the gates i, f, o; g: the candidate; h: applied to c for the output.
    public var gateActivation: Activation
    public var cellActivation: Activation
    public var outputActivation: Activation
    public var goBackwards: Bool
    public var kernel: Matrix           // [inputDim, 4*units]
    /// [outSize, 4*units]: multiplies the fed-back state (units, or proj_size with a projection).
    public var recurrentKernel: Matrix
    /// [4*units]: input and recurrent biases summed.
    public var bias: [Float]?
    /// ONNX `P`: peephole weights for i, f, o ([units] each), or nil.
    public var peepholes: (i: [Float], f: [Float], o: [Float])?
    /// ONNX `clip`: pre-activation values are clipped to [-clip, clip].
    public var clip: Float?
    /// ONNX `input_forget`: f = 1 - i.
    public var inputForget: Bool
    /// PyTorch `weight_hr` transposed, [units, proj]: the fed-back and output state is h @ projection.
    public var projection: Matrix?

    /// The size of the state fed back and returned (proj_size, or units).
    public var outSize: Int { projection?.cols ?? units }

    /// Creates a spec, checking every weight shape.
    public init(name: String, units: Int, inputDim: Int, gateActivation: Activation, cellActivation: Activation,
                outputActivation: Activation, goBackwards: Bool, kernel: Matrix, recurrentKernel: Matrix, bias: [Float]?,
                peepholes: (i: [Float], f: [Float], o: [Float])? = nil, clip: Float? = nil, inputForget: Bool = false,
                projection: Matrix? = nil) throws {
        let out = projection?.cols ?? units
        try kernel.check(rows: inputDim, cols: 4 * units, layer: name, weight: "input weights")
        try recurrentKernel.check(rows: out, cols: 4 * units, layer: name, weight: "recurrent weights")
        if let bias, bias.count != 4 * units {
            throw EngineError.weightShape(layer: name, weight: "bias", expected: [4 * units], got: [bias.count])
        }
        if let p = peepholes, p.i.count != units || p.f.count != units || p.o.count != units {
            throw EngineError.weightShape(layer: name, weight: "peepholes", expected: [3 * units], got: [p.i.count + p.f.count + p.o.count])
        }
        if let projection, projection.rows != units {
            throw EngineError.weightShape(layer: name, weight: "projection", expected: [units, projection.cols], got: [projection.rows, projection.cols])
        }
        if let clip, !(clip > 0) {
            throw EngineError.incompatible(layer: name, reason: "clip must be positive, got \(clip)")
        }
        for a in [gateActivation, cellActivation, outputActivation] where a.isAxisWise {
            throw EngineError.incompatible(layer: name, reason: "\(a.kerasName) cannot be an LSTM activation")
        }
        self.name = name; self.units = units; self.inputDim = inputDim
        self.gateActivation = gateActivation; self.cellActivation = cellActivation; self.outputActivation = outputActivation
        self.goBackwards = goBackwards; self.kernel = kernel; self.recurrentKernel = recurrentKernel; self.bias = bias
        self.peepholes = peepholes; self.clip = clip; self.inputForget = inputForget; self.projection = projection
    }

    public static func == (a: GeneralLSTMSpec, b: GeneralLSTMSpec) -> Bool {
        a.name == b.name && a.units == b.units && a.kernel == b.kernel && a.recurrentKernel == b.recurrentKernel
            && a.bias == b.bias && a.peepholes?.i == b.peepholes?.i && a.peepholes?.f == b.peepholes?.f
            && a.peepholes?.o == b.peepholes?.o && a.clip == b.clip && a.inputForget == b.inputForget
            && a.projection == b.projection && a.goBackwards == b.goBackwards && a.gateActivation == b.gateActivation
            && a.cellActivation == b.cellActivation && a.outputActivation == b.outputActivation
    }

    /// Number of trainable values.
    public var parameterCount: Int {
        kernel.values.count + recurrentKernel.values.count + (bias?.count ?? 0) + (peepholes.map { 3 * $0.i.count } ?? 0)
            + (projection?.values.count ?? 0)
    }
}

/// The LSTM of ONNX and PyTorch over a batch, step by step (ONNX LSTM operator, PyTorch nn.LSTM):
///
///   per step t, in GateScope's gate order (columns i, f, g, o):
///     z = x_t @ W + r_{t-1} @ R + b                                 // [batch, 4u]; r = fed-back state
///     i = f(clip(z_i + P_i * c_{t-1}))    f = f(clip(z_f + P_f * c_{t-1}))   (input_forget: f = 1 - i)
///     g = g(clip(z_g))
///     c_t = f * c_{t-1} + i * g
///     o = f(clip(z_o + P_o * c_t))
///     h_t = o * h(c_t)                     // recorded h, per cell unit
///     r_t = h_t @ projection  (proj_size)  or h_t
/// Steps past a sequence's length are not computed: the state is kept and the output is zero
/// (ONNX `sequence_lens`, PyTorch packed sequences).
struct GeneralLSTMForward {
    let spec: GeneralLSTMSpec
    let kernel: PackedMatrix
    let recurrent: PackedMatrix
    let projection: PackedMatrix?

    init(_ spec: GeneralLSTMSpec) {
        self.spec = spec
        kernel = PackedMatrix(spec.kernel)
        recurrent = PackedMatrix(spec.recurrentKernel)
        projection = spec.projection.map { PackedMatrix($0) }
    }

    /// Runs on `x` [batch, time, inputDim]; `initial` = [r0 [batch, outSize], c0 [batch, units]] or nil.
    func run(_ x: [Float], batch: Int, time: Int, mask: [Bool]?, initial: [[Float]]?, layerIndex: Int,
             observer: GateObserver?) throws -> RecurrentResult {
        let s = spec, u = s.units, out = s.outSize, width = 4 * u
        var r = initial?[0] ?? [Float](repeating: 0, count: batch * out)   // [batch, out] fed-back state
        var c = initial?[1] ?? [Float](repeating: 0, count: batch * u)     // [batch, units]
        precondition(r.count == batch * out && c.count == batch * u)
        var sequence = [Float](repeating: 0, count: batch * time * out)     // [batch, time, out], processing order
        guard batch > 0, time > 0 else { return RecurrentResult(sequence: sequence, last: r, states: [r, c]) }
        let report = observer.map { $0.observedLayers?.contains(layerIndex) ?? true } ?? false

        // Buffers allocated once for the whole sequence.
        var xproj = [Float](repeating: 0, count: batch * time * width)  // [batch*time, 4u]
        var m = [Float](repeating: 0, count: batch * width)             // [batch, 4u] recurrent product
        var planes = [Float](repeating: 0, count: 6 * batch * u)        // i, f, g, o, c, h, each [batch, units]
        var projected = [Float](repeating: 0, count: batch * out)
        var active = [Bool](repeating: true, count: batch)
        let n = batch * u

        x.withUnsafeBufferPointer { xp in
            xproj.withUnsafeMutableBufferPointer { kernel.multiply(xp.baseAddress!, rows: batch * time, into: $0.baseAddress!) }
        }
        if let b = s.bias { for row in 0..<(batch * time) { for k in 0..<width { xproj[row * width + k] += b[k] } } }
        @inline(__always) func clipped(_ v: Float) -> Float {
            guard let limit = s.clip else { return v }
            return Swift.min(Swift.max(v, -limit), limit)
        }

        for k in 0..<time {
            let t = s.goBackwards ? time - 1 - k : k
            for b in 0..<batch { active[b] = mask?[b * time + t] ?? true }
            r.withUnsafeBufferPointer { rp in
                m.withUnsafeMutableBufferPointer { recurrent.multiply(rp.baseAddress!, rows: batch, into: $0.baseAddress!) }
            }
            // Pre-activations of i, f, g (o needs c_t first).
            for b in 0..<batch where active[b] {
                let xr = (b * time + t) * width, mr = b * width
                for j in 0..<u {
                    let cPrev = c[b * u + j]
                    planes[b * u + j] = clipped(xproj[xr + j] + m[mr + j] + (s.peepholes?.i[j] ?? 0) * cPrev)
                    planes[n + b * u + j] = clipped(xproj[xr + u + j] + m[mr + u + j] + (s.peepholes?.f[j] ?? 0) * cPrev)
                    planes[2 * n + b * u + j] = clipped(xproj[xr + 2 * u + j] + m[mr + 2 * u + j])
                }
            }
            s.gateActivation.applyRows(&planes, offset: 0, count: 2 * n, rowLength: u)
            s.cellActivation.applyRows(&planes, offset: 2 * n, count: n, rowLength: u)
            for b in 0..<batch where active[b] {
                let xr = (b * time + t) * width, mr = b * width
                for j in 0..<u {
                    let i = b * u + j
                    if s.inputForget { planes[n + i] = 1 - planes[i] }
                    let cNew = planes[n + i] * c[i] + planes[i] * planes[2 * n + i]
                    c[i] = cNew
                    planes[4 * n + i] = cNew
                    planes[3 * n + i] = clipped(xproj[xr + 3 * u + j] + m[mr + 3 * u + j] + (s.peepholes?.o[j] ?? 0) * cNew)
                    planes[5 * n + i] = cNew
                }
            }
            s.gateActivation.applyRows(&planes, offset: 3 * n, count: n, rowLength: u)
            s.outputActivation.applyRows(&planes, offset: 5 * n, count: n, rowLength: u)
            for b in 0..<batch where active[b] {
                for j in 0..<u { planes[5 * n + b * u + j] *= planes[3 * n + b * u + j] }
            }
            // The state fed back: h itself, or its projection.
            if let projection {
                planes.withUnsafeBufferPointer { pp in
                    projected.withUnsafeMutableBufferPointer { projection.multiply(pp.baseAddress! + 5 * n, rows: batch, into: $0.baseAddress!) }
                }
            }
            for b in 0..<batch where active[b] {
                for j in 0..<out { r[b * out + j] = projection == nil ? planes[5 * n + b * u + j] : projected[b * out + j] }
                let o = (b * time + k) * out
                for j in 0..<out { sequence[o + j] = r[b * out + j] }
            }
            if report, let observer, active.contains(true) {
                try planes.withUnsafeBufferPointer { pp in
                    try active.withUnsafeBufferPointer { ap in
                        let base = pp.baseAddress!
                        try observer.observe(GateStep(layer: layerIndex, cell: .lstm, step: t, batchSize: batch, units: u, active: ap,
                                                      planes: (0..<6).map { UnsafeBufferPointer(start: base + $0 * n, count: n) }))
                    }
                }
            }
        }
        return RecurrentResult(sequence: sequence, last: r, states: [r, c])
    }
}
