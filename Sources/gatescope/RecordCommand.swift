import ArgumentParser
import CSQLite
import Foundation
import GateScopeKeras
import GateScopeFormat
import GateScopeRecording
import GateScopeStore

/// `gatescope record MODEL INPUT --db DB`: runs sequences through the model and stores every gate.
struct RecordCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Run input sequences through a Keras LSTM model and store every gate value in SQLite.",
        discussion: """
        One row per unmasked step, unit and recorded LSTM layer (direction) goes into the gates \
        table: i, f, g (candidate), o, c and h after the step. The database is created if missing \
        (an older schema is migrated, a newer one refused); each recording is a new run, and the \
        last line of standard output is `run <id>`.

        Inputs: .npy (float [batch, time, features] or int token ids [batch, time]), .npz (x, \
        optional lengths and ids), .jsonl ({"id", "x"} / {"id", "tokens"} / {"id", "text"} with \
        --vocab), .csv (header seq,step,features...), .txt (one sequence per line, with --vocab). \
        The whole input is checked first: NaN or infinite values, a wrong feature count or a token \
        id outside the Embedding are refused before anything is written.

        Rows are committed in whole sequences, so readers (gatescope stats, export, query) see \
        complete sequences while a run is written. Ctrl-C stops at the next batch and leaves the \
        run resumable (exit status 130); after a crash or kill, --resume RUN_ID continues from \
        the first sequence not committed and gives the same rows as an uninterrupted run. Per-unit \
        summaries (counts, histogram, mean, population std = sqrt(m2/n)) are stored when the run \
        completes. Progress (sequences, rows/s, ETA) is drawn on stderr when it is a terminal.

        Examples:
          gatescope record model.keras sequences.npy --db gates.db --name baseline
          gatescope record charlstm.keras heldout.txt --vocab vocab.json --db gates.db --layers lstm
          gatescope record model.keras sequences.npy --db gates.db --resume 3
        """
    )

    @Argument(help: "The model: .keras or legacy .h5 (Keras), .onnx, or a PyTorch state dict (.pt, .safetensors).")
    var model: String

    @OptionGroup var modelOptions: ModelOptions

    @Argument(help: "The input sequences: .npy, .npz, .jsonl, .csv or .txt.")
    var input: String

    @Option(help: "The SQLite database to write (created if missing).")
    var db: String

    @Option(help: "A label for the run.")
    var name: String?

    @Option(help: "Vocabulary JSON (token -> id) for .txt and text .jsonl inputs; also names the tokens stored.")
    var vocab: String?

    @Option(help: "Token id for characters missing from the vocabulary (default: an error naming line and column).")
    var unknown: Int32?

    @Option(help: ArgumentHelp("Record only these recurrent layers (comma-separated Keras names; NAME:fwd or NAME:bwd for one half of a Bidirectional). Default: all.",
                               valueName: "NAME,..."))
    var layers: String?

    @Option(help: "Sequences per engine batch (the first batches ramp up 4, 8, 16, ...; long sequences make batches smaller to bound memory).")
    var batchSize: Int = 64

    @Option(help: ArgumentHelp("Continue an interrupted run (same model and input; its stored options are used).", valueName: "RUN_ID"))
    var resume: Int64?

    @Option(help: ArgumentHelp("Record only part K (0-based) of N disjoint parts of the input, by sequence index, into its own database; merge the parts with gatescope merge.", valueName: "K/N"))
    var shard: String?

    @Flag(help: "Store only the per-unit summaries, pair moments and spans (what stats and the summary queries read), no gate rows: bound by the engine and the summaries, not by SQLite. Such a run cannot be exported, plotted per step or resumed.")
    var summariesOnly = false

    @Flag(help: "Do not draw progress on stderr (it is only drawn when stderr is a terminal).")
    var noProgress = false

    /// `K/N` as a shard, or why not.
    static func parseShard(_ text: String) -> (RecordOptions.Shard?, String?) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]) else {
            return (nil, "--shard takes K/N, e.g. --shard 0/4 for the first of 4 parts, got '\(text)'")
        }
        guard n >= 1, k >= 0, k < n else { return (nil, "--shard \(text): K must be in 0..<N (0-based), e.g. --shard 3/4 for the last of 4") }
        return (RecordOptions.Shard(index: k, count: n), nil)
    }

    /// Option checks that ArgumentParser cannot express; reported as one line like every other error.
    func checkOptions() -> String? {
        if batchSize < 1 { return "--batch-size must be at least 1, got \(batchSize)" }
        if let shard, let problem = Self.parseShard(shard).1 { return problem }
        if summariesOnly, resume != nil { return "--summaries-only and --resume cannot be combined: a resumed run keeps the options it was recorded with" }
        if shard != nil, resume != nil { return "--shard and --resume cannot be combined: a resumed run keeps the shard it was recorded with" }
        if let unknown, unknown < 0 { return "--unknown must be a non-negative token id, got \(unknown)" }
        if let layers, layers.split(separator: ",").isEmpty { return "--layers needs at least one layer name" }
        return nil
    }

    func run() throws {
        if let problem = checkOptions() {
            FileHandle.standardError.write(Data("gatescope record: \(problem)\n".utf8))
            throw ExitCode(2)  // a usage error, like every other command's
        }
        var options = RecordOptions()
        options.name = name
        options.vocabPath = vocab
        options.unknownID = unknown
        options.layers = layers.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
        options.batchSize = batchSize
        options.resumeRunID = resume
        options.shard = shard.flatMap { Self.parseShard($0).0 }
        options.summariesOnly = summariesOnly

        let printer = TerminalProgress(enabled: !noProgress && TerminalProgress.stderrIsTerminal)
        let stop = StopFlag()
        stop.trapInterrupts()
        let result: RecordResult
        do {
            let loaded = try ModelFiles.load(model, module: modelOptions.module)
            result = try Recorder.record(model: loaded, modelPath: model, inputPath: input, databasePath: db,
                                         options: options, stop: stop, progress: printer.update)
            printer.finish()
        } catch {
            printer.finish()
            FileHandle.standardError.write(Data("gatescope record: \(error)\n".utf8))
            if (error as? RecordingError)?.interrupted == true { throw ExitCode(130) }
            throw ExitCode.failure
        }
        if !result.completed {
            FileHandle.standardError.write(Data("gatescope record: interrupted after \(result.sequencesDone) of \(result.sequencesTotal) sequences; run \(result.runID) is resumable: gatescope record \(model) \(input) --db \(db) --resume \(result.runID)\n".utf8))
            print("run \(result.runID)")
            throw ExitCode(130)
        }
        print("run \(result.runID)")
    }
}
