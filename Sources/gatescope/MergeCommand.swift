import ArgumentParser
import Foundation
import GateScopeFormat
import GateScopeStore

/// `gatescope merge OUT SHARD...`: one run from the shards of a recording.
struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Merge the shard databases of one recording (record --shard K/N) into one run, exactly.",
        discussion: """
        The shards must come from the same model, input, options and N, each complete, every K once. \\
        The merged run equals an unsharded recording: the same rows, sequences, tokens, layers and \\
        per-unit summaries (histograms and exact sums add). Runs that are not shards are copied as \\
        runs of their own. OUT is replaced only when the merge is complete: after a crash it is \\
        unchanged, and running the merge again works.

        Examples:
          gatescope merge all.db shard-0.db shard-1.db shard-2.db shard-3.db
          gatescope merge all.db shards/*.db
        """
    )

    @Argument(help: "The database to write (created if missing; its runs are kept).")
    var out: String

    @Argument(help: "The databases to merge.")
    var inputs: [String] = []

    func validate() throws {
        guard !inputs.isEmpty else { throw ValidationError("name the shard databases after OUT, e.g. gatescope merge all.db shard-*.db") }
    }

    func run() throws {
        try runReadCommand("merge") {
            let result = try Merge.merge(into: out, from: inputs)
            for w in result.written {
                print("run \(w.runID): \(w.rows) rows from \(w.sources.joined(separator: ", "))")
            }
            let rate = result.seconds > 0 ? Double(result.rows) / result.seconds : 0
            FileHandle.standardError.write(Data(String(format: "merged %lld rows in %.2f s (%.0f rows/s)\n", result.rows, result.seconds, rate).utf8))
        }
    }
}
