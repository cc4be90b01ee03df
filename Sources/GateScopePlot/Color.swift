import Foundation

/// An sRGB colour with components in 0...1.
public struct RGB: Equatable, Sendable {
    public var r: Double, g: Double, b: Double

    public init(_ r: Double, _ g: Double, _ b: Double) { self.r = r; self.g = g; self.b = b }

    /// From a "#rrggbb" literal (trusted constant input).
    init(hex: String) {
        let v = UInt32(hex.dropFirst(), radix: 16) ?? 0
        self.init(Double((v >> 16) & 0xFF) / 255, Double((v >> 8) & 0xFF) / 255, Double(v & 0xFF) / 255)
    }

    /// "#rrggbb".
    public var hex: String {
        func c(_ x: Double) -> String {
            let v = Int((min(1, max(0, x)) * 255).rounded())
            return (v < 16 ? "0" : "") + String(v, radix: 16)
        }
        return "#" + c(r) + c(g) + c(b)
    }

    func mix(_ o: RGB, _ t: Double) -> RGB {
        RGB(r + (o.r - r) * t, g + (o.g - g) * t, b + (o.b - b) * t)
    }
}

/// Colours for categories (layers): Tableau 10, cycled.
enum Palette {
    static let categorical = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                              "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]

    static func category(_ i: Int) -> String { categorical[i % categorical.count] }
}

/// A diverging blue-white-red colour scale: `lower` is dark blue, `center` white, `upper` dark red;
/// values outside [lower, upper] are clamped.
public struct DivergingScale: Equatable, Sendable {
    public var lower: Double
    public var center: Double
    public var upper: Double
    /// What the scale shows, e.g. "h (tanh range), white at 0"; printed by the colour bar.
    public var label: String

    public init(lower: Double, center: Double, upper: Double, label: String) {
        self.lower = lower; self.center = center; self.upper = upper; self.label = label
    }

    /// The scale for an LSTM gate: sigmoid gates i, f, o on [0, 1] centred at 0.5; g and h on
    /// [-1, 1] centred at 0; c symmetric around 0 up to `maxAbs` (rounded up to a nice number).
    public static func forGate(_ gate: String, maxAbs: Double = 1) -> DivergingScale {
        switch gate {
        case "i", "f", "o":
            return DivergingScale(lower: 0, center: 0.5, upper: 1,
                                  label: "\(gate) (sigmoid range 0…1), white at 0.5")
        case "g", "h":
            return DivergingScale(lower: -1, center: 0, upper: 1,
                                  label: "\(gate) (tanh range −1…1), white at 0")
        default:
            let m = maxAbs.isFinite && maxAbs > 0 ? niceRange(0, maxAbs, count: 8).1 : 1
            return DivergingScale(lower: -m, center: 0, upper: m,
                                  label: "\(gate) (cell state, ±\(fmt(m, 3))), white at 0")
        }
    }

    // ColorBrewer RdBu (11 classes), from blue (low) to red (high).
    private static let stops = ["#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7",
                                "#fddbc7", "#f4a582", "#d6604d", "#b2182b", "#67001f"].map { RGB(hex: $0) }

    /// Position of `v` on the scale in 0...1 (0.5 = centre), piecewise linear on each side.
    public func position(_ v: Double) -> Double {
        if v.isNaN { return 0.5 }
        if v <= center {
            let span = center - lower
            return span > 0 ? 0.5 * max(0, (v - lower) / span) : 0.5
        }
        let span = upper - center
        return span > 0 ? 0.5 + 0.5 * min(1, (v - center) / span) : 0.5
    }

    /// The colour of `v`.
    public func color(_ v: Double) -> RGB {
        let p = position(v) * Double(Self.stops.count - 1)
        let k = min(Self.stops.count - 2, Int(p.rounded(.down)))
        return Self.stops[k].mix(Self.stops[k + 1], p - Double(k))
    }
}
