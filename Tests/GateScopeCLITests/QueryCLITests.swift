import Foundation
import GateScopeEngine
import GateScopeStore
import Testing

/// The database all read-only CLI tests share (built once: the tests only read it).
enum SharedFixtureDB {
    static let dir = queryTempDir("shared")
    static let path = dir + "/fixtures.db"
    /// Runs 1-5 complete (one per fixture case), run 6 = lstm_single again, still 'running'.
    static let runs: [FixtureRun] = {
        atexit { try? FileManager.default.removeItem(atPath: SharedFixtureDB.dir) }
        var runs = try! QueryFixtureDB.build(at: path)
        let db = try! Database(path: path, mode: .readWrite)
        try! db.transaction {
            runs.append(try QueryFixtureDB.insert(case: "lstm_single", runID: 6, status: "running", into: db))
        }
        return runs
    }()
}

@Suite struct QueryCLITests {
    let db = SharedFixtureDB.path
    let runs = SharedFixtureDB.runs

    // MARK: stats

    /// stats equals the counts computed from expected.npz, on and off the summary grid.
    @Test(arguments: [(0.1, 0.9), (0.25, 0.75), (0.1234, 0.8766), (0.0, 1.0), (0.4999, 0.5)])
    func statsEqualIndependentCounts(low: Double, high: Double) throws {
        for run in runs {
            let out = try GateScopeCLI.run("stats", db, "--run", "\(run.runID)", "--low", "\(low)", "--high", "\(high)", "--format", "csv")
            #expect(out.status == 0, "\(out.stderr)")
            let (header, rows) = QueryCSV.records(out.stdout)
            #expect(header == ["run_id", "layer", "direction", "unit", "gate", "n", "left", "right", "mean", "std", "min", "max"])
            #expect(rows.count == run.layers.map { $0.units * 6 }.reduce(0, +))
            var k = 0
            for layer in run.layers {
                for unit in 0..<layer.units {
                    for gate in Gate.of(.lstm) {
                        let row = rows[k]
                        k += 1
                        let want = QueryExpect.stat(layer.values[gate]![unit], gate: gate, low: low, high: high)
                        #expect(row["layer"] == layer.name && row["direction"] == layer.direction)
                        #expect(row["unit"] == "\(unit)" && row["gate"] == gate.rawValue)
                        #expect(row["n"] == "\(want.n)")
                        if let left = want.left, let right = want.right {
                            #expect(Double(row["left"]!) == Double(left) / Double(want.n), "run \(run.runID) \(layer.name) \(unit) \(gate) left")
                            #expect(Double(row["right"]!) == Double(right) / Double(want.n), "run \(run.runID) \(layer.name) \(unit) \(gate) right")
                        } else {
                            #expect(row["left"] == "" && row["right"] == "")
                        }
                        #expect(Float(row["min"]!) == want.min)
                        #expect(Float(row["max"]!) == want.max)
                        #expect(abs(Double(row["mean"]!)! - want.mean) <= 1e-12 * max(1, abs(want.mean)))
                        #expect(abs(Double(row["std"]!)! - want.std) <= 1e-9)
                    }
                }
            }
        }
    }

    @Test func statsDefaultsToLatestCompleteRunAndSorts() throws {
        // Run 6 is still running: the default is run 5.
        let out = try GateScopeCLI.run("stats", db, "--format", "csv", "--no-header")
        #expect(out.status == 0)
        let rows = QueryCSV.parse(out.stdout)
        #expect(Set(rows.map { $0[0] }) == ["5"])

        // --gates f --sort right --top 3 over run 4, against an independent ranking.
        let top = try GateScopeCLI.run("stats", db, "--run", "4", "--gates", "f", "--sort", "right", "--top", "3", "--format", "csv")
        let got = QueryCSV.records(top.stdout).rows
        var all: [(right: Double, layer: Int, unit: Int)] = []
        for layer in runs[3].layers {
            for unit in 0..<layer.units {
                let s = QueryExpect.stat(layer.values[.f]![unit], gate: .f, low: 0.1, high: 0.9)
                all.append((Double(s.right!) / Double(s.n), layer.layerID, unit))
            }
        }
        all.sort { ($0.right, -$0.layer, -$0.unit) > ($1.right, -$1.layer, -$1.unit) }
        #expect(got.count == 3)
        for (row, want) in zip(got, all.prefix(3)) {
            #expect(row["gate"] == "f")
            #expect(Double(row["right"]!) == want.right)
            #expect(row["unit"] == "\(want.unit)" && row["layer"] == runs[3].layers[want.layer].name)
        }

        // Layer filters: a Bidirectional half, both halves, and the go_backwards layer.
        let bwd = QueryCSV.records(try GateScopeCLI.run("stats", db, "--run", "2", "--layer", "bi:bwd", "--format", "csv").stdout).rows
        #expect(bwd.count == 5 * 6 && bwd.allSatisfy { $0["layer"] == "bi" && $0["direction"] == "bwd" })
        let both = QueryCSV.records(try GateScopeCLI.run("stats", db, "--run", "2", "--layer", "bi", "--gates", "h", "--format", "csv").stdout).rows
        #expect(both.count == 10)
        let two = QueryCSV.records(try GateScopeCLI.run("stats", db, "--run", "2", "--layer", "backwards", "--layer", "bi:fwd",
                                                    "--gates", "c", "--format", "csv").stdout).rows
        #expect(two.map { $0["layer"]! + ":" + $0["direction"]! } == Array(repeating: "bi:fwd", count: 5) + Array(repeating: "backwards:bwd", count: 4))
    }

    /// A run still being recorded has no summaries: stats scans and gets the same numbers.
    @Test func statsOnRunningRunAndFullScanAgree() throws {
        let running = try GateScopeCLI.run("stats", db, "--run", "6", "--format", "csv", "--no-header")
        let complete = try GateScopeCLI.run("stats", db, "--run", "1", "--format", "csv", "--no-header")
        #expect(running.status == 0 && complete.status == 0)
        let a = QueryCSV.parse(running.stdout), b = QueryCSV.parse(complete.stdout)
        #expect(a.count == b.count)
        for (x, y) in zip(a, b) {
            #expect(Array(x[1...7]) == Array(y[1...7]))  // layer ... right
            #expect(Array(x[10...11]) == Array(y[10...11]))  // min, max
        }
        for thresholds in [["--low", "0.1", "--high", "0.9"], ["--low", "0.3333", "--high", "0.6667"]] {
            let fast = try GateScopeCLI.run(["stats", db, "--run", "5", "--format", "csv"] + thresholds)
            let scan = try GateScopeCLI.run(["stats", db, "--run", "5", "--format", "csv", "--full-scan"] + thresholds)
            let f = QueryCSV.parse(fast.stdout), s = QueryCSV.parse(scan.stdout)
            #expect(f.count == s.count && f.count > 1)
            for (x, y) in zip(f, s) {
                #expect(Array(x[0...7]) == Array(y[0...7]))
                #expect(Array(x[10...11]) == Array(y[10...11]))
            }
        }
    }

    /// hard_sigmoid gives values exactly 0 and 1: on-grid thresholds there count them right.
    @Test func statsCountExactEdgeValues() throws {
        let run = runs[4]
        let layer = run.layer("lstm_hs", "fwd")!
        let out = try GateScopeCLI.run("stats", db, "--run", "5", "--layer", "lstm_hs", "--gates", "i,f,o", "--low", "0", "--high", "1", "--format", "csv")
        let rows = QueryCSV.records(out.stdout).rows
        var exactOnes = 0, exactZeros = 0
        for row in rows {
            let gate = Gate(rawValue: row["gate"]!)!, unit = Int(row["unit"]!)!
            let values = layer.values[gate]![unit]
            exactOnes += values.filter { $0 == 1 }.count
            exactZeros += values.filter { $0 == 0 }.count
            #expect(row["left"] == "0.0" && row["right"] == "0.0")
        }
        #expect(exactOnes > 0 && exactZeros > 0)  // the fixture really has edge values
        let near = try GateScopeCLI.run("stats", db, "--run", "5", "--layer", "lstm_hs", "--gates", "f", "--low", "0.001", "--high", "0.999", "--format", "csv")
        for row in QueryCSV.records(near.stdout).rows {
            let values = layer.values[.f]![Int(row["unit"]!)!]
            #expect(Double(row["left"]!) == Double(values.filter { Double($0) < 0.001 }.count) / Double(values.count))
            #expect(Double(row["right"]!) == Double(values.filter { Double($0) > 0.999 }.count) / Double(values.count))
        }
    }

    @Test func statsTableAndJSON() throws {
        // Not a terminal: CSV by default.
        let plain = try GateScopeCLI.run("stats", db, "--run", "1", "--gates", "h", "--top", "1")
        #expect(plain.stdout.hasPrefix("run_id,layer,direction,unit,gate,n,left,right,mean,std,min,max\n1,lstm,fwd,0,h,18,"))
        let table = try GateScopeCLI.run("stats", db, "--run", "1", "--gates", "c", "--top", "2", "--format", "table")
        #expect(table.stdout == """
            run_id  layer  direction  unit  gate   n  left  right       mean       std         min       max
            ------  -----  ---------  ----  ----  --  ----  -----  ---------  --------  ----------  --------
                 1  lstm   fwd           0  c     18                0.698164  0.379965  -0.0226604   1.32561
                 1  lstm   fwd           1  c     18               -0.202167  0.476264    -1.09583  0.725264

            """)
        let s0 = QueryExpect.stat(runs[0].layers[0].values[.c]![0], gate: .c, low: 0.1, high: 0.9)
        #expect(String(format: "%.6g", s0.mean) == "0.698164" && String(format: "%.6g", s0.std) == "0.379965")

        let json = try GateScopeCLI.run("stats", db, "--run", "1", "--gates", "f,c", "--top", "2", "--format", "json")
        let objects = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [[String: Any]]
        #expect(objects.count == 2)
        #expect(objects[0]["gate"] as? String == "f" && objects[0]["n"] as? Int == 18)
        #expect(objects[1]["gate"] as? String == "c" && objects[1]["left"] is NSNull)
        let noHeader = try GateScopeCLI.run("stats", db, "--run", "1", "--gates", "f", "--top", "1", "--format", "json", "--no-header")
        let arrays = try JSONSerialization.jsonObject(with: Data(noHeader.stdout.utf8)) as! [[Any]]
        #expect(arrays.count == 1 && arrays[0].count == 12 && arrays[0][4] as? String == "f")
    }

    // MARK: runs

    @Test func runsListsEveryRun() throws {
        let out = try GateScopeCLI.run("runs", db, "--format", "csv")
        #expect(out.status == 0)
        let (header, rows) = QueryCSV.records(out.stdout)
        #expect(header == ["run_id", "name", "status", "model", "keras_version", "sequences", "steps", "rows",
                           "created_at", "finished_at", "error"])
        #expect(rows.count == runs.count)
        for (row, run) in zip(rows, runs) {
            #expect(row["run_id"] == "\(run.runID)" && row["name"] == run.caseName && row["status"] == run.status)
            #expect(row["model"] == "\(run.caseName)/model.keras")
            #expect(row["rows"] == "\(run.rows)" && row["sequences"] == "\(run.sequenceCount)")
        }
        #expect(out.stdout.hasPrefix("run_id,name,status,model,keras_version,sequences,steps,rows,created_at,finished_at,error\n1,lstm_single,complete,lstm_single/model.keras,3.15.1,3,18,144,2025-01-01T00:00:00Z,2025-01-01T00:01:00Z,\n"))
        let table = try GateScopeCLI.run("runs", db, "--format", "table", "--no-header")
        #expect(table.stdout.split(separator: "\n").count == runs.count)
        #expect(table.stdout.hasPrefix("1  lstm_single          complete  lstm_single/model.keras          3.15.1"))
    }

    // MARK: export

    /// Every value comes back bit-exact; tokens and source ids with , " CR LF survive.
    @Test func exportRoundTripsWide() throws {
        for run in runs.prefix(5) {
            let out = try GateScopeCLI.run("export", db, "--run", "\(run.runID)", "--format", "csv")
            #expect(out.status == 0, "\(out.stderr)")
            let all = QueryCSV.parse(out.stdout)
            #expect(all.first == ["run_id", "seq_id", "source_id", "layer", "direction", "step", "token", "unit", "i", "f", "g", "o", "c", "h"])
            var expected: [[String]] = []
            for seq in 0..<run.sequenceCount {
                for layer in run.layers {
                    for step in 0..<layer.time where layer.mask[seq * layer.time + step] {
                        for unit in 0..<layer.units {
                            var token = ""
                            if let texts = run.tokens[seq] {
                                token = texts[step] ?? ""
                            }
                            expected.append(["\(run.runID)", "\(seq)", run.sourceIDs[seq], layer.name, layer.direction,
                                             "\(step)", token, "\(unit)"])
                        }
                    }
                }
            }
            let rows = Array(all.dropFirst())
            #expect(rows.count == expected.count)
            for (row, want) in zip(rows, expected) {
                if want[6].isEmpty, run.tokens[Int(want[1])!] != nil {
                    // No vocab text: the token id is exported instead.
                    #expect(Int(row[6]) != nil)
                    #expect(Array(row[0..<6]) == Array(want[0..<6]) && row[7] == want[7])
                } else {
                    #expect(Array(row[0..<8]) == want)
                }
                let layer = run.layer(row[3], row[4])!
                for (k, gate) in Gate.of(.lstm).enumerated() {
                    let v = layer.value(gate, seq: Int(row[1])!, step: Int(row[5])!, unit: Int(row[7])!)
                    // SQLite keeps a REAL without fraction as an integer on disk, so -0.0 reads back as 0.0.
                    let w = v == 0 ? Float(0) : v
                    #expect(Float(row[8 + k])!.bitPattern == w.bitPattern, "\(row)")
                    #expect(row[8 + k] == w.description)
                }
            }
        }
    }

    @Test func exportFiltersAndLongForm() throws {
        let run = runs[2]  // char_embedding: tokens
        let layer = run.layers[0]
        let out = try GateScopeCLI.run("export", db, "--run", "3", "--seq", "2,0", "--units", "0-1,7", "--gates", "h,f",
                                   "--steps", "1-3", "--long", "--format", "csv")
        #expect(out.status == 0, "\(out.stderr)")
        let all = QueryCSV.parse(out.stdout)
        #expect(all[0] == ["run_id", "seq_id", "source_id", "layer", "direction", "step", "token", "unit", "gate", "value"])
        var expected: [[String]] = []
        for seq in [0, 2] {
            for step in 1...3 where layer.mask[seq * layer.time + step] {
                for unit in [0, 1, 7] {
                    for gate in [Gate.f, .h] {
                        let token = run.tokens[seq]![step] ?? ""
                        expected.append(["3", "\(seq)", run.sourceIDs[seq], "char_lstm", "fwd", "\(step)", token, "\(unit)",
                                         gate.rawValue, layer.value(gate, seq: seq, step: step, unit: unit).description])
                    }
                }
            }
        }
        let rows = Array(all.dropFirst())
        #expect(rows.count == expected.count && rows.count > 10)
        for (row, want) in zip(rows, expected) where !want[6].isEmpty { #expect(row == want) }
        #expect(rows.contains { $0[6].contains(",") } || rows.contains { $0[6].contains("\"") } || rows.contains { $0[6].contains("\n") })

        // JSON: the same values, tokens unescaped by a real JSON parser.
        let json = try GateScopeCLI.run("export", db, "--run", "3", "--seq", "0", "--gates", "g", "--format", "json")
        let objects = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [[String: Any]]
        #expect(objects.count == layer.positions.filter { $0.seq == 0 }.count * layer.units)
        for object in objects {
            let step = object["step"] as! Int, unit = object["unit"] as! Int
            #expect((object["g"] as! NSNumber).floatValue == layer.value(.g, seq: 0, step: step, unit: unit))
            if let token = run.tokens[0]![step] { #expect(object["token"] as? String == token) }
            #expect(object["source_id"] as? String == run.sourceIDs[0])
        }

        // The bidirectional run: layer order within a step follows layer_id.
        let bi = QueryCSV.parse(try GateScopeCLI.run("export", db, "--run", "2", "--seq", "1", "--layer", "bi:bwd", "--units", "4",
                                                 "--gates", "c", "--format", "csv", "--no-header").stdout)
        let bwd = runs[1].layer("bi", "bwd")!
        #expect(bi.map { $0[5] } == (0..<7).filter { bwd.mask[7 + $0] }.map(String.init))
        #expect(bi.allSatisfy { $0[4] == "bwd" && $0[7] == "4" })
    }

    @Test func exportToFileAndEmptySelection() throws {
        let dir = queryTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/out.csv"
        let out = try GateScopeCLI.run("export", db, "--run", "1", "--seq", "0", "--units", "0", "--gates", "h", "-o", file)
        #expect(out.status == 0 && out.stdout.isEmpty)
        let text = try String(contentsOfFile: file, encoding: .utf8)
        #expect(text.hasPrefix("run_id,seq_id,source_id,layer,direction,step,token,unit,h\n1,0,\"lstm_single,\"\"0\"\"\nend\",lstm,fwd,0,,0,"))
        #expect(QueryCSV.parse(text).count == 1 + 6)
        // A sequence the run does not have is an error naming the range, not an empty success.
        let none = try GateScopeCLI.run("export", db, "--run", "1", "--seq", "99", "--format", "csv")
        #expect(none.status == 1 && none.stdout.isEmpty && none.message.contains("has no sequence 99 (sequences 0-"), Comment(rawValue: none.message))
        // -o must never overwrite the database.
        let clobber = try GateScopeCLI.run("runs", db, "-o", db)
        #expect(clobber.status != 0 && clobber.message.contains("is the database itself"))
        #expect(try GateScopeCLI.run("runs", db).status == 0)
    }

    // MARK: named queries

    @Test func listShowsEveryNamedQuery() throws {
        let out = try GateScopeCLI.run("query", db, "--list", "--format", "csv")
        #expect(out.status == 0)
        let rows = QueryCSV.records(out.stdout).rows
        #expect(rows.map { $0["name"]! } == ["dead-units", "integrators", "memory-spans", "saturation", "top-tokens", "unit-correlation"])
        #expect(rows.allSatisfy { !$0["description"]!.isEmpty })
        #expect(rows.first { $0["name"] == "top-tokens" }!["parameters"]!.hasPrefix("unit (required), run=latest"))
    }

    @Test func everyNamedQueryRunsWithItsPromisedColumns() throws {
        for query in NamedQuery.builtIn {
            var args = ["query", db, query.name, "--format", "csv"]
            if query.name == "top-tokens" { args += ["-p", "run", "3", "-p", "unit", "1"] }
            let out = try GateScopeCLI.run(args)
            #expect(out.status == 0, "\(query.name): \(out.stderr)")
            let (header, rows) = QueryCSV.records(out.stdout)
            #expect(header == query.columns, "\(query.name)")
            #expect(!rows.isEmpty || query.name == "integrators" || query.name == "dead-units", "\(query.name) returned nothing")
        }
    }

    @Test func saturationQueryEqualsStats() throws {
        for (low, high) in [("0.1", "0.9"), ("0.1234", "0.8766")] {
            for run in ["2", "4", "5"] {
                let sql = try GateScopeCLI.run("query", db, "saturation", "-p", "run", run, "-p", "low", low, "-p", "high", high, "--format", "csv")
                let stats = try GateScopeCLI.run("stats", db, "--run", run, "--low", low, "--high", high, "--format", "csv")
                let a = QueryCSV.parse(sql.stdout), b = QueryCSV.parse(stats.stdout)
                #expect(a.count == b.count && a.count > 1)
                #expect(a[0] == b[0])
                for (x, y) in zip(a.dropFirst(), b.dropFirst()) {
                    #expect(Array(x[0...7]) == Array(y[0...7]))
                    #expect(Double(x[10]) == Double(Float(y[10])!) && Double(x[11]) == Double(Float(y[11])!))
                    #expect(abs(Double(x[8])! - Double(y[8])!) < 1e-12)
                    #expect(abs(Double(x[9])! - Double(y[9])!) < 1e-6)
                }
            }
        }
    }

    @Test func integratorsAndDeadUnitsMatchTheirDefinitions() throws {
        let run = runs[3]
        let out = try GateScopeCLI.run("query", db, "integrators", "-p", "run", "4", "-p", "high", "0.8", "-p", "fraction", "0.25", "--format", "csv")
        var want: [(Double, String, Int)] = []
        for layer in run.layers {
            for unit in 0..<layer.units {
                let f = layer.values[.f]![unit]
                let right = Double(f.filter { Double($0) > 0.8 }.count) / Double(f.count)
                if right > 0.25 { want.append((right, layer.name, unit)) }
            }
        }
        let rows = QueryCSV.records(out.stdout).rows
        #expect(rows.count == want.count && !want.isEmpty)
        #expect(Set(rows.map { "\($0["layer"]!)/\($0["unit"]!)/\($0["right"]!)" })
                == Set(want.map { "\($0.1)/\($0.2)/\($0.0)" }))
        #expect(rows.map { Double($0["right"]!)! } == rows.map { Double($0["right"]!)! }.sorted(by: >))

        let dead = try GateScopeCLI.run("query", db, "dead-units", "-p", "run", "4", "-p", "threshold", "0.3", "--format", "csv")
        var wantDead: Set<String> = []
        for layer in run.layers {
            for unit in 0..<layer.units where layer.values[.h]![unit].map({ abs($0) }).max()! < 0.3 {
                wantDead.insert("\(layer.name)/\(unit)")
            }
        }
        let deadRows = QueryCSV.records(dead.stdout).rows
        #expect(Set(deadRows.map { "\($0["layer"]!)/\($0["unit"]!)" }) == wantDead && !wantDead.isEmpty)
    }

    @Test func memorySpansFindsLongestRuns() throws {
        let run = runs[3]
        let out = try GateScopeCLI.run("query", db, "memory-spans", "-p", "run", "4", "-p", "layer", "encoder", "-p", "threshold", "0.5", "--format", "csv")
        let rows = QueryCSV.records(out.stdout).rows
        let layer = run.layer("encoder", "fwd")!
        var expected: [Int: (longest: Int, seq: Int, first: Int, spans: Int)] = [:]
        for unit in 0..<layer.units {
            var best: (Int, Int, Int)? = nil
            var spans = 0
            for seq in 0..<run.sequenceCount {
                var length = 0, start = 0
                for step in 0...layer.time {
                    let hit = step < layer.time && layer.mask[seq * layer.time + step]
                        && Double(layer.value(.f, seq: seq, step: step, unit: unit)) > 0.5
                    if hit {
                        if length == 0 { start = step }
                        length += 1
                    } else if length > 0 {
                        spans += 1
                        if best == nil || length > best!.0 { best = (length, seq, start) }
                        length = 0
                    }
                }
            }
            if let best { expected[unit] = (best.0, best.1, best.2, spans) }
        }
        #expect(rows.count == expected.count)
        for row in rows {
            let want = expected[Int(row["unit"]!)!]!
            #expect(row["longest"] == "\(want.longest)" && row["seq_id"] == "\(want.seq)" && row["first_step"] == "\(want.first)")
            #expect(row["last_step"] == "\(want.first + want.longest - 1)" && row["spans"] == "\(want.spans)")
        }
    }

    @Test func unitCorrelationIsPearson() throws {
        let out = try GateScopeCLI.run("query", db, "unit-correlation", "-p", "run", "2", "-p", "layer", "bi:fwd", "-p", "limit", "100", "--format", "csv")
        let rows = QueryCSV.records(out.stdout).rows
        let layer = runs[1].layer("bi", "fwd")!
        #expect(rows.count == 10)  // 5 units: 10 pairs
        for row in rows {
            let a = layer.values[.h]![Int(row["unit_a"]!)!].map(Double.init), b = layer.values[.h]![Int(row["unit_b"]!)!].map(Double.init)
            let ma = a.reduce(0, +) / Double(a.count), mb = b.reduce(0, +) / Double(b.count)
            let cov = zip(a, b).map { ($0 - ma) * ($1 - mb) }.reduce(0, +)
            let r = cov / (a.map { ($0 - ma) * ($0 - ma) }.reduce(0, +).squareRoot() * b.map { ($0 - mb) * ($0 - mb) }.reduce(0, +).squareRoot())
            #expect(abs(Double(row["r"]!)! - r) < 1e-9)
            #expect(row["direction"] == "fwd" && row["n"] == "\(a.count)")
        }
        let rs = rows.map { abs(Double($0["r"]!)!) }
        #expect(rs == rs.sorted(by: >))
    }

    @Test func topTokensCountsTokens() throws {
        let run = runs[2]
        let layer = run.layers[0]
        let out = try GateScopeCLI.run("query", db, "top-tokens", "-p", "run", "3", "-p", "unit", "3", "-p", "gate", "f", "-p", "limit", "100", "--format", "csv")
        #expect(out.status == 0, "\(out.stderr)")
        var groups: [String: [Double]] = [:]
        for (seq, step) in layer.positions {
            let token = run.tokens[seq]![step] ?? "\(QueryCLITests.tokenID(run: run, seq: seq, step: step))"
            groups[token, default: []].append(Double(layer.value(.f, seq: seq, step: step, unit: 3)))
        }
        let rows = QueryCSV.records(out.stdout).rows
        #expect(rows.count == groups.count)
        for row in rows {
            let values = groups[row["token"]!]!
            #expect(row["count"] == "\(values.count)")
            #expect(abs(Double(row["mean"]!)! - values.reduce(0, +) / Double(values.count)) < 1e-12)
            #expect(Double(row["max"]!) == values.max())
        }
        let means = rows.map { Double($0["mean"]!)! }
        #expect(means == means.sorted(by: >))
    }

    static func tokenID(run: FixtureRun, seq: Int, step: Int) -> Int64 {
        let db = try! Database(path: SharedFixtureDB.path, mode: .readOnly)
        return try! db.scalar("SELECT token_id FROM tokens WHERE run_id = ? AND seq_id = ? AND step = ?", run.runID, seq, step)!.int64Value!
    }

    @Test func userSQLFileRunsWithBoundParameters() throws {
        let dir = queryTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/mine.sql"
        try """
            -- name: mine
            -- description: units of a layer
            -- param: layer = lstm
            SELECT l.name, count(*) AS n FROM gates g JOIN layers l USING (run_id, layer_id)
            WHERE g.run_id = :run AND l.name = :layer GROUP BY l.name
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let out = try GateScopeCLI.run("query", db, file, "-p", "run", "1", "--format", "csv")
        #expect(out.status == 0, "\(out.stderr)")
        #expect(out.stdout == "name,n\nlstm,144\n")
        // A value that looks like SQL stays a value.
        let evil = try GateScopeCLI.run("query", db, file, "-p", "run", "1", "-p", "layer", "x' OR 1=1 --", "--format", "csv")
        #expect(evil.status != 0 && evil.message.contains("has no layer"))
        let missing = try GateScopeCLI.run("query", db, file)
        #expect(missing.status != 0 && missing.message == "gatescope query: SQL file '\(file)' needs parameter 'run': pass -p run VALUE")
    }

    // MARK: errors

    @Test func writesAreRefused() throws {
        let dir = queryTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let statements = [
            "DELETE FROM gates",
            "INSERT INTO runs (run_id) VALUES (99)",
            "UPDATE runs SET status = 'failed'",
            "DROP TABLE gates",
            "CREATE TABLE x (a)",
            "PRAGMA user_version = 7",
            "ATTACH DATABASE '\(dir)/other.db' AS other",
            "VACUUM",
            "WITH x AS (SELECT 1) DELETE FROM gates WHERE run_id IN (SELECT * FROM x)",
        ]
        for (k, sql) in statements.enumerated() {
            let file = dir + "/w\(k).sql"
            try sql.write(toFile: file, atomically: true, encoding: .utf8)
            let out = try GateScopeCLI.run("query", db, file)
            #expect(out.status != 0, "\(sql) was not refused")
            #expect(out.stderr.split(separator: "\n").count == 1, "\(out.stderr)")
            #expect(out.message.hasPrefix("gatescope query: "))
            #expect(out.stdout.isEmpty)
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/other.db"))
        let two = dir + "/two.sql"
        try "SELECT 1; SELECT 2;".write(toFile: two, atomically: true, encoding: .utf8)
        let out = try GateScopeCLI.run("query", db, two)
        #expect(out.status != 0 && out.message.contains("more than one SQL statement"))
        let db2 = try Database(path: db, mode: .readOnly)
        #expect(try db2.scalar("SELECT count(*) FROM runs")?.int64Value == Int64(runs.count))
        #expect(try db2.userVersion() == Schema.currentVersion)
    }

    /// Bad calls: one clear line on stderr, non-zero exit (usage errors too: no usage dump).
    @Test(arguments: [
        (["stats", "/nonexistent/x.db"], "gatescope stats: no database at '/nonexistent/x.db'"),
        (["runs", "/nonexistent/x.db"], "gatescope runs: no database at '/nonexistent/x.db'"),
        (["export", "/nonexistent/x.db"], "gatescope export: no database at '/nonexistent/x.db'"),
        (["query", "/nonexistent/x.db", "saturation"], "gatescope query: no database at '/nonexistent/x.db'"),
        (["stats", "DB", "--run", "42"], "gatescope stats: no run 42 in 'DB' (runs: 1-6)"),
        (["export", "DB", "--run", "42"], "gatescope export: no run 42 in 'DB' (runs: 1-6)"),
        (["query", "DB", "saturation", "-p", "run", "42"], "gatescope query: no run 42 in 'DB' (runs: 1-6)"),
        (["stats", "DB", "--run", "2", "--layer", "nope"], "gatescope stats: run 2 has no layer 'nope' (layers: bi:fwd, bi:bwd, backwards:bwd)"),
        (["stats", "DB", "--run", "2", "--layer", "backwards:fwd"], "gatescope stats: run 2 has no layer 'backwards:fwd' (layers: bi:fwd, bi:bwd, backwards:bwd)"),
        (["export", "DB", "--run", "1", "--layer", "x"], "gatescope export: run 1 has no layer 'x' (layers: lstm:fwd)"),
        (["query", "DB", "integrators", "-p", "layer", "x"], "gatescope query: run 5 has no layer 'x' (layers: lstm_hs:fwd, lstm_last:fwd)"),
        (["query", "DB", "nope"], "gatescope query: unknown query 'nope' (named queries: dead-units, integrators, memory-spans, saturation, top-tokens, unit-correlation; or give a FILE.sql)"),
        (["query", "DB", "missing.sql"], "gatescope query: no SQL file 'missing.sql'"),
        (["query", "DB", "top-tokens"], "gatescope query: query 'top-tokens' needs parameter 'unit' (unit index (required)): pass -p unit VALUE"),
        (["query", "DB", "integrators", "-p", "high", "abc"], "gatescope query: query 'integrators': parameter 'high' takes a number, got 'abc'"),
        (["query", "DB", "top-tokens", "-p", "unit", "x"], "gatescope query: query 'top-tokens': parameter 'unit' takes an integer, got 'x'"),
        (["query", "DB", "top-tokens", "-p", "unit", "1", "-p", "gate", "x"], "gatescope query: query 'top-tokens': 'x' is not a valid gate; use one of i, f, g, o, c, h, z, r, n"),
        (["query", "DB", "saturation", "-p", "bogus", "1"], "gatescope query: query 'saturation' has no parameter 'bogus' (parameters: run, layer, direction, low, high)"),
        (["query", "DB", "saturation", "-p", "run", "two"], "gatescope query: query 'saturation': run must be a run id or 'latest', not 'two'"),
        (["stats", "DB", "--low", "2"], "Error: --low must be a number between 0 and 1, e.g. --low 0.1"),
        (["stats", "DB", "--top", "0"], "Error: --top must be 1 or more, e.g. --top 10"),
        (["stats", "DB", "--gates", "i,x"], "Error: The value 'i,x' is invalid for '--gates <gates>': unknown gate 'x': use a comma-separated list of i, f, g, o, c, h, z, r, n (LSTM: i, f, g, o, c, h; GRU: z, r, n, h; SimpleRNN: h)"),
        (["stats", "DB", "--sort", "up"], "Error: The value 'up' is invalid for '--sort <sort>'. Please provide one of 'right', 'left', 'unit' or 'mean'."),
        (["stats", "DB", "--bogus"], "Error: Unknown option '--bogus'"),
        (["export", "DB", "--units", "3-1"], "Error: The value '3-1' is invalid for '--units <units>': bad unit range '3-1': the first number must not exceed the second"),
        (["export", "DB", "--steps", "a"], "Error: The value 'a' is invalid for '--steps <steps>': bad step list 'a': use numbers >= 0 and ranges like 0-7,12"),
        (["export", "DB", "--layer", "bi:up"], "Error: The value 'bi:up' is invalid for '--layer <layer>': unknown direction 'up' in 'bi:up': use NAME, NAME:fwd or NAME:bwd"),
        (["query", "DB"], "Error: name a query (see gatescope query DB --list) or give a FILE.sql"),
        (["query", "DB", "saturation", "-p", "low"], "Error: -p low has no value: write -p low VALUE (or -p low=VALUE when VALUE starts with '-')"),
        (["stats", "DB", "--format", "xml"], "Error: The value 'xml' is invalid for '--format <format>'. Please provide one of 'table', 'csv' or 'json'."),
    ] as [([String], String)])
    func badCallsGiveOneClearLine(args: [String], message: String) throws {
        let args = args.map { $0 == "DB" ? db : $0 }
        let message = message.replacingOccurrences(of: "'DB'", with: "'\(db)'").replacingOccurrences(of: "query DB", with: "query \(db)")
        let out = try GateScopeCLI.run(args)
        #expect(out.status != 0)
        #expect(out.stdout.isEmpty)
        let first = out.stderr.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
        #expect(first == message.replacingOccurrences(of: "Error: ", with: "gatescope \(args[0]): "))
        #expect(out.stderr.split(separator: "\n").count == 1)
    }

    /// low < high, and negative numbers get a message about the value; usage errors exit 2.
    @Test(arguments: [
        (["stats", "DB", "--low", "0.9", "--high", "0.1"], "gatescope stats: --low must be below --high, got 0.9 and 0.1, e.g. --low 0.1 --high 0.9"),
        (["stats", "DB", "--low", "0.5", "--high", "0.5"], "gatescope stats: --low must be below --high, got 0.5 and 0.5, e.g. --low 0.1 --high 0.9"),
        (["stats", "DB", "--top", "-3"], "gatescope stats: --top must be 1 or more, e.g. --top 10"),
        (["export", "DB", "--seq", "-1"], "gatescope export: The value '-1' is invalid for '--seq <seq>': bad sequence list '-1': use numbers >= 0 and ranges like 0-7,12"),
        (["record", "m.keras", "x.npy", "--db", "DB", "--batch-size", "-1"], "gatescope record: --batch-size must be at least 1, got -1"),
    ])
    func usageErrorsExit2(args: [String], message: String) throws {
        let out = try GateScopeCLI.run(args.map { $0 == "DB" ? db : $0 })
        #expect(out.status == 2)
        #expect(out.message == message)
    }

    /// A filter that selects nothing the run has is an error naming the valid range, not an empty
    /// export with exit 0.
    @Test(arguments: [(["--seq", "99999"], "has no sequence 99999 (sequences 0-"),
                      (["--units", "99999"], "has no unit 99999 in "),
                      (["--steps", "99990-99999"], "has no step 99990-99999 (its longest sequence has steps 0-")])
    func emptyFiltersAreErrors(args: [String], fragment: String) throws {
        let out = try GateScopeCLI.run(["export", db] + args)
        #expect(out.status == 1)
        #expect(out.stdout.isEmpty)
        #expect(out.message.hasPrefix("gatescope export: run ") && out.message.contains(fragment), Comment(rawValue: out.message))
    }

    /// `query -p unit` beyond the run's units is the same error as export's `--units`.
    @Test func queryUnitOutOfRangeIsAnError() throws {
        let out = try GateScopeCLI.run(["query", db, "top-tokens", "-p", "unit", "99999"])
        #expect(out.status == 1 && out.stdout.isEmpty)
        #expect(out.message.hasPrefix("gatescope query: run ") && out.message.contains("has no unit 99999 in ") && out.message.contains("(units 0-"),
                Comment(rawValue: out.message))
        let negative = try GateScopeCLI.run(["query", db, "top-tokens", "-p", "unit=-1"])
        #expect(negative.status == 1 && negative.message.contains("has no unit -1 in "), Comment(rawValue: negative.message))
        let ok = try GateScopeCLI.run(["query", db, "top-tokens", "-p", "unit", "0", "--format", "csv"])
        #expect(ok.status == 0, Comment(rawValue: ok.message))
    }

    @Test func notADatabase() throws {
        let dir = queryTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "hello".write(toFile: dir + "/text.db", atomically: true, encoding: .utf8)
        let text = try GateScopeCLI.run("stats", dir + "/text.db")
        #expect(text.status != 0 && text.stderr.split(separator: "\n").count == 1)
        #expect(text.message.contains("file is not a database"))
        _ = FileManager.default.createFile(atPath: dir + "/empty.db", contents: nil)
        let empty = try GateScopeCLI.run("runs", dir + "/empty.db")
        #expect(empty.status != 0 && empty.message == "gatescope runs: '\(dir)/empty.db' is not a GateScope database (it is empty); create one with `gatescope record`")
        let fresh = dir + "/fresh.db"
        _ = try QueryFixtureDB.build(at: fresh, cases: [])
        let none = try GateScopeCLI.run("stats", fresh)
        #expect(none.status != 0 && none.message == "gatescope stats: '\(fresh)' has no runs yet; record one with `gatescope record`")
        #expect(try GateScopeCLI.run("runs", fresh, "--format", "csv").stdout == "run_id,name,status,model,keras_version,sequences,steps,rows,created_at,finished_at,error\n")
    }

    // MARK: reading during a recording

    /// Readers see committed rows only, while a writer holds an open transaction (WAL).
    @Test func readsWhileAWriterIsRecording() throws {
        let dir = queryTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/live.db"
        _ = try QueryFixtureDB.build(at: path, cases: ["lstm_single"], running: ["lstm_single"])
        let writer = try Database(path: path, mode: .readWrite)
        try writer.begin()
        try writer.run("INSERT INTO sequences VALUES (1, 3, 1, 'new')")
        try writer.run("INSERT INTO gates VALUES (1, 3, 0, 0, 0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5)")
        try writer.run("UPDATE runs SET row_count = row_count + 1 WHERE run_id = 1")

        let stats = try GateScopeCLI.run("stats", path, "--run", "1", "--gates", "h", "--top", "1", "--format", "csv", "--no-header")
        #expect(stats.status == 0, "\(stats.stderr)")
        #expect(QueryCSV.parse(stats.stdout)[0][5] == "18")
        let runs = try GateScopeCLI.run("runs", path, "--format", "csv", "--no-header")
        #expect(QueryCSV.parse(runs.stdout)[0][7] == "144")
        // Sequence 3 is not committed yet: the reader sees only whole sequences, and says which.
        let export = try GateScopeCLI.run("export", path, "--run", "1", "--seq", "3", "--format", "csv", "--no-header")
        #expect(export.status == 1 && export.stdout.isEmpty && export.message.contains("has no sequence 3"), Comment(rawValue: export.message))

        try writer.commit()
        let after = try GateScopeCLI.run("stats", path, "--run", "1", "--gates", "h", "--top", "1", "--format", "csv", "--no-header")
        #expect(QueryCSV.parse(after.stdout)[0][5] == "19")
        let exported = try GateScopeCLI.run("export", path, "--run", "1", "--seq", "3", "--format", "csv", "--no-header")
        #expect(exported.stdout == "1,3,new,lstm,fwd,0,,0,0.5,0.5,0.5,0.5,0.5,0.5\n")
    }

    // MARK: help

    @Test(arguments: ["runs", "stats", "export", "query"])
    func helpHasAbstractAndExample(command: String) throws {
        let out = try GateScopeCLI.run(command, "--help")
        #expect(out.status == 0)
        let lines = out.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("OVERVIEW: ") == true)
        #expect(lines.contains { $0.trimmingCharacters(in: .whitespaces).hasPrefix("gatescope \(command) ") })
        #expect(out.stdout.contains("Examples:"))
        for flag in ["--format <format>", "--no-header", "-o, --output <file>"] { #expect(out.stdout.contains(flag)) }
    }
}
