import Foundation

/// One unit's saturation for one gate: fractions of its recorded steps below `low` (left) and
/// above `high` (right).
public struct SaturationPoint: Equatable, Sendable {
    /// Legend label of the unit's layer, e.g. "lstm_1 (fwd)"; must be one of the plot's `layers`.
    public var layer: String
    public var unit: Int
    /// "i", "f" or "o" (any name listed in the plot's `gates`).
    public var gate: String
    /// Fraction of steps left-saturated (value < low), 0...1.
    public var left: Double
    /// Fraction of steps right-saturated (value > high), 0...1.
    public var right: Double

    public init(layer: String, unit: Int, gate: String, left: Double, right: Double) {
        self.layer = layer; self.unit = unit; self.gate = gate; self.left = left; self.right = right
    }
}

/// The saturation scatter of Karpathy, Johnson & Fei-Fei (2015), "Visualizing and Understanding
/// Recurrent Networks": one panel per gate, one dot per unit at (fraction right-saturated,
/// fraction left-saturated), with the x + y = 1 diagonal and dots coloured by layer.
public struct SaturationPlot: Sendable {
    public var title: String
    public var subtitle: String
    /// Threshold below which a value counts as left-saturated (shown in the axis title).
    public var low: Double
    /// Threshold above which a value counts as right-saturated.
    public var high: Double
    /// Gates, one panel each, left to right.
    public var gates: [String]
    /// Layer labels in legend order; dots of the first layer are drawn first.
    public var layers: [String]
    public var points: [SaturationPoint]

    public init(title: String, subtitle: String = "", low: Double = 0.1, high: Double = 0.9,
                gates: [String] = ["i", "f", "o"], layers: [String], points: [SaturationPoint]) {
        self.title = title; self.subtitle = subtitle; self.low = low; self.high = high
        self.gates = gates; self.layers = layers; self.points = points
    }

    static let gateNames = ["i": "input gate", "f": "forget gate", "o": "output gate",
                            "g": "candidate", "c": "cell state", "h": "hidden state",
                            "z": "update gate", "r": "reset gate", "n": "candidate"]

    /// The SVG document.
    public func render() throws -> String {
        guard !points.isEmpty else {
            throw PlotError.invalidData(plot: "saturation", reason: "no units to draw")
        }
        if let stray = points.first(where: { !layers.contains($0.layer) }) {
            throw PlotError.invalidData(plot: "saturation", reason: "point of layer '\(stray.layer)' is not in the legend")
        }
        let size = 260.0, gap = 62.0, left = 70.0, top = 84.0
        let pad = 8.0 // keeps dots at 0 and 1 off the frame
        let legendX = left + Double(gates.count) * size + Double(gates.count - 1) * gap + 36
        let counts = Dictionary(grouping: points.filter { $0.gate == gates.first }, by: \.layer).mapValues(\.count)
        let legendLabels = layers.map { l in "\(l) · \(counts[l] ?? 0) unit" + (counts[l] == 1 ? "" : "s") }
        let legendW = 30 + (legendLabels.map { SVGText.width($0, size: 12) }.max() ?? 100)
        let width = legendX + legendW + 20
        let legendH = 30 + Double(layers.count) * 20
        let height = top + max(size + 70, legendH)

        var w = SVGWriter(width: width, height: height, title: title + (subtitle.isEmpty ? "" : " — " + subtitle),
                          description: "Gate saturation: one dot per unit; x = fraction of steps > \(fmt(high, 4)), y = fraction of steps < \(fmt(low, 4)).")
        w.text(title, x: left, y: 26, size: 16, extra: [("font-weight", "bold"), ("class", "title")])
        if !subtitle.isEmpty { w.text(subtitle, x: left, y: 45, size: 12, extra: [("fill", "#444444")]) }

        let (ticks, step) = niceTicks(0, 1, count: 5)
        for (p, gate) in gates.enumerated() {
            let x0 = left + Double(p) * (size + gap)
            let inner = size - 2 * pad
            func sx(_ v: Double) -> Double { x0 + pad + v * inner }
            func sy(_ v: Double) -> Double { top + size - pad - v * inner }

            w.open("g", [("class", "panel"), ("data-gate", gate)])
            w.text("\(SaturationPlot.gateNames[gate] ?? gate) (\(gate))", x: x0 + size / 2, y: top - 10, size: 13,
                   anchor: "middle", extra: [("font-weight", "bold"), ("class", "panel-title")])
            w.element("rect", [("x", fmt(x0)), ("y", fmt(top)), ("width", fmt(size)), ("height", fmt(size)),
                               ("fill", "#fafafa"), ("stroke", "#555555")])
            w.open("g", [("class", "grid"), ("stroke", "#e4e4e4"), ("stroke-width", "1")])
            for t in ticks {
                w.element("line", [("x1", fmt(sx(t))), ("y1", fmt(top)), ("x2", fmt(sx(t))), ("y2", fmt(top + size))])
                w.element("line", [("x1", fmt(x0)), ("y1", fmt(sy(t))), ("x2", fmt(x0 + size)), ("y2", fmt(sy(t)))])
            }
            w.close()
            w.line(sx(0), sy(1), sx(1), sy(0), stroke: "#888888", width: 1,
                   extra: [("stroke-dasharray", "5 4"), ("class", "diagonal")])
            w.open("g", [("class", "ticks"), ("font-size", "10"), ("fill", "#333333")])
            for t in ticks {
                w.line(sx(t), top + size, sx(t), top + size + 4, stroke: "#555555")
                w.text(tickLabel(t, step: step), x: sx(t), y: top + size + 15, size: 10, anchor: "middle")
                w.line(x0 - 4, sy(t), x0, sy(t), stroke: "#555555")
                w.text(tickLabel(t, step: step), x: x0 - 6, y: sy(t) + 3.5, size: 10, anchor: "end")
            }
            w.close()
            w.text("fraction right-saturated (> \(fmt(high, 4)))", x: x0 + size / 2, y: top + size + 34, size: 11,
                   anchor: "middle", extra: [("class", "axis-title")])
            let ty = top + size / 2, tx = x0 - 38
            w.text("fraction left-saturated (< \(fmt(low, 4)))", x: tx, y: ty, size: 11, anchor: "middle",
                   extra: [("class", "axis-title"), ("transform", "rotate(-90 \(fmt(tx)) \(fmt(ty)))")])

            w.open("g", [("class", "dots"), ("fill-opacity", "0.55"), ("stroke-opacity", "0.9"), ("stroke-width", "0.6")])
            for (l, layer) in layers.enumerated() {
                let color = Palette.category(l)
                for pt in points where pt.gate == gate && pt.layer == layer {
                    let x = min(1, max(0, pt.right)), y = min(1, max(0, pt.left))
                    w.element("circle", [("class", "dot"), ("cx", fmt(sx(x))), ("cy", fmt(sy(y))), ("r", "3.6"),
                                         ("fill", color), ("stroke", color)],
                              tooltip: "\(layer) unit \(pt.unit) · \(gate): left \(fmt(pt.left, 3)), right \(fmt(pt.right, 3))")
                }
            }
            w.close()
            w.close()
        }

        w.open("g", [("class", "legend")])
        w.text("layer", x: legendX, y: top + 4, size: 12, extra: [("font-weight", "bold")])
        for (l, label) in legendLabels.enumerated() {
            let y = top + 24 + Double(l) * 20
            let color = Palette.category(l)
            w.element("circle", [("cx", fmt(legendX + 6)), ("cy", fmt(y - 4)), ("r", "5"), ("fill", color),
                                 ("fill-opacity", "0.55"), ("stroke", color)])
            w.text(label, x: legendX + 18, y: y, size: 12, extra: [("class", "legend-label")])
        }
        w.close()
        return w.finish()
    }
}
