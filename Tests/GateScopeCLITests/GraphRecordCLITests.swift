import Foundation
import GateScopeEngine
import GateScopeInput
import Testing

/// `record` then `export` on every graph fixture (Tests/Fixtures/graph: Keras; Tests/Fixtures/torch:
/// ONNX), as a user would: every recorded gate of every LSTM, GRU and SimpleRNN call, read back
/// as CSV, equals the reference (Keras's own gates; for ONNX, float64 references checked step by
/// step against onnxruntime), and steps that are not computed have no row.
@Suite struct GraphRecordCLITests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    static let dir = fixtures.appendingPathComponent("graph")

    static func files(in folder: String, names: [String]) -> [String] {
        let root = fixtures.appendingPathComponent(folder)
        let cases = ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).sorted()
        return cases.flatMap { name in
            names.map { "\(folder)/\(name)/\($0)" }
                .filter { FileManager.default.fileExists(atPath: root.appendingPathComponent(String($0.dropFirst(folder.count + 1))).path) }
        }
    }

    static var modelFiles: [String] {
        files(in: "graph", names: ["model.keras", "model.h5"])
            + files(in: "torch", names: ["model.onnx"]).filter { !$0.contains("onnx_bad_op") }
            + files(in: "torch", names: ["model.pt", "model.safetensors"])
    }

    /// `--module NAME` for a state dict that holds several recurrent modules (from meta.json).
    static func moduleArguments(_ meta: [String: Any]) -> [String] {
        guard meta["modules"] != nil, let m = meta["module"] as? String else { return [] }
        return ["--module", m]
    }

    @Test func fixturesArePresent() {
        #expect(Self.modelFiles.filter { $0.hasPrefix("graph/") }.count >= 30, "graph fixtures missing under \(Self.dir.path)")
        #expect(Self.modelFiles.filter { $0.hasSuffix(".onnx") }.count >= 9, "ONNX fixtures missing under \(Self.fixtures.path)/torch")
    }

    /// The rows of `gatescope export --format csv`: header and (seq, step, unit) -> gate values.
    static func parseExport(_ csv: String) -> (header: [String], rows: [[Int]: [Float]]) {
        let lines = csv.split(separator: "\n").map(String.init)
        guard let first = lines.first else { return ([], [:]) }
        var rows: [[Int]: [Float]] = [:]
        for line in lines.dropFirst() {
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            // run_id, seq_id, source_id, layer, direction, step, token, unit, gates...
            rows[[Int(f[1])!, Int(f[5])!, Int(f[7])!]] = f[8...].map { Float($0)! }
        }
        return (first.split(separator: ",").map(String.init), rows)
    }

    @Test(arguments: modelFiles)
    func recordedGatesEqualReferences(_ file: String) throws {
        let parts = file.split(separator: "/").map(String.init)
        let caseDir = Self.fixtures.appendingPathComponent(parts[0]).appendingPathComponent(parts[1])
        let tmp = try GateScopeCLI.tempDir("graphrec")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let db = tmp + "/g.db"
        // Batches of 2 pad the 3 sequences differently than Keras's single batch did. (An ONNX
        // graph with a constant initial state fixes its batch size, so those run in one batch.)
        let meta = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: caseDir.appendingPathComponent("meta.json"))) as? [String: Any])
        let batch = parts[0] == "graph" || !parts[2].hasSuffix(".onnx") ? ["--batch-size", "2"] : []
        let rec = try GateScopeCLI.run(["record", caseDir.appendingPathComponent(parts[2]).path,
                                        caseDir.appendingPathComponent("inputs.npz").path, "--db", db] + batch + Self.moduleArguments(meta))
        try #require(rec.status == 0, Comment(rawValue: "\(file): record failed: \(rec.message)"))

        let expected = try NPZ.read(path: caseDir.appendingPathComponent("expected.npz").path)
        let halves = try #require(meta["recurrent"] as? [[String: Any]])
        var totalRows = 0
        for half in halves {
            let call = try #require((half["call"] ?? half["layer"]) as? String), direction = try #require(half["direction"] as? String)
            let cellName = try #require(half["cell"] as? String)
            let cell = try #require(CellKind(rawValue: cellName))
            let out = try GateScopeCLI.run(["export", db, "--layer", "\(call):\(direction)", "--format", "csv"])
            try #require(out.status == 0, Comment(rawValue: "\(file): export \(call):\(direction): \(out.message)"))
            let (header, rows) = Self.parseExport(out.stdout)
            #expect(header == ["run_id", "seq_id", "source_id", "layer", "direction", "step", "token", "unit"] + cell.planes,
                    "\(file): \(call):\(direction) columns")
            let mask = try #require(expected["mask__\(call)"]).bools()
            let planes = try cell.planes.map { try #require(expected["gates__\(call)__\(direction)__\($0)"], "\(file): no \($0) of \(call)") }
            let shape = planes[0].shape  // [batch, time, units]
            let values = try planes.map { try $0.floats() }
            var want = 0, worst = 0.0, worstAt = ""
            for b in 0..<shape[0] {
                for t in 0..<shape[1] {
                    for u in 0..<shape[2] {
                        let row = rows[[b, t, u]]
                        guard mask[b * shape[1] + t] else {
                            #expect(row == nil, "\(file): \(call):\(direction) has a row for masked seq \(b) step \(t)")
                            continue
                        }
                        want += 1
                        guard let row else {
                            Issue.record("\(file): \(call):\(direction) lacks seq \(b) step \(t) unit \(u)")
                            continue
                        }
                        for (p, name) in cell.planes.enumerated() {
                            let e = Double(values[p][(b * shape[1] + t) * shape[2] + u]), g = Double(row[p])
                            let ratio = abs(g - e) / (2e-5 + 1e-4 * abs(e))
                            if ratio > worst { worst = ratio; worstAt = "seq \(b) step \(t) unit \(u) gate \(name): \(g) vs Keras \(e)" }
                        }
                    }
                }
            }
            #expect(worst <= 1, "\(file): \(call):\(direction) worst |a-b|/(2e-5+1e-4|b|) = \(worst) at \(worstAt)")
            #expect(rows.count == want, "\(file): \(call):\(direction) has \(rows.count) rows, Keras computed \(want) steps x units")
            totalRows += want
        }
        let runs = try GateScopeCLI.run(["runs", db, "--format", "csv"])
        #expect(runs.stdout.contains(",complete,") || runs.stdout.contains("complete"), "\(file): run not complete: \(runs.stdout)")
        #expect(totalRows > 0)
    }

    /// `predict` on every ONNX fixture equals onnxruntime's outputs, in the graph's own layouts
    /// (time-major inputs and outputs included), and on every PyTorch state dict the torch
    /// module's own output, h_n and c_n (expected.npz `y__NAME`).
    @Test(arguments: files(in: "torch", names: ["model.onnx"]).filter { !$0.contains("onnx_bad_op") }
                     + files(in: "torch", names: ["model.pt", "model.safetensors"]))
    func predictEqualsTheFramework(_ file: String) throws {
        let parts = file.split(separator: "/").map(String.init)
        let caseDir = Self.fixtures.appendingPathComponent(parts[0]).appendingPathComponent(parts[1])
        let framework = parts[2].hasSuffix(".onnx") ? "onnxruntime" : "torch"
        let tmp = try GateScopeCLI.tempDir("predict")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let meta = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: caseDir.appendingPathComponent("meta.json"))) as? [String: Any])
        let out = try GateScopeCLI.run(["predict", caseDir.appendingPathComponent(parts[2]).path,
                                        caseDir.appendingPathComponent("inputs.npz").path, "-o", tmp + "/y.npz"] + Self.moduleArguments(meta))
        try #require(out.status == 0, Comment(rawValue: "\(file): \(out.message)"))
        let got = try NPZ.read(path: tmp + "/y.npz")
        let expected = try NPZ.read(path: caseDir.appendingPathComponent("expected.npz").path)
        let outputs = try #require(meta["outputs"] as? [String])
        #expect(Set(got.keys) == Set(outputs), "\(file): outputs \(got.keys.sorted())")
        for name in outputs {
            let a = try #require(got[name]), b = try #require(expected["y__\(name)"])
            #expect(a.shape == b.shape, "\(file): \(name) shape \(a.shape) vs \(framework) \(b.shape)")
            guard a.shape == b.shape else { continue }
            let x = try a.floats(), y = try b.floats()
            var worst = 0.0, at = 0
            for k in x.indices {
                let r = abs(Double(x[k]) - Double(y[k])) / (2e-5 + 1e-4 * abs(Double(y[k])))
                if r > worst { worst = r; at = k }
            }
            #expect(worst <= 1, "\(file): \(name) worst |a-b|/(2e-5+1e-4|b|) = \(worst) at flat index \(at): \(x[at]) vs \(y[at])")
        }
    }

    /// Hostile or unsupported torch files are refused in one line, and nothing in them runs.
    @Test(arguments: [
        ("os_system.pt", "refused: the pickle names global os.system, which a state dict never needs (only OrderedDict, tensors and storages are read; nothing from the file is run)"),
        ("eval_global.pt", "refused: the pickle names global builtins.eval, which a state dict never needs (only OrderedDict, tensors and storages are read; nothing from the file is run)"),
        ("legacy.pt", "legacy (non-zip) torch.save format is not supported; re-save it with torch.save(model.state_dict(), path) from torch 1.6 or later"),
        ("not_torch.pt", "not a torch.save zip or a .safetensors file"),
    ])
    func hostileTorchFilesAreRefused(_ name: String, _ message: String) throws {
        let marker = "/tmp/gatescope-pwned"
        try? FileManager.default.removeItem(atPath: marker)
        let path = Self.fixtures.appendingPathComponent("torch/bad/\(name)").path
        for command in ["inspect", "predict"] {
            let args = command == "inspect" ? [command, path] : [command, path, Self.fixtures.appendingPathComponent("torch/sd_gru/inputs.npz").path]
            let out = try GateScopeCLI.run(args)
            #expect(out.status == 1 && !out.signaled)
            #expect(out.message == "gatescope \(command): \(path): \(message)")
        }
        #expect(!FileManager.default.fileExists(atPath: marker), "the pickle's code ran")
    }

    /// A file with two recurrent modules needs --module, and says which there are.
    @Test func severalModulesNeedModule() throws {
        let path = Self.fixtures.appendingPathComponent("torch/sd_two_modules/model.pt").path
        let out = try GateScopeCLI.run(["inspect", path])
        #expect(out.status == 1)
        #expect(out.message == "gatescope inspect: \(path): the file holds several recurrent modules (dec, enc); pick one with --module NAME")
        let wrong = try GateScopeCLI.run(["inspect", path, "--module", "nope"])
        #expect(wrong.message == "gatescope inspect: \(path): no recurrent module 'nope' (modules: dec, enc)")
        #expect(try GateScopeCLI.run(["inspect", path, "--module", "enc"]).status == 0)
    }

    /// An op GateScope does not implement is refused in one line naming the node and op type.
    @Test func unsupportedONNXOpIsNamed() throws {
        let model = Self.fixtures.appendingPathComponent("torch/onnx_bad_op/model.onnx").path
        let out = try GateScopeCLI.run(["inspect", model])
        #expect(out.status == 1)
        #expect(out.message == "gatescope inspect: \(model): node 'mix_einsum' (Einsum): operator Einsum is not supported")
    }

    /// `stats` has rows for a GRU layer's z, r, n, h (z and r with saturation like i, f, o), and
    /// answers from the summaries exactly what a full scan counts.
    @Test func statsOnGRULayers() throws {
        let caseDir = Self.dir.appendingPathComponent("gru_simple")
        let tmp = try GateScopeCLI.tempDir("grustats")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let db = tmp + "/g.db"
        let rec = try GateScopeCLI.run(["record", caseDir.appendingPathComponent("model.keras").path,
                                        caseDir.appendingPathComponent("inputs.npz").path, "--db", db])
        try #require(rec.status == 0, Comment(rawValue: rec.message))
        let stats = try GateScopeCLI.run(["stats", db, "--layer", "gru_after", "--format", "csv"])
        try #require(stats.status == 0, Comment(rawValue: stats.message))
        let lines = stats.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "run_id,layer,direction,unit,gate,n,left,right,mean,std,min,max")
        let gates = lines.dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false)[4] }
        #expect(gates.count == 5 * 4, "5 units x z, r, n, h")
        #expect(Array(gates.prefix(4)) == ["z", "r", "n", "h"])
        for line in lines.dropFirst() {
            let f = line.split(separator: ",", omittingEmptySubsequences: false)
            #expect(!f[6].isEmpty && !f[7].isEmpty, "left/right of \(f[4]) must be given: \(line)")
        }
        let scan = try GateScopeCLI.run(["stats", db, "--layer", "gru_after", "--format", "csv", "--full-scan"])
        #expect(scan.stdout == stats.stdout)
        // A SimpleRNN layer has h only; an LSTM gate on a GRU layer is refused in one line.
        let rnn = try GateScopeCLI.run(["stats", db, "--layer", "rnn_relu", "--format", "csv"])
        #expect(rnn.stdout.split(separator: "\n").dropFirst().allSatisfy { $0.split(separator: ",", omittingEmptySubsequences: false)[4] == "h" })
        let wrong = try GateScopeCLI.run(["stats", db, "--layer", "gru_after", "--gates", "f"])
        #expect(wrong.status != 0)
        #expect(wrong.message == "gatescope stats: no selected layer has gate f (GRU: z, r, n, h)")
    }

    /// Exporting layers of two cells together: the union of columns, empty where a cell lacks one.
    @Test func exportAcrossCells() throws {
        let caseDir = Self.dir.appendingPathComponent("bidirectional")
        let tmp = try GateScopeCLI.tempDir("mixedexport")
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let db = tmp + "/g.db"
        let rec = try GateScopeCLI.run(["record", caseDir.appendingPathComponent("model.keras").path,
                                        caseDir.appendingPathComponent("inputs.npz").path, "--db", db])
        try #require(rec.status == 0, Comment(rawValue: rec.message))
        let out = try GateScopeCLI.run(["export", db, "--layer", "lstm_top", "--layer", "bi_gru_concat:fwd", "--seq", "0", "--steps", "0", "--units", "0", "--format", "csv"])
        try #require(out.status == 0, Comment(rawValue: out.message))
        let lines = out.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "run_id,seq_id,source_id,layer,direction,step,token,unit,i,f,g,o,c,h,z,r,n")
        let cells = lines.dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        let gru = try #require(cells.first { $0[3] == "bi_gru_concat" })
        #expect(gru[8..<13].allSatisfy(\.isEmpty) && gru[13...].allSatisfy { !$0.isEmpty }, "\(gru)")
        let lstm = try #require(cells.first { $0[3] == "lstm_top" })
        #expect(lstm[8...13].allSatisfy { !$0.isEmpty } && lstm[14...].allSatisfy(\.isEmpty), "\(lstm)")
        let long = try GateScopeCLI.run(["export", db, "--layer", "lstm_top", "--layer", "bi_gru_concat:fwd", "--seq", "0", "--steps", "0", "--units", "0", "--format", "csv", "--long"])
        let gatesByLayer = Dictionary(grouping: long.stdout.split(separator: "\n").dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false) }, by: { String($0[3]) })
            .mapValues { $0.map { String($0[8]) } }
        #expect(gatesByLayer["lstm_top"] == ["i", "f", "g", "o", "c", "h"])
        #expect(gatesByLayer["bi_gru_concat"] == ["z", "r", "n", "h"])
    }
}
