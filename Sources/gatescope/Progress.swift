import Foundation
import GateScopeRecording

/// Draws `RecordProgress` on stderr in place (`\r`), at most a few times a second.
public final class TerminalProgress {
    private let enabled: Bool
    private let minInterval: TimeInterval
    private var lastDraw: Date = .distantPast
    private var lastWidth = 0
    private var drew = false

    /// A printer that draws only when `enabled` (typically `!noProgress && TerminalProgress.stderrIsTerminal`).
    public init(enabled: Bool, minInterval: TimeInterval = 0.2) {
        self.enabled = enabled
        self.minInterval = minInterval
    }

    /// True when stderr is a terminal.
    public static var stderrIsTerminal: Bool { isatty(2) != 0 }

    /// Redraws the line unless the last redraw was less than `minInterval` ago (the final state always draws).
    public func update(_ p: RecordProgress) {
        guard enabled else { return }
        let now = Date()
        let final = p.sequencesDone >= p.sequencesTotal
        guard final || now.timeIntervalSince(lastDraw) >= minInterval else { return }
        lastDraw = now
        var line = Self.format(p)
        let width = line.count
        if width < lastWidth { line += String(repeating: " ", count: lastWidth - width) }
        lastWidth = width
        FileHandle.standardError.write(Data(("\r" + line).utf8))
        drew = true
    }

    /// Ends the progress line (call before printing anything else on stderr).
    public func finish() {
        guard enabled, drew else { return }
        FileHandle.standardError.write(Data("\n".utf8))
        drew = false
        lastWidth = 0
    }

    /// One line, e.g. `1200/5000 sequences (24.0%)  341,020 rows/s  ETA 0:01:23`.
    public static func format(_ p: RecordProgress) -> String {
        let percent = p.sequencesTotal > 0 ? 100 * Double(p.sequencesDone) / Double(p.sequencesTotal) : 100
        var line = "\(p.sequencesDone)/\(p.sequencesTotal) sequences (\(String(format: "%.1f", percent))%)"
        line += "  \(grouped(Int(p.rowsPerSecond.rounded()))) rows/s"
        if let eta = p.etaSeconds, eta.isFinite {
            line += "  ETA \(clock(eta))"
        } else if p.sequencesDone < p.sequencesTotal {
            line += "  ETA --:--"
        }
        return line
    }

    static func grouped(_ n: Int) -> String {
        let digits = String(n)
        var out = ""
        for (k, ch) in digits.enumerated() {
            if k > 0 && (digits.count - k) % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return out
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
    }
}
