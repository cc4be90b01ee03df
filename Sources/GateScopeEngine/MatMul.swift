import CBLAS

/// C[m, n] = A[m, k] @ B[k, n] (+ C when `accumulate`), all row-major Float32, through OpenBLAS.
@inline(__always)
func matmul(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
            m: Int, k: Int, n: Int, accumulate: Bool = false) {
    guard m > 0, n > 0 else { return }
    guard k > 0 else {
        if !accumulate { c.update(repeating: 0, count: m * n) }
        return
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k),
                1, a, Int32(k), b, Int32(n), accumulate ? 1 : 0, c, Int32(n))
}
