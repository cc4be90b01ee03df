// An AVX-512 matrix product for the engine's two shapes: [rows, k] @ [k, 4*units] with the weight
// matrix packed once per layer. OpenBLAS on machines whose OPENBLAS_CORETYPE pins it to AVX2
// leaves half of an AVX-512 core unused; this kernel is the classic register-blocked loop:
// 8 rows x 32 columns of C in 16 zmm accumulators, one k at a time.
#include "ckernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#include <string.h>

#define NR 32  // columns per panel (two zmm registers)
#define MR 8   // rows per block

int gs_gemm_available(void) {
#if defined(__x86_64__) || defined(__i386__)
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") ? 1 : 0;
    }
    return cached;
#else
    return 0;  // no x86 intrinsics here: the engine uses OpenBLAS and its Swift paths
#endif
}

size_t gs_packed_size(int k, int n) {
    size_t panels = (size_t)(n + NR - 1) / NR;
    return panels * (size_t)k * NR;
}

void gs_pack(const float *b, int k, int n, float *packed) {
    int panels = (n + NR - 1) / NR;
    for (int p = 0; p < panels; p++) {
        int col = p * NR, width = n - col < NR ? n - col : NR;
        float *dst = packed + (size_t)p * k * NR;
        for (int r = 0; r < k; r++) {
            memcpy(dst + (size_t)r * NR, b + (size_t)r * n + col, (size_t)width * sizeof(float));
            if (width < NR) memset(dst + (size_t)r * NR + width, 0, (size_t)(NR - width) * sizeof(float));
        }
    }
}

#if defined(__x86_64__) || defined(__i386__)

// C[rows, cols] (rows <= MR, cols <= NR) of one block, from A rows (stride lda) and one panel.
__attribute__((target("avx512f")))
static void block(const float *a, int lda, int rows, int k, const float *panel,
                  float *c, int ldc, int cols, int accumulate) {
    __m512 acc[MR][2];
    for (int r = 0; r < MR; r++) { acc[r][0] = _mm512_setzero_ps(); acc[r][1] = _mm512_setzero_ps(); }
    // Two copies of the loop on purpose: with the constant trip count MR the compiler unrolls it
    // and keeps all 16 accumulators in registers; the variable one serves the last partial block.
    if (rows == MR) {
        for (int kk = 0; kk < k; kk++) {
            __m512 b0 = _mm512_loadu_ps(panel + (size_t)kk * NR);
            __m512 b1 = _mm512_loadu_ps(panel + (size_t)kk * NR + 16);
            for (int r = 0; r < MR; r++) {
                __m512 av = _mm512_set1_ps(a[(size_t)r * lda + kk]);
                acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
            }
        }
    } else {
        for (int kk = 0; kk < k; kk++) {
            __m512 b0 = _mm512_loadu_ps(panel + (size_t)kk * NR);
            __m512 b1 = _mm512_loadu_ps(panel + (size_t)kk * NR + 16);
            for (int r = 0; r < rows; r++) {
                __m512 av = _mm512_set1_ps(a[(size_t)r * lda + kk]);
                acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
            }
        }
    }
    __mmask16 m0 = cols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1);
    __mmask16 m1 = cols >= 32 ? (__mmask16)0xFFFF : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
    for (int r = 0; r < rows; r++) {
        float *cr = c + (size_t)r * ldc;
        if (accumulate) {
            acc[r][0] = _mm512_add_ps(acc[r][0], _mm512_maskz_loadu_ps(m0, cr));
            acc[r][1] = _mm512_add_ps(acc[r][1], _mm512_maskz_loadu_ps(m1, cr + 16));
        }
        _mm512_mask_storeu_ps(cr, m0, acc[r][0]);
        _mm512_mask_storeu_ps(cr + 16, m1, acc[r][1]);
    }
}

void gs_gemm_packed(const float *a, int m, int k, const float *packed, int n, float *c, int accumulate) {
    int panels = (n + NR - 1) / NR;
    // Strips of MC rows (kept in L2); within a strip each packed panel (NR x k, about 32 KB) is
    // read once and used by every 8-row block while it sits in L1.
    enum { MC = 128 };
    for (int i0 = 0; i0 < m; i0 += MC) {
        int i1 = m - i0 < MC ? m : i0 + MC;
        for (int p = 0; p < panels; p++) {
            int col = p * NR, cols = n - col < NR ? n - col : NR;
            const float *panel = packed + (size_t)p * k * NR;
            for (int i = i0; i < i1; i += MR) {
                int rows = i1 - i < MR ? i1 - i : MR;
                block(a + (size_t)i * k, k, rows, k, panel, c + (size_t)i * n + col, n, cols, accumulate);
            }
        }
    }
}

#else  // not x86: never called, since gs_gemm_available() is 0

void gs_gemm_packed(const float *a, int m, int k, const float *packed, int n, float *c, int accumulate) {
    (void)a; (void)m; (void)k; (void)packed; (void)n; (void)c; (void)accumulate;
}

#endif
