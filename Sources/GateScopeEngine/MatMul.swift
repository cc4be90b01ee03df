import CBLAS
import CKernels
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

/// The thread count of the matrix-product library behind the engine, scoped to engine calls.
public enum MatrixThreads {
    /// Runs `body` with OpenBLAS limited to `count` threads, unless the user set OPENBLAS_NUM_THREADS,
    /// and gives the process its own count back when the last such call ends.
    ///
    /// OpenBLAS has one process-wide count: the engine changes it only while it runs, so a caller's
    /// own use of OpenBLAS after a model call sees the count it set. Calls that overlap share it:
    /// the latest limit holds until every overlapping call has ended. A caller that runs the engine
    /// beside other busy threads (the recorder's SQLite writer) wants 1: idle OpenBLAS threads spin
    /// on the cores the other threads need.
    public static func withLimit<R>(_ count: Int, _ body: () throws -> R) rethrows -> R {
        guard getenv("OPENBLAS_NUM_THREADS") == nil else { return try body() }
        return try openBLAS.withLimit(count, body)
    }

    static let openBLAS = Scope(get: { Int(openblas_get_num_threads()) }, set: { openblas_set_num_threads(Int32($0)) })

    /// A process-wide count that calls limit while they run (OpenBLAS's, or a test's stand-in).
    final class Scope: @unchecked Sendable {  // state under `lock`
        private let lock = NSLock()
        private var active = 0
        private var saved = 0
        private let get: () -> Int
        private let set: (Int) -> Void

        init(get: @escaping () -> Int, set: @escaping (Int) -> Void) {
            self.get = get
            self.set = set
        }

        func withLimit<R>(_ count: Int, _ body: () throws -> R) rethrows -> R {
            lock.withLock {
                if active == 0 { saved = get() }
                active += 1
                // Changing OpenBLAS's count reconfigures its thread pool: only when it really changes.
                if get() != count { set(count) }
            }
            defer {
                lock.withLock {
                    active -= 1
                    if active == 0, get() != saved { set(saved) }
                }
            }
            return try body()
        }
    }
}

/// The AVX-512 kernels of CKernels: used when the CPU has AVX-512 (checked at run time).
enum Kernels {
    /// Set GATESCOPE_KERNELS=off to run on OpenBLAS and the portable Swift code alone (for comparison).
    /// Only on the AVX-512 path (GATESCOPE_KERNELS=avx2 or off turns it off with the rest).
    static let enabled: Bool = gs_gemm_available() != 0 && KernelPath.current == .avx512
}

/// A weight matrix `[k, n]` prepared for many products `A[m, k] @ W`: packed into panels for the
/// AVX-512 kernel when the CPU has one, else multiplied by OpenBLAS. Vector products (m = 1) always
/// go to BLAS gemv, which reads W once without packing.
final class PackedMatrix: @unchecked Sendable {  // immutable after init
    let k: Int
    let n: Int
    private let values: [Float]      // [k, n] row-major
    private let packed: [Float]?     // 32-column panels (gs_pack), when the kernel runs here


    /// `pack: false` keeps only the plain values (for a caller that never multiplies m > 1 rows).
    init(_ w: Matrix, pack: Bool = true) {
        let (k, n) = (w.rows, w.cols)
        self.k = k
        self.n = n
        values = w.values
        if pack, Kernels.enabled, k > 0, n > 0 {
            var p = [Float](repeating: 0, count: gs_packed_size(Int32(k), Int32(n)))
            w.values.withUnsafeBufferPointer { src in
                p.withUnsafeMutableBufferPointer { gs_pack(src.baseAddress!, Int32(k), Int32(n), $0.baseAddress!) }
            }
            packed = p
        } else {
            packed = nil
        }
    }

    /// c[m, n] = a[m, k] @ W (+ c when `accumulate`).
    func multiply(_ a: UnsafePointer<Float>, rows m: Int, into c: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        guard m > 0, n > 0 else { return }
        if let packed, m > 1, k > 0 {
            packed.withUnsafeBufferPointer { p in
                gs_gemm_packed(a, Int32(m), Int32(k), p.baseAddress!, Int32(n), c, accumulate ? 1 : 0)
            }
        } else {
            values.withUnsafeBufferPointer { w in matmul(a, w.baseAddress!, c, m: m, k: k, n: n, accumulate: accumulate) }
        }
    }
}
