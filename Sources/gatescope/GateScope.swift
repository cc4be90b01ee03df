import ArgumentParser
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
                      PlotCommand.self, MergeCommand.self, MigrateCommand.self]
    )

    /// Like ArgumentParser's default, but a usage error is one line on stderr, prefixed with the
    /// command path like every runtime error ("gatescope stats: ..."), without the usage dump.
    static func main() {
        let command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            let code = exitCode(for: error)
            guard code != .success else { exit(withError: error) }  // --help, --version
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments"
            FileHandle.standardError.write(Data("\(commandPath()): \(message)\n".utf8))
            Foundation.exit(code.rawValue)
        }
        do {
            var command = command
            try command.run()
        } catch {
            exit(withError: error)
        }
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
