import Foundation
import Testing

/// The read commands on runs with GRU and SimpleRNN layers: named queries read each cell's own
/// gates (integrators and memory-spans the memory gate, LSTM f or GRU z; dead-units and
/// unit-correlation h of every cell), and the plots draw z, r, n, h.
@Suite struct CellCLITests {
    static let graph = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/graph")

    /// Records a graph fixture into a fresh database; returns its path (the caller removes `dir`).
    static func record(_ name: String, in dir: String) throws -> String {
        let db = dir + "/g.db"
        let out = try GateScopeCLI.run(["record", graph.appendingPathComponent("\(name)/model.keras").path,
                                        graph.appendingPathComponent("\(name)/inputs.npz").path, "--db", db])
        try #require(out.status == 0, Comment(rawValue: out.message))
        return db
    }

    static func rows(_ csv: String) -> [[String]] {
        csv.split(separator: "\n").dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
    }

    @Test func queriesReadEachCellsGates() throws {
        let dir = try GateScopeCLI.tempDir("cellqueries")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = try Self.record("gru_simple", in: dir)  // GRU 5 + GRU 4 (bwd), SimpleRNN 4 + 3 (bwd)

        // z > 0 on every step: every GRU unit is an "integrator" at high 0; no SimpleRNN unit is.
        let integrators = try GateScopeCLI.run(["query", db, "integrators", "-p", "high", "0", "-p", "fraction", "0", "--format", "csv"])
        try #require(integrators.status == 0, Comment(rawValue: integrators.message))
        #expect(integrators.stdout.hasPrefix("run_id,layer,direction,unit,gate,n,right,mean,min\n"))
        let ir = Self.rows(integrators.stdout)
        #expect(ir.count == 9)
        #expect(ir.allSatisfy { $0[4] == "z" && ["gru_after", "gru_before_back"].contains($0[1]) && $0[6] == "1.0" })

        // h of every cell: all 16 units are below |h| 100.
        let dead = try GateScopeCLI.run(["query", db, "dead-units", "-p", "threshold", "100", "--format", "csv"])
        #expect(Self.rows(dead.stdout).count == 5 + 4 + 4 + 3)
        #expect(Set(Self.rows(dead.stdout).map { $0[1] }) == ["gru_after", "gru_before_back", "rnn_relu", "rnn_tanh_back"])

        let spans = try GateScopeCLI.run(["query", db, "memory-spans", "-p", "threshold", "0", "--format", "csv"])
        try #require(spans.status == 0, Comment(rawValue: spans.message))
        #expect(Set(Self.rows(spans.stdout).map { $0[1] }) == ["gru_after", "gru_before_back"])

        let corr = try GateScopeCLI.run(["query", db, "unit-correlation", "-p", "layer", "rnn_relu", "-p", "limit", "100", "--format", "csv"])
        #expect(Self.rows(corr.stdout).count == 4 * 3 / 2)

        // saturation.sql gives each layer its own cell's gates, in the stats order, with the same counts.
        let sat = try GateScopeCLI.run(["query", db, "saturation", "-p", "layer", "gru_after", "--format", "csv"])
        let stats = try GateScopeCLI.run(["stats", db, "--layer", "gru_after", "--format", "csv"])
        let satRows = Self.rows(sat.stdout), statRows = Self.rows(stats.stdout)
        #expect(satRows.map { $0[4] } == statRows.map { $0[4] })
        #expect(Array(satRows.map { $0[4] }.prefix(4)) == ["z", "r", "n", "h"])
        for (a, b) in zip(satRows, statRows) {
            #expect(a[5] == b[5], "n of \(a[3]) \(a[4])")
            for k in [6, 7] where !b[k].isEmpty {
                #expect(abs(Double(a[k])! - Double(b[k])!) < 1e-12, "\(a[4]) column \(k): \(a[k]) vs \(b[k])")
            }
        }
    }

    @Test func topTokensOfAGRUGate() throws {
        let dir = try GateScopeCLI.tempDir("celltokens")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = try Self.record("sequential_masked", in: dir)  // Embedding(mask_zero) -> Bidirectional(LSTM) -> GRU
        let out = try GateScopeCLI.run(["query", db, "top-tokens", "-p", "unit", "0", "-p", "layer", "gru", "-p", "gate", "z", "--format", "csv"])
        try #require(out.status == 0, Comment(rawValue: out.message))
        let rows = Self.rows(out.stdout)
        #expect(!rows.isEmpty && rows.allSatisfy { $0[1] == "gru" })
        // An LSTM-only gate on the GRU layer gives nothing; on the LSTM it does.
        #expect(Self.rows(try GateScopeCLI.run(["query", db, "top-tokens", "-p", "unit", "0", "-p", "layer", "gru", "-p", "gate", "f", "--format", "csv"]).stdout).isEmpty)
        #expect(!Self.rows(try GateScopeCLI.run(["query", db, "top-tokens", "-p", "unit", "0", "-p", "layer", "bi", "-p", "gate", "f", "--format", "csv"]).stdout).isEmpty)
    }

    @Test func plotsDrawGRUGates() throws {
        let dir = try GateScopeCLI.tempDir("cellplots")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = try Self.record("gru_simple", in: dir)
        let sat = try GateScopeCLI.run(["plot", "saturation", db, "-o", dir + "/sat.svg"])
        try #require(sat.status == 0, Comment(rawValue: sat.message))
        let satSVG = try String(contentsOfFile: dir + "/sat.svg", encoding: .utf8)
        #expect(satSVG.contains("data-gate=\"z\"") && satSVG.contains("data-gate=\"r\"") && !satSVG.contains("data-gate=\"f\""))

        let unit = try GateScopeCLI.run(["plot", "unit", db, "--seq", "0", "--layer", "gru_after", "--unit", "1", "-o", dir + "/unit.svg"])
        try #require(unit.status == 0, Comment(rawValue: unit.message))
        let unitSVG = try String(contentsOfFile: dir + "/unit.svg", encoding: .utf8)
        for g in ["z", "r", "n", "h"] { #expect(unitSVG.contains("class=\"series\" data-gate=\"\(g)\""), "no \(g) series") }

        let heat = try GateScopeCLI.run(["plot", "heatmap", db, "--seq", "0", "--layer", "gru_after", "--gate", "z", "-o", dir + "/heat.svg"])
        #expect(heat.status == 0, Comment(rawValue: heat.message))
        let wrong = try GateScopeCLI.run(["plot", "heatmap", db, "--seq", "0", "--layer", "gru_after", "--gate", "f", "-o", dir + "/x.svg"])
        #expect(wrong.status == 1)
        #expect(wrong.message == "gatescope plot heatmap: layer 'gru_after:fwd' is a GRU, which has no gate f (its gates: z, r, n, h)")
    }
}
