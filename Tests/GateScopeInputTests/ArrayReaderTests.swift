import Foundation
import Testing
@testable import GateScopeInput

@Suite struct NPYSequenceTests {
    @Test func float64ThreeDIsBatchTimeFeatures() throws {
        let reader = try InputFormat.open(path: fixture("f8_3d.npy"))
        #expect(reader.featureDim == 2)
        #expect(reader.totalCount == 2)
        let seqs = try readAll(reader)
        #expect(seqs.count == 2)
        #expect(seqs.map(\.index) == [0, 1])
        #expect(seqs.map(\.length) == [3, 3])
        #expect(seqs.allSatisfy { $0.sourceID == nil })
        #expect(features(seqs[1]) == (6..<12).map { Float($0) / 4 - 1 })
        #expect(try reader.next() == nil)
    }

    @Test func twoDFloatIsOneSequence() throws {
        let reader = try InputFormat.open(path: fixture("f4_2d.npy"))
        #expect(reader.featureDim == 3)
        let seqs = try readAll(reader)
        #expect(seqs.count == 1)
        #expect(seqs[0].length == 4)
        #expect(seqs[0].values == .features((0..<12).map { Float($0) / 2 }, featureDim: 3))
    }

    @Test func integerArraysAreTokenIDs() throws {
        let reader = try InputFormat.open(path: fixture("i8_tokens.npy"))
        #expect(reader.featureDim == nil && reader.isTokens)
        let seqs = try readAll(reader)
        #expect(seqs.map(tokens) == [[1, 2, 3, 0], [4, 5, 0, 0]])
        // Full time steps: padding inside is the model's mask's business.
        #expect(seqs.map(\.length) == [4, 4])
        #expect(try readAll(InputFormat.open(path: fixture("u1.npy"))).map(tokens) == [[0, 255]])
    }

    @Test func nanAndInfinityAreRefusedNamingSequenceStepAndFeature() throws {
        let dir = try TempDir()
        var values = [Float](repeating: 0.5, count: 3 * 4 * 2)
        values[(1 * 4 + 2) * 2 + 1] = .nan
        try NPY.write(floats: values, shape: [3, 4, 2], to: dir.path("nan.npy"))
        let reader = try InputFormat.open(path: dir.path("nan.npy"))
        #expect(try reader.next()?.index == 0)
        let text = errorText { try reader.next() }
        #expect(text == "\(dir.path("nan.npy")): sequence 1, step 2: NaN in feature 1", "\(text)")

        values[(1 * 4 + 2) * 2 + 1] = 0
        values[(2 * 4 + 3) * 2] = -.infinity
        try NPY.write(floats: values, shape: [3, 4, 2], to: dir.path("inf.npy"))
        let inf = errorText { try readAll(InputFormat.open(path: dir.path("inf.npy"))) }
        #expect(inf.hasSuffix("sequence 2, step 3: infinite value in feature 0"), "\(inf)")

        // float64 beyond float32's range becomes infinite when converted.
        try NPY.write(NPYArray(doubles: [1, 1e300], shape: [2, 1]), to: dir.path("wide.npy"))
        let wide = errorText { try readAll(InputFormat.open(path: dir.path("wide.npy"))) }
        #expect(wide.hasSuffix("sequence 0, step 1: infinite value (or beyond float32 range) in feature 0"), "\(wide)")
    }

    @Test func negativeAndHugeTokenIDsAreRefused() throws {
        let dir = try TempDir()
        try NPY.write(NPYArray(int64s: [1, 2, -2, 3], shape: [2, 2]), to: dir.path("neg.npy"))
        let text = errorText { try readAll(InputFormat.open(path: dir.path("neg.npy"))) }
        #expect(text.hasSuffix("sequence 1, step 0: negative token id -2"), "\(text)")
        try NPY.write(NPYArray(int64s: [1, 1 << 40], shape: [1, 2]), to: dir.path("big.npy"))
        #expect(errorText { try readAll(InputFormat.open(path: dir.path("big.npy"))) }
            .hasSuffix("sequence 0, step 1: token id 1099511627776 is too large"))
    }

    @Test func unsupportedLayoutsAreRefused() throws {
        let dir = try TempDir()
        try NPY.write(floats: [1, 2, 3], shape: [3], to: dir.path("f1.npy"))
        #expect(errorText { try InputFormat.open(path: dir.path("f1.npy")) }.contains("1-D float array of shape (3,) is ambiguous"))
        try NPY.write(NPYArray(int32s: [1, 2], shape: [1, 1, 2]), to: dir.path("i3.npy"))
        #expect(errorText { try InputFormat.open(path: dir.path("i3.npy")) }.contains("token ids must be [batch, time]"))
        #expect(errorText { try InputFormat.open(path: fixture("bool.npy")) }.contains("dtype bool ('|b1') cannot be an input"))
        #expect(errorText { try InputFormat.open(path: fixture("unicode.npy")) }.contains("cannot be an input"))
        try NPY.write(floats: [], shape: [2, 0, 3], to: dir.path("empty.npy"))
        #expect(errorText { try InputFormat.open(path: dir.path("empty.npy")) }.contains("sequences of 0 steps"))
    }

    @Test func skipMovesWithoutReading() throws {
        let dir = try TempDir()
        // Sequence 1 holds a NaN: skipping it must not look at it.
        var values = (0..<(5 * 2)).map(Float.init)
        values[2] = .nan
        try NPY.write(floats: values, shape: [5, 2, 1], to: dir.path("s.npy"))
        let reader = try InputFormat.open(path: dir.path("s.npy"))
        #expect(try reader.skip(2) == 2)
        #expect(reader.position == 2)
        let s = try reader.next()
        #expect(s?.index == 2 && s.map(features) == [4, 5])
        #expect(try reader.skip(10) == 2)
        #expect(try reader.next() == nil)
    }

    @Test func readsAcrossChunkBoundaries() throws {
        // 400 KB per sequence: two sequences per 1 MB chunk, so 5 sequences need 3 chunks.
        let dir = try TempDir()
        let (count, time, dim) = (5, 1000, 100)
        var values = [Float](repeating: 0, count: count * time * dim)
        for k in values.indices { values[k] = Float(k % 9973) }
        try NPY.write(floats: values, shape: [count, time, dim], to: dir.path("c.npy"))
        let seqs = try readAll(InputFormat.open(path: dir.path("c.npy")))
        #expect(seqs.count == count)
        #expect(seqs.flatMap(features) == values)
    }
}

@Suite struct NPZTests {
    @Test func readsWholeArraysByName() throws {
        let arrays = try NPZ.read(path: fixture("tokens_ids.npz"))
        #expect(Set(arrays.keys) == ["x", "lengths", "ids"])
        #expect(arrays["x"]?.dtype == .int32 && arrays["x"]?.shape == [3, 5])
        #expect(try arrays["lengths"]?.int64s() == [5, 2, 1])
        #expect(try arrays["ids"]?.strings() == ["alpha", "séq-β", "😀x"])
    }

    @Test func streamsTokensWithLengthsAndUnicodeIDs() throws {
        let reader = try InputFormat.open(path: fixture("tokens_ids.npz"))
        #expect(reader.isTokens && reader.totalCount == 3)
        let seqs = try readAll(reader)
        #expect(seqs.map(tokens) == [[1, 2, 3, 4, 5], [6, 7], [8]])
        #expect(seqs.map(\.sourceID) == ["alpha", "séq-β", "😀x"])
        #expect(seqs.map(\.length) == [5, 2, 1])
    }

    @Test func streamsDeflatedFeaturesWithIntegerIDs() throws {
        let reader = try InputFormat.open(path: fixture("features_compressed.npz"))
        #expect(reader.featureDim == 3)
        let seqs = try readAll(reader)
        #expect(seqs.map(\.sourceID) == ["10", "20"])
        #expect(seqs.map(\.length) == [4, 2])
        #expect(features(seqs[0]) == (0..<12).map { Float($0) / 8 })
        #expect(features(seqs[1]) == (12..<18).map { Float($0) / 8 })
    }

    @Test(arguments: [false, true])
    func writeThenReadRoundTrip(compressed: Bool) throws {
        let dir = try TempDir()
        let x = NPYArray(floats: (0..<12).map(Float.init), shape: [2, 3, 2])
        let ids = NPYArray(strings: ["first", "second"], shape: [2])
        try NPZ.write(["x": x, "ids": ids, "lengths": NPYArray(int64s: [3, 1], shape: [2])],
                      to: dir.path("r.npz"), compressed: compressed)
        let back = try NPZ.read(path: dir.path("r.npz"))
        #expect(back["x"] == x && back["ids"] == ids)
        let seqs = try readAll(InputFormat.open(path: dir.path("r.npz")))
        #expect(seqs.map(\.length) == [3, 1])
        #expect(seqs.map(\.sourceID) == ["first", "second"])
        #expect(features(seqs[1]) == [6, 7])
    }

    @Test func badNPZContentsAreNamed() throws {
        let dir = try TempDir()
        let x = NPYArray(int32s: [1, 2, 3, 4, 5, 6], shape: [2, 3])
        try NPZ.write(["y": x], to: dir.path("nox.npz"))
        #expect(errorText { try InputFormat.open(path: dir.path("nox.npz")) }.contains("no array 'x' in the .npz"))

        try NPZ.write(["x": x, "lengths": NPYArray(int64s: [1, 2, 3], shape: [3])], to: dir.path("len3.npz"))
        #expect(errorText { try InputFormat.open(path: dir.path("len3.npz")) }
            .contains("lengths has shape (3,), expected (2,)"))

        try NPZ.write(["x": x, "lengths": NPYArray(int64s: [3, 4], shape: [2])], to: dir.path("long.npz"))
        let long = errorText { try readAll(InputFormat.open(path: dir.path("long.npz"))) }
        #expect(long.contains("(lengths.npy): sequence 1: length 4 is outside 1...3"), "\(long)")

        try NPZ.write(["x": x, "lengths": NPYArray(int64s: [0, 1], shape: [2])], to: dir.path("zero.npz"))
        #expect(errorText { try readAll(InputFormat.open(path: dir.path("zero.npz"))) }.contains("sequence 0: length 0"))

        try NPZ.write(["x": x, "lengths": NPYArray(floats: [1, 2], shape: [2])], to: dir.path("flen.npz"))
        #expect(errorText { try InputFormat.open(path: dir.path("flen.npz")) }.contains("lengths must be integers"))

        try NPZ.write(["x": x, "ids": NPYArray(strings: ["a"], shape: [1])], to: dir.path("ids.npz"))
        #expect(errorText { try InputFormat.open(path: dir.path("ids.npz")) }.contains("ids has shape (1,), expected (2,)"))

        try NPZ.write(["x": NPYArray(int64s: [1, -1], shape: [1, 2])], to: dir.path("neg.npz"))
        let neg = errorText { try readAll(InputFormat.open(path: dir.path("neg.npz"))) }
        #expect(neg.contains("neg.npz (x.npy): sequence 0, step 1: negative token id -1"), "\(neg)")

        let notZip = try dir.write("plain.npz", "hello")
        #expect(errorText { try InputFormat.open(path: notZip) }.contains("not a valid .npz (zip) archive"))
        #expect(errorText { try NPZ.read(path: notZip) }.contains("plain.npz"))
    }

    @Test func extractedTemporaryFilesAreRemovedAtOnce() throws {
        let before = try FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory())
            .filter { $0.hasPrefix("gatescope-npz-\(getpid())-") }
        let reader = try InputFormat.open(path: fixture("features_compressed.npz"))
        let during = try FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory())
            .filter { $0.hasPrefix("gatescope-npz-\(getpid())-") }
        #expect(Set(during).subtracting(before).isEmpty)
        #expect(try readAll(reader).count == 2)
    }
}

@Suite struct StreamingMemoryTests {
    @Test func fiftyMegabyteNPYStreamsWithFlatMemory() throws {
        let dir = try TempDir()
        let path = dir.path("big.npy")
        let (count, time, dim) = (2000, 100, 64)  // 51.2 MB of float32
        #expect(FileManager.default.createFile(atPath: path, contents: nil))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.write(contentsOf: NPY.header(dtype: .float32, shape: [count, time, dim]))
        for b in 0..<count {
            try handle.write(contentsOf: floatBytes([Float](repeating: Float(b), count: time * dim)))
        }
        try handle.close()

        let baseline = residentBytes()
        var peak = baseline
        let reader = try InputFormat.open(path: path)
        var n = 0
        var sum = 0.0
        while let s = try reader.next() {
            let v = features(s)
            if v.first != Float(s.index) || v.last != Float(s.index) || v.count != time * dim {
                Issue.record("sequence \(s.index) read wrong values")
                break
            }
            sum += Double(v[0])
            n += 1
            if n % 100 == 0 { peak = max(peak, residentBytes()) }
        }
        peak = max(peak, residentBytes())
        #expect(n == count)
        #expect(sum == Double(count * (count - 1) / 2))
        #expect(peak - baseline < 30 << 20, "RSS grew by \((peak - baseline) >> 20) MB")
    }
}
