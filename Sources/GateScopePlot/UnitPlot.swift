import Foundation

/// One line of a unit plot: a gate's values aligned with the plot's steps.
public struct UnitSeries: Equatable, Sendable {
    /// Gate name: i, f, g, o, c or h.
    public var gate: String
    /// One value per step of the plot; nil where the step is masked or missing (a gap in the line).
    public var values: [Double?]

    public init(gate: String, values: [Double?]) { self.gate = gate; self.values = values }
}

/// Line plot of the gates of one unit over the steps of one sequence.
///
/// Like the heatmap, long sequences wrap into rows of `stepsPerRow` steps (tokens under each
/// row); all rows share one y range, at least [-1, 1] and widened for a cell state beyond it.
/// A cell state far outside [-1, 1] (|c| > `sharedAxisLimit`, e.g. an integrating unit whose c
/// grows to 50) gets its own right-hand axis, so it does not flatten the other gates.
public struct UnitPlot: Sendable {
    public var title: String
    public var subtitle: String
    public var steps: [Int]
    public var tokens: [String?]?
    public var series: [UnitSeries]
    public var stepsPerRow: Int

    public init(title: String, subtitle: String = "", steps: [Int], tokens: [String?]? = nil,
                series: [UnitSeries], stepsPerRow: Int = 100) {
        self.title = title; self.subtitle = subtitle; self.steps = steps; self.tokens = tokens
        self.series = series; self.stepsPerRow = stepsPerRow
    }

    static let style: [String: (color: String, width: Double, name: String)] = [
        "i": ("#1f77b4", 1.3, "input gate"), "f": ("#2ca02c", 1.3, "forget gate"),
        "g": ("#9467bd", 1.3, "candidate"), "o": ("#ff7f0e", 1.3, "output gate"),
        "c": ("#8c564b", 1.8, "cell state"), "h": ("#d62728", 2.2, "hidden state"),
        "z": ("#17becf", 1.3, "update gate"), "r": ("#bcbd22", 1.3, "reset gate"), "n": ("#9467bd", 1.3, "candidate"),
    ]

    /// Largest |c| still drawn on the shared left axis.
    public static let sharedAxisLimit = 3.0

    /// Gates drawn against the right axis: c when it leaves [-sharedAxisLimit, sharedAxisLimit].
    var rightAxisGates: Set<String> {
        let c = series.filter { $0.gate == "c" }.flatMap { $0.values.compactMap { $0 } }.filter(\.isFinite)
        return c.contains { abs($0) > UnitPlot.sharedAxisLimit } ? ["c"] : []
    }

    /// The range of `values`: [-1, 1] widened to nice numbers around them.
    static func range(_ values: [Double]) -> (Double, Double) {
        let all = values.filter(\.isFinite)
        let lo = min(-1, all.min() ?? -1), hi = max(1, all.max() ?? 1)
        return lo >= -1 && hi <= 1 ? (-1, 1) : niceRange(lo, hi, count: 6)
    }

    /// The left y range (every gate not on the right axis).
    var yRange: (Double, Double) {
        let right = rightAxisGates
        return UnitPlot.range(series.filter { !right.contains($0.gate) }.flatMap { $0.values.compactMap { $0 } })
    }

    /// The SVG document.
    public func render() throws -> String {
        guard !steps.isEmpty else { throw PlotError.invalidData(plot: "unit", reason: "no steps to draw") }
        guard !series.isEmpty, series.allSatisfy({ $0.values.count == steps.count }) else {
            throw PlotError.invalidData(plot: "unit", reason: "each series needs one value per step (\(steps.count))")
        }
        if let tokens, tokens.count != steps.count {
            throw PlotError.invalidData(plot: "unit", reason: "\(tokens.count) tokens for \(steps.count) steps")
        }
        let axis = StepAxis(steps: steps, tokens: tokens, perRow: stepsPerRow)
        let sw = axis.stepWidth
        let left = 64.0, header = 84.0, plotH = 210.0
        let rightGates = rightAxisGates
        let blockHeight = StepAxis.stepBand + plotH + axis.tokenBand + 28
        let legendLabels = series.map { s in
            "\(s.gate)  \((UnitPlot.style[s.gate] ?? ("", 0, s.gate)).name)" + (rightGates.contains(s.gate) ? " (right axis)" : "")
        }
        let legendWidth = legendLabels.map { 48 + SVGText.width($0, size: 12) }.reduce(0, +)
        let width = max(left + axis.rowWidth + (rightGates.isEmpty ? 24 : 72), left + legendWidth, 640)
        let height = header + Double(axis.rows.count) * blockHeight
        let (y0, y1) = yRange
        let (ticks, tstep) = niceTicks(y0, y1, count: 6)
        let rightValues = series.filter { rightGates.contains($0.gate) }.flatMap { $0.values.compactMap { $0 } }
        // The right axis spans the cell state and 0, nothing more: [-1, 1] means nothing there.
        let (r0, r1) = niceRange(min(0, rightValues.min() ?? 0), max(0, rightValues.max() ?? 1), count: 6)
        let (rticks, rstep) = niceTicks(r0, r1, count: 6)

        var w = SVGWriter(width: width, height: height, title: title + (subtitle.isEmpty ? "" : " — " + subtitle),
                          description: "Gates \(series.map(\.gate).joined(separator: ", ")) of one unit over \(steps.count) steps.")
        w.text(title, x: left, y: 24, size: 16, extra: [("font-weight", "bold"), ("class", "title")])
        if !subtitle.isEmpty { w.text(subtitle, x: left, y: 43, size: 12, extra: [("fill", "#444444")]) }

        // Legend: one entry per series, in a line under the title.
        w.open("g", [("class", "legend")])
        var lx = left
        for (s, label) in zip(series, legendLabels) {
            let st = UnitPlot.style[s.gate] ?? ("#333333", 1.3, s.gate)
            w.line(lx, 62, lx + 22, 62, stroke: st.color, width: max(2, st.width))
            w.text(label, x: lx + 28, y: 66, size: 12, extra: [("class", "legend-label")])
            lx += 28 + SVGText.width(label, size: 12) + 20
        }
        w.close()

        for (r, row) in axis.rows.enumerated() {
            let top = header + Double(r) * blockHeight + StepAxis.stepBand
            let rowW = Double(row.count) * sw
            func sx(_ k: Int) -> Double { left + (Double(k - row.lowerBound) + 0.5) * sw }
            func sy(_ v: Double) -> Double { top + plotH * (1 - (v - y0) / (y1 - y0)) }
            func sr(_ v: Double) -> Double { top + plotH * (1 - (v - r0) / (r1 - r0)) }

            axis.drawStepNumbers(&w, row: row, x0: left, y: top)
            w.element("rect", [("x", fmt(left)), ("y", fmt(top)), ("width", fmt(rowW)), ("height", fmt(plotH)),
                               ("fill", "#fcfcfc"), ("stroke", "#666666"), ("stroke-width", "0.8")])
            w.open("g", [("class", "y-axis"), ("font-size", "10")])
            // Grid at the ticks, plus the sigmoid/tanh range limits -1, 0, 1 as reference lines.
            for t in Set(ticks + [-1, 0, 1]).sorted() {
                let ty = sy(t)
                let reference = t == 0 || t == 1 || t == -1
                w.line(left, ty, left + rowW, ty, stroke: reference ? "#c4c4c4" : "#ececec", width: reference ? 1 : 0.8)
            }
            for t in ticks {
                let ty = sy(t)
                w.line(left - 4, ty, left, ty, stroke: "#666666")
                w.text(tickLabel(t, step: tstep), x: left - 6, y: ty + 3.5, size: 10, anchor: "end")
            }
            w.close()
            let mid = top + plotH / 2
            w.text("value", x: 16, y: mid, size: 11, anchor: "middle",
                   extra: [("fill", "#444444"), ("transform", "rotate(-90 16 \(fmt(mid)))")])
            if !rightGates.isEmpty {
                let color = UnitPlot.style["c"]!.color
                let ax = left + rowW
                w.open("g", [("class", "y2-axis"), ("font-size", "10"), ("fill", color)])
                for t in rticks {
                    w.line(ax, sr(t), ax + 4, sr(t), stroke: color)
                    w.text(tickLabel(t, step: rstep), x: ax + 6, y: sr(t) + 3.5, size: 10)
                }
                let tx = ax + 52
                w.text(rightGates.sorted().joined(separator: ", ") + " (right axis)", x: tx, y: mid, size: 11, anchor: "middle",
                       extra: [("transform", "rotate(90 \(fmt(tx)) \(fmt(mid)))")])
                w.close()
            }

            // Masked or missing steps: a light band, so a gap in the lines has a visible reason.
            w.open("g", [("class", "missing"), ("fill", "#ececec")])
            var k = row.lowerBound
            while k < row.upperBound {
                if series.allSatisfy({ $0.values[k] == nil }) {
                    let start = k
                    while k < row.upperBound, series.allSatisfy({ $0.values[k] == nil }) { k += 1 }
                    w.element("rect", [("x", fmt(left + Double(start - row.lowerBound) * sw)), ("y", fmt(top)),
                                       ("width", fmt(Double(k - start) * sw)), ("height", fmt(plotH))],
                              tooltip: "no values at steps \(steps[start])–\(steps[k - 1])")
                } else { k += 1 }
            }
            w.close()

            for s in series {
                let st = UnitPlot.style[s.gate] ?? ("#333333", 1.3, s.gate)
                let sy = rightGates.contains(s.gate) ? sr : sy
                var d = ""
                var isolated: [Int] = []
                var k = row.lowerBound
                while k < row.upperBound {
                    guard let v = s.values[k], v.isFinite else { k += 1; continue }
                    let start = k
                    d += "M" + fmt(sx(k)) + " " + fmt(sy(v))
                    k += 1
                    while k < row.upperBound, let v = s.values[k], v.isFinite {
                        d += "L" + fmt(sx(k)) + " " + fmt(sy(v))
                        k += 1
                    }
                    if k - start == 1 { isolated.append(start) }
                }
                w.open("g", [("class", "series"), ("data-gate", s.gate)])
                if !d.isEmpty {
                    w.element("path", [("d", d), ("fill", "none"), ("stroke", st.color),
                                       ("stroke-width", fmt(st.width)), ("stroke-linejoin", "round")])
                }
                // A lone value between two gaps has no segment; show it as a dot.
                for k in isolated {
                    w.element("circle", [("cx", fmt(sx(k))), ("cy", fmt(sy(s.values[k]!))), ("r", "2"), ("fill", st.color)])
                }
                w.close()
            }

            // Invisible columns that show every gate's value at a step on hover.
            w.open("g", [("class", "hover"), ("fill", "#000000"), ("fill-opacity", "0")])
            for k in row {
                let vals = series.map { s in "\(s.gate)=" + (s.values[k].map { fmt($0, 4) } ?? "–") }
                w.element("rect", [("x", fmt(left + Double(k - row.lowerBound) * sw)), ("y", fmt(top)),
                                   ("width", fmt(sw)), ("height", fmt(plotH))],
                          tooltip: axis.describe(k) + ": " + vals.joined(separator: "  "))
            }
            w.close()
            axis.drawTokens(&w, row: row, x0: left, y: top + plotH)
        }
        return w.finish()
    }
}
