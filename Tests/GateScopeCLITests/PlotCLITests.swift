import Foundation
import Testing
import GateScopeStore
#if canImport(FoundationXML)
import FoundationXML
#endif

// CLI tests of `gatescope plot`: a small database is written through the schema, the built
// binary draws from it, and the SVG is parsed back as XML and checked against the data.

private let layerSpecs: [(id: Int, name: String, direction: String, units: Int)] = [
    (0, "lstm", "fwd", 4), (1, "bi", "fwd", 3), (2, "bi", "bwd", 3),
]
private let seq0Length = 30, seq1Length = 12
private let tokenCycle = ["<", "&", "\"", "a", " ", "\n", "'", ">", "b", "\t"]
private let gateNames = ["i", "f", "g", "o", "c", "h"]

/// Layer 0 has no rows at steps 10-12 of sequence 0 (masked).
private func isMasked(seq: Int, layer: Int, step: Int) -> Bool { seq == 0 && layer == 0 && (10...12).contains(step) }

/// The recorded value of `gate` (index into i f g o c h), as the recorder stores it: Double(Float32).
private func value(seq: Int, layer: Int, unit: Int, step: Int, gate: Int) -> Double {
    let base = sin(Double(step) * 0.7 + Double(unit) * 1.3 + Double(layer) + Double(seq) * 0.4 + Double(gate) * 0.9)
    var x: Double
    switch gate {
    case 0, 3: x = min(1, max(0, 0.5 + 0.55 * base))
    case 1:
        if layer == 0 && unit == 1 { x = 0.97 }                       // an integrator: f always right-saturated
        // Exactly on the thresholds of --low 0.25 --high 0.75 (exact in Float32 too): neither < nor >.
        else if layer == 0 && unit == 0 && step % 5 == 0 { x = 0.75 }
        else if layer == 0 && unit == 0 && step % 7 == 0 { x = 0.25 }
        else { x = min(1, max(0, 0.5 + 0.6 * base)) }
    case 4: x = layer == 0 && unit == 1 ? Double(step) * 0.5 : 3 * base // c leaves [-1, 1]
    default: x = 0.95 * base
    }
    return Double(Float(x))
}

private func token(step: Int) -> String? { step == seq0Length - 1 ? nil : tokenCycle[step % tokenCycle.count] }

/// Writes the test database: run 1 complete with unit summaries, run 2 the same data still
/// running (no summaries), with an awkward name.
private func makeDatabase(in dir: URL) throws -> String {
    let path = dir.appendingPathComponent("plot.db").path
    let db = try Database(path: path, mode: .readWriteCreate)
    _ = try Schema.migrate(db)
    try db.transaction {
        for run in [1, 2] {
            try db.run("""
                INSERT INTO runs(run_id, name, model_path, model_sha256, model_format, keras_version, input_path,
                                 input_sha256, status, created_at, tool_version, params, sequence_count)
                VALUES (?, ?, 'model.keras', ?, 'keras', '3.5.0', 'input.txt', ?, ?, '2025-01-01T00:00:00Z', 'test', '{}', 2)
                """, run, run == 1 ? "demo" : "<two> & \"quotes\"", String(repeating: "0", count: 64),
                String(repeating: "0", count: 64), run == 1 ? "complete" : "running")
            for l in layerSpecs {
                try db.run("INSERT INTO layers (run_id, layer_id, name, direction, units, input_dim, activation, recurrent_activation) VALUES (?, ?, ?, ?, ?, 8, 'tanh', 'sigmoid')", run, l.id, l.name, l.direction, l.units)
            }
            try db.run("INSERT INTO sequences VALUES (?, 0, ?, 'first')", run, seq0Length)
            try db.run("INSERT INTO sequences VALUES (?, 1, ?, 'second')", run, seq1Length)
            for step in 0..<seq0Length {
                try db.run("INSERT INTO tokens VALUES (?, 0, ?, ?, ?)", run, step, step + 70, token(step: step))
            }
            let insert = try db.prepare("INSERT INTO gates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            var summaries: [String: GateSummary] = [:]
            for (seq, length) in [(0, seq0Length), (1, seq1Length)] {
                for l in layerSpecs {
                    for step in 0..<length where !isMasked(seq: seq, layer: l.id, step: step) {
                        for unit in 0..<l.units {
                            var row: [SQLiteBindable] = [run, seq, l.id, step, unit]
                            for (g, name) in gateNames.enumerated() {
                                let v = value(seq: seq, layer: l.id, unit: unit, step: step, gate: g)
                                row.append(v)
                                summaries["\(l.id) \(unit) \(name)", default: GateSummary(gate: Gate(rawValue: name)!)].add(v)
                            }
                            try insert.bind(row)
                            try insert.run()
                        }
                    }
                }
            }
            guard run == 1 else { continue }
            for (key, s) in summaries {
                let parts = key.split(separator: " ")
                try db.run("INSERT INTO unit_summaries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           run, Int(parts[0])!, Int(parts[1])!, String(parts[2]), s.n, s.mean, s.m2, s.min, s.max,
                           s.encodedHistogram(), s.encodedEdgeEqual(), s.sums.encoded())
            }
        }
        try db.run("UPDATE runs SET recorded_sequences = 2, recorded_steps = ?", seq0Length + seq1Length)
    }
    return path
}

/// Independent saturation fractions from the generator: (left, right) per "layer:dir unit gate".
private func expectedSaturation(low: Double, high: Double, layers: [Int] = [0, 1, 2]) -> [String: (Double, Double)] {
    var out: [String: (Double, Double)] = [:]
    for l in layerSpecs where layers.contains(l.id) {
        for unit in 0..<l.units {
            for (g, name) in [(0, "i"), (1, "f"), (3, "o")] {
                var n = 0, left = 0, right = 0
                for (seq, length) in [(0, seq0Length), (1, seq1Length)] {
                    for step in 0..<length where !isMasked(seq: seq, layer: l.id, step: step) {
                        let v = value(seq: seq, layer: l.id, unit: unit, step: step, gate: g)
                        n += 1
                        if v < low { left += 1 }
                        if v > high { right += 1 }
                    }
                }
                out["\(l.name):\(l.direction) unit \(unit) \(name)"] = (Double(left) / Double(n), Double(right) / Double(n))
            }
        }
    }
    return out
}

// Running the binary -----------------------------------------------------------------------

private func gatescope(_ args: [String], in dir: URL) throws -> GateScopeCLI.Output {
    try GateScopeCLI.run(args, in: dir.path)
}

private struct CLIError: Error, CustomStringConvertible { let description: String }

private func tempDir() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gatescope-plot-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

// A small XML tree of the SVG ---------------------------------------------------------------

private final class XNode {
    let name: String
    let attrs: [String: String]
    weak var parent: XNode?
    var children: [XNode] = []
    var text = ""
    init(_ name: String, _ attrs: [String: String], _ parent: XNode?) { self.name = name; self.attrs = attrs; self.parent = parent }
    var all: [XNode] { [self] + children.flatMap(\.all) }
    func has(_ cls: String) -> Bool { (attrs["class"] ?? "").split(separator: " ").contains { $0 == cls } }
    func find(_ name: String, _ cls: String? = nil) -> [XNode] { all.filter { $0.name == name && (cls == nil || $0.has(cls!)) } }
    var tooltip: String? { children.first { $0.name == "title" }?.text }
    func inside(_ cls: String) -> Bool {
        var p = parent
        while let n = p { if n.has(cls) { return true }; p = n.parent }
        return false
    }
}

private final class TreeBuilder: NSObject, XMLParserDelegate {
    var root: XNode?
    var stack: [XNode] = []
    func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]) {
        let node = XNode(elementName, attributeDict, stack.last)
        stack.last?.children.append(node)
        if root == nil { root = node }
        stack.append(node)
    }
    func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName qName: String?) {
        stack.removeLast()
    }
    func parser(_ parser: XMLParser, foundCharacters string: String) { stack.last?.text += string }
}

private func parse(_ svg: String) throws -> XNode {
    let builder = TreeBuilder()
    let parser = XMLParser(data: Data(svg.utf8))
    parser.delegate = builder
    guard parser.parse(), let root = builder.root, root.name == "svg" else {
        throw CLIError(description: "not a well-formed SVG: \(String(describing: parser.parserError))")
    }
    return root
}

private func parseFile(_ url: URL) throws -> XNode { try parse(String(contentsOf: url, encoding: .utf8)) }

/// The visible form the plots give tokens (mirrors GateScopePlot's rule for these tokens).
private func visible(_ t: String) -> String {
    switch t { case "\n": return "⏎"; case "\t": return "⇥"; case " ": return "␣"; default: return t }
}

/// Dot tooltips "layer unit U · g: left L, right R" -> (left, right).
private func dots(_ root: XNode) -> [String: (Double, Double)] {
    var out: [String: (Double, Double)] = [:]
    for dot in root.find("circle", "dot") {
        guard let tip = dot.tooltip else { continue }
        let head = tip.components(separatedBy: ": left ")
        let gate = head[0].components(separatedBy: " · ")
        let nums = head[1].components(separatedBy: ", right ")
        out[gate[0] + " " + gate[1]] = (Double(nums[0])!, Double(nums[1])!)
    }
    return out
}

private func expectSame(_ got: [String: (Double, Double)], _ want: [String: (Double, Double)]) {
    #expect(Set(got.keys) == Set(want.keys))
    for (key, w) in want {
        guard let g = got[key] else { continue }
        // Tooltips print 3 decimals.
        #expect(abs(g.0 - w.0) < 0.0006 && abs(g.1 - w.1) < 0.0006, "\(key): got \(g), want \(w)")
    }
}

// Tests -------------------------------------------------------------------------------------

@Suite struct PlotCLITests {
    @Test func saturationPlotMatchesIndependentCounts() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = try makeDatabase(in: dir)
        // Run 1 (complete, from unit summaries) is the default.
        let r = try gatescope(["plot", "saturation", db, "-o", "sat.svg"], in: dir)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.isEmpty)
        let root = try parseFile(dir.appendingPathComponent("sat.svg"))
        #expect(root.find("circle", "dot").count == 10 * 3)
        expectSame(dots(root), expectedSaturation(low: 0.1, high: 0.9))
        #expect(root.find("text", "legend-label").map(\.text) == ["lstm:fwd · 4 units", "bi:fwd · 3 units", "bi:bwd · 3 units"])
        #expect(root.find("text", "title").first?.text == "Gate saturation — run 1 ‘demo’")
        // The integrator unit sits at right = 1.
        #expect(dots(root)["lstm:fwd unit 1 f"].map { $0 == (0, 1) } == true)
    }

    @Test func saturationScanAndOffGridThresholdsAgree() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = try makeDatabase(in: dir)
        // Run 2 is still running: no summaries, computed by scanning gates.
        let r2 = try gatescope(["plot", "saturation", db, "--run", "2", "-o", "run2.svg"], in: dir)
        #expect(r2.status == 0, "\(r2.stderr)")
        let root2 = try parseFile(dir.appendingPathComponent("run2.svg"))
        expectSame(dots(root2), expectedSaturation(low: 0.1, high: 0.9))
        #expect(root2.find("text", "title").first?.text == "Gate saturation — run 2 ‘<two> & \"quotes\"’ (running)")
        // Thresholds off the summaries' 0.001 grid.
        let r = try gatescope(["plot", "saturation", db, "--low", "0.1234", "--high", "0.8765", "-o", "odd.svg"], in: dir)
        #expect(r.status == 0, "\(r.stderr)")
        let root = try parseFile(dir.appendingPathComponent("odd.svg"))
        expectSame(dots(root), expectedSaturation(low: 0.1234, high: 0.8765))
        let titles = Set(root.find("text", "axis-title").map(\.text))
        #expect(titles == ["fraction right-saturated (> 0.8765)", "fraction left-saturated (< 0.1234)"])
        // Values exactly on the thresholds count as neither, from summaries (run 1) and by scan (run 2).
        for run in ["1", "2"] {
            let r = try gatescope(["plot", "saturation", db, "--run", run, "--low", "0.25", "--high", "0.75"], in: dir)
            #expect(r.status == 0, "\(r.stderr)")
            expectSame(dots(try parse(r.stdout)), expectedSaturation(low: 0.25, high: 0.75))
        }
    }

    @Test func saturationLayerFilter() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = try makeDatabase(in: dir)
        let one = try gatescope(["plot", "saturation", db, "--layer", "bi:bwd"], in: dir)
        #expect(one.status == 0, "\(one.stderr)")
        let root = try parse(one.stdout)  // no -o: the SVG goes to stdout
        expectSame(dots(root), expectedSaturation(low: 0.1, high: 0.9, layers: [2]))
        let both = try gatescope(["plot", "saturation", db, "--layer", "bi", "--gates", "f,h"], in: dir)
        #expect(both.status == 0, "\(both.stderr)")
        let root2 = try parse(both.stdout)
        #expect(root2.find("circle", "dot").count == 6 * 2)
        #expect(root2.find("g", "panel").map { $0.attrs["data-gate"] ?? "" } == ["f", "h"])
        #expect(root2.find("text", "legend-label").count == 2)
    }

    @Test func heatmapCellsTokensAndMaskedSteps() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = try makeDatabase(in: dir)
        let r = try gatescope(["plot", "heatmap", db, "--run", "1", "--seq", "0", "--layer", "lstm", "--gate", "f",
                               "--units", "1-3", "--steps", "5-29", "-o", "heat.svg"], in: dir)
        #expect(r.status == 0, "\(r.stderr)")
        let root = try parseFile(dir.appendingPathComponent("heat.svg"))
        let cells = root.find("rect", "cell")
        #expect(cells.count == 3 * 25)
        #expect(cells.filter { $0.has("missing") }.count == 3 * 3) // steps 10-12 masked
        let tokens = root.find("text", "token").map(\.text)
        #expect(tokens == (5..<29).map { visible(token(step: $0)!) } + ["#99"])
        #expect(tokens.contains("<") && tokens.contains("&") && tokens.contains("\"") && tokens.contains("⏎"))
        let unitLabels = root.find("text").filter { $0.inside("unit-axis") }.map(\.text)
        #expect(unitLabels == ["1", "2", "3"])
        let bar = root.find("g", "colorbar")
        #expect(bar.count == 1)
        #expect(bar.first?.find("text", "colorbar-label").first?.text.contains("white at 0.5") == true)
        // One cell's tooltip carries the stored value.
        let want = value(seq: 0, layer: 0, unit: 2, step: 20, gate: 1)
        let tip = cells.first { $0.tooltip?.hasPrefix("unit 2 · step 20 ") == true }?.tooltip ?? ""
        let got = Double(tip.components(separatedBy: "f = ").last ?? "") ?? .nan
        #expect(abs(got - want) < 0.00006, "\(tip)")
    }

    @Test func heatmapBySourceIDWithoutTokensWraps() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = try makeDatabase(in: dir)
        let r = try gatescope(["plot", "heatmap", db, "--run", "2", "--seq", "second", "--layer", "bi:bwd",
                               "--gate", "c", "--steps-per-row", "5", "-o", "heat.svg"], in: dir)
        #expect(r.status == 0, "\(r.stderr)")
        let root = try parseFile(dir.appendingPathComponent("heat.svg"))
        #expect(root.find("rect", "cell").count == 3 * seq1Length)
        #expect(root.find("rect", "missing").isEmpty)
        #expect(root.find("text", "token").isEmpty)
        #expect(root.find("g", "cells").count == 3) // 12 steps in rows of 5
        #expect(root.find("text", "colorbar-label").first?.text.hasPrefix("c (cell state") == true)
        #expect(root.find("text", "title").first?.text == "c of bi:bwd")
    }

    @Test func unitPlotHasSixSeries() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = try makeDatabase(in: dir)
        let r = try gatescope(["plot", "unit", db, "--run", "1", "--seq", "0", "--layer", "lstm", "--unit", "1",
                               "-o", "unit.svg"], in: dir)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.hasPrefix("wrote unit.svg"))
        let root = try parseFile(dir.appendingPathComponent("unit.svg"))
        let series = root.find("g", "series")
        #expect(series.map { $0.attrs["data-gate"] ?? "" } == gateNames)
        // The masked steps 10-12 break every line into two pieces.
        for s in series {
            #expect((s.find("path").first?.attrs["d"] ?? "").filter { $0 == "M" }.count == 2)
        }
        #expect(root.find("text", "token").count == seq0Length)
        // c of this unit grows to 14.5: it gets the right-hand axis.
        #expect(root.find("g", "y2-axis").count == 1)
    }

    @Test(arguments: [
        (["saturation", "DB", "--run", "9"], "no run 9"),
        (["saturation", "DB", "--layer", "nope"], "no layer 'nope'"),
        (["saturation", "DB", "--gates", "i,c"], "c has no saturation"),
        (["saturation", "missing.db"], "missing.db"),
        (["heatmap", "DB", "--seq", "0", "--layer", "bi"], "bi:fwd or bi:bwd"),
        (["heatmap", "DB", "--seq", "7", "--layer", "lstm"], "no sequence '7'"),
        (["heatmap", "DB", "--seq", "0", "--layer", "lstm", "--units", "0-9"], "no unit 9"),
        (["heatmap", "DB", "--seq", "0", "--layer", "lstm", "--steps", "40-50"], "past the end"),
        (["heatmap", "DB", "--seq", "0", "--layer", "lstm", "--gate", "x"], "unknown gate 'x'"),
        (["unit", "DB", "--seq", "0", "--layer", "lstm", "--unit", "4"], "no unit 4"),
        (["unit", "DB", "--seq", "0", "--layer", "lstm:up", "--unit", "0"], "unknown direction"),
    ])
    func badInputGivesOneLine(args: [String], message: String) throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = try makeDatabase(in: dir)
        let r = try gatescope(["plot"] + args.map { $0 == "DB" ? db : $0 } + ["-o", "x.svg"], in: dir)
        #expect(r.status != 0)
        #expect(r.stdout.isEmpty)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(r.stderr)")
        #expect(r.stderr.contains(message), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("x.svg").path))
    }

    @Test func helpHasAbstractAndExample() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        for sub in [[], ["saturation"], ["heatmap"], ["unit"]] {
            let r = try gatescope(["plot"] + sub + ["--help"], in: dir)
            #expect(r.status == 0)
            #expect(r.stdout.contains("OVERVIEW: "), "\(sub)")
            #expect(r.stdout.contains("gatescope plot " + (sub.first ?? "saturation")), "\(sub)")
            #expect(r.stdout.contains("Example"), "\(sub)")
        }
    }

    @Test func databaseIsNotModified() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let db = try makeDatabase(in: dir)
        let before = try Data(contentsOf: URL(fileURLWithPath: db))
        for args in [["saturation", db], ["heatmap", db, "--seq", "0", "--layer", "lstm"],
                     ["unit", db, "--seq", "0", "--layer", "lstm", "--unit", "0"]] {
            #expect(try gatescope(["plot"] + args + ["-o", "p.svg"], in: dir).status == 0)
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: db)) == before)
    }
}
