import Foundation
import Testing

/// The README's command reference matches the commands: every leaf command is documented with
/// the exact usage line its `--help` prints, and nothing documented is missing from the binary.
@Suite struct ReadmeTests {
    static let readme: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return (try? String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)) ?? ""
    }()

    static let commands = ["inspect", "predict", "record", "runs", "stats", "export", "query", "index",
                           "plot saturation", "plot heatmap", "plot unit", "merge", "check", "migrate"]

    /// The "### gatescope X" headings of the command reference.
    static var documented: [String] {
        readme.split(separator: "\n").compactMap { line in
            line.hasPrefix("### gatescope ") ? String(line.dropFirst("### gatescope ".count)) : nil
        }
    }

    @Test func everyCommandIsDocumentedAndNothingElse() throws {
        #expect(Self.documented == Self.commands)
        let help = try GateScopeCLI.run(["--help"])
        for top in Set(Self.commands.map { String($0.split(separator: " ")[0]) }) {
            #expect(help.stdout.contains("  \(top) "), "gatescope --help does not list \(top)")
        }
    }

    @Test(arguments: commands)
    func usageLineMatchesHelp(_ command: String) throws {
        let out = try GateScopeCLI.run(command.split(separator: " ").map(String.init) + ["--help"])
        #expect(out.status == 0)
        let lines = out.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let start = try #require(lines.firstIndex { $0.hasPrefix("USAGE: ") })
        // ArgumentParser wraps long usage lines; join the continuation lines back.
        var usage = String(lines[start].dropFirst("USAGE: ".count))
        var k = start + 1
        while k < lines.count, lines[k].hasPrefix(" "), !lines[k].trimmingCharacters(in: .whitespaces).isEmpty {
            usage += " " + lines[k].trimmingCharacters(in: .whitespaces)
            k += 1
        }
        #expect(Self.readme.contains("\n    \(usage)\n"), "README lacks the usage line: \(usage)")
        // Every command's help has an abstract (OVERVIEW) and at least one example.
        #expect(out.stdout.hasPrefix("OVERVIEW: "))
        let overview = lines[..<start].joined(separator: "\n")  // abstract and discussion, before USAGE
        #expect(overview.contains("gatescope \(command) "), "no example in \(command) --help")
    }
}
