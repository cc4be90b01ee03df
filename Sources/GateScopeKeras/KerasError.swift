import GateScopeEngine
import GateScopeInput

/// Errors raised while reading a Keras model file; `description` is one line that starts with the file.
public enum KerasError: Error, CustomStringConvertible, Equatable {
    /// The file cannot be read at all, or is neither a `.keras` zip nor an HDF5 file.
    case unreadable(file: String, reason: String)
    /// The container (zip or HDF5) is damaged or truncated.
    case corrupt(file: String, reason: String)
    /// A dataset, group, attribute or zip entry that the model needs is not there.
    case missing(file: String, path: String, what: String)
    /// A dataset or attribute exists but cannot be read as the expected type.
    case unreadableObject(file: String, path: String, reason: String)
    /// The model configuration JSON is malformed or lacks a field.
    case badConfig(file: String, layer: String?, reason: String)
    /// A layer class (or a setting of a supported class) that GateScope cannot run.
    case unsupportedLayer(file: String, layer: String, className: String, reason: String)
    /// A graph GateScope cannot build (a cycle, a dangling reference, a sub-model called with the wrong inputs).
    case unsupportedGraph(file: String, layer: String, reason: String)
    /// A weight dataset whose shape does not fit the layer config (`nil` = any size).
    case weightShape(file: String, layer: String, path: String, got: [Int], expected: [Int?])
    /// A layer with a different number of weight arrays than its config implies.
    case weightCount(file: String, layer: String, location: String, got: Int, expected: [String])
    /// The engine refused the assembled model.
    case model(file: String, EngineError)

    /// The message on one line: names from a damaged file may hold control characters, so those
    /// are escaped (\n, \t, \u{1b}, ...) and a very long message is cut, as `InputError` does.
    public var description: String { InputError.oneLine(message) }

    private var message: String {
        switch self {
        case let .unreadable(file, reason):
            return "\(file): \(reason)"
        case let .corrupt(file, reason):
            return "\(file): corrupt or truncated model file: \(reason)"
        case let .missing(file, path, what):
            return "\(file): \(what.isEmpty ? "" : what + " ")\(path) not found"
        case let .unreadableObject(file, path, reason):
            return "\(file): cannot read \(path): \(reason)"
        case let .badConfig(file, layer, reason):
            return "\(file): bad model config\(layer.map { " at layer '\($0)'" } ?? ""): \(reason)"
        case let .unsupportedLayer(file, layer, className, reason):
            return "\(file): layer '\(layer)' (\(className)): \(reason)"
        case let .unsupportedGraph(file, layer, reason):
            return "\(file): layer '\(layer)': \(reason)"
        case let .weightShape(file, layer, path, got, expected):
            let exp = "[" + expected.map { $0.map(String.init) ?? "?" }.joined(separator: ", ") + "]"
            return "\(file): layer '\(layer)': dataset \(path) has shape \(got), expected \(exp)"
        case let .weightCount(file, layer, location, got, expected):
            return "\(file): layer '\(layer)': \(location) holds \(got) weight arrays, expected \(expected.count) (\(expected.joined(separator: ", ")))"
        case let .model(file, error):
            return "\(file): \(error)"
        }
    }

    /// Layer classes GateScope can load, for "what is supported" in error messages.
    public static let supportedClasses = [
        "InputLayer", "Embedding", "Masking", "LSTM", "GRU", "SimpleRNN", "Bidirectional", "Dense", "TimeDistributed",
        "Activation", "ReLU", "Softmax", "ELU", "Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
        "ActivityRegularization", "Conv1D", "MaxPooling1D", "AveragePooling1D", "GlobalMaxPooling1D", "GlobalAveragePooling1D",
        "Flatten", "Reshape", "Permute", "RepeatVector", "ZeroPadding1D", "Cropping1D", "UpSampling1D", "Concatenate", "Add",
        "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Dot", "LayerNormalization", "BatchNormalization", "Attention",
        "AdditiveAttention", "Sequential", "Functional",
    ]
}
