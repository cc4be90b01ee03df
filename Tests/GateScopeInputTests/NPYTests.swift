import Foundation
import Testing
@testable import GateScopeInput

@Suite struct NPYReadWriteTests {
    @Test func float32RoundTripThroughAFile() throws {
        let dir = try TempDir()
        let values = (0..<24).map { Float($0) * 0.25 - 3 }
        try NPY.write(floats: values, shape: [2, 3, 4], to: dir.path("out.npy"))
        let array = try NPY.read(path: dir.path("out.npy"))
        #expect(array.dtype == .float32)
        #expect(array.shape == [2, 3, 4])
        #expect(try array.floats() == values)

        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir.path("out.npy"))))
        #expect(Array(bytes[0..<8]) == [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
        let headerEnd = 10 + Int(bytes[8]) + Int(bytes[9]) << 8
        #expect(headerEnd % 64 == 0)
        #expect(bytes[headerEnd - 1] == 0x0A)
        #expect(bytes.count == headerEnd + 24 * 4)
    }

    @Test func writeRefusesAShapeThatDoesNotFit() {
        let text = errorText { try NPY.write(floats: [1, 2, 3], shape: [2, 2], to: "/tmp/never-written.npy") }
        #expect(text.contains("3 values do not fit shape (2, 2)"), "\(text)")
    }

    @Test func everyDTypeRoundTripsInMemory() throws {
        let cases: [NPYArray] = [
            NPYArray(doubles: [1.5, -2, 1e300], shape: [3]),
            NPYArray(int32s: [1, -2, 3, 4], shape: [2, 2]),
            NPYArray(int64s: [Int64.min, 0, Int64.max], shape: [3]),
            NPYArray(bools: [true, false], shape: [2]),
            NPYArray(strings: ["", "abc", "héllo", "😀"], shape: [2, 2]),
            NPYArray(floats: [7], shape: []),
        ]
        for array in cases {
            let back = try NPY.read(data: NPY.encode(array))
            #expect(back == array, "\(array.dtype)")
        }
        #expect(try NPY.read(data: NPY.encode(NPYArray(strings: ["", "abc", "héllo", "😀"], shape: [4]))).strings()
                == ["", "abc", "héllo", "😀"])
    }

    @Test func readsNumpyFixturesOfEachDType() throws {
        let f8 = try NPY.read(path: fixture("f8_3d.npy"))
        #expect(f8.dtype == .float64 && f8.shape == [2, 3, 2])
        #expect(try f8.doubles() == (0..<12).map { Double($0) / 4 - 1 })
        #expect(try f8.floats() == (0..<12).map { Float($0) / 4 - 1 })

        let i8 = try NPY.read(path: fixture("i8_tokens.npy"))
        #expect(i8.dtype == .int64 && i8.shape == [2, 4])
        #expect(try i8.int64s() == [1, 2, 3, 0, 4, 5, 0, 0])

        #expect(try NPY.read(path: fixture("i4_tokens.npy")).int64s() == [7, 8, 9])
        #expect(try NPY.read(path: fixture("i2.npy")).int64s() == [-3, 0, 300])
        #expect(try NPY.read(path: fixture("u2.npy")).int64s() == [0, 65535])
        let u1 = try NPY.read(path: fixture("u1.npy"))
        #expect(u1.dtype == .uint8 && u1.shape == [1, 2])
        #expect(try u1.floats() == [0, 255])
        let b = try NPY.read(path: fixture("bool.npy"))
        #expect(b.dtype == .bool)
        #expect(try b.bools() == [true, false, true])
        let u = try NPY.read(path: fixture("unicode.npy"))
        #expect(u.dtype == .unicode(length: 5))
        #expect(try u.strings() == ["a", "héllo", "😀"])
        let scalar = try NPY.read(path: fixture("scalar.npy"))
        #expect(scalar.shape == [] && scalar.count == 1)
        #expect(try scalar.floats() == [2.5])
    }

    @Test(arguments: ["v2.npy", "v3.npy"])
    func readsHeaderVersions2And3(name: String) throws {
        let a = try NPY.read(path: fixture(name))
        #expect(a.shape == [2, 3])
        #expect(try a.floats() == [0, 1, 2, 3, 4, 5])
        let file = try NPYFile(path: fixture(name))
        #expect(file.header.majorVersion == (name == "v2.npy" ? 2 : 3))
    }

    @Test func conversionsRefuseTheWrongKind() throws {
        let u = try NPY.read(path: fixture("unicode.npy"))
        #expect(errorText { try u.floats() }.contains("cannot read dtype unicode<5>"))
        let f = try NPY.read(path: fixture("f4_2d.npy"))
        #expect(errorText { try f.int64s() }.contains("as integers"))
        #expect(errorText { try f.strings() }.contains("as strings"))
    }
}

@Suite struct NPYMalformedTests {
    struct Case: CustomStringConvertible, Sendable {
        let label: String
        let bytes: [UInt8]
        let expected: String
        var description: String { label }
    }

    static let good = floatBytes([1, 2, 3, 4, 5, 6])

    static let cases: [Case] = [
        Case(label: "bad magic", bytes: Array("PK\u{3}\u{4} not numpy at all".utf8), expected: "bad magic"),
        Case(label: "empty file", bytes: [], expected: "bad magic"),
        Case(label: "version 4.0",
             bytes: npyBytes(dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", data: good, major: 4),
             expected: "unsupported .npy format version 4.0"),
        Case(label: "version 1.1",
             bytes: npyBytes(dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", data: good, minor: 1),
             expected: "unsupported .npy format version 1.1"),
        Case(label: "missing shape",
             bytes: npyBytes(dict: "{'descr': '<f4', 'fortran_order': False, }", data: good),
             expected: "missing key 'shape'"),
        Case(label: "missing descr",
             bytes: npyBytes(dict: "{'fortran_order': False, 'shape': (6,), }", data: good),
             expected: "missing key 'descr'"),
        Case(label: "missing fortran_order",
             bytes: npyBytes(dict: "{'descr': '<f4', 'shape': (6,), }", data: good),
             expected: "missing key 'fortran_order'"),
        Case(label: "negative dimension",
             bytes: npyBytes(dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }", data: good),
             expected: "'shape' must be a tuple of non-negative integers"),
        Case(label: "shape as list",
             bytes: npyBytes(dict: "{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }", data: good),
             expected: "'shape' must be a tuple of non-negative integers"),
        Case(label: "shape with a string",
             bytes: npyBytes(dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 'a'), }", data: good),
             expected: "'shape' must be a tuple of non-negative integers"),
        Case(label: "not a dict",
             bytes: npyBytes(dict: "('<f4', False, (6,))", data: good),
             expected: "malformed .npy header: expected a dict"),
        Case(label: "unterminated dict",
             bytes: npyBytes(dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (6,", data: good),
             expected: "malformed .npy header"),
        Case(label: "descr not a string",
             bytes: npyBytes(dict: "{'descr': 4, 'fortran_order': False, 'shape': (6,), }", data: good),
             expected: "'descr' must be a string"),
        Case(label: "big-endian descr",
             bytes: npyBytes(dict: "{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }", data: good),
             expected: "big-endian dtype '>f4' is not supported"),
        Case(label: "fortran order",
             bytes: npyBytes(dict: "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", data: good),
             expected: "fortran_order=True is not supported"),
        Case(label: "object dtype",
             bytes: npyBytes(dict: "{'descr': '|O', 'fortran_order': False, 'shape': (6,), }", data: good),
             expected: "object arrays (dtype '|O') are not supported"),
        Case(label: "complex dtype",
             bytes: npyBytes(dict: "{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", data: good),
             expected: "unsupported dtype '<c8'"),
        Case(label: "structured dtype",
             bytes: npyBytes(dict: "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,), }", data: good),
             expected: "structured dtype"),
        Case(label: "truncated data",
             bytes: npyBytes(dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", data: Array(good.dropLast(4))),
             expected: "data is truncated: shape (2, 3) float32 needs 24 bytes after the header, the file has 20"),
        // A version 2 header that announces 4 GB in a 75-byte file: refused before anything is read.
        Case(label: "huge header length",
             bytes: [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 2, 0, 0xF0, 0xFF, 0xFF, 0xFF] + Array(repeating: 0x7B, count: 63),
             expected: "truncated .npy header: 4294967280 header bytes announced, the file has 63 after the prefix"),
        // A header with a newline inside is quoted escaped, on one line.
        Case(label: "header with a newline",
             bytes: npyBytes(dict: "{'descr': '<f4',\n 'fortran_order': ZZ, 'shape': (6,), }", data: good),
             expected: "unexpected 'ZZ' at offset 37: {'descr': '<f4',\\n 'fortran_order': ZZ"),
        Case(label: "truncated header",
             bytes: Array(npyBytes(dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }").prefix(40)),
             expected: "truncated .npy header"),
    ]

    @Test(arguments: cases)
    func malformedInputGivesOneClearLine(c: Case) throws {
        let dir = try TempDir()
        let path = try dir.write("bad.npy", bytes: c.bytes)
        let text = errorText { try NPY.read(path: path) }
        #expect(text.contains(c.expected), "\(c.label): \(text)")
        #expect(text.hasPrefix(path), "names the file: \(text)")
        #expect(!text.contains("\n"))
        // The streaming reader validates the same way.
        let streamed = errorText { try NPYFile(path: path) }
        #expect(streamed.contains(c.expected), "\(c.label) (stream): \(streamed)")
    }

    @Test(arguments: [
        ("big_endian.npy", "big-endian dtype '>f4' is not supported"),
        ("fortran.npy", "fortran_order=True is not supported"),
        ("object.npy", "object arrays (dtype '|O') are not supported"),
    ])
    func numpyWrittenRefusals(name: String, expected: String) {
        let text = errorText { try NPY.read(path: fixture(name)) }
        #expect(text.contains(expected), "\(text)")
        #expect(text.contains(name))
    }

    @Test func truncatedNumpyFile() throws {
        let dir = try TempDir()
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixture("f8_3d.npy"))))
        bytes.removeLast(9)
        let path = try dir.write("short.npy", bytes: bytes)
        let text = errorText { try InputFormat.open(path: path) }
        #expect(text.contains("data is truncated: shape (2, 3, 2) float64 needs 96 bytes after the header, the file has 87"), "\(text)")
    }

    @Test func missingFile() {
        let text = errorText { try NPY.read(path: "/nonexistent/x.npy") }
        #expect(text.contains("/nonexistent/x.npy") && text.contains("no such file"), "\(text)")
        #expect(errorText { try InputFormat.open(path: "/nonexistent/x.npy") }.contains("no such file"))
    }
}
