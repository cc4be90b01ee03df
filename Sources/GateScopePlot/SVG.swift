import Foundation

/// Errors raised while rendering a plot; `description` is one line naming the plot.
public enum PlotError: Error, CustomStringConvertible, Equatable {
    /// The data given to a plot cannot be drawn (no points, mismatched array sizes, ...).
    case invalidData(plot: String, reason: String)

    public var description: String {
        switch self {
        case let .invalidData(plot, reason): return "\(plot) plot: \(reason)"
        }
    }
}

/// XML escaping and token display helpers shared by all plots.
public enum SVGText {
    /// Escapes `&`, `<`, `>`, `"` and `'`, and replaces characters XML 1.0 forbids (C0 controls
    /// other than tab, newline and carriage return) with U+FFFD, so any string is safe in text or
    /// attribute values.
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            // Newlines and tabs in attribute values would be normalised to spaces by XML parsers.
            case "\n": out += "&#10;"
            case "\r": out += "&#13;"
            case "\t": out += "&#9;"
            default:
                if scalar.value < 0x20 || scalar.value == 0xFFFE || scalar.value == 0xFFFF {
                    out.unicodeScalars.append("\u{FFFD}")
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    /// The visible form of a token: newline as "⏎", tab as "⇥", space as "␣", other control
    /// characters as their Unicode control pictures, the empty token as "∅".
    public static func visibleToken(_ token: String) -> String {
        if token.isEmpty { return "∅" }
        var out = ""
        for scalar in token.unicodeScalars {
            switch scalar {
            case "\n": out += "⏎"
            case "\t": out += "⇥"
            case "\r": out += "␍"
            case " ": out += "␣"
            case "\u{7F}": out += "␡"
            default:
                if scalar.value < 0x20 {
                    out.unicodeScalars.append(Unicode.Scalar(0x2400 + scalar.value)!)
                } else if scalar.properties.generalCategory == .format
                            || scalar.properties.generalCategory == .lineSeparator
                            || scalar.properties.generalCategory == .paragraphSeparator
                            || (scalar.properties.isWhitespace && scalar != " ") {
                    // Invisible or layout-changing characters (ZWJ, NBSP, U+2028, ...) as a code.
                    out += "⟨U+" + String(scalar.value, radix: 16, uppercase: true) + "⟩"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    /// `s` shortened to at most `max` characters with a trailing "…".
    static func truncate(_ s: String, _ max: Int) -> String {
        s.count <= max ? s : String(s.prefix(Swift.max(1, max - 1))) + "…"
    }

    /// Rough width in pixels of `s` in a sans-serif font of `size` (for layout, not exact).
    static func width(_ s: String, size: Double, mono: Bool = false) -> Double {
        Double(s.count) * size * (mono ? 0.62 : 0.6)
    }
}

/// A number printed compactly for SVG attributes: at most `decimals` decimals, no trailing zeros.
func fmt(_ x: Double, _ decimals: Int = 2) -> String {
    if !x.isFinite { return "0" }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let r = (x * scale).rounded() / scale
    if r == r.rounded(), abs(r) < 1e15 { return String(Int(r)) }
    var s = String(format: "%.\(decimals)f", r)
    while s.hasSuffix("0") { s.removeLast() }
    if s.hasSuffix(".") { s.removeLast() }
    return s == "-0" ? "0" : s
}

/// A tick label: enough decimals for the tick step, no trailing zeros.
func tickLabel(_ x: Double, step: Double) -> String {
    var decimals = 0
    var s = step
    while decimals < 6, abs(s - s.rounded()) > 1e-9 * max(1, abs(s)) { s *= 10; decimals += 1 }
    let t = fmt(x, decimals)
    // A typographic minus reads better than a hyphen in axis labels.
    return t.hasPrefix("-") ? "−" + t.dropFirst() : t
}

/// Nice ticks covering [lo, hi] with about `count` intervals (steps 1, 2, 2.5 or 5 × 10^k).
func niceTicks(_ lo: Double, _ hi: Double, count: Int = 5) -> (ticks: [Double], step: Double) {
    guard hi > lo, lo.isFinite, hi.isFinite else { return ([lo], 1) }
    let raw = (hi - lo) / Double(max(1, count))
    let mag = pow(10, floor(log10(raw)))
    let step = [1.0, 2, 2.5, 5, 10].map { $0 * mag }.first { $0 >= raw * 0.999 } ?? 10 * mag
    let first = (lo / step).rounded(.up)
    let last = (hi / step).rounded(.down)
    var ticks: [Double] = []
    var k = first
    while k <= last + 1e-9 { ticks.append(k * step); k += 1 }
    return (ticks, step)
}

/// [lo, hi] widened outwards to multiples of a nice step.
func niceRange(_ lo: Double, _ hi: Double, count: Int = 5) -> (Double, Double) {
    guard hi > lo else { return (lo - 1, hi + 1) }
    let (_, step) = niceTicks(lo, hi, count: count)
    return ((lo / step).rounded(.down) * step, (hi / step).rounded(.up) * step)
}

/// Minimal streaming SVG writer: elements with escaped attributes, no DOM.
struct SVGWriter {
    private(set) var out = ""
    private var stack: [String] = []

    static let sans = "DejaVu Sans, Helvetica, Arial, sans-serif"
    static let mono = "DejaVu Sans Mono, Menlo, Consolas, monospace"

    /// Starts a document of `width` × `height` pixels with a white background.
    init(width: Double, height: Double, title: String, description: String? = nil) {
        out.reserveCapacity(1 << 16)
        out += "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
        open("svg", [
            ("xmlns", "http://www.w3.org/2000/svg"), ("version", "1.1"),
            ("width", fmt(width)), ("height", fmt(height)),
            ("viewBox", "0 0 \(fmt(width)) \(fmt(height))"),
            ("font-family", SVGWriter.sans), ("font-size", "12"),
        ])
        element("title", [], text: title)
        if let description { element("desc", [], text: description) }
        element("rect", [("width", "100%"), ("height", "100%"), ("fill", "#ffffff")])
    }

    mutating func open(_ name: String, _ attrs: [(String, String)] = []) {
        out += "<" + name
        appendAttrs(attrs)
        out += ">\n"
        stack.append(name)
    }

    mutating func close() {
        let name = stack.removeLast()
        out += "</" + name + ">\n"
    }

    /// An element with optional escaped text content and optional `<title>` tooltip child.
    mutating func element(_ name: String, _ attrs: [(String, String)], text: String? = nil, tooltip: String? = nil) {
        out += "<" + name
        appendAttrs(attrs)
        if text == nil && tooltip == nil { out += "/>\n"; return }
        out += ">"
        if let tooltip { out += "<title>" + SVGText.escape(tooltip) + "</title>" }
        if let text { out += SVGText.escape(text) }
        out += "</" + name + ">\n"
    }

    mutating func text(_ s: String, x: Double, y: Double, size: Double = 12, anchor: String = "start",
                       extra: [(String, String)] = [], tooltip: String? = nil) {
        var attrs: [(String, String)] = [("x", fmt(x)), ("y", fmt(y))]
        if size != 12 { attrs.append(("font-size", fmt(size))) }
        if anchor != "start" { attrs.append(("text-anchor", anchor)) }
        element("text", attrs + extra, text: s, tooltip: tooltip)
    }

    mutating func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, stroke: String,
                       width: Double = 1, extra: [(String, String)] = []) {
        element("line", [("x1", fmt(x1)), ("y1", fmt(y1)), ("x2", fmt(x2)), ("y2", fmt(y2)),
                         ("stroke", stroke), ("stroke-width", fmt(width))] + extra)
    }

    /// Finishes the document and returns it.
    mutating func finish() -> String {
        while !stack.isEmpty { close() }
        return out
    }

    private mutating func appendAttrs(_ attrs: [(String, String)]) {
        for (k, v) in attrs { out += " " + k + "=\"" + SVGText.escape(v) + "\"" }
    }
}
