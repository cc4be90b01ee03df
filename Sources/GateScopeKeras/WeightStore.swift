import Foundation

/// Which weights of a layer: all of them, one half of a Bidirectional, or the layer a TimeDistributed wraps.
enum WeightPart {
    case main, forward, backward, inner
}

/// Finds the dataset paths of a layer's weights, in Keras's order (kernel, recurrent_kernel, bias, ...).
protocol WeightStore {
    var h5: HDF5File { get }
    /// Dataset paths for `part` of `layer` inside the sub-models `scope`; `expected` names the arrays the config implies.
    func paths(for layer: LayerEntry, scope: [String], part: WeightPart, expected: [String]) throws -> [String]
}

/// Keras 3 `.keras` weights: `layers/<snake_class>[_N]/.../vars/K`; the `vars` group of each layer
/// carries the Keras layer name in its `name` attribute.
struct KerasZipWeights: WeightStore {
    let h5: HDF5File
    /// Keras layer name -> group path under `layers/`.
    private var groups: [String: String] = [:]

    init(h5: HDF5File, config: ModelConfig) throws {
        self.h5 = h5
        try scan("layers", scope: [], depth: 0)
        // Files without the name attributes: Keras numbers groups per class in layer order.
        var counts: [String: Int] = [:]
        for layer in config.allLayers where config.className == "Functional" || layer.className != "InputLayer" {
            let snake = Self.snakeCase(layer.className)
            let n = counts[snake, default: 0]
            counts[snake] = n + 1
            if groups[layer.name] == nil {
                groups[layer.name] = "layers/" + (n == 0 ? snake : "\(snake)_\(n)")
            }
        }
    }

    /// Maps `scope/name` of every layer group under `prefix` (nested models keep theirs under `<group>/layers`).
    private mutating func scan(_ prefix: String, scope: [String], depth: Int) throws {
        guard depth < 16, h5.isGroup(prefix) else { return }
        for member in try h5.members(prefix) {
            let group = "\(prefix)/\(member)", vars = "\(group)/vars"
            guard try h5.hasAttribute(vars, "name"), let name = try? h5.stringAttribute(vars, "name") else { continue }
            groups[(scope + [name]).joined(separator: "/")] = group
            try scan("\(group)/layers", scope: scope + [name], depth: depth + 1)
        }
    }

    func paths(for layer: LayerEntry, scope: [String], part: WeightPart, expected: [String]) throws -> [String] {
        guard let group = groups[(scope + [layer.name]).joined(separator: "/")] else {
            throw KerasError.missing(file: h5.name, path: "layers/\(Self.snakeCase(layer.className))", what: "weight group for layer '\(layer.name)'")
        }
        let vars: String
        switch (layer.className, part) {
        case (_, .inner): vars = "\(group)/layer/vars"
        case ("LSTM", _), ("GRU", _), ("SimpleRNN", _): vars = "\(group)/cell/vars"
        case ("Bidirectional", .forward): vars = "\(group)/forward_layer/cell/vars"
        case ("Bidirectional", _): vars = "\(group)/backward_layer/cell/vars"
        case ("TimeDistributed", _): vars = "\(group)/layer/vars"
        default: vars = "\(group)/vars"
        }
        if expected.isEmpty { return [] }
        guard h5.isGroup(vars) else {
            throw KerasError.missing(file: h5.name, path: vars, what: "group")
        }
        let present = try h5.members(vars).filter { Int($0) != nil }.count
        if present > expected.count {
            throw KerasError.weightCount(file: h5.name, layer: layer.name, location: vars, got: present, expected: expected)
        }
        // A missing index shows up as a missing dataset when read, naming its path.
        return (0..<expected.count).map { "\(vars)/\($0)" }
    }

    /// Keras's `to_snake_case` (same three regex passes): "TimeDistributed" -> "time_distributed", "LSTM" -> "lstm".
    static func snakeCase(_ name: String) -> String {
        var s = name
        for (pattern, template) in [(#"\W+"#, ""), ("(.)([A-Z][a-z]+)", "$1_$2"), ("([a-z])([A-Z])", "$1_$2")] {
            let re = try! NSRegularExpression(pattern: pattern)
            s = re.stringByReplacingMatches(in: s, range: NSRange(s.startIndex..., in: s), withTemplate: template)
        }
        return s.lowercased()
    }
}

/// Legacy full-model `.h5`: `model_weights/<layer>` lists its datasets in the `weight_names` attribute.
struct LegacyH5Weights: WeightStore {
    let h5: HDF5File

    func paths(for layer: LayerEntry, scope: [String], part: WeightPart, expected: [String]) throws -> [String] {
        if expected.isEmpty { return [] }
        // A nested model's layers keep their weights in the outermost model's group, listed by path.
        let group = "model_weights/\(scope.first ?? layer.name)"
        guard h5.isGroup(group) else { throw KerasError.missing(file: h5.name, path: group, what: "weight group") }
        var names = try h5.stringArrayAttribute(group, "weight_names")
        if !scope.isEmpty {
            names = names.filter { $0.hasPrefix("\(layer.name)/") || $0.contains("/\(layer.name)/") }
        }
        let paths = names.map { "\(group)/\($0)" }
        switch part {
        case .main, .inner:
            guard names.count == expected.count else {
                throw KerasError.weightCount(file: h5.name, layer: layer.name, location: "\(group) weight_names", got: names.count, expected: expected)
            }
            return paths
        case .forward, .backward:
            // Keras lists the forward half's weights, then the backward half's.
            guard names.count == 2 * expected.count else {
                throw KerasError.weightCount(file: h5.name, layer: layer.name, location: "\(group) weight_names", got: names.count,
                                             expected: expected.map { "forward \($0)" } + expected.map { "backward \($0)" })
            }
            return part == .forward ? Array(paths[..<expected.count]) : Array(paths[expected.count...])
        }
    }
}
