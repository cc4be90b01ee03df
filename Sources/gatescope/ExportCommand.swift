import ArgumentParser
import GateScopeFormat
import GateScopeStore

/// `gatescope export DB`: gate values as CSV (or JSON / table), streamed.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export recorded gate values, one row per step and unit (or per value with --long).",
        discussion: """
        Columns: run_id, seq_id, source_id, layer, direction, step, token, unit, then one column per \
        gate of the layers' cell (LSTM i, f, g, o, c, h; GRU z, r, n, h; SimpleRNN h); layers of \
        several cells together give the union (i, f, g, o, c, h, z, r, n), empty where a row's cell \
        lacks the gate. --long gives ..., unit, gate, value instead, each row with its own cell's \
        gates (tidy data for plotting tools). Rows are ordered by seq, layer, step, unit and streamed in constant memory. Values \
        print as the shortest decimal that reads back as the exact Float32 that was recorded. \
        CSV quotes fields with commas, quotes or line breaks (RFC 4180), so any token survives.

        Examples:
          gatescope export demo.db --run 1 -o gates.csv
          gatescope export demo.db --seq 0,3 --layer lstm1 --units 0-7,12 --gates f,h
          gatescope export demo.db --run 1 --seq 0 --steps 0-99 --layer bi:bwd
          gatescope export demo.db --run 1 --seq 0 --gates h --long --format json
        """
    )

    @Argument(help: "The GateScope SQLite database (opened read-only).")
    var db: String

    @Option(name: .customLong("run"), help: ArgumentHelp("Run id (default: the latest complete run).", valueName: "id"))
    var runID: Int64?

    @Option(help: ArgumentHelp("Sequence ids, e.g. 0,3 or 0-9 (default: all).", valueName: "seq"),
            transform: ReadArguments.ranges("sequence"))
    var seq: IndexRanges?

    @Option(help: ArgumentHelp("Layer NAME, or NAME:fwd / NAME:bwd (repeatable; default: all).", valueName: "layer"),
            transform: { try ReadArguments.layer($0) })
    var layer: [LayerFilter] = []

    @Option(help: ArgumentHelp("Units, e.g. 0-7,12 (default: all).", valueName: "units"),
            transform: ReadArguments.ranges("unit"))
    var units: IndexRanges?

    @Option(help: ArgumentHelp("Gates, comma-separated: LSTM i,f,g,o,c,h; GRU z,r,n,h; SimpleRNN h (default: every gate of each layer).", valueName: "gates"),
            transform: { try ReadArguments.gates($0) })
    var gates: [Gate]?

    @Option(help: ArgumentHelp("Steps A-B, inclusive (default: all).", valueName: "steps"),
            transform: ReadArguments.ranges("step"))
    var steps: IndexRanges?

    @Flag(help: "One row per gate value: ..., unit, gate, value.")
    var long = false

    @OptionGroup var output: OutputOptions

    func run() throws {
        try runReadCommand("export") {
            let database = try ReadAccess.open(db)
            var options = Export.Options()
            options.run = runID
            options.sequences = seq
            options.layers = layer
            options.units = units
            options.gates = gates ?? []
            options.steps = steps
            options.long = long
            try Export.write(database, options: options, to: try output.makeWriter(database: db))
        }
    }
}
