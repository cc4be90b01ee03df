import ArgumentParser
import GateScopeFormat
import GateScopeStore

extension Stats.Sort: ExpressibleByArgument {}

/// `gatescope stats DB`: saturation and moments per unit and gate.
struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Saturation and moments per layer, unit and gate: n, left, right, mean, std, min, max.",
        discussion: """
        Each layer has rows for its own cell's gates: LSTM i, f, g, o, c, h; GRU z, r, n, h; \
        SimpleRNN h. For the gates on 0..1 (i, f, o, z, r), left is the fraction of recorded steps \
        with value < --low and right the fraction > --high (Karpathy, Johnson & Fei-Fei 2015: < 0.1 \
        left-, > 0.9 right-saturated). For the signed values (g, h, n) left is the fraction < -high \
        and right > high. c has no left/right (empty), only the moments. std is the population \
        standard deviation.

        A complete run answers from the per-unit summaries written at record time, in milliseconds, \
        for thresholds on the 0.001 grid (0.1, 0.25, 0.999, ...). Other thresholds (e.g. 0.1234), runs \
        still being recorded and --full-scan count every gates row instead: same exact counts, slower.

        Examples:
          gatescope stats demo.db
          gatescope stats demo.db --gates f --sort right --top 10
          gatescope stats demo.db --run 2 --layer lstm2 --low 0.05 --high 0.95
          gatescope stats demo.db --low 0.1234 --format json -o stats.json
          gatescope stats shard-0.db shard-1.db shard-2.db shard-3.db
        """
    )

    @Argument(help: "The GateScope SQLite database (opened read-only).")
    var db: String

    @Argument(help: ArgumentHelp("More databases: the other shards of a recording (record --shard K/N), read together as if merged.", valueName: "shard-db"))
    var shards: [String] = []

    @Option(name: .customLong("run"), help: ArgumentHelp("Run id (default: the latest complete run).", valueName: "id"))
    var runID: Int64?

    @Option(help: ArgumentHelp("Layer NAME, or NAME:fwd / NAME:bwd for one half of a Bidirectional (repeatable; default: all).",
                               valueName: "layer"),
            transform: { try ReadArguments.layer($0) })
    var layer: [LayerFilter] = []

    @Option(help: ArgumentHelp("Gates to report, comma-separated: LSTM i,f,g,o,c,h; GRU z,r,n,h; SimpleRNN h (default: every gate of each layer).", valueName: "gates"),
            transform: { try ReadArguments.gates($0) })
    var gates: [Gate]?

    @Option(help: "i, f, o: left = fraction of steps with value < LOW.")
    var low: Double = 0.1

    @Option(help: "i, f, o: right = fraction > HIGH; g, h: left < -HIGH, right > HIGH.")
    var high: Double = 0.9

    @Option(help: "Order rows by right or left (most saturated first), mean (highest first) or unit.")
    var sort: Stats.Sort?

    @Option(help: "Keep only the first K rows (after --sort).")
    var top: Int?

    @Flag(help: "Ignore the per-unit summaries and count every gates row (slow; for checking).")
    var fullScan = false

    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard low.isFinite, (0...1).contains(low) else {
            throw ValidationError("--low must be a number between 0 and 1, e.g. --low 0.1")
        }
        guard high.isFinite, (0...1).contains(high) else {
            throw ValidationError("--high must be a number between 0 and 1, e.g. --high 0.9")
        }
        guard low < high else { throw ValidationError("--low must be below --high, got \(low) and \(high), e.g. --low 0.1 --high 0.9") }
        if let top, top < 1 { throw ValidationError("--top must be 1 or more, e.g. --top 10") }
    }

    func run() throws {
        try runReadCommand("stats") {
            var options = Stats.Options()
            options.run = runID
            options.layers = layer
            options.gates = gates ?? []
            options.low = low
            options.high = high
            options.sort = sort
            options.top = top
            options.fullScan = fullScan
            let result = shards.isEmpty ? try Stats.compute(try ReadAccess.open(db), options: options)
                : try Stats.compute(shards: try ([db] + shards).map(ReadAccess.open), options: options)
            try Stats.write(result, to: try output.makeWriter(database: db))
        }
    }
}
