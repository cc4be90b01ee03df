import ArgumentParser
import Foundation
import GateScopePlot
import GateScopeFormat
import GateScopeStore

/// `gatescope plot saturation|heatmap|unit`: SVG plots of a recorded database.
struct PlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot",
        abstract: "Draw SVG plots of recorded gates: saturation scatter, units × steps heatmap, one unit's gates.",
        discussion: """
        The SVGs need no other tools: open them in a browser (hover a dot or cell for its values).
        The database is opened read-only, so plotting works while a recording is running.

        Examples:
          gatescope plot saturation demo.db -o sat.svg
          gatescope plot heatmap demo.db --run 1 --seq 0 --layer lstm_1 --gate f --units 0-31 -o heat.svg
          gatescope plot unit demo.db --run 1 --seq 0 --layer lstm_1 --unit 12 -o unit.svg
        """,
        subcommands: [SaturationPlotCommand.self, HeatmapPlotCommand.self, UnitPlotCommand.self]
    )
}

/// Options every plot takes: the database, the run and the output file.
struct PlotCommonOptions: ParsableArguments {
    @Argument(help: "The GateScope SQLite database (opened read-only).")
    var db: String

    @Option(help: "Run id (default: the latest complete run).")
    var run: Int64?

    @Option(name: [.short, .customLong("output")], help: "Write the SVG to FILE (default: standard output).")
    var output: String?
}

/// Options of the step-based plots (heatmap, unit).
struct PlotSequenceOptions: ParsableArguments {
    @Option(help: "Sequence: its seq_id (0, 1, ...) or the id it has in the input file.")
    var seq: String

    @Option(help: "Layer NAME, or NAME:fwd / NAME:bwd for one half of a Bidirectional.")
    var layer: String

    @Option(help: "Steps A-B to draw, inclusive (default: the whole sequence, at most its first 1000 steps).")
    var steps: String?

    @Option(help: "Steps per wrapped row; 0 draws one wide row to scroll sideways.")
    var stepsPerRow: Int = 100

    func validate() throws {
        guard stepsPerRow >= 0 else { throw ValidationError("--steps-per-row must be 0 or more") }
    }
}

/// Runs `body`, turning any error into one line on stderr and a non-zero exit.
func runPlot(_ name: String, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        FileHandle.standardError.write(Data("gatescope plot \(name): \(error)\n".utf8))
        throw ExitCode.failure
    }
}

/// Helpers shared by the plot subcommands.
enum PlotSupport {
    /// The heatmap colour scale of a gate, from its range in the cell descriptor.
    static func scale(_ gate: Gate, values: [[Double?]]) -> DivergingScale {
        switch gate.range {
        case .unit:
            return DivergingScale(lower: 0, center: 0.5, upper: 1, label: "\(gate) (sigmoid range 0…1), white at 0.5")
        case .signed:
            return DivergingScale(lower: -1, center: 0, upper: 1, label: "\(gate) (tanh range −1…1), white at 0")
        case .unbounded:
            let maxAbs = values.lazy.flatMap { $0 }.compactMap { $0 }.map(abs).max() ?? 1
            return DivergingScale.forGate(gate.rawValue, maxAbs: maxAbs)
        }
    }

    /// Writes `svg` to `path` (atomically) or to standard output.
    static func write(_ svg: String, to path: String?, note: String) throws {
        if let path, path != "-" {
            do {
                // Through symlinks (/dev/stdout, a linked file) to what is really written.
                let target = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
                let type = (try? FileManager.default.attributesOfItem(atPath: target))?[.type] as? FileAttributeType
                if type == nil || type == .typeRegular {
                    // Atomic, so a half-written SVG never replaces a good one.
                    try svg.write(toFile: target, atomically: true, encoding: .utf8)
                } else {
                    // A device or pipe (/dev/stdout, a FIFO): write into it, never rename over it.
                    guard let handle = FileHandle(forWritingAtPath: path) else {
                        throw PlotCLIError("cannot open '\(path)' for writing")
                    }
                    defer { try? handle.close() }
                    try handle.write(contentsOf: Data(svg.utf8))
                }
            } catch let error as PlotCLIError {
                throw error
            } catch {
                throw PlotCLIError("cannot write '\(path)': \((error as NSError).localizedDescription)")
            }
            FileHandle.standardError.write(Data("wrote \(path): \(note)\n".utf8))
        } else {
            FileHandle.standardOutput.write(Data(svg.utf8))
        }
    }

    /// "step 4" or "steps 0-499".
    static func stepsLabel(_ r: ClosedRange<Int>) -> String {
        r.count == 1 ? "step \(r.lowerBound)" : "steps \(r.lowerBound)-\(r.upperBound)"
    }

    /// "1 unit", "32 units".
    static func count(_ n: Int, _ noun: String) -> String { "\(n) \(noun)" + (n == 1 ? "" : "s") }

    /// "run 3 ‘name’".
    static func runLabel(_ run: RunInfo) -> String {
        "run \(run.runID)" + (run.name.map { " ‘\($0)’" } ?? "") + (run.status == "complete" ? "" : " (\(run.status))")
    }

    /// Exactly one layer half; a name with two halves needs `:fwd` or `:bwd`.
    static func oneLayer(_ db: Database, run: Int64, _ text: String) throws -> LayerInfo {
        let matches = try ReadAccess.layers(db, run: run, matching: [LayerFilter.parse(text)])
        guard matches.count == 1 else {
            throw PlotCLIError("layer '\(text)' has \(matches.count) recorded halves: pick one with "
                               + matches.map(\.label).joined(separator: " or "))
        }
        return matches[0]
    }

    /// Parses `A-B` or `A`.
    static func stepRange(_ text: String?) throws -> ClosedRange<Int>? {
        guard let text else { return nil }
        let ranges = try IndexRanges.parse(text, what: "step").ranges
        guard ranges.count == 1 else { throw PlotCLIError("--steps takes one range A-B, not '\(text)'") }
        return ranges[0]
    }

    /// The step window to draw: the requested range, or the first `limit` steps with a note.
    static func steps(_ seq: PlotData.SequenceRef, _ text: String?, limit: Int = 1000) throws -> ClosedRange<Int> {
        let requested = try stepRange(text)
        let range = try PlotData.stepRange(seq, requested: requested)
        if requested == nil, range.count > limit {
            FileHandle.standardError.write(Data("note: \(seq.label) has \(seq.length) steps; drawing steps 0-\(limit - 1) (choose others with --steps A-B)\n".utf8))
            return 0...(limit - 1)
        }
        return range
    }
}

/// A CLI-level problem (bad combination of options) in one line.
struct PlotCLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// `gatescope plot saturation`.
struct SaturationPlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "saturation",
        abstract: "Scatter of gate saturation per unit (Karpathy et al. 2015): one panel per gate, one dot per unit.",
        discussion: """
        x = fraction of a unit's recorded steps right-saturated (value > --high), y = fraction
        left-saturated (value < --low); for the signed values (LSTM g, h; GRU n, h) the thresholds
        are -high and high. By default one panel per gate on 0..1 of the recorded cells: i, f, o
        for LSTM layers, z, r for GRU layers; a unit has dots only in its own cell's panels.
        Dots are coloured by layer half; units near the x + y = 1 diagonal are almost always saturated.

        Example:
          gatescope plot saturation demo.db --layer lstm_1 -o sat.svg
        """
    )

    @OptionGroup var common: PlotCommonOptions

    @Option(help: "Layer NAME or NAME:fwd / NAME:bwd (repeatable; default: every recorded layer).")
    var layer: [String] = []

    @Option(help: "Gates to draw, one panel each (any of i, f, o, g, h, z, r, n; default: i, f, o and z, r of the layers recorded).")
    var gates: String?

    @Option(help: "Left-saturation threshold for the gates on 0..1 (i, f, o, z, r).")
    var low: Double = 0.1

    @Option(help: "Right-saturation threshold (and -high / high for g, h).")
    var high: Double = 0.9

    func validate() throws {
        guard low.isFinite, high.isFinite, (0...1).contains(low), (0...1).contains(high) else {
            throw ValidationError("--low and --high must be numbers between 0 and 1, e.g. --low 0.1 --high 0.9")
        }
        guard low < high else { throw ValidationError("--low must be below --high, got \(low) and \(high), e.g. --low 0.1 --high 0.9") }
    }

    func run() throws {
        try runPlot("saturation") {
            let requested = try gates.map(Gate.parseList) ?? []
            let db = try ReadAccess.open(common.db)
            let (run, layers, units, gateList) = try PlotData.saturation(db, run: common.run, layers: layer.map(LayerFilter.parse),
                                                                          low: low, high: high, gates: requested)
            guard !units.isEmpty else {
                throw PlotCLIError("\(PlotSupport.runLabel(run)) has no recorded steps for \(layers.map(\.label).joined(separator: ", "))")
            }
            let labels = Dictionary(uniqueKeysWithValues: layers.map { ($0.layerID, $0.label) })
            // A unit has values only for its own cell's gates.
            let points = units.flatMap { u in
                gateList.compactMap { g -> SaturationPoint? in
                    guard let left = u.left[g], let right = u.right[g] else { return nil }
                    return SaturationPoint(layer: labels[u.layerID]!, unit: u.unit, gate: g.rawValue, left: left, right: right)
                }
            }
            let steps = units.map(\.n).max() ?? 0
            let plot = SaturationPlot(
                title: "Gate saturation — \(PlotSupport.runLabel(run))",
                subtitle: "\(run.modelPath.map { ($0 as NSString).lastPathComponent + " · " } ?? "")\(PlotSupport.count(Int(steps), "step")) per unit · "
                    + "left < \(low), right > \(high)"
                    + (gateList.contains { !$0.isSigmoid } ? " (\(gateList.filter { !$0.isSigmoid }.map(\.rawValue).joined(separator: ", ")): < −\(high), > \(high))" : ""),
                low: low, high: high, gates: gateList.map(\.rawValue),
                layers: layers.filter { l in units.contains { $0.layerID == l.layerID } }.map(\.label),
                points: points)
            try PlotSupport.write(try plot.render(), to: common.output,
                                  note: "\(PlotSupport.count(units.count, "unit")) × \(PlotSupport.count(gateList.count, "gate")) of \(PlotSupport.runLabel(run))")
        }
    }
}

/// `gatescope plot heatmap`.
struct HeatmapPlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "heatmap",
        abstract: "Units × steps heatmap of one gate over one sequence, with the tokens under the steps.",
        discussion: """
        Colours are blue-white-red: white at 0.5 for the gates on 0..1 (i, f, o, z, r), at 0 for
        the signed values g, h, n (range -1..1) and for c (range ± its largest |c|). Grey cells have
        no value (masked). Tokens are shown only for layers whose steps line up with the input's.
        Long sequences wrap into rows of --steps-per-row steps, each with its own token axis.

        Example:
          gatescope plot heatmap demo.db --run 1 --seq 0 --layer lstm_1 --gate h --units 0-31 --steps 0-199 -o heat.svg
        """
    )

    @OptionGroup var common: PlotCommonOptions
    @OptionGroup var sequence: PlotSequenceOptions

    @Option(help: "Gate to draw: one of the layer's gates (LSTM i, f, g, o, c, h; GRU z, r, n, h; SimpleRNN h).")
    var gate: String = "h"

    @Option(help: "Units to draw, e.g. 0-31 or 0-7,12 (default: all units of the layer).")
    var units: String?

    func run() throws {
        try runPlot("heatmap") {
            guard let g = Gate(rawValue: gate.lowercased()) else {
                throw PlotCLIError("unknown gate '\(gate)': use one of \(Gate.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let db = try ReadAccess.open(common.db)
            let run = try ReadAccess.run(db, id: common.run)
            let layer = try PlotSupport.oneLayer(db, run: run.runID, sequence.layer)
            let seq = try PlotData.sequence(db, run: run.runID, sequence.seq)
            var unitList: [Int]? = nil
            if let units {
                let ranges = try IndexRanges.parse(units, what: "unit")
                unitList = Array(Set(ranges.ranges.flatMap { Array($0.clamped(to: 0...max(0, layer.units - 1))) })).sorted()
                if let bad = ranges.ranges.first(where: { $0.upperBound >= layer.units }) {
                    throw PlotCLIError("layer '\(layer.label)' has no unit \(bad.upperBound) (units 0-\(layer.units - 1))")
                }
            }
            let steps = try PlotSupport.steps(seq, sequence.steps)
            let window = try PlotData.window(db, run: run.runID, seq: seq, layer: layer, units: unitList, steps: steps, gates: [g])
            let map = Heatmap(title: "\(g.rawValue) of \(layer.label)",
                              subtitle: "\(PlotSupport.runLabel(run)) · \(seq.label) · \(PlotSupport.stepsLabel(steps)) of \(seq.length) · \(PlotSupport.count(window.units.count, "unit"))",
                              gate: g.rawValue, units: window.units, steps: window.steps, values: window.values[g]!,
                              tokens: window.tokens, scale: PlotSupport.scale(g, values: window.values[g]!),
                              stepsPerRow: sequence.stepsPerRow)
            try PlotSupport.write(try map.render(), to: common.output,
                                  note: "\(g.rawValue) of \(layer.label), \(PlotSupport.count(window.units.count, "unit")) × \(PlotSupport.count(window.steps.count, "step"))")
        }
    }
}

/// `gatescope plot unit`.
struct UnitPlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unit",
        abstract: "Line plot of one unit's gates over the steps of one sequence (LSTM i, f, g, o, c, h; GRU z, r, n, h).",
        discussion: """
        The y axis spans at least -1..1 and grows when the cell state c leaves that range; lines break
        over masked steps (shaded). Tokens are written under the steps.

        Example:
          gatescope plot unit demo.db --run 1 --seq 0 --layer lstm_1 --unit 12 --steps 0-299 -o unit.svg
        """
    )

    @OptionGroup var common: PlotCommonOptions
    @OptionGroup var sequence: PlotSequenceOptions

    @Option(help: "The unit (0-based).")
    var unit: Int

    @Option(help: "Gates to draw (default: every gate of the layer's cell).")
    var gates: String?

    func run() throws {
        try runPlot("unit") {
            let requested = try gates.map(Gate.parseList)
            let db = try ReadAccess.open(common.db)
            let run = try ReadAccess.run(db, id: common.run)
            let layer = try PlotSupport.oneLayer(db, run: run.runID, sequence.layer)
            let gateList = requested ?? layer.gates
            guard (0..<layer.units).contains(unit) else {
                throw PlotCLIError("layer '\(layer.label)' has no unit \(unit) (units 0-\(layer.units - 1))")
            }
            let seq = try PlotData.sequence(db, run: run.runID, sequence.seq)
            let steps = try PlotSupport.steps(seq, sequence.steps)
            let window = try PlotData.window(db, run: run.runID, seq: seq, layer: layer, units: [unit], steps: steps, gates: gateList)
            let plot = UnitPlot(title: "unit \(unit) of \(layer.label)",
                                subtitle: "\(PlotSupport.runLabel(run)) · \(seq.label) · \(PlotSupport.stepsLabel(steps)) of \(seq.length)",
                                steps: window.steps, tokens: window.tokens,
                                series: gateList.map { UnitSeries(gate: $0.rawValue, values: window.values[$0]![0]) },
                                stepsPerRow: sequence.stepsPerRow)
            try PlotSupport.write(try plot.render(), to: common.output,
                                  note: "unit \(unit) of \(layer.label), \(PlotSupport.count(gateList.count, "gate")) × \(PlotSupport.count(window.steps.count, "step"))")
        }
    }
}
