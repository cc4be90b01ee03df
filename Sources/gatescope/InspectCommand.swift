import ArgumentParser
import Foundation
import GateScopeKeras

/// `gatescope inspect MODEL [--json]`: what GateScope sees in a Keras model file.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a model's format, producer, layers, shapes, activations and parameter counts.",
        discussion: """
        Loads a Keras 3 .keras file or a legacy Keras 2/3 .h5 file (detected from the content), an \
        .onnx graph, or a PyTorch state dict (.pt, .safetensors) exactly as the other commands do, \
        so an unsupported layer or a damaged file is reported here with the same one-line error.

        Examples:
          gatescope inspect model.keras
          gatescope inspect legacy_model.h5 --json | jq '.layers[].class_name'
        """
    )

    @Argument(help: "The model: .keras or legacy .h5 (Keras), .onnx, or a PyTorch state dict (.pt, .safetensors).")
    var model: String

    @OptionGroup var modelOptions: ModelOptions

    @Flag(help: "Print JSON for machines instead of the table.")
    var json = false

    func run() throws {
        let summary: ModelSummary
        do {
            summary = try ModelFiles.inspect(model, module: modelOptions.module)
        } catch {
            FileHandle.standardError.write(Data("gatescope inspect: \(error)\n".utf8))
            throw ExitCode.failure
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            print(String(decoding: try encoder.encode(summary), as: UTF8.self))
        } else {
            print(Self.render(summary, path: model), terminator: "")
        }
    }

    /// The human-readable table.
    static func render(_ s: ModelSummary, path: String) -> String {
        var out: String
        if s.format == "onnx" {
            out = "\(path): ONNX model, producer \(s.kerasVersion.isEmpty ? "not recorded" : s.kerasVersion)\n"
        } else if s.format == "pytorch" || s.format == "safetensors" {
            out = "\(path): PyTorch state dict (\(s.kerasVersion)); read without running code from the file\n"
        } else {
            let format = s.format == "keras" ? "Keras 3 archive (.keras)" : "legacy HDF5 (.h5)"
            out = "\(path): \(format), Keras \(s.kerasVersion.isEmpty ? "version unknown" : s.kerasVersion)"
            out += ", backend \(s.backend ?? "not recorded")\n"
        }
        out += "model '\(s.modelName)' (\(s.modelClass))\n"
        out += "inputs:  " + s.inputs.map { "\($0.name) \(shape($0.shape)) \($0.dtype)" }.joined(separator: ", ") + "\n"
        out += "outputs: " + s.outputs.map { "\($0.name) \(shape($0.shape))" }.joined(separator: ", ") + "\n\n"
        let header = ["Layer (class)", "Inbound", "Output shape", "Mask", "Activations", "Params", "Details"]
        let rows: [[String]] = s.layers.map { l in
            let acts = [l.activation, l.recurrentActivation].compactMap { $0 }.joined(separator: " / ")
            let shapes = l.outputShapes.count > 1 ? l.outputShapes.map(shape).joined(separator: " ") : shape(l.outputShape)
            return ["\(l.name) (\(l.className))", l.inbound.isEmpty ? "-" : l.inbound.joined(separator: ", "), shapes,
                    l.masked ? "yes" : "-", acts.isEmpty ? "-" : acts, grouped(l.parameterCount), l.details.joined(separator: " ")]
        }
        var widths = header.map(\.count)
        for row in rows { for (k, cell) in row.enumerated() { widths[k] = max(widths[k], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { k, cell in
                k == 5 ? String(repeating: " ", count: widths[k] - cell.count) + cell  // numbers right-aligned
                       : cell + String(repeating: " ", count: k == cells.count - 1 ? 0 : widths[k] - cell.count)
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces) + "\n"
        }
        out += line(header)
        out += String(repeating: "-", count: widths.reduce(0, +) + 2 * (widths.count - 1)) + "\n"
        for row in rows { out += line(row) }
        out += "\nTotal params: \(grouped(s.totalParameters))\n"
        out += "Recurrent halves (layer_id name direction):\n"
        if s.recurrentLayers.isEmpty { out += "  none\n" }
        for h in s.recurrentLayers {
            let axis = h.timeFrom.map { "steps of input '\($0)'\(h.aligned ? "" : ", not aligned")" } ?? "steps made in the model"
            out += "  \(h.index) \(h.layer) \(h.direction): \(h.cell), \(h.units) units, \(axis); "
                + (h.recorded ? "recorded" : "runs, not recorded (\(h.cell) gates are not recorded yet)") + "\n"
        }
        return out
    }

    static func shape(_ dims: [Int?]) -> String {
        "(" + dims.map { $0.map(String.init) ?? "None" }.joined(separator: ", ") + ")"
    }

    static func grouped(_ n: Int) -> String {
        let digits = Array(String(n))
        var out = ""
        for (k, d) in digits.enumerated() {
            if k > 0, (digits.count - k) % 3 == 0 { out += "," }
            out.append(d)
        }
        return out
    }
}
