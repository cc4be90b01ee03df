import Foundation
import Testing
@testable import GateScopePlot

// Test data -----------------------------------------------------------------------------------

/// Deterministic pseudo-random numbers so tests do not depend on the platform's generator.
struct LCG {
    var state: UInt64
    mutating func next() -> Double {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Double(state >> 11) / Double(1 << 53)
    }
}

let trickyTokens: [String] = ["<", "&", "\"", "'", " ", "\n", "\t", ">", "a"]

func sampleSaturation() -> SaturationPlot {
    var rng = LCG(state: 7)
    let layers = [(label: "lstm (fwd)", units: 5), (label: "bi <&\"> (bwd)", units: 4), (label: "lstm_2 (fwd)", units: 7)]
    var points: [SaturationPoint] = []
    for layer in layers {
        for u in 0..<layer.units {
            for gate in ["i", "f", "o"] {
                let l = rng.next() * 0.5
                points.append(SaturationPoint(layer: layer.label, unit: u, gate: gate, left: l, right: rng.next() * (1 - l)))
            }
        }
    }
    // One unit right-saturated all the time, to check where its dot lands.
    points[1] = SaturationPoint(layer: "lstm (fwd)", unit: 0, gate: "f", left: 0, right: 1)
    return SaturationPlot(title: "Gate saturation — run 1 ‘demo’", subtitle: "thresholds low 0.1, high 0.9",
                          layers: layers.map(\.label), points: points)
}

func sampleHeatmap(units: Int = 7, steps: Int = 250, gate: String = "f", perRow: Int = 100) -> Heatmap {
    var rng = LCG(state: 11)
    var values: [[Double?]] = []
    for u in 0..<units {
        values.append((0..<steps).map { s in
            if s >= steps - 3 { return nil } // masked tail
            let base = sin(Double(s) / 9 + Double(u))
            return gate == "f" || gate == "i" || gate == "o" ? (base + 1) / 2 * rng.next() : base
        })
    }
    let tokens: [String?] = (0..<steps).map { s in s >= steps - 3 ? nil : trickyTokens[s % trickyTokens.count] }
    return Heatmap(title: "\(gate) of lstm (fwd)", subtitle: "run 1, sequence 0", gate: gate,
                   units: Array(10..<(10 + units)), steps: Array(0..<steps), values: values, tokens: tokens,
                   stepsPerRow: perRow)
}

func sampleUnitPlot(steps: Int = 150) -> UnitPlot {
    let gates = ["i", "f", "g", "o", "c", "h"]
    let series = gates.enumerated().map { (k, gate) in
        UnitSeries(gate: gate, values: (0..<steps).map { s -> Double? in
            if (60..<64).contains(s) { return nil } // masked
            if gate == "h", s == 20 { return nil }  // one missing value of one gate
            if gate == "c" { return 2.7 * sin(Double(s) / 15) }
            return sin(Double(s) / 7 + Double(k)) * (gate == "g" || gate == "h" ? 1 : 0.5) + (gate == "g" || gate == "h" ? 0 : 0.5)
        })
    }
    let tokens: [String?] = (0..<steps).map { trickyTokens[$0 % trickyTokens.count] }
    return UnitPlot(title: "unit 3 of lstm (fwd)", subtitle: "run 1, sequence 0", steps: Array(0..<steps),
                    tokens: tokens, series: series)
}

/// Checks what every plot must have: XML declaration, SVG namespace, version, size and viewBox.
func checkDocument(_ svg: String) throws -> Node {
    #expect(svg.hasPrefix("<?xml version=\"1.0\" encoding=\"UTF-8\""))
    let root = try parseSVG(svg)
    #expect(root.name == "svg")
    #expect(root.attributes["xmlns"] == "http://www.w3.org/2000/svg")
    #expect(root.attributes["version"] == "1.1")
    let w = Double(root.attributes["width"] ?? "") ?? 0, h = Double(root.attributes["height"] ?? "") ?? 0
    #expect(w > 100 && h > 100)
    #expect(root.attributes["viewBox"] == "0 0 \(root.attributes["width"]!) \(root.attributes["height"]!)")
    #expect(root.children.first?.name == "title")
    return root
}

/// Every sample is well-formed; with $GATESCOPE_PLOT_OUT set they are also written there to look at.
@Test func samplesAreWellFormed() throws {
    var words = sampleHeatmap(units: 5, steps: 40, gate: "h")
    words.tokens = (0..<40).map { ["the", "quick", "<brown>", "fox & co", "jumps\nover", "extraordinarily-long-token"][$0 % 6] }
    let samples: [(String, String)] = [
        ("sample-saturation", try sampleSaturation().render()),
        ("sample-heatmap", try sampleHeatmap().render()),
        ("sample-heatmap-c", try sampleHeatmap(units: 40, steps: 60, gate: "c").render()),
        ("sample-heatmap-words", try words.render()),
        ("sample-unit", try sampleUnitPlot().render()),
    ]
    let dir = ProcessInfo.processInfo.environment["GATESCOPE_PLOT_OUT"]
    for (name, svg) in samples {
        _ = try checkDocument(svg)
        if let dir { try svg.write(toFile: dir + "/" + name + ".svg", atomically: true, encoding: .utf8) }
    }
}

// Escaping -------------------------------------------------------------------------------------

@Test func escapesMarkupQuotesAndControls() {
    #expect(SVGText.escape("<a & \"b\" 'c'>") == "&lt;a &amp; &quot;b&quot; &apos;c&apos;&gt;")
    #expect(SVGText.escape("x\u{1}y") == "x\u{FFFD}y")
    #expect(SVGText.escape("a\nb") == "a&#10;b")
}

@Test func visibleTokensShowWhitespaceAndControls() {
    #expect(SVGText.visibleToken("\n") == "⏎")
    #expect(SVGText.visibleToken("\t") == "⇥")
    #expect(SVGText.visibleToken(" ") == "␣")
    #expect(SVGText.visibleToken("") == "∅")
    #expect(SVGText.visibleToken("\r\n") == "␍⏎")
    #expect(SVGText.visibleToken("\u{1}") == "␁")
    #expect(SVGText.visibleToken("a<b") == "a<b")
}

@Test func niceTicksAndScales() {
    #expect(niceTicks(0, 1, count: 5).ticks == [0, 0.2, 0.4, 0.6000000000000001, 0.8, 1])
    #expect(niceRange(-1.3, 2.7, count: 6) == (-2, 3))
    #expect(tickLabel(-0.5, step: 0.25) == "−0.5")
    let c = DivergingScale.forGate("c", maxAbs: 2.3)
    #expect(c.lower == -2.5 && c.upper == 2.5 && c.center == 0)
    let f = DivergingScale.forGate("f")
    #expect(f.center == 0.5 && f.label.contains("0.5"))
    #expect(f.color(0.5).hex == "#f7f7f7")
    #expect(f.color(0).hex == "#053061")
    #expect(f.color(1.7).hex == "#67001f") // clamped
    let h = DivergingScale.forGate("h")
    #expect(h.position(-1) == 0 && h.position(0) == 0.5 && h.position(0.5) == 0.75)
}

// Saturation -----------------------------------------------------------------------------------

@Test func saturationPlotHasOneDotPerUnitAndGate() throws {
    let plot = sampleSaturation()
    let root = try checkDocument(try plot.render())
    let dots = root.descendants("circle", class: "dot")
    #expect(dots.count == 16 * 3)
    let panels = root.descendants("g", class: "panel")
    #expect(panels.map { $0.attributes["data-gate"] } == ["i", "f", "o"])
    for panel in panels {
        #expect(panel.descendants("circle", class: "dot").count == 16)
        #expect(panel.descendants("line", class: "diagonal").count == 1)
        let titles = panel.descendants("text", class: "axis-title").map(\.text)
        #expect(titles.contains("fraction right-saturated (> 0.9)"))
        #expect(titles.contains("fraction left-saturated (< 0.1)"))
        let ticks = panel.descendants("text").filter { $0.ancestor(class: "ticks") != nil }.map(\.text)
        #expect(Set(ticks) == ["0", "0.2", "0.4", "0.6", "0.8", "1"])
    }
    let texts = root.all.filter { $0.name == "text" }.map(\.text)
    #expect(texts.contains("forget gate (f)"))
    #expect(texts.contains("Gate saturation — run 1 ‘demo’"))
    let legend = root.descendants("text", class: "legend-label").map(\.text)
    #expect(legend == ["lstm (fwd) · 5 units", "bi <&\"> (bwd) · 4 units", "lstm_2 (fwd) · 7 units"])
    // Dots of different layers have different colours; a layer's dots share one.
    let fills = Dictionary(grouping: dots, by: { $0.tooltip!.components(separatedBy: " unit ")[0] }).mapValues { Set($0.map { $0.attributes["fill"]! }) }
    #expect(fills.values.allSatisfy { $0.count == 1 })
    #expect(Set(fills.values.map { $0.first! }).count == 3)
}

@Test func saturationDotPositionsFollowTheFractions() throws {
    let root = try parseSVG(try sampleSaturation().render())
    let f = root.descendants("g", class: "panel").first { $0.attributes["data-gate"] == "f" }!
    let frame = f.children.first { $0.name == "rect" }!
    let x0 = Double(frame.attributes["x"]!)!, y0 = Double(frame.attributes["y"]!)!
    let size = Double(frame.attributes["width"]!)!
    let dot = f.descendants("circle", class: "dot").first { $0.tooltip == "lstm (fwd) unit 0 · f: left 0, right 1" }
    #expect(dot != nil)
    // right = 1, left = 0: bottom-right corner of the panel.
    let cx = Double(dot?.attributes["cx"] ?? "") ?? 0, cy = Double(dot?.attributes["cy"] ?? "") ?? 0
    #expect(cx > x0 + size * 0.9 && cx < x0 + size)
    #expect(cy > y0 + size * 0.9 && cy < y0 + size)
}

@Test func saturationRejectsUnusableData() {
    #expect(throws: PlotError.self) { try SaturationPlot(title: "t", layers: ["a"], points: []).render() }
    let stray = SaturationPoint(layer: "b", unit: 0, gate: "f", left: 0, right: 0)
    #expect(throws: PlotError.invalidData(plot: "saturation", reason: "point of layer 'b' is not in the legend")) {
        try SaturationPlot(title: "t", layers: ["a"], points: [stray]).render()
    }
}

// Heatmap --------------------------------------------------------------------------------------

@Test func heatmapHasOneCellPerUnitAndStepWrappedInRows() throws {
    let map = sampleHeatmap()
    let root = try checkDocument(try map.render())
    let cells = root.all.filter { $0.name == "rect" && $0.hasClass("cell") }
    #expect(cells.count == 7 * 250)
    #expect(cells.filter { $0.hasClass("missing") }.count == 7 * 3)
    #expect(root.descendants("g", class: "cells").count == 3) // 250 steps in rows of 100
    let unitLabels = root.descendants("text").filter { $0.ancestor(class: "unit-axis") != nil }.map(\.text)
    #expect(unitLabels == Array(repeating: (10..<17).map(String.init), count: 3).flatMap { $0 })
    let stepLabels = root.descendants("text").filter { $0.ancestor(class: "step-axis") != nil }.map(\.text)
    #expect(stepLabels.contains("0") && stepLabels.contains("100") && stepLabels.contains("240"))
    let tip = cells.first { $0.tooltip?.hasPrefix("unit 12 · step 3 ") == true }?.tooltip
    #expect(tip?.contains("‘'’") == true && tip?.contains(" · f = ") == true)
}

@Test func heatmapTokensRoundTripEscaped() throws {
    let map = sampleHeatmap()
    let svg = try map.render()
    #expect(svg.contains("&lt;") && svg.contains("&amp;") && svg.contains("&quot;"))
    let root = try parseSVG(svg)
    let tokens = root.descendants("text", class: "token").map(\.text)
    let expected = map.tokens!.compactMap { $0 }.map(SVGText.visibleToken)
    #expect(tokens == expected)
    #expect(tokens.contains("<") && tokens.contains("&") && tokens.contains("\"") && tokens.contains("⏎") && tokens.contains("⇥"))
    // Single characters are written upright, not rotated.
    #expect(root.descendants("text", class: "token").allSatisfy { $0.attributes["transform"] == nil })
}

@Test func heatmapLongTokensAreRotatedAndTruncated() throws {
    var map = sampleHeatmap(units: 3, steps: 12, gate: "h")
    map.tokens = (0..<12).map { $0 == 5 ? "an extraordinarily long token" : ($0 == 6 ? nil : "w\($0)") }
    let root = try parseSVG(try map.render())
    let tokens = root.descendants("text", class: "token")
    #expect(tokens.count == 11)
    #expect(tokens.allSatisfy { $0.attributes["transform"]?.hasPrefix("rotate(-90") == true })
    let long = tokens.first { $0.text.hasSuffix("…") }
    #expect(long?.text == "an␣extraord…")
    #expect(long?.tooltip == "step 5 ‘an␣extraordinarily␣long␣token’")
}

@Test func heatmapColourBarNamesTheCentre() throws {
    for (gate, centre, ends) in [("f", "white at 0.5", ["0", "1"]), ("h", "white at 0", ["−1", "1"])] {
        let root = try parseSVG(try sampleHeatmap(units: 4, steps: 30, gate: gate).render())
        let bar = root.descendants("g", class: "colorbar")
        #expect(bar.count == 1)
        let label = bar.first?.descendants("text", class: "colorbar-label").first?.text ?? ""
        #expect(label.contains(centre) && label.hasPrefix(gate))
        let ticks = bar.first?.descendants("text").map(\.text) ?? []
        #expect(ticks.contains(ends[0]) && ticks.contains(ends[1]))
        #expect(bar.first?.descendants("line", class: "tick").count == 5)
        #expect((bar.first?.descendants("stop").count ?? 0) >= 11)
    }
}

@Test func heatmapSingleWideRow() throws {
    let root = try parseSVG(try sampleHeatmap(units: 3, steps: 250, perRow: 0).render())
    #expect(root.descendants("g", class: "cells").count == 1)
    #expect((Double(root.attributes["width"]!) ?? 0) >= 250 * 12)
    #expect(root.all.filter { $0.name == "rect" && $0.hasClass("cell") }.count == 3 * 250)
}

@Test func heatmapRejectsMismatchedShapes() {
    var map = sampleHeatmap(units: 2, steps: 5)
    map.values[1].removeLast()
    #expect(throws: PlotError.self) { try map.render() }
    var noTokens = sampleHeatmap(units: 2, steps: 5)
    noTokens.tokens = ["a"]
    #expect(throws: PlotError.self) { try noTokens.render() }
}

// Unit plot ------------------------------------------------------------------------------------

@Test func unitPlotHasSixSeriesWithGaps() throws {
    let plot = sampleUnitPlot()
    let root = try checkDocument(try plot.render())
    let series = root.descendants("g", class: "series")
    #expect(Set(series.map { $0.attributes["data-gate"]! }) == ["i", "f", "g", "o", "c", "h"])
    #expect(series.count == 6 * 2) // 150 steps in two rows
    let legend = root.descendants("text", class: "legend-label").map(\.text)
    #expect(legend.count == 6 && legend.contains("c  cell state"))
    // Row 1 (steps 0-99): h breaks at step 20 and at the masked steps 60-63: three pieces.
    let h = series.first { $0.attributes["data-gate"] == "h" }!
    let d = h.descendants("path").first?.attributes["d"] ?? ""
    #expect(d.filter { $0 == "M" }.count == 3)
    let i = series.first { $0.attributes["data-gate"] == "i" }!
    #expect((i.descendants("path").first?.attributes["d"] ?? "").filter { $0 == "M" }.count == 2)
    #expect(root.descendants("g", class: "missing").flatMap { $0.descendants("rect") }.count == 1)
}

@Test func unitPlotYAxisGrowsForLargeCellStates() throws {
    let root = try parseSVG(try sampleUnitPlot().render())
    let labels = Set(root.descendants("text").filter { $0.ancestor(class: "y-axis") != nil }.map(\.text))
    #expect(labels.contains("3") && labels.contains("−3"))
    var small = sampleUnitPlot()
    small.series = small.series.filter { $0.gate != "c" }
    let root2 = try parseSVG(try small.render())
    let labels2 = Set(root2.descendants("text").filter { $0.ancestor(class: "y-axis") != nil }.map(\.text))
    #expect(labels2 == ["−1", "−0.5", "0", "0.5", "1"])
}

@Test func unitPlotTokensAndHoverColumns() throws {
    let plot = sampleUnitPlot()
    let root = try parseSVG(try plot.render())
    let tokens = root.descendants("text", class: "token").map(\.text)
    #expect(tokens == plot.tokens!.compactMap { $0 }.map(SVGText.visibleToken))
    let hover = root.descendants("g", class: "hover").flatMap { $0.descendants("rect") }
    #expect(hover.count == 150)
    #expect(hover[61].tooltip == "step 61 ‘>’: i=–  f=–  g=–  o=–  c=–  h=–")
}
