import Foundation
import GateScopeEngine
import GateScopeKeras
import Testing

/// Graph fixtures (Tests/Fixtures/graph): several inputs and outputs, shared layers, states between
/// layers, Conv1D, pooling, merges, attention, GRU and SimpleRNN, made by scripts/make_graph_fixtures.py.
enum GraphFixtures {
    static let dir = Fixtures.packageRoot.appendingPathComponent("Tests/Fixtures/graph")

    static let modelCases: [GraphCase] = Fixtures.caseNames(in: dir).flatMap { name in
        ["model.keras", "model.h5"].compactMap { file in
            FileManager.default.fileExists(atPath: dir.appendingPathComponent("\(name)/\(file)").path)
                ? GraphCase(caseName: name, file: file) : nil
        }
    }
}

/// One model file of one graph fixture case.
struct GraphCase: Sendable, CustomStringConvertible {
    let caseName: String
    let file: String
    var description: String { "\(caseName)/\(file)" }
    var dir: URL { GraphFixtures.dir.appendingPathComponent(caseName) }
    var modelPath: String { dir.appendingPathComponent(file).path }
}

/// Keeps every reported plane of every step: (recurrent layer, sequence, step) -> planes.
final class PlaneObserver: GateObserver {
    struct Key: Hashable { let layer: Int, sequence: Int, step: Int }
    var rows: [Key: [[Float]]] = [:]
    var duplicates = 0

    func observe(_ s: GateStep) throws {
        for b in 0..<s.batchSize where s.active[b] {
            let key = Key(layer: s.layer, sequence: b, step: s.step)
            let r = (b * s.units)..<((b + 1) * s.units)
            if rows[key] != nil { duplicates += 1 }
            rows[key] = s.planes.map { Array($0[r]) }
        }
    }
}

/// The model's inputs from inputs.npz, keyed by input name.
func graphInputs(_ model: Model, _ c: GraphCase) throws -> [Tensor] {
    let arrays = try TestNPZ.read(path: c.dir.appendingPathComponent("inputs.npz").path)
    return try model.graph.inputs.map { input in
        let a = try #require(arrays[input.name], "\(c): inputs.npz has no array '\(input.name)' (has \(arrays.keys.sorted()))")
        let info = model.graph.tensors[input.tensor]
        return Tensor(shape: a.shape, values: a.values.map { Float($0) }, dtype: info.dtype)
    }
}

@Suite("Keras graph fixtures: predict and every gate match Keras")
struct GraphParityTests {
    @Test("graph fixture cases are present")
    func present() {
        #expect(GraphFixtures.modelCases.count >= 10, "expected graph fixtures under \(GraphFixtures.dir.path)")
    }

    @Test("outputs and gates match expected.npz", arguments: GraphFixtures.modelCases)
    func matches(_ c: GraphCase) throws {
        let model = try KerasModelLoader.load(path: c.modelPath)
        let expected = try TestNPZ.read(path: c.dir.appendingPathComponent("expected.npz").path)
        let meta = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: c.dir.appendingPathComponent("meta.json"))) as? [String: Any])
        let observer = PlaneObserver()
        let outputs = try model.run(try graphInputs(model, c), observer: observer, threads: 1)
        var report: [String] = []

        let names = try #require(meta["outputs"] as? [String])
        #expect(model.graph.outputs.map(\.name) == names, "\(c): output names")
        for (output, y) in zip(model.graph.outputs, outputs) {
            let want = try #require(expected["y__\(output.name)"], "\(c): no y__\(output.name)")
            #expect(y.shape == want.shape, "\(c): \(output.name) shape \(y.shape) vs Keras \(want.shape)")
            guard y.shape == want.shape else { continue }
            var cmp = Comparison()
            var worst = 0
            for (k, (a, b)) in zip(y.values, want.values).enumerated() {
                let before = cmp.worstRatio
                cmp.add(a, b)
                if cmp.worstRatio > before { worst = k }
            }
            report.append("\(output.name) \(String(format: "%.1e", cmp.maxAbs))")
            #expect(cmp.ok, "\(c): output \(output.name) differs: max |diff| \(cmp.maxAbs) at flat index \(worst) (got \(y.values[worst]), Keras \(want.values[worst]))")
        }

        let calls = try #require(meta["recurrent"] as? [[String: Any]])
        #expect(model.recurrentLayers.count == calls.count, "\(c): \(model.recurrentLayers.map { "\($0.name):\($0.direction)" }) vs meta \(calls.count)")
        for m in calls {
            let name = try #require(m["call"] as? String), dir = try #require(m["direction"] as? String)
            let info = try #require(model.recurrentLayers.first { $0.name == name && $0.direction.rawValue == dir },
                                    "\(c): no recurrent half \(name):\(dir) in \(model.recurrentLayers.map { "\($0.name):\($0.direction)" })")
            #expect(info.cell.rawValue == m["cell"] as? String, "\(c): \(name) cell")
            if let from = m["time_from"] as? String { #expect(info.time?.input == from, "\(c): \(name) time axis from \(String(describing: info.time))") }
            if let aligned = m["aligned"] as? Bool { #expect((info.time?.aligned ?? false) == aligned, "\(c): \(name) aligned") }
            for (q, plane) in info.cell.planes.enumerated() {
                let exp = try #require(expected["gates__\(name)__\(dir)__\(plane)"], "\(c): no gates__\(name)__\(dir)__\(plane)")
                let (batch, time, units) = (exp.shape[0], exp.shape[1], exp.shape[2])
                var cmp = Comparison()
                var missing = 0, unexpected = 0
                var worstAt = ""
                for b in 0..<batch {
                    for t in 0..<time {
                        let base = (b * time + t) * units
                        let row = observer.rows[.init(layer: info.index, sequence: b, step: t)]
                        if exp.values[base].isNaN { if row != nil { unexpected += 1 }; continue }
                        guard let row else { missing += 1; continue }
                        for j in 0..<units {
                            let before = cmp.worstRatio
                            cmp.add(row[q][j], exp.values[base + j])
                            if cmp.worstRatio > before { worstAt = "seq \(b) step \(t) unit \(j): \(row[q][j]) vs \(exp.values[base + j])" }
                        }
                    }
                }
                #expect(missing == 0, "\(c): \(name):\(dir): \(missing) unmasked steps not reported")
                #expect(unexpected == 0, "\(c): \(name):\(dir): \(unexpected) masked steps reported")
                #expect(cmp.ok, "\(c): \(name):\(dir) \(plane): max |diff| \(cmp.maxAbs), worst at \(worstAt)")
                report.append("\(name):\(dir):\(plane) \(String(format: "%.1e", cmp.maxAbs))")
            }
        }
        #expect(observer.duplicates == 0)
        print("[\(c)] " + report.joined(separator: " "))
    }

    /// `Model.observe` (what a recording runs) reports every gate of every step bit for bit as the
    /// whole graph does, for all recurrent halves and for each alone, and skips the nodes that
    /// come after the last recurrent node it needs (heads), which nothing recurrent can read.
    @Test("observe runs only what the recorded layers need, with the same gates", arguments: GraphFixtures.modelCases.filter { $0.file == "model.keras" })
    func observeSkipsHeads(_ c: GraphCase) throws {
        let model = try KerasModelLoader.load(path: c.modelPath)
        let inputs = try graphInputs(model, c)
        let full = PlaneObserver()
        _ = try model.run(inputs, observer: full, threads: 1)
        let all = Set(model.recurrentLayers.indices)
        var layerSets = [all]
        if all.count > 1 { layerSets += all.sorted().map { [$0] } }
        for layers in layerSets {
            let part = PlaneObserver()
            try model.observe(inputs, layers: layers, observer: part, threads: 1)
            let wanted = full.rows.filter { layers.contains($0.key.layer) }
            #expect(!wanted.isEmpty, "\(c): layers \(layers.sorted()) reported nothing in the full run")
            for (key, planes) in wanted {
                #expect(part.rows[key] == planes, "\(c): layers \(layers.sorted()), layer \(key.layer) seq \(key.sequence) step \(key.step)")
            }
            // Nodes are in topological order: the last one needed is the last recorded layer's.
            let needed = model.nodesFeeding(layers)
            let lastLayerNode = model.graph.nodes.lastIndex { n in
                n.recurrentBase >= 0 && (n.recurrentBase..<n.recurrentBase + n.op.recurrentHalves.count).contains { layers.contains($0) }
            }
            #expect(needed.max() == lastLayerNode, "\(c): layers \(layers.sorted()): last node run \(needed.max() ?? -1), last recorded \(lastLayerNode ?? -1)")
        }
    }
}
