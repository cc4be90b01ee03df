import Foundation

/// A units × steps heatmap of one gate of one layer over one sequence.
///
/// Layout: long sequences wrap into rows of `stepsPerRow` steps (default 100), each row with its
/// own step numbers above and tokens below, so 500 steps read as five stacked strips rather than
/// one 6000-pixel-wide image; `stepsPerRow = 0` draws a single wide (scrollable) row instead.
public struct Heatmap: Sendable {
    /// First title line, e.g. "h of lstm_1 (fwd)".
    public var title: String
    /// Second title line, e.g. run and sequence.
    public var subtitle: String
    /// Gate shown (i, f, g, o, c or h); used in tooltips.
    public var gate: String
    /// Unit numbers, one per heatmap row, top to bottom.
    public var units: [Int]
    /// Step numbers, one per column, left to right.
    public var steps: [Int]
    /// `values[u][s]` for `units[u]` at `steps[s]`; nil for a masked or missing step (drawn grey).
    public var values: [[Double?]]
    /// Token text per step (nil entries for steps without a token), or nil when the input had none.
    public var tokens: [String?]?
    /// Colour scale; see `DivergingScale.forGate`.
    public var scale: DivergingScale
    /// Steps per wrapped row; 0 puts all steps in one row.
    public var stepsPerRow: Int
    /// Per-cell `<title>` tooltips are left out above this many cells to keep the file small.
    public var maxTooltipCells: Int

    public init(title: String, subtitle: String = "", gate: String, units: [Int], steps: [Int],
                values: [[Double?]], tokens: [String?]? = nil, scale: DivergingScale? = nil,
                stepsPerRow: Int = 100, maxTooltipCells: Int = 60_000) {
        self.title = title; self.subtitle = subtitle; self.gate = gate
        self.units = units; self.steps = steps; self.values = values; self.tokens = tokens
        let maxAbs = values.lazy.flatMap { $0 }.compactMap { $0 }.map(abs).max() ?? 1
        self.scale = scale ?? DivergingScale.forGate(gate, maxAbs: maxAbs)
        self.stepsPerRow = stepsPerRow
        self.maxTooltipCells = maxTooltipCells
    }

    static let missingFill = "#bdbdbd"

    /// Pixel height of one unit row, smaller for many units.
    var cellHeight: Double {
        switch units.count {
        case ...16: return 14
        case ...32: return 12
        case ...64: return 8
        case ...128: return 5
        default: return max(2, (640.0 / Double(units.count)).rounded(.down))
        }
    }

    /// The SVG document.
    public func render() throws -> String {
        guard !units.isEmpty, !steps.isEmpty else {
            throw PlotError.invalidData(plot: "heatmap", reason: "no units or no steps to draw")
        }
        guard values.count == units.count, values.allSatisfy({ $0.count == steps.count }) else {
            throw PlotError.invalidData(plot: "heatmap", reason: "values must be \(units.count) units × \(steps.count) steps")
        }
        if let tokens, tokens.count != steps.count {
            throw PlotError.invalidData(plot: "heatmap", reason: "\(tokens.count) tokens for \(steps.count) steps")
        }
        let axis = StepAxis(steps: steps, tokens: tokens, perRow: stepsPerRow)
        let ch = cellHeight
        let cw = axis.stepWidth
        let left = 64.0
        let header = 104.0
        let blockPlot = Double(units.count) * ch
        let blockHeight = StepAxis.stepBand + blockPlot + axis.tokenBand + 26
        let width = max(left + axis.rowWidth + 24, 560)
        let height = header + Double(axis.rows.count) * blockHeight

        var w = SVGWriter(width: width, height: height, title: title + " — " + subtitle,
                          description: "Heatmap of gate \(gate): \(units.count) units × \(steps.count) steps; colour: \(scale.label)")
        w.text(title, x: left, y: 24, size: 16, extra: [("font-weight", "bold"), ("class", "title")])
        if !subtitle.isEmpty { w.text(subtitle, x: left, y: 43, size: 12, extra: [("fill", "#444444")]) }
        drawColorBar(&w, x: left, y: 58)

        // Label every k-th unit so labels are at least 10 px apart.
        let every = [1, 2, 4, 5, 10, 20, 50, 100, 200, 500].first { Double($0) * ch >= 10 } ?? 1000
        let tooltips = units.count * steps.count <= maxTooltipCells

        for (r, row) in axis.rows.enumerated() {
            let top = header + Double(r) * blockHeight + StepAxis.stepBand
            axis.drawStepNumbers(&w, row: row, x0: left, y: top)
            w.open("g", [("class", "cells"), ("shape-rendering", "crispEdges")])
            for (u, unit) in units.enumerated() {
                let y = top + Double(u) * ch
                for k in row {
                    let x = left + Double(k - row.lowerBound) * cw
                    var attrs: [(String, String)] = [("x", fmt(x)), ("y", fmt(y)), ("width", fmt(cw)), ("height", fmt(ch))]
                    let tip: String?
                    if let v = values[u][k] {
                        attrs = [("class", "cell")] + attrs + [("fill", scale.color(v).hex)]
                        tip = tooltips ? "unit \(unit) · \(axis.describe(k)) · \(gate) = \(fmt(v, 4))" : nil
                    } else {
                        attrs = [("class", "cell missing")] + attrs + [("fill", Heatmap.missingFill)]
                        tip = tooltips ? "unit \(unit) · \(axis.describe(k)) · no value" : nil
                    }
                    w.element("rect", attrs, tooltip: tip)
                }
            }
            w.close()
            w.element("rect", [("x", fmt(left)), ("y", fmt(top)), ("width", fmt(Double(row.count) * cw)),
                               ("height", fmt(blockPlot)), ("fill", "none"), ("stroke", "#666666"), ("stroke-width", "0.8")])
            w.open("g", [("class", "unit-axis"), ("font-size", fmt(min(10, max(8, ch))))])
            for (u, unit) in units.enumerated() where u % every == 0 {
                let cy = top + (Double(u) + 0.5) * ch
                w.line(left - 3, cy, left, cy, stroke: "#888888")
                w.text(String(unit), x: left - 5, y: cy + 3.5, size: min(10, max(8, ch)), anchor: "end")
            }
            w.close()
            let mid = top + blockPlot / 2
            w.text("unit", x: 16, y: mid, size: 11, anchor: "middle",
                   extra: [("fill", "#444444"), ("transform", "rotate(-90 16 \(fmt(mid)))")])
            axis.drawTokens(&w, row: row, x0: left, y: top + blockPlot)
        }
        return w.finish()
    }

    /// A horizontal colour bar with ticks, the scale's label and a swatch for missing values.
    private func drawColorBar(_ w: inout SVGWriter, x: Double, y: Double) {
        let barW = 240.0, barH = 12.0
        w.open("g", [("class", "colorbar")])
        w.open("defs")
        w.open("linearGradient", [("id", "colorbar-gradient"), ("x1", "0"), ("y1", "0"), ("x2", "1"), ("y2", "0")])
        for k in 0...20 {
            let p = Double(k) / 20
            // Invert position -> value piecewise so the bar matches the cells exactly.
            let v = p <= 0.5 ? scale.lower + (scale.center - scale.lower) * p * 2
                             : scale.center + (scale.upper - scale.center) * (p - 0.5) * 2
            w.element("stop", [("offset", fmt(p, 3)), ("stop-color", scale.color(v).hex)])
        }
        w.close()
        w.close()
        w.element("rect", [("x", fmt(x)), ("y", fmt(y)), ("width", fmt(barW)), ("height", fmt(barH)),
                           ("fill", "url(#colorbar-gradient)"), ("stroke", "#666666"), ("stroke-width", "0.6")])
        var ticks = [scale.lower, scale.center, scale.upper]
        let lowMid = (scale.lower + scale.center) / 2, highMid = (scale.center + scale.upper) / 2
        ticks.insert(lowMid, at: 1); ticks.insert(highMid, at: 3)
        let step = min(scale.center - scale.lower, scale.upper - scale.center) / 2
        for t in ticks {
            let tx = x + scale.position(t) * barW
            w.line(tx, y + barH, tx, y + barH + 4, stroke: "#444444", extra: [("class", "tick")])
            w.text(tickLabel(t, step: step > 0 ? step : 1), x: tx, y: y + barH + 15, size: 10, anchor: "middle")
        }
        w.text(scale.label, x: x + barW + 14, y: y + 10, size: 11, extra: [("fill", "#333333"), ("class", "colorbar-label")])
        w.element("rect", [("x", fmt(x + barW + 14)), ("y", fmt(y + 17)), ("width", "12"), ("height", "10"),
                           ("fill", Heatmap.missingFill), ("stroke", "#666666"), ("stroke-width", "0.6")])
        w.text("no value (masked or not recorded)", x: x + barW + 31, y: y + 26, size: 10, extra: [("fill", "#555555")])
        w.close()
    }
}
