import ArgumentParser
import CMalloc
import Foundation
import GateScopeFormat
import GateScopeStore

/// The `gatescope` command: record and query LSTM gate values of Keras models.
@main
struct GateScope: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatescope",
        abstract: "Record every gate of a trained Keras LSTM into SQLite, and query it.",
        discussion: """
        Typical session:
          gatescope inspect model.keras
          gatescope record model.keras sequences.npy --db gates.db
          gatescope stats gates.db --gates f --sort right --top 10
          gatescope plot saturation gates.db -o saturation.svg
        """,
        version: GateScopeVersion.current,
        subcommands: [InspectCommand.self, PredictCommand.self, RecordCommand.self,
                      RunsCommand.self, StatsCommand.self, ExportCommand.self, QueryCommand.self,
                      PlotCommand.self, MergeCommand.self, MigrateCommand.self, IndexCommand.self, CheckCommand.self]
    )

    /// Like ArgumentParser's default, but a usage error is one line on stderr, prefixed with the
    /// command path like every runtime error ("gatescope stats: ..."), without the usage dump.
    static func main() {
        // The engine's per-batch output arrays: reused heap blocks, not fresh pages every call.
        _ = gs_keep_freed_memory()
        let command: ParsableCommand
        do {
            command = try parseAsRoot(joiningNegativeValues(Array(CommandLine.arguments.dropFirst())))
        } catch {
            let code = exitCode(for: error)
            guard code != .success else { exit(withError: error) }  // --help, --version
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments"
            FileHandle.standardError.write(Data("\(commandPath()): \(message)\n".utf8))
            // One convention for every command: 0 ok, 1 bad input or data, 2 usage.
            Foundation.exit(2)
        }
        do {
            var command = command
            try command.run()
        } catch {
            exit(withError: error)
        }
    }

    /// `--opt -1` as `--opt=-1`: a negative number after an option is its value (ArgumentParser
    /// would take it for an option and say "Missing value"), so the command's own check can say
    /// what is wrong with the value.
    static func joiningNegativeValues(_ args: [String]) -> [String] {
        var out: [String] = []
        var k = 0
        while k < args.count {
            let a = args[k]
            if a.hasPrefix("--"), !a.contains("="), k + 1 < args.count, args[k + 1].count > 1, args[k + 1].hasPrefix("-"),
               Double(args[k + 1]) != nil {
                out.append(a + "=" + args[k + 1])
                k += 2
                continue
            }
            out.append(a)
            k += 1
        }
        return out
    }

    /// "gatescope", "gatescope stats", "gatescope plot unit": the subcommands named on the command line.
    static func commandPath() -> String {
        var path = ["gatescope"]
        var current: ParsableCommand.Type = GateScope.self
        for arg in CommandLine.arguments.dropFirst() {
            guard let sub = current.configuration.subcommands.first(where: { $0.configuration.commandName == arg }) else { break }
            path.append(arg)
            current = sub
        }
        return path.joined(separator: " ")
    }
}
