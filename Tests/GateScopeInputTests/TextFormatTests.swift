import Foundation
import Testing
@testable import GateScopeInput

let abcVocab = try! Vocab(["a": 1, "b": 2, "c": 3, " ": 4, "é": 5, "😀": 6, "<unk>": 7])

@Suite struct JSONLTests {
    /// A shard's start: skipped lines are counted, not parsed, and later indices stay global.
    @Test func skipCountsLinesWithoutParsing() throws {
        let dir = try TempDir()
        let path = try dir.write("s.jsonl", "{\"x\": [[1]]}\n\n{not json at all\n{\"x\": [[2]]}\n{\"x\": [[3]]}\n")
        let reader = try InputFormat.open(path: path)
        #expect(try reader.skip(2) == 2)
        let s = try #require(try reader.next())
        #expect(s.index == 2 && s.values == .features([2], featureDim: 1))
        #expect(try reader.skip(5) == 1)
        #expect(try reader.next() == nil)
        let text = try dir.write("s.txt", "ab\n\nzz\nba\n")
        let t = try InputFormat.open(path: text, vocab: abcVocab)
        #expect(try t.skip(2) == 2)  // "zz" is not in the vocabulary, but it is only counted
        let u = try #require(try t.next())
        #expect(u.index == 2 && u.sourceID == "4")
    }

    @Test func featuresWithStringNumberAndMissingIDs() throws {
        let dir = try TempDir()
        let path = try dir.write("f.jsonl", """
            {"id": "first", "x": [[1, 2.5, -3], [4, 5, 6]]}

            {"id": 42, "x": [[0.125, 0, 1e-3]]}
            {"x": [[7, 8, 9], [1, 1, 1], [2, 2, 2]], "id": null}
            {"id": 1.5, "x": [[1, 2, 3]]}

            """)
        let reader = try InputFormat.open(path: path)
        #expect(reader.featureDim == 3)
        #expect(reader.totalCount == 4)
        let seqs = try readAll(reader)
        #expect(seqs.map(\.sourceID) == ["first", "42", nil, "1.5"])
        #expect(seqs.map(\.length) == [2, 1, 3, 1])
        #expect(seqs.map(\.index) == [0, 1, 2, 3])
        #expect(features(seqs[0]) == [1, 2.5, -3, 4, 5, 6])
        #expect(features(seqs[1]) == [0.125, 0, 1e-3])
    }

    @Test func tokensAndTextMix() throws {
        let dir = try TempDir()
        let path = try dir.write("t.jsonl", """
            {"id": "t", "tokens": [1, 2, 3, 0]}
            {"id": "s", "text": "ab é😀"}
            """)
        let reader = try InputFormat.open(path: path, vocab: abcVocab)
        #expect(reader.isTokens)
        let seqs = try readAll(reader)
        #expect(seqs.map(tokens) == [[1, 2, 3, 0], [1, 2, 4, 5, 6]])
    }

    @Test func textNeedsAVocabAndNamesUnknownCharacters() throws {
        let dir = try TempDir()
        let path = try dir.write("t.jsonl", "{\"text\": \"abc\"}\n{\"id\": 2, \"text\": \"aéxb\"}\n")
        #expect(errorText { try InputFormat.open(path: path) }.contains("line 1 (sequence 0): \"text\" needs a vocabulary"))
        let reader = try InputFormat.open(path: path, vocab: abcVocab)
        _ = try reader.next()
        let text = errorText { try reader.next() }
        #expect(text == "\(path): line 2 (sequence 1): column 3 of \"text\": character 'x' is not in the vocabulary (pass an unknown-token id to map it)", "\(text)")
        let mapped = try readAll(InputFormat.open(path: path, vocab: abcVocab, unknownID: 7))
        #expect(mapped.map(tokens) == [[1, 2, 3], [1, 5, 7, 2]])
    }

    struct BadLine: CustomStringConvertible, Sendable {
        let line: String
        let expected: String
        var description: String { expected }
    }

    @Test(arguments: [
        BadLine(line: "{\"x\": [[1, 2], [3]]}", expected: "line 3 (sequence 2), step 1: 1 features, expected 2 as in step 0"),
        BadLine(line: "{\"x\": [[1, 2, 3]]}", expected: "line 3 (sequence 2), step 0: 3 features per step, but the first sequence has 2"),
        BadLine(line: "{\"x\": [[1, \"a\"]]}", expected: "line 3 (sequence 2), step 0: feature 1 is not a number"),
        BadLine(line: "{\"x\": [[1, 1e39]]}", expected: "line 3 (sequence 2), step 0: infinite value (or beyond float32 range) in feature 1"),
        BadLine(line: "{\"x\": [1, 2]}", expected: "line 3 (sequence 2), step 0: \"x\" must be a list of steps"),
        BadLine(line: "{\"x\": []}", expected: "line 3 (sequence 2): empty sequence"),
        BadLine(line: "{\"tokens\": [1, 2]}", expected: "line 3 (sequence 2): token ids, but the first sequence has \"x\" features"),
        BadLine(line: "{\"x\": [[1, 2]], \"tokens\": [1]}", expected: "line 3 (sequence 2): has both \"x\" and \"tokens\""),
        BadLine(line: "{\"id\": \"z\"}", expected: "line 3 (sequence 2): expected one of \"x\", \"tokens\" or \"text\""),
        BadLine(line: "{\"id\": [1], \"x\": [[1, 2]]}", expected: "line 3 (sequence 2): \"id\" must be a string or a number"),
        BadLine(line: "{\"x\": [[1, 2]]", expected: "line 3 (sequence 2): invalid JSON"),
        BadLine(line: "[1, 2]", expected: "line 3 (sequence 2): expected a JSON object"),
    ])
    func badLineIsNamed(bad: BadLine) throws {
        let dir = try TempDir()
        let path = try dir.write("bad.jsonl", "{\"x\": [[1, 2]]}\n  \n{\"x\": [[3, 4]]}\n\(bad.line)\n{\"x\": [[5, 6]]}\n")
        // Line 2 is blank: skipped, but still counted for line numbers.
        let text = errorText { try readAll(InputFormat.open(path: path)) }
        let expected = bad.expected.replacingOccurrences(of: "line 3", with: "line 4")
        #expect(text.hasPrefix(path + ": " + expected), "\(text)")
    }

    @Test func badTokens() throws {
        let dir = try TempDir()
        let path = try dir.write("t.jsonl", "{\"tokens\": [1, 2]}\n{\"tokens\": [3, -4]}\n{\"tokens\": [1.5]}\n")
        let reader = try InputFormat.open(path: path)
        _ = try reader.next()
        #expect(errorText { try reader.next() }.hasSuffix("line 2 (sequence 1), step 1: negative token id -4"))
        #expect(errorText { try reader.next() }.hasSuffix("line 3 (sequence 2), step 0: token 1.5 is not an integer"))
    }

    @Test func firstLineErrorsAtOpen() throws {
        let dir = try TempDir()
        let path = try dir.write("t.jsonl", "not json\n")
        #expect(errorText { try InputFormat.open(path: path) } == "\(path): line 1 (sequence 0): invalid JSON")
        let empty = try dir.write("e.jsonl", "")
        let reader = try InputFormat.open(path: empty)
        #expect(reader.totalCount == 0)
        #expect(try reader.next() == nil)
    }
}

@Suite struct CSVTests {
    @Test func quotedSeqNamesWithCommasQuotesAndNewlines() throws {
        let dir = try TempDir()
        let rows = [
            "seq,step,f0,f1",
            "\"a,b\",0,1,2",
            "\"a,b\",1,3,4",
            "\"say \"\"hi\"\"\",0, 5 ,6",
            "",
            "\"two\nlines\",0,7,8",
            "plain,0,9,10",
            "plain,1,11,12",
        ]
        let path = try dir.write("q.csv", rows.joined(separator: "\r\n") + "\r\n")
        let reader = try InputFormat.open(path: path)
        #expect(reader.featureDim == 2)
        let seqs = try readAll(reader)
        #expect(seqs.map(\.sourceID) == ["a,b", "say \"hi\"", "two\nlines", "plain"])
        #expect(seqs.map(\.length) == [2, 1, 1, 2])
        #expect(seqs.map(features) == [[1, 2, 3, 4], [5, 6], [7, 8], [9, 10, 11, 12]])
        #expect(seqs.map(\.index) == [0, 1, 2, 3])
    }

    @Test func nonConsecutiveStepNamesTheLine() throws {
        let dir = try TempDir()
        let path = try dir.write("s.csv", "seq,step,x\n\"q,1\",0,1\n\"q,1\",1,2\n\"q,1\",3,3\n")
        let text = errorText { try readAll(InputFormat.open(path: path)) }
        #expect(text == "\(path): line 4: seq 'q,1' has step 3 after step 1; steps must be consecutive (0, 1, 2, ...)", "\(text)")
    }

    @Test func lineNumbersCountNewlinesInsideQuotes() throws {
        let dir = try TempDir()
        let path = try dir.write("s.csv", "seq,step,x\n\"multi\nline\",0,1\nb,1,2\n")
        #expect(errorText { try readAll(InputFormat.open(path: path)) }.contains("line 4: seq 'b' starts at step 1; steps must start at 0"))
    }

    @Test func reappearingSeqIsAnError() throws {
        let dir = try TempDir()
        let path = try dir.write("r.csv", "seq,step,x\na,0,1\nb,0,2\na,0,3\n")
        let text = errorText { try readAll(InputFormat.open(path: path)) }
        #expect(text.contains("line 4: seq 'a' appears again after other sequences"), "\(text)")
    }

    @Test(arguments: [
        ("a,0,1,2\n", "line 2: 4 fields, expected 3 (seq, step and 1 features)"),
        ("a,zero,1\n", "line 2: step 'zero' is not an integer"),
        ("a,0,abc\n", "line 2 (sequence 0), step 0: feature 0 ('x') is not a number: 'abc'"),
        ("a,0,\n", "line 2 (sequence 0), step 0: feature 0 ('x') is empty"),
        ("a,0,1\na,1,nan\n", "line 3 (sequence 0), step 1: NaN in feature 0 ('x')"),
        ("a,0,inf\n", "line 2 (sequence 0), step 0: infinite value in feature 0 ('x')"),
    ])
    func badRows(rows: String, expected: String) throws {
        let dir = try TempDir()
        let path = try dir.write("b.csv", "seq,step,x\n" + rows)
        let text = errorText { try readAll(InputFormat.open(path: path)) }
        #expect(text == "\(path): \(expected)", "\(text)")
    }

    @Test func headerMustBeSeqStepFeatures() throws {
        let dir = try TempDir()
        let bad = try dir.write("h.csv", "id,t,x\na,0,1\n")
        #expect(errorText { try InputFormat.open(path: bad) }.contains("line 1: header must be seq,step followed by feature columns"))
        let noFeatures = try dir.write("n.csv", "seq,step\na,0\n")
        #expect(errorText { try InputFormat.open(path: noFeatures) }.contains("header must be seq,step"))
        let empty = try dir.write("e.csv", "")
        #expect(errorText { try InputFormat.open(path: empty) }.contains("empty file"))
        let bom = try dir.write("bom.csv", "\u{FEFF}seq,step,x\na,0,1\n")
        #expect(try readAll(InputFormat.open(path: bom)).count == 1)
    }
}

@Suite struct TextAndVocabTests {
    @Test func linesMapThroughTheVocab() throws {
        let dir = try TempDir()
        let path = try dir.write("t.txt", "abc\r\n\nc a\né😀\n")
        let reader = try InputFormat.open(path: path, vocab: abcVocab)
        #expect(reader.isTokens && reader.totalCount == 3)
        let seqs = try readAll(reader)
        #expect(seqs.map(tokens) == [[1, 2, 3], [3, 4, 1], [5, 6]])
        // Empty lines are skipped; the source id is the line number.
        #expect(seqs.map(\.sourceID) == ["1", "3", "4"])
        #expect(seqs.map(\.index) == [0, 1, 2])
    }

    @Test func unknownCharacterNamesLineAndColumn() throws {
        let dir = try TempDir()
        let path = try dir.write("t.txt", "abc\né😀aQb\n")
        let text = errorText { try readAll(InputFormat.open(path: path, vocab: abcVocab)) }
        #expect(text == "\(path): line 2: column 4: character 'Q' is not in the vocabulary (pass an unknown-token id to map it)", "\(text)")
        let mapped = try readAll(InputFormat.open(path: path, vocab: abcVocab, unknownID: 0))
        #expect(mapped.map(tokens) == [[1, 2, 3], [5, 6, 1, 0, 2]])
    }

    @Test func textByUnicodeScalarLikePython() throws {
        // "e" + combining acute is two code points, so two tokens, as Python would split it.
        let v = try Vocab(["e": 1, "\u{301}": 2])
        #expect(v.unit == .unicodeScalar)
        #expect(try v.encode("e\u{301}e").get() == [1, 2, 1])
        // Precomposed é is a different code point: unknown, column counted in scalars.
        #expect(v.encode("e\u{301}é") == .failure(Vocab.Miss(column: 3, text: "é")))
    }

    @Test func graphemeKeysSwitchToCharacters() throws {
        let v = try Vocab(["e\u{301}": 1, "a": 2, "👍🏽": 3])
        #expect(v.unit == .character)
        #expect(try v.encode("ae\u{301}👍🏽a").get() == [2, 1, 3, 2])
        #expect(v.encode("ab") == .failure(Vocab.Miss(column: 2, text: "b")))
    }

    @Test func vocabFromJSONAndInverse() throws {
        let dir = try TempDir()
        let path = try dir.write("v.json", #"{"\n": 1, " ": 2, "a": 3, "<pad>": 0, "\ufffd": 97}"#)
        let v = try Vocab(path: path)
        #expect(v.count == 5 && v.maxID == 97)
        #expect(v.id(for: "\n") == 1 && v.id(for: "<pad>") == 0)
        #expect(v.token(for: 3) == "a" && v.token(for: 97) == "\u{FFFD}" && v.token(for: 50) == nil)
        // Multi-character keys name ids but never match text.
        #expect(v.encode("<pad>") == .failure(Vocab.Miss(column: 1, text: "<")))

        let bad = try dir.write("bad.json", #"{"a": -1}"#)
        #expect(errorText { try Vocab(path: bad) }.contains("token 'a' has id -1; ids must be non-negative integers"))
        let frac = try dir.write("frac.json", #"{"a": 1.5}"#)
        #expect(errorText { try Vocab(path: frac) }.contains("ids must be non-negative integers"))
        let list = try dir.write("list.json", #"["a", "b"]"#)
        #expect(errorText { try Vocab(path: list) }.contains("must be a JSON object mapping token -> id"))
        let junk = try dir.write("junk.json", "{")
        #expect(errorText { try Vocab(path: junk) } == "\(junk): vocabulary is not valid JSON")
    }

    @Test func exampleHeldoutTextReadsWithItsVocab() throws {
        let root = fixtureDir.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let example = root.appendingPathComponent("examples/charlstm")
        let vocab = try Vocab(path: example.appendingPathComponent("vocab.json").path)
        let reader = try InputFormat.open(path: example.appendingPathComponent("heldout.txt").path, vocab: vocab, unknownID: 97)
        let seqs = try readAll(reader)
        #expect(seqs.count == reader.totalCount)
        #expect(seqs.count > 100)
        #expect(seqs.allSatisfy { tokens($0).allSatisfy { $0 >= 1 && $0 <= 97 } })
    }

    @Test func txtNeedsAVocabAndFormatsAreChosenByExtension() throws {
        let dir = try TempDir()
        let path = try dir.write("t.txt", "abc\n")
        #expect(errorText { try InputFormat.open(path: path) } == "\(path): a .txt input needs a vocabulary (--vocab VOCAB.json)")
        #expect(errorText { try InputFormat.open(path: dir.path("x.parquet")) }.contains("unsupported input format '.parquet'"))
        #expect(errorText { try InputFormat.open(path: path, vocab: abcVocab, unknownID: -1) }.contains("must be non-negative"))
        #expect(try InputFormat(path: "a/b.NDJSON") == .jsonl)
        let invalid = try dir.write("bad.txt", bytes: [0x61, 0x0A, 0x61, 0xFF, 0x0A])
        #expect(errorText { try readAll(InputFormat.open(path: invalid, vocab: abcVocab)) }.hasSuffix("line 2: not valid UTF-8"))
    }
}

@Suite struct BatchingTests {
    @Test func padsFeaturesAndKeepsLengthsAndIDs() throws {
        let a = InputSequence(index: 4, sourceID: "a", values: .features([1, 2, 3, 4], featureDim: 2))
        let b = InputSequence(index: 5, sourceID: nil, values: .features([5, 6, 7, 8, 9, 10], featureDim: 2))
        let batch = try PaddedBatch(padding: [a, b])
        #expect(batch.batchSize == 2 && batch.time == 3)
        #expect(batch.values == .features([1, 2, 3, 4, 0, 0, 5, 6, 7, 8, 9, 10], featureDim: 2))
        #expect(batch.lengths == [2, 3])
        #expect(batch.sourceIDs == ["a", nil])
        #expect(batch.indices == [4, 5])
        let fixed = try PaddedBatch(padding: [a], time: 4)
        #expect(fixed.values == .features([1, 2, 3, 4, 0, 0, 0, 0], featureDim: 2))
        #expect(errorText { try PaddedBatch(padding: [b], time: 2) }.contains("sequence 5: length 3 exceeds the model's fixed 2 timesteps"))
    }

    @Test func padsTokensWithZeroAndRefusesMixing() throws {
        let a = InputSequence(index: 0, sourceID: nil, values: .tokens([3]))
        let b = InputSequence(index: 1, sourceID: nil, values: .tokens([1, 2, 3]))
        #expect(try PaddedBatch(padding: [a, b]).values == .tokens([3, 0, 0, 1, 2, 3]))
        let f = InputSequence(index: 2, sourceID: nil, values: .features([1], featureDim: 1))
        #expect(errorText { try PaddedBatch(padding: [a, f]) }.contains("cannot batch a sequence of 1 features with token sequences"))
        let g = InputSequence(index: 3, sourceID: nil, values: .features([1, 2], featureDim: 2))
        #expect(errorText { try PaddedBatch(padding: [f, g]) }.contains("sequence 3: cannot batch a sequence of 2 features"))
    }

    @Test func readerBatchesInInputOrder() throws {
        let reader = try InputFormat.open(path: fixture("tokens_ids.npz"))
        let first = try #require(try reader.nextBatch(maxCount: 2))
        #expect(first.values == .tokens([1, 2, 3, 4, 5, 6, 7, 0, 0, 0]))
        #expect(first.lengths == [5, 2] && first.sourceIDs == ["alpha", "séq-β"])
        let second = try #require(try reader.nextBatch(maxCount: 2))
        #expect(second.batchSize == 1 && second.time == 1 && second.indices == [2])
        #expect(try reader.nextBatch(maxCount: 2) == nil)
    }

    @Test func textReadersSkipByReading() throws {
        let dir = try TempDir()
        let path = try dir.write("t.jsonl", "{\"tokens\": [1]}\n{\"tokens\": [2]}\n{\"tokens\": [3]}\n")
        let reader = try InputFormat.open(path: path)
        #expect(try reader.skip(2) == 2)
        #expect(try reader.next().map(tokens) == [3])
        #expect(try reader.skip(5) == 0)
    }
}

@Suite struct LongLineTests {
    @Test func linesLongerThanTheReadBufferArriveWhole() throws {
        let dir = try TempDir()
        // ~700 KB lines, larger than the 256 KB line buffer.
        let ids = (0..<120_000).map { Int32($0 % 3 + 1) }
        let json = "{\"tokens\": [" + ids.map(String.init).joined(separator: ", ") + "]}"
        let path = try dir.write("long.jsonl", json + "\n" + json + "\n")
        let seqs = try readAll(InputFormat.open(path: path))
        #expect(seqs.map(\.length) == [120_000, 120_000])
        #expect(seqs.allSatisfy { tokens($0) == ids })

        let text = String(repeating: "abc", count: 300_000)
        let txt = try dir.write("long.txt", "a\n" + text + "\r\nb")
        let lines = try readAll(InputFormat.open(path: txt, vocab: abcVocab))
        #expect(lines.map(\.length) == [1, 900_000, 1])
        #expect(lines.map(\.sourceID) == ["1", "2", "3"])
    }

    @Test func csvThatIsNotUTF8() throws {
        let dir = try TempDir()
        let path = try dir.write("bad.csv", bytes: Array("seq,step,x\na,0,1\n".utf8) + [0xC3, 0x28, 0x2C, 0x30, 0x2C, 0x31, 0x0A])
        let text = errorText { try readAll(InputFormat.open(path: path)) }
        #expect(text == "\(path): line 3: not valid UTF-8", "\(text)")
    }
}
