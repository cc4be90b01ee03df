import Foundation

/// Shared x-axis layout of the step-based plots (heatmap, unit plot): steps wrapped into rows of
/// `perRow` steps, step numbers above each row and tokens (LSTMVis-style) below it.
struct StepAxis {
    let steps: [Int]
    let tokens: [String]?
    /// Index ranges into `steps`, one per wrapped row.
    let rows: [Range<Int>]
    /// Pixel width of one step.
    let stepWidth: Double
    /// Single-character tokens are written upright; longer ones rotated by -90°.
    let uprightTokens: Bool
    /// Height of the token band below a row (0 without tokens).
    let tokenBand: Double
    static let stepBand = 16.0
    static let maxTokenChars = 12

    init(steps: [Int], tokens: [String?]?, perRow: Int) {
        self.steps = steps
        let per = perRow > 0 ? perRow : max(1, steps.count)
        rows = stride(from: 0, to: steps.count, by: per).map { $0..<min(steps.count, $0 + per) }
        let widest = rows.map(\.count).max() ?? 1
        stepWidth = min(28, max(12, (900.0 / Double(widest)).rounded(.down)))
        if let tokens, tokens.contains(where: { $0 != nil }) {
            let visible = tokens.map { $0.map(SVGText.visibleToken) ?? "" }
            self.tokens = visible
            uprightTokens = visible.allSatisfy { $0.count <= 1 }
            let longest = min(StepAxis.maxTokenChars, visible.map(\.count).max() ?? 1)
            tokenBand = uprightTokens ? 20 : 10 + Double(longest) * 6.4
        } else {
            self.tokens = nil
            uprightTokens = true
            tokenBand = 0
        }
        rawTokens = tokens
    }

    private let rawTokens: [String?]?

    /// Width of the widest row in pixels.
    var rowWidth: Double { Double(rows.map(\.count).max() ?? 0) * stepWidth }

    /// Tick spacing for step numbers: about one label per 40 pixels, on multiples of 5 or 10.
    var tickEvery: Int {
        let want = 40.0 / stepWidth
        return [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000].first { Double($0) >= want } ?? 1000
    }

    /// Step label for column `k` (with its token when there is one), for tooltips.
    func describe(_ k: Int) -> String {
        var s = "step \(steps[k])"
        if let raw = rawTokens?[k] { s += " " + quoted(raw) }
        return s
    }

    func quoted(_ raw: String) -> String { "‘" + SVGText.visibleToken(raw) + "’" }

    /// Step numbers above a row whose first column is at `x0`; `y` is the top of the plot area.
    func drawStepNumbers(_ w: inout SVGWriter, row: Range<Int>, x0: Double, y: Double) {
        w.open("g", [("class", "step-axis"), ("fill", "#555555"), ("font-size", "10")])
        for k in row where steps[k] % tickEvery == 0 || k == row.lowerBound {
            // Keep the row's first label from colliding with a tick label just after it.
            if k == row.lowerBound, steps[k] % tickEvery != 0,
               let next = row.first(where: { steps[$0] % tickEvery == 0 }),
               Double(next - k) * stepWidth < 30 { continue }
            let cx = x0 + (Double(k - row.lowerBound) + 0.5) * stepWidth
            w.line(cx, y - 4, cx, y, stroke: "#888888")
            w.text(String(steps[k]), x: cx, y: y - 6, size: 10, anchor: "middle")
        }
        w.close()
    }

    /// Tokens below a row; `y` is the bottom of the plot area.
    func drawTokens(_ w: inout SVGWriter, row: Range<Int>, x0: Double, y: Double) {
        guard let tokens else { return }
        w.open("g", [("class", "token-axis"), ("font-family", SVGWriter.mono), ("fill", "#222222")])
        for k in row {
            let raw = rawTokens?[k] ?? nil
            guard raw != nil else { continue }
            let cx = x0 + (Double(k - row.lowerBound) + 0.5) * stepWidth
            let label = SVGText.truncate(tokens[k], StepAxis.maxTokenChars)
            let tip = describe(k)
            if uprightTokens {
                w.text(label, x: cx, y: y + 14, size: 11, anchor: "middle",
                       extra: [("class", "token")], tooltip: tip)
            } else {
                let size = min(11, stepWidth - 1)
                w.text(label, x: cx + size * 0.35, y: y + 6, size: size, anchor: "end",
                       extra: [("class", "token"), ("transform", "rotate(-90 \(fmt(cx + size * 0.35)) \(fmt(y + 6)))")],
                       tooltip: tip)
            }
        }
        w.close()
    }
}
