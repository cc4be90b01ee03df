import CBLAS
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// C[m, n] = A[m, k] @ B[k, n] (+ C when `accumulate`), all row-major Float32, through OpenBLAS.
@inline(__always)
func matmul(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
            m: Int, k: Int, n: Int, accumulate: Bool = false) {
    guard m > 0, n > 0 else { return }
    guard k > 0 else {
        if !accumulate { c.update(repeating: 0, count: m * n) }
        return
    }
    if m == 1 {
        // A vector times a matrix: gemv reads B once, where gemm would first copy (pack) all of it.
        cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k), Int32(n), 1, b, Int32(n), a, 1, accumulate ? 1 : 0, c, 1)
        return
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k),
                1, a, Int32(k), b, Int32(n), accumulate ? 1 : 0, c, Int32(n))
}

/// Settings of the matrix-product library behind the engine.
public enum MatrixThreads {
    /// Limits OpenBLAS to `count` threads, unless the user set OPENBLAS_NUM_THREADS.
    ///
    /// A caller that runs the engine beside other busy threads (the recorder's SQLite writer)
    /// wants 1: idle OpenBLAS threads spin on the cores the other threads need.
    public static func limit(to count: Int) {
        guard getenv("OPENBLAS_NUM_THREADS") == nil else { return }
        lock.lock()
        defer { lock.unlock() }
        // Changing it reconfigures OpenBLAS's thread pool: only when it really changes.
        guard count != current else { return }
        openblas_set_num_threads(Int32(count))
        current = count
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var current = 0
}
