import CHDF5
import Foundation
import GateScopeInput
import GateScopeKeras
import GateScopeONNX
import GateScopeTorch
import ZIPFoundation

// Fuzz harnesses for every reader of user files. One executable, two builds:
// - `scripts/fuzz.sh` builds it with `-sanitize=fuzzer,address -D GATESCOPE_FUZZ`; libFuzzer
//   then provides `main` and calls `LLVMFuzzerTestOneInput`, and `GATESCOPE_FUZZ_HARNESS`
//   names the harness;
// - the ordinary build gives a replayer: `GateScopeFuzz HARNESS FILE...` feeds each file to the
//   harness and prints how the reader answered, for reproducing what a fuzzer found.
// A reader's refusal (a thrown error) is the expected answer to a bad file; only a crash, a
// hang, a leak or a multi-line message is a finding.

/// The readers under test, by harness name.
enum Harness: String, CaseIterable {
    case npy, npz, jsonl, csv, txt, vocab
    case kerasConfig = "keras-config", kerasZip = "keras-zip", h5
    case onnx, pt, safetensors

    /// The file name extension the reader is chosen by.
    var fileExtension: String {
        switch self {
        case .npy: return "npy"
        case .npz: return "npz"
        case .jsonl: return "jsonl"
        case .csv: return "csv"
        case .txt: return "txt"
        case .vocab: return "json"
        case .kerasConfig, .kerasZip: return "keras"
        case .h5: return "h5"
        case .onnx: return "onnx"
        case .pt: return "pt"
        case .safetensors: return "safetensors"
        }
    }

    /// Runs the reader over `bytes`; returns its error's message, or nil if it accepted them.
    func run(_ bytes: Data) -> String? {
        let path = Scratch.path(extension: fileExtension)
        do {
            let payload = self == .kerasConfig ? try Scratch.kerasArchive(config: bytes) : bytes
            try payload.write(to: URL(fileURLWithPath: path))
            switch self {
            case .npy, .npz, .jsonl, .csv:
                try drain(InputFormat.open(path: path))
            case .txt:
                try drain(InputFormat.open(path: path, vocab: Scratch.vocab, unknownID: 0))
            case .vocab:
                _ = try Vocab(path: path)
            case .kerasConfig, .kerasZip, .h5:
                defer { checkNoHDF5ObjectsOpen() }
                _ = try KerasModelLoader.inspect(path: path)
            case .onnx:
                _ = try ONNXModelLoader.load(path: path)
            case .pt, .safetensors:
                _ = try TorchModelLoader.load(path: path)
            }
            return nil
        } catch {
            let message = String(describing: error)
            if message.contains("\n") || message.count > 1000 {
                // A refusal must be one short line: make the fuzzer report it as a crash.
                FileHandle.standardError.write(Data("multi-line or overlong message (\(message.count) chars): \(message.prefix(300))\n".utf8))
                abort()
            }
            return message
        }
    }

    /// A file or object left open in libhdf5 is memory that LeakSanitizer cannot see (libhdf5
    /// still points at it): make it a finding.
    private func checkNoHDF5ObjectsOpen() {
        // H5F_OBJ_ALL (a macro Swift cannot import): files, datasets, groups, datatypes, attributes.
        let all: UInt32 = 0x1F
        let open = H5Fget_obj_count(hid_t(all), all)
        if open > 0 {
            FileHandle.standardError.write(Data("\(open) HDF5 objects left open after the model was read\n".utf8))
            abort()
        }
    }

    private func drain(_ reader: any SequenceReader) throws {
        while try reader.next() != nil {}
    }
}

/// Per-process scratch files and the fixed parts some harnesses need.
enum Scratch {
    /// The same path in every run (`GATESCOPE_FUZZ_SCRATCH`, default in /dev/shm): messages
    /// name it, and a path that changed with the process id would change what a fixed seed does.
    static func path(extension ext: String) -> String {
        let base = ProcessInfo.processInfo.environment["GATESCOPE_FUZZ_SCRATCH"]
            ?? (FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()) + "/gatescope-fuzz"
        return "\(base).\(ext)"
    }

    /// A small character vocabulary for the .txt harness.
    nonisolated(unsafe) static let vocab: Vocab = {
        var ids: [String: Int32] = [:]
        for (k, c) in "abcdefghijklmnopqrstuvwxyz .,\n".enumerated() { ids[String(c)] = Int32(k + 1) }
        return try! Vocab(ids)
    }()

    /// The weights of the bundled example, which the config harness pairs with a fuzzed config.json.
    nonisolated(unsafe) static let weights: Data = {
        let env = ProcessInfo.processInfo.environment["GATESCOPE_FUZZ_WEIGHTS"]
        let path = env ?? "Tests/Fixtures/keras/lstm_single/model.keras"
        guard let archive = try? Archive(url: URL(fileURLWithPath: path), accessMode: .read), let entry = archive["model.weights.h5"] else {
            FileHandle.standardError.write(Data("GateScopeFuzz: cannot read model.weights.h5 from '\(path)' (set GATESCOPE_FUZZ_WEIGHTS to a .keras file)\n".utf8))
            exit(2)
        }
        var out = Data()
        _ = try? archive.extract(entry) { out.append($0) }
        return out
    }()

    /// A .keras archive of `config`, a fixed metadata.json and the example's weights.
    static func kerasArchive(config: Data) throws -> Data {
        let archive = try Archive(accessMode: .create)
        for (name, data) in [("metadata.json", Data(#"{"keras_version": "3.15.1"}"#.utf8)), ("config.json", config), ("model.weights.h5", weights)] {
            try archive.addEntry(with: name, type: .file, uncompressedSize: Int64(data.count), compressionMethod: .none) { position, size in
                data.subdata(in: Int(position)..<Int(position) + size)
            }
        }
        return archive.data ?? Data()
    }
}

/// The harness chosen by `GATESCOPE_FUZZ_HARNESS`, resolved once.
let selected: Harness = {
    let name = ProcessInfo.processInfo.environment["GATESCOPE_FUZZ_HARNESS"] ?? ""
    guard let harness = Harness(rawValue: name) else {
        FileHandle.standardError.write(Data("GateScopeFuzz: set GATESCOPE_FUZZ_HARNESS to one of \(Harness.allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
        exit(2)
    }
    return harness
}()

#if GATESCOPE_FUZZ
// libFuzzer's driver, called from our own main (SwiftPM links executables through a renamed
// main, so libFuzzer's own main cannot be used).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

@main
struct Fuzz {
    static func main() {
        // Fixed parts first: libFuzzer counts what one input allocates and does not free.
        _ = selected
        if selected == .kerasConfig { _ = Scratch.weights }
        if selected == .txt { _ = Scratch.vocab }
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            _ = selected.run(data.map { Data(bytes: $0, count: size) } ?? Data())
            return 0
        })
    }
}
#else
@main
struct Replay {
    static func main() {
        let args = Array(CommandLine.arguments.dropFirst())
        guard let name = args.first, let harness = Harness(rawValue: name), args.count >= 2 else {
            FileHandle.standardError.write(Data("usage: GateScopeFuzz HARNESS FILE...  (harnesses: \(Harness.allCases.map(\.rawValue).joined(separator: ", ")))\n".utf8))
            exit(2)
        }
        for file in args.dropFirst() {
            guard let bytes = FileManager.default.contents(atPath: file) else {
                print("\(file): cannot read")
                continue
            }
            print("\(file): " + (harness.run(bytes).map { "refused: \($0)" } ?? "accepted"))
        }
    }
}
#endif
