// swift-tools-version:6.0
import PackageDescription

// Targets, one job each (see README "Architecture"):
//   CSQLite, CHDF5, CBLAS   system libraries from apt (sqlite3, libhdf5, OpenBLAS)
//   CSQLiteChecksum         page checksums for SQLite (a VFS shim), so damaged pages are never read
//   CKernels                AVX-512 / AVX2 kernels of the engine (packed weights, LSTM steps, thread team)
//   CSummaries              the recorder's per-value loops (unit summaries, spans, pair products, batch buffer)
//   CMalloc                 the executables' allocator policy (freed buffers reused, not fresh pages each batch)
//   GateScopeEngine         Keras-exact forward pass, gate observer; no I/O, no storage
//   GateScopeKeras          .keras / legacy .h5 import into engine models
//   GateScopeONNX           .onnx import into the same engine graph (protobuf code generated, committed)
//   GateScopeTorch          PyTorch state dicts (.pt via a restricted unpickler, .safetensors): nn.LSTM/GRU/RNN
//   GateScopeInput          sequence readers (.npy .npz .jsonl .csv .txt) and .npy writer
//   GateScopeStore          storage: SQLite wrapper, schema and migrations, the run writer, readers
//                           (stats, export, named queries, plot data) and merge; DatabaseError is SQLite's
//   GateScopeRecording      the recording pipeline (reading, batching, engine and writer threads, resume,
//                           shards); no SQL: it stores through GateScopeStore's RunWriter
//   GateScopeFormat         table / CSV / JSON output of result rows, for the CLI
//   GateScopePlot           SVG rendering of plot data (no storage)
//   gatescope               thin CLI: parse arguments, call one library function, format
let package = Package(
    name: "GateScope",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "gatescope", targets: ["gatescope"]),
        .library(name: "GateScopeEngine", targets: ["GateScopeEngine"]),
        .library(name: "GateScopeKeras", targets: ["GateScopeKeras"]),
        .library(name: "GateScopeStore", targets: ["GateScopeStore"]),
        .library(name: "GateScopeRecording", targets: ["GateScopeRecording"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.19"),
        .package(url: "https://github.com/yaslab/CSV.swift", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),

        // Page checksums in SQLite's reserve bytes, verified on every read (a VFS shim over the default one).
        .target(name: "CSQLiteChecksum", dependencies: ["CSQLite"]),
        .target(name: "CMalloc"),
        // AVX-512 matrix kernel for packed weights (runtime-dispatched; OpenBLAS otherwise).
        .target(name: "CKernels"),
        // The recorder's exact per-value loops: summaries, spans, pair moments, batch buffer (plain C).
        .target(name: "CSummaries"),
        // SHA-256 blocks for file fingerprints: the x86 SHA extensions, or portable C.
        .target(name: "CDigest"),
        .target(name: "GateScopeEngine", dependencies: ["CBLAS", "CKernels"]),
        .target(name: "GateScopeKeras", dependencies: [
            "GateScopeEngine", "GateScopeInput", "CHDF5",
            .product(name: "ZIPFoundation", package: "ZIPFoundation"),
        ]),
        .target(name: "GateScopeONNX", dependencies: [
            "GateScopeEngine", "GateScopeInput", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], exclude: ["Proto/onnx_subset.proto"]),
        .target(name: "GateScopeTorch", dependencies: [
            "GateScopeEngine", "GateScopeInput", .product(name: "ZIPFoundation", package: "ZIPFoundation"),
        ]),
        .target(name: "GateScopeInput", dependencies: [
            .product(name: "ZIPFoundation", package: "ZIPFoundation"),
            .product(name: "CSV", package: "CSV.swift"),
        ]),
        .target(
            name: "GateScopeStore",
            dependencies: ["GateScopeEngine", "GateScopeInput", "CSQLite", "CSQLiteChecksum", "CSummaries", "CDigest"],
            plugins: ["EmbedSQLPlugin"]
        ),
        .target(name: "GateScopeRecording", dependencies: ["GateScopeEngine", "GateScopeInput", "GateScopeStore", "CSummaries"]),
        .target(name: "GateScopeFormat", dependencies: ["GateScopeStore", .product(name: "CSV", package: "CSV.swift")]),
        .target(name: "GateScopePlot"),
        .executableTarget(name: "gatescope", dependencies: [
            "GateScopeEngine", "GateScopeKeras", "GateScopeONNX", "GateScopeTorch", "GateScopeInput", "GateScopeStore",
            "GateScopeRecording", "GateScopeFormat", "GateScopePlot", "CMalloc",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // libFuzzer harnesses of every file reader (scripts/fuzz.sh); an ordinary build replays files.
        .executableTarget(name: "GateScopeFuzz", dependencies: [
            "GateScopeInput", "GateScopeKeras", "GateScopeONNX", "GateScopeTorch", "CHDF5",
            .product(name: "ZIPFoundation", package: "ZIPFoundation"),
        ]),

        // Engine throughput benchmark (scripts/bench_engine.sh); prints figures, not a test.
        .executableTarget(name: "GateScopeBench", dependencies: ["GateScopeEngine", "GateScopeKeras", "GateScopeInput", "CMalloc"]),

        // Build-time embedding of schema/*.sql and queries/*.sql into GateScopeStore, so the
        // binary finds them wherever it is run from.
        .executableTarget(name: "EmbedSQL", path: "Sources/EmbedSQL"),
        .plugin(name: "EmbedSQLPlugin", capability: .buildTool(), dependencies: ["EmbedSQL"]),

        .testTarget(name: "GateScopeEngineTests", dependencies: ["GateScopeEngine", "CKernels"]),
        .testTarget(name: "GateScopeKerasTests", dependencies: ["GateScopeKeras", "GateScopeEngine", "GateScopeInput"],
                    path: "Tests/GateScopeKerasTests"),
        .testTarget(name: "GateScopeInputTests", dependencies: ["GateScopeInput"]),
        .testTarget(name: "GateScopeStoreTests", dependencies: ["GateScopeStore", "CSummaries", "CBLAS", "GateScopeRecording", "GateScopeFormat", "GateScopeKeras", "GateScopeInput"]),
        .testTarget(name: "GateScopePlotTests", dependencies: ["GateScopePlot"]),
        .testTarget(name: "GateScopeCLITests", dependencies: ["gatescope"]),
    ],
    swiftLanguageModes: [.v5]
)
