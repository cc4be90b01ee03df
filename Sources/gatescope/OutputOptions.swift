import ArgumentParser
import Foundation
import GateScopeFormat
import GateScopeStore

extension OutputFormat: ExpressibleByArgument {}

/// The output flags every read command shares (`runs`, `stats`, `export`, `query`).
struct OutputOptions: ParsableArguments {
    @Option(help: "Output format: table, csv or json (default: table on a terminal, csv otherwise).")
    var format: OutputFormat?

    @Flag(name: .customLong("no-header"),
          help: "Leave out the header line (table, csv); print arrays instead of objects (json).")
    var noHeader = false

    @Option(name: [.customShort("o"), .customLong("output")],
            help: ArgumentHelp("Write to FILE instead of standard output.", valueName: "file"))
    var output: String?

    /// A writer on standard output or the `-o` file. `database` is never overwritten.
    func makeWriter(database: String) throws -> RowWriter {
        let sink: OutputSink
        if let output, output != "-" {
            if Self.sameFile(output, database) {
                throw CLIReadError("-o \(output) is the database itself; choose another output file")
            }
            sink = try OutputSink.file(output)
        } else {
            sink = OutputSink.standardOutput()
        }
        let chosen = format ?? (sink.isTerminal ? .table : .csv)
        return try chosen.makeWriter(sink: sink, header: !noHeader)
    }

    /// True if both paths name one existing file (or the database's -wal/-shm companions).
    static func sameFile(_ a: String, _ b: String) -> Bool {
        let fm = FileManager.default
        let resolvedA = URL(fileURLWithPath: a).resolvingSymlinksInPath().standardizedFileURL.path
        for candidate in [b, b + "-wal", b + "-shm", b + "-journal"] {
            let resolvedB = URL(fileURLWithPath: candidate).resolvingSymlinksInPath().standardizedFileURL.path
            if resolvedA == resolvedB { return true }
            if let x = try? fm.attributesOfItem(atPath: a), let y = try? fm.attributesOfItem(atPath: candidate),
               let ix = x[.systemFileNumber] as? NSNumber, let iy = y[.systemFileNumber] as? NSNumber,
               ix == iy, (x[.deviceIdentifier] as? NSNumber) == (y[.deviceIdentifier] as? NSNumber) {
                return true
            }
        }
        return false
    }
}

/// A one-line error of the read commands.
struct CLIReadError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs a read command's body: any error becomes one line `gatescope NAME: message` on stderr and
/// exit status 1.
func runReadCommand(_ name: String, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        FileHandle.standardError.write(Data("gatescope \(name): \(error)\n".utf8))
        throw ExitCode.failure
    }
}

/// Parsers for the filter options, with messages that say how to write the value.
enum ReadArguments {
    static func layer(_ text: String) throws -> LayerFilter {
        do { return try LayerFilter.parse(text) } catch let e as StoreError { throw ValidationError(e.message) }
    }

    static func gates(_ text: String) throws -> [Gate] {
        do { return try Gate.parseList(text) } catch let e as StoreError { throw ValidationError(e.message) }
    }

    static func ranges(_ what: String) -> @Sendable (String) throws -> IndexRanges {
        { text in
            do { return try IndexRanges.parse(text, what: what) } catch let e as StoreError {
                throw ValidationError(e.message)
            }
        }
    }
}
