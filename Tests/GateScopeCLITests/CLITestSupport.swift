import Foundation

/// Runs the built `gatescope` binary for the CLI tests (one place for every CLI suite).
enum GateScopeCLI {
    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
        /// True when the process died of a signal (`status` is then the signal number).
        var signaled = false
        /// stderr without the trailing newline.
        var message: String { stderr.trimmingCharacters(in: .newlines) }
    }

    /// A started process whose output goes to files (no pipe deadlocks on large SVG/CSV output).
    struct Running {
        let process: Process
        let stdout: String
        let stderr: String
        let scratch: String
        var pid: pid_t { process.processIdentifier }
    }

    struct NotFound: Error, CustomStringConvertible { let description: String }

    /// `$GATESCOPE_BIN`, or the `gatescope` executable in the build products next to the tests.
    static func binary() throws -> String {
        if let bin = ProcessInfo.processInfo.environment["GATESCOPE_BIN"] { return bin }
        var dirs = [URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent(),
                    Bundle.main.bundleURL, URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()]
        for bundle in Bundle.allBundles { dirs.append(bundle.bundleURL.deletingLastPathComponent()) }
        for dir in dirs {
            var candidate = dir
            for _ in 0..<3 {
                let path = candidate.appendingPathComponent("gatescope").path
                var isDir: ObjCBool = false
                if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue,
                   FileManager.default.isExecutableFile(atPath: path) {
                    return path
                }
                candidate = candidate.deletingLastPathComponent()
            }
        }
        throw NotFound(description: "the gatescope binary is not in the build products (searched \(dirs.map(\.path)))")
    }

    /// Starts `gatescope args...` in `dir` (default: the current directory) without waiting;
    /// `wrapper` (e.g. `["/usr/bin/prlimit", "--data=N", "--"]`) runs gatescope under another command.
    static func start(_ args: [String], in dir: String? = nil, wrapper: [String] = []) throws -> Running {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("gatescope-cli-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let out = scratch + "/stdout", err = scratch + "/stderr"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        let process = Process()
        if let first = wrapper.first {
            process.executableURL = URL(fileURLWithPath: first)
            process.arguments = Array(wrapper.dropFirst()) + [try binary()] + args
        } else {
            process.executableURL = URL(fileURLWithPath: try binary())
            process.arguments = args
        }
        if let dir { process.currentDirectoryURL = URL(fileURLWithPath: dir) }
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return Running(process: process, stdout: out, stderr: err, scratch: scratch)
    }

    /// Waits for a started process and collects its output.
    static func finish(_ running: Running) throws -> Output {
        running.process.waitUntilExit()
        defer { try? FileManager.default.removeItem(atPath: running.scratch) }
        return Output(status: running.process.terminationStatus,
                      stdout: try String(contentsOfFile: running.stdout, encoding: .utf8),
                      stderr: try String(contentsOfFile: running.stderr, encoding: .utf8),
                      signaled: running.process.terminationReason == .uncaughtSignal)
    }

    /// Runs `gatescope args...` to the end.
    static func run(_ args: [String], in dir: String? = nil) throws -> Output { try finish(try start(args, in: dir)) }

    static func run(_ args: String...) throws -> Output { try run(args) }

    /// A fresh temporary directory; the caller removes it.
    static func tempDir(_ tag: String = "test") throws -> String {
        let safe = tag.filter { $0.isLetter || $0.isNumber }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gatescope-\(safe)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }
}
