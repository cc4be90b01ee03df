/// Errors raised while building or running a model; every case names the layer involved.
public enum EngineError: Error, CustomStringConvertible, Equatable {
    /// A weight array does not have the shape the layer needs.
    case weightShape(layer: String, weight: String, expected: [Int], got: [Int])
    /// An activation name that Keras may know but GateScope does not implement.
    case unknownActivation(layer: String, name: String)
    /// The input does not fit the model (wrong rank, feature count, dtype or token id).
    case badInput(String)
    /// Layers that cannot follow each other (e.g. an LSTM after a layer that dropped the time axis).
    case incompatible(layer: String, reason: String)

    public var description: String {
        switch self {
        case let .weightShape(layer, weight, expected, got):
            return "layer '\(layer)': \(weight) has shape \(got), expected \(expected)"
        case let .unknownActivation(layer, name):
            return "layer '\(layer)': unknown activation '\(name)' (supported: \(Activation.supportedNames.joined(separator: ", ")))"
        case let .badInput(message):
            return message
        case let .incompatible(layer, reason):
            return "layer '\(layer)': \(reason)"
        }
    }
}
