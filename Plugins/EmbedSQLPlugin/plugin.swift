import Foundation
import PackagePlugin

/// Embeds the package's `schema/*.sql` and `queries/*.sql` into the target as Swift string literals.
@main
struct EmbedSQLPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] {
        let root = context.package.directoryURL
        let inputs = ["schema", "queries"].flatMap { folder -> [URL] in
            let dir = root.appendingPathComponent(folder)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            return names.filter { $0.hasSuffix(".sql") }.sorted().map { dir.appendingPathComponent($0) }
        }
        let output = context.pluginWorkDirectoryURL.appendingPathComponent("EmbeddedSQL.swift")
        return [.buildCommand(
            displayName: "Embedding \(inputs.count) SQL files",
            executable: try context.tool(named: "EmbedSQL").url,
            arguments: [output.path] + inputs.map(\.path),
            inputFiles: inputs,
            outputFiles: [output]
        )]
    }
}
