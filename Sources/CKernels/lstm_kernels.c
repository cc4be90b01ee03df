// The LSTM step kernels: an interleaved weight layout that lets threads split a layer by units,
// a register-blocked product into it (AVX-512 and AVX2 + FMA), the cell update on it, and a
// spinning barrier for the threads that share a layer.
//
// Layout. Keras's kernels are [k, 4u] with the gates side by side (i | f | c | o). Here the
// columns are regrouped into blocks of 16 units: block b holds i, f, g, o of units 16b..16b+15,
// 64 columns, which are two 32-column panels (i f, then g o). A thread that owns a range of
// unit blocks owns a contiguous range of panels and of z's columns, and finds every gate of its
// units there: no thread reads another's pre-activations. Units past u in the last block are
// zero columns.
//
// Exactness. Every output is one accumulator summed over k in order, then `+ C` (the input
// projection, already holding its bias) or `+ bias`: the same float operations in the same
// order as the earlier kernel and the Swift reference path. The two instruction sets compute
// identical values (same operations per lane); only which one ran is recorded.
#include "ckernels.h"

#include <limits.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GS_X86 1
#endif

#define NR 32       // columns per panel
#define UB 16       // units per block (64 columns, two panels)

int gs_lstm_path(void) {
#ifdef GS_X86
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") ? 2
            : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1 : 0;
    }
    return cached;
#else
    return 0;
#endif
}

int gs_lstm_blocks(int units) { return (units + UB - 1) / UB; }

size_t gs_lstm_packed_size(int k, int units) {
    return (size_t)gs_lstm_blocks(units) * 2 * (size_t)k * NR;
}

void gs_lstm_pack(const float *w, int k, int units, float *packed) {
    int blocks = gs_lstm_blocks(units);
    size_t width = (size_t)4 * units;
    for (int b = 0; b < blocks; b++) {
        for (int half = 0; half < 2; half++) {
            float *panel = packed + ((size_t)b * 2 + half) * (size_t)k * NR;
            for (int r = 0; r < k; r++) {
                float *dst = panel + (size_t)r * NR;
                for (int col = 0; col < NR; col++) {
                    int gate = 2 * half + col / UB, unit = b * UB + col % UB;
                    dst[col] = unit < units ? w[(size_t)r * width + (size_t)gate * units + unit] : 0.0f;
                }
            }
        }
    }
}

void gs_lstm_pack_bias(const float *bias, int units, float *packed) {
    int blocks = gs_lstm_blocks(units);
    for (int b = 0; b < blocks; b++)
        for (int col = 0; col < 4 * UB; col++) {
            int gate = col / UB, unit = b * UB + col % UB;
            packed[(size_t)b * 4 * UB + col] = unit < units && bias ? bias[(size_t)gate * units + unit] : 0.0f;
        }
}

#ifdef GS_X86

// ---- the product: tiles of R rows x H half-panels (16 columns each), one accumulator per
// output and k summed in order. Inlined with constant R and H, so every accumulator stays in a
// register. Six rows by two panels (24 accumulators) is the main tile: per k it loads four
// panel vectors and broadcasts six values for 24 FMAs, where eight rows by one panel spent ten
// loads on 16 (scripts/bench_lstm_gemm.sh measures both). A batch of one takes four panels, so it
// still has eight independent FMA chains.
//
// With six rows or more, k is summed in chunks of KC, so that a chunk of the panels stays in L1
// while every row tile of the strip reuses it; between chunks the accumulators wait in `part`,
// exactly, and the last chunk adds C or the bias: the same operations in the same order as one
// pass over k.

// Column offset of half-panel h of the tile that starts at panel `panel`: halves 2q, 2q+1 are
// the two 16-column halves of panel q.
#define HALF(panel, pstride, h) ((panel) + (size_t)((h) / 2) * (pstride) + ((h) % 2) * 16)
#define PART 128    // floats per row of the partial sums (up to 8 half-panels)

__attribute__((always_inline, target("avx512f")))
static inline void tile512(const float *a, size_t lda, const int R, const int H, int k0, int k1, const float *panel,
                           size_t pstride, float *c, size_t ldc, const float *bias, int accumulate,
                           float *part, int first, int last) {
    __m512 acc[6][8];
    for (int r = 0; r < R; r++)
        for (int h = 0; h < H; h++)
            acc[r][h] = first ? _mm512_setzero_ps() : _mm512_load_ps(part + r * PART + h * 16);
    // Row pointers and a fixed unroll: otherwise the loop's address arithmetic competes with
    // the FMAs for issue slots.
    const float *ar[6];
    for (int r = 0; r < R; r++) ar[r] = a + (size_t)r * lda + k0;
    const float *pk = panel + (size_t)k0 * NR;
    int n = k1 - k0;
#ifdef __clang__
#pragma clang loop unroll_count(4)
#endif
    for (int kk = 0; kk < n; kk++) {
        __m512 b[8];
        for (int h = 0; h < H; h++) b[h] = _mm512_loadu_ps(HALF(pk, pstride, h) + (size_t)kk * NR);
        for (int r = 0; r < R; r++) {
            __m512 av = _mm512_set1_ps(ar[r][kk]);
            for (int h = 0; h < H; h++) acc[r][h] = _mm512_fmadd_ps(av, b[h], acc[r][h]);
        }
    }
    for (int r = 0; r < R; r++) {
        for (int h = 0; h < H; h++) {
            if (!last) { _mm512_store_ps(part + r * PART + h * 16, acc[r][h]); continue; }
            float *cr = c + (size_t)r * ldc + (size_t)(h / 2) * NR + (h % 2) * 16;
            if (accumulate) acc[r][h] = _mm512_add_ps(acc[r][h], _mm512_loadu_ps(cr));
            else if (bias) acc[r][h] = _mm512_add_ps(acc[r][h], _mm512_loadu_ps(bias + (size_t)(h / 2) * NR + (h % 2) * 16));
            _mm512_storeu_ps(cr, acc[r][h]);
        }
    }
}

// AVX2 has 16 registers: R x H x 2 accumulators (8 lanes each) plus the loaded panel values.
__attribute__((always_inline, target("avx2,fma")))
static inline void tile256(const float *a, size_t lda, const int R, const int H, int k, const float *panel,
                           size_t pstride, float *c, size_t ldc, const float *bias, int accumulate) {
    __m256 acc[6][8];
    for (int r = 0; r < R; r++)
        for (int q = 0; q < 2 * H; q++) acc[r][q] = _mm256_setzero_ps();
    for (int kk = 0; kk < k; kk++) {
        __m256 b[8];
        for (int q = 0; q < 2 * H; q++) b[q] = _mm256_loadu_ps(HALF(panel, pstride, q / 2) + (size_t)kk * NR + (q % 2) * 8);
        for (int r = 0; r < R; r++) {
            __m256 av = _mm256_broadcast_ss(a + (size_t)r * lda + kk);
            for (int q = 0; q < 2 * H; q++) acc[r][q] = _mm256_fmadd_ps(av, b[q], acc[r][q]);
        }
    }
    for (int r = 0; r < R; r++) {
        for (int q = 0; q < 2 * H; q++) {
            int h = q / 2;
            size_t col = (size_t)(h / 2) * NR + (h % 2) * 16 + (q % 2) * 8;
            float *cr = c + (size_t)r * ldc + col;
            if (accumulate) acc[r][q] = _mm256_add_ps(acc[r][q], _mm256_loadu_ps(cr));
            else if (bias) acc[r][q] = _mm256_add_ps(acc[r][q], _mm256_loadu_ps(bias + col));
            _mm256_storeu_ps(cr, acc[r][q]);
        }
    }
}

// One tile of `rows` (1...6) rows by `halves` (2, 4, or 8 with one row) half-panels.
__attribute__((target("avx512f")))
static void tile512_any(const float *a, size_t lda, int rows, int halves, int k0, int k1, const float *panel,
                        size_t pstride, float *c, size_t ldc, const float *bias, int accumulate, float *part,
                        int first, int last) {
#define T512(R, H) tile512(a, lda, R, H, k0, k1, panel, pstride, c, ldc, bias, accumulate, part, first, last)
    if (halves == 8) { T512(1, 8); return; }
    if (halves == 4) {
        switch (rows) {
        case 1: T512(1, 4); return;
        case 2: T512(2, 4); return;
        case 3: T512(3, 4); return;
        case 4: T512(4, 4); return;
        case 5: T512(5, 4); return;
        default: T512(6, 4); return;
        }
    }
    switch (rows) {
    case 1: T512(1, 2); return;
    case 2: T512(2, 2); return;
    case 3: T512(3, 2); return;
    case 4: T512(4, 2); return;
    case 5: T512(5, 2); return;
    default: T512(6, 2); return;
    }
#undef T512
}

// The AVX-512 product: strips of MC rows; in each, groups of half-panels (four, or eight for a
// single row), k in chunks of KC (one chunk for fewer than MR rows: nothing to reuse), row tiles
// of MR.
__attribute__((target("avx512f")))
static void gemm512(const float *a, size_t lda, int m, int k, const float *packed, int p0, int p1,
                    float *c, size_t ldc, const float *bias, int accumulate) {
    enum { MC = 48, KC = 128, MR = 6 };
    float part[MC * PART] __attribute__((aligned(64)));
    size_t pstride = (size_t)k * NR;
    int kc = m < MR ? (k > 0 ? k : 1) : KC;
    for (int i0 = 0; i0 < m; i0 += MC) {
        int i1 = m - i0 < MC ? m : i0 + MC;
        for (int q = 2 * p0; q < 2 * p1;) {
            int left = 2 * p1 - q;
            int halves = i1 - i0 == 1 && left >= 8 ? 8 : left >= 4 ? 4 : 2;
            const float *panel = packed + (size_t)(q / 2) * pstride;
            const float *bp = bias ? bias + (size_t)(q / 2) * NR : NULL;
            for (int k0 = 0; k0 < k || k0 == 0; k0 += kc) {
                int k1 = k - k0 < kc ? k : k0 + kc;
                for (int i = i0, rows; i < i1; i += rows) {
                    // Seven or eight rows left go as two tiles of three or four, not six and a
                    // short one: a tile of one or two rows has too few FMAs per load.
                    rows = i1 - i < MR ? i1 - i : i1 - i > MR && i1 - i < MR + 3 ? (i1 - i + 1) / 2 : MR;
                    tile512_any(a + (size_t)i * lda, lda, rows, halves, k0, k1, panel, pstride,
                                c + (size_t)i * ldc + (size_t)(q / 2) * NR, ldc, bp, accumulate,
                                part + (size_t)(i - i0) * PART, k0 == 0, k1 == k);
                }
            }
            q += halves;
        }
    }
}

__attribute__((target("avx2,fma")))
static int tile256_any(const float *a, size_t lda, int rows, int halves, int k, const float *panel, size_t pstride,
                       float *c, size_t ldc, const float *bias, int accumulate) {
#define T256(R, H) do { tile256(a, lda, R, H, k, panel, pstride, c, ldc, bias, accumulate); return H; } while (0)
    switch (rows) {
    case 1: if (halves >= 4) T256(1, 4); T256(1, 2);
    case 2: if (halves >= 2) T256(2, 2); T256(2, 1);
    case 3: T256(3, 1);
    case 4: T256(4, 1);
    case 5: T256(5, 1);
    default: T256(6, 1);
    }
#undef T256
}

#endif  // GS_X86

void gs_lstm_gemm(int path, const float *a, size_t lda, int m, int k, const float *packed,
                  int p0, int p1, float *c, size_t ldc, const float *bias, int accumulate) {
#ifdef GS_X86
    if (path == 2) { gemm512(a, lda, m, k, packed, p0, p1, c, ldc, bias, accumulate); return; }
    // AVX2: strips of MC rows; each panel (32 x k floats) is read once per strip and reused by
    // every row block of it while it sits in L1/L2. A short last row block sweeps the panels on its own.
    enum { MC = 96, MR = 6 };
    size_t pstride = (size_t)k * NR;
    for (int i0 = 0; i0 < m; i0 += MC) {
        int i1 = m - i0 < MC ? m : i0 + MC;
        int full = i0 + (i1 - i0) / MR * MR;
        for (int p = p0; p < p1; p++) {
            const float *panel = packed + (size_t)p * pstride;
            const float *bp = bias ? bias + (size_t)p * NR : NULL;
            for (int i = i0; i < full; i += MR) {
                const float *ai = a + (size_t)i * lda;
                float *ci = c + (size_t)i * ldc + (size_t)p * NR;
                for (int h = 0; h < 2; h += tile256_any(ai, lda, MR, 1, k, panel + h * 16, pstride, ci + h * 16, ldc, bp ? bp + h * 16 : NULL, accumulate)) {}
            }
        }
        if (full < i1) {
            int rows = i1 - full, h = 2 * p0, h1 = 2 * p1;
            const float *ai = a + (size_t)full * lda;
            while (h < h1) {
                // Half-panel h: panel h/2, column offset (h%2)*16 (AVX2 tiles are single halves).
                const float *panel = packed + (size_t)(h / 2) * pstride + (h % 2) * 16;
                float *ci = c + (size_t)full * ldc + (size_t)(h / 2) * NR + (h % 2) * 16;
                const float *bp = bias ? bias + (size_t)(h / 2) * NR + (h % 2) * 16 : NULL;
                h += tile256_any(ai, lda, rows, h1 - h, k, panel, pstride, ci, ldc, bp, accumulate);
            }
        }
    }
#else
    (void)path; (void)a; (void)lda; (void)m; (void)k; (void)packed; (void)p0; (void)p1;
    (void)c; (void)ldc; (void)bias; (void)accumulate;
#endif
}

#ifdef GS_X86

// ---- the cell: exp by Cephes's degree-6 polynomial, as the Swift FastMath ----------------------

// Its constants, shared by exp512 and exp256x so that both paths compute the same floats.
#define EXP_LO -87.3f
#define EXP_HI 88.3f
#define EXP_LOG2E 1.44269504088896341f
#define EXP_LN2_HI 0.693359375f
#define EXP_LN2_LO 2.12194440e-4f
#define EXP_P0 1.9875691500e-4f
#define EXP_P1 1.3981999507e-3f
#define EXP_P2 8.3334519073e-3f
#define EXP_P3 4.1665795894e-2f
#define EXP_P4 1.6666665459e-1f
#define EXP_P5 5.0000001201e-1f

#define EXP_BODY(V, SET1, MIN, MAX, MUL, ADD, SUB, ROUND, CVT, ADDI, SLLI, SET1I, CASTPS)          \
    x = MIN(MAX(x, SET1(EXP_LO)), SET1(EXP_HI));                                                \
    V n = ROUND(MUL(x, SET1(EXP_LOG2E)));                                                        \
    V r = SUB(x, MUL(n, SET1(EXP_LN2_HI)));                                                      \
    r = ADD(r, MUL(n, SET1(EXP_LN2_LO)));                                                        \
    V p = SET1(EXP_P0);                                                                          \
    p = ADD(MUL(p, r), SET1(EXP_P1));                                                            \
    p = ADD(MUL(p, r), SET1(EXP_P2));                                                            \
    p = ADD(MUL(p, r), SET1(EXP_P3));                                                            \
    p = ADD(MUL(p, r), SET1(EXP_P4));                                                            \
    p = ADD(MUL(p, r), SET1(EXP_P5));                                                            \
    V e = ADD(ADD(MUL(p, MUL(r, r)), r), SET1(1.0f));                                            \
    return MUL(e, CASTPS(SLLI(ADDI(CVT(n), SET1I(127)), 23)));

#define ROUND512(v) _mm512_roundscale_ps((v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define ROUND256(v) _mm256_round_ps((v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

__attribute__((target("avx512f"))) static inline __m512 exp512(__m512 x) {
    EXP_BODY(__m512, _mm512_set1_ps, _mm512_min_ps, _mm512_max_ps, _mm512_mul_ps, _mm512_add_ps, _mm512_sub_ps,
             ROUND512, _mm512_cvtps_epi32, _mm512_add_epi32, _mm512_slli_epi32, _mm512_set1_epi32, _mm512_castsi512_ps)
}

__attribute__((target("avx512f"))) static inline __m512 sigmoid512(__m512 x) {
    __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

// tanh(x) = sign(x) (1 - e) / (1 + e), e = exp(-2|x|)
__attribute__((target("avx512f"))) static inline __m512 tanh512(__m512 x) {
    __m512i signbit = _mm512_set1_epi32((int)0x80000000u);
    __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), signbit);
    __m512 a = _mm512_castsi512_ps(_mm512_andnot_si512(signbit, _mm512_castps_si512(x)));
    __m512 e = exp512(_mm512_mul_ps(a, _mm512_set1_ps(-2.0f)));
    __m512 one = _mm512_set1_ps(1.0f);
    __m512 t = _mm512_div_ps(_mm512_sub_ps(one, e), _mm512_add_ps(one, e));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), sign));
}

// EXP_BODY on AVX2 for n vectors at once, each step over all of them before the next: the same
// operations on each, so the same values, but n independent chains side by side in the
// instruction stream (Zen 3's schedulers hold too few waiting operations to find them a vector
// apart). sigmoid(x) = 1 / (1 + exp(-x)) and tanh as tanh512, around it, in gates256 and states256.
__attribute__((always_inline, target("avx2,fma")))
static inline void exp256x(__m256 *x, const int n) {
    __m256 nn[4], r[4], p[4];
    for (int q = 0; q < n; q++) x[q] = _mm256_min_ps(_mm256_max_ps(x[q], _mm256_set1_ps(EXP_LO)), _mm256_set1_ps(EXP_HI));
    for (int q = 0; q < n; q++) nn[q] = ROUND256(_mm256_mul_ps(x[q], _mm256_set1_ps(EXP_LOG2E)));
    for (int q = 0; q < n; q++) r[q] = _mm256_sub_ps(x[q], _mm256_mul_ps(nn[q], _mm256_set1_ps(EXP_LN2_HI)));
    for (int q = 0; q < n; q++) r[q] = _mm256_add_ps(r[q], _mm256_mul_ps(nn[q], _mm256_set1_ps(EXP_LN2_LO)));
    for (int q = 0; q < n; q++) p[q] = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(EXP_P0), r[q]), _mm256_set1_ps(EXP_P1));
    for (int q = 0; q < n; q++) p[q] = _mm256_add_ps(_mm256_mul_ps(p[q], r[q]), _mm256_set1_ps(EXP_P2));
    for (int q = 0; q < n; q++) p[q] = _mm256_add_ps(_mm256_mul_ps(p[q], r[q]), _mm256_set1_ps(EXP_P3));
    for (int q = 0; q < n; q++) p[q] = _mm256_add_ps(_mm256_mul_ps(p[q], r[q]), _mm256_set1_ps(EXP_P4));
    for (int q = 0; q < n; q++) p[q] = _mm256_add_ps(_mm256_mul_ps(p[q], r[q]), _mm256_set1_ps(EXP_P5));
    for (int q = 0; q < n; q++) p[q] = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(p[q], _mm256_mul_ps(r[q], r[q])), r[q]), _mm256_set1_ps(1.0f));
    for (int q = 0; q < n; q++)
        x[q] = _mm256_mul_ps(p[q], _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(nn[q]), _mm256_set1_epi32(127)), 23)));
}

// sigmoid256 and tanh256 around exp256x: sigmoid(x) = 1 / (1 + e) for e = exp(-x), and tanh(x) =
// sign(x) (1 - e) / (1 + e) for e = exp(-2|x|), as sigmoid512 and tanh512.
#define SIGN256 _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u))
__attribute__((always_inline, target("avx2,fma")))
static inline __m256 sigmoid_arg256(__m256 x) { return _mm256_sub_ps(_mm256_setzero_ps(), x); }
__attribute__((always_inline, target("avx2,fma")))
static inline __m256 sigmoid_of256(__m256 e) {
    const __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, e));
}
__attribute__((always_inline, target("avx2,fma")))
static inline __m256 tanh_arg256(__m256 x) { return _mm256_mul_ps(_mm256_andnot_ps(SIGN256, x), _mm256_set1_ps(-2.0f)); }
__attribute__((always_inline, target("avx2,fma")))
static inline __m256 tanh_of256(__m256 e, __m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_or_ps(_mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e)), _mm256_and_ps(x, SIGN256));
}

// The first `count` of 8 float lanes (all for count >= 8): a row's last, partial vector.
__attribute__((always_inline, target("avx2,fma")))
static inline __m256i lanes256(int count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

__attribute__((target("avx512f")))
static inline void cell512(const float *z, int b0, int b1, int units, const float *cp, float *cn, float *hn,
                           float *gi, float *gf, float *gg, float *go, float *out) {
    for (int b = b0; b < b1; b++) {
        int j = b * UB, left = units - j;
        __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        const float *zb = z + (size_t)b * 4 * UB;
        __m512 i = sigmoid512(_mm512_loadu_ps(zb));
        __m512 f = sigmoid512(_mm512_loadu_ps(zb + 16));
        __m512 g = tanh512(_mm512_loadu_ps(zb + 32));
        __m512 o = sigmoid512(_mm512_loadu_ps(zb + 48));
        // c = f*c + i*g and h = o*tanh(c) with separate multiplies and adds, as Keras computes them.
        __m512 cv = _mm512_add_ps(_mm512_mul_ps(f, _mm512_maskz_loadu_ps(m, cp + j)), _mm512_mul_ps(i, g));
        __m512 hv = _mm512_mul_ps(o, tanh512(cv));
        _mm512_mask_storeu_ps(gi + j, m, i);
        _mm512_mask_storeu_ps(gf + j, m, f);
        _mm512_mask_storeu_ps(gg + j, m, g);
        _mm512_mask_storeu_ps(go + j, m, o);
        _mm512_mask_storeu_ps(cn + j, m, cv);
        _mm512_mask_storeu_ps(hn + j, m, hv);
        if (out) _mm512_mask_storeu_ps(out + j, m, hv);
    }
}

// Masked moves only for a block's last, partial vector: on Zen 2 and 3 a VMASKMOVPS store takes
// about 12 cycles of throughput, and seven of them a vector made the AVX2 cell 22% of a step of
// 2 x LSTM(256) (scripts/bench_engine.sh, 2026-12-04). The values stored are the same either way.
__attribute__((always_inline, target("avx2,fma")))
static inline __m256 load256(const float *p, __m256i m, int full) {
    return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
}
__attribute__((always_inline, target("avx2,fma")))
static inline void store256(float *p, __m256i m, int full, __m256 v) {
    if (full) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, m, v);
}

// The AVX2 cell runs in two passes over a call's rows (rows256): first the four gates of every
// vector, into their planes; then c and h, four whole vectors at a time, from the planes just
// written (in L1). Each pass runs the exps of independent vectors side by side (exp256x): fused,
// one vector's exp, divide, exp, divide chain (about 110 cycles) kept Zen 3's schedulers waiting,
// 4.78 ns a unit for 64 rows of 256 units (scripts/bench_lstm_cell.sh). The values are the same:
// the same operations on the same floats as the AVX-512 cell and the Swift reference.

// Gates of unit blocks b0..<b1 of one row: sigmoid256 of i, f and o and tanh256 of g.
__attribute__((always_inline, target("avx2,fma")))
static inline void gates256(const float *z, int b0, int b1, int units, float *gi, float *gf, float *gg, float *go) {
    for (int b = b0; b < b1; b++) {
        const float *zb = z + (size_t)b * 4 * UB;
        for (int h8 = 0; h8 < 2; h8++) {
            int j = b * UB + h8 * 8, left = units - j;
            if (left <= 0) break;
            int full = left >= 8;
            __m256i m = lanes256(left);
            const __m256 zg = _mm256_loadu_ps(zb + 32 + h8 * 8);
            __m256 e[4] = { sigmoid_arg256(_mm256_loadu_ps(zb + h8 * 8)), sigmoid_arg256(_mm256_loadu_ps(zb + 16 + h8 * 8)),
                            tanh_arg256(zg), sigmoid_arg256(_mm256_loadu_ps(zb + 48 + h8 * 8)) };
            exp256x(e, 4);
            store256(gi + j, m, full, sigmoid_of256(e[0]));
            store256(gf + j, m, full, sigmoid_of256(e[1]));
            store256(gg + j, m, full, tanh_of256(e[2], zg));
            store256(go + j, m, full, sigmoid_of256(e[3]));
        }
    }
}

// c = f*c + i*g and h = o*tanh(c) (separate multiplies and adds, as Keras computes them) of n
// vectors at plane offsets p[q] (out at o[q]); whole vectors unless n is 1 (then lanes m).
__attribute__((always_inline, target("avx2,fma")))
static inline void states256(const int n, const size_t *p, const size_t *o, __m256i m, int full, const float *cp,
                             float *cn, float *hn, const float *gi, const float *gf, const float *gg, const float *go, float *out) {
    __m256 cv[4], e[4];
    for (int q = 0; q < n; q++) {
        cv[q] = _mm256_add_ps(_mm256_mul_ps(load256(gf + p[q], m, full), load256(cp + p[q], m, full)),
                              _mm256_mul_ps(load256(gi + p[q], m, full), load256(gg + p[q], m, full)));
        e[q] = tanh_arg256(cv[q]);
    }
    exp256x(e, n);
    for (int q = 0; q < n; q++) {
        const __m256 hv = _mm256_mul_ps(load256(go + p[q], m, full), tanh_of256(e[q], cv[q]));
        store256(cn + p[q], m, full, cv[q]);
        store256(hn + p[q], m, full, hv);
        if (out) store256(out + o[q], m, full, hv);
    }
}

// Every row of a step in one call: with the rows' independent work back to back, the out-of-order
// core overlaps one row's exp and divide chains with the next row's (at 32 units a row is a single
// vector, and one call per row left those chains waiting on each other).
__attribute__((target("avx512f")))
static void rows512(const float *z, size_t zstride, int rows, const _Bool *mask, size_t mstride, int b0, int b1,
                    int units, const float *cp, float *cn, float *hn, float *gi, float *gf, float *gg, float *go,
                    float *out, size_t ostride) {
    for (int r = 0; r < rows; r++) {
        if (mask && !mask[(size_t)r * mstride]) continue;
        size_t p = (size_t)r * units;
        cell512(z + (size_t)r * zstride, b0, b1, units, cp + p, cn + p, hn + p, gi + p, gf + p, gg + p, go + p,
                out ? out + (size_t)r * ostride : NULL);
    }
}

__attribute__((target("avx2,fma")))
static void rows256(const float *z, size_t zstride, int rows, const _Bool *mask, size_t mstride, int b0, int b1,
                    int units, const float *cp, float *cn, float *hn, float *gi, float *gf, float *gg, float *go,
                    float *out, size_t ostride) {
    for (int r = 0; r < rows; r++) {
        if (mask && !mask[(size_t)r * mstride]) continue;
        const size_t p = (size_t)r * units;
        gates256(z + (size_t)r * zstride, b0, b1, units, gi + p, gf + p, gg + p, go + p);
    }
    // The rows' whole vectors four at a time, in order (a call often covers one block of each row:
    // two vectors a row); a row's last, partial vector on its own.
    const int j0 = b0 * UB, j1 = b1 * UB < units ? b1 * UB : units;
    const __m256i all = _mm256_set1_epi32(-1);
    size_t pend_p[4], pend_o[4];
    int pending = 0;
    for (int r = 0; r < rows; r++) {
        if (mask && !mask[(size_t)r * mstride]) continue;
        for (int j = j0; j < j1; j += 8) {
            const size_t pj = (size_t)r * units + (size_t)j, oj = (size_t)r * ostride + (size_t)j;
            if (units - j < 8) {
                states256(1, &pj, &oj, lanes256(units - j), 0, cp, cn, hn, gi, gf, gg, go, out);
                continue;
            }
            pend_p[pending] = pj;
            pend_o[pending] = oj;
            if (++pending == 4) {
                states256(4, pend_p, pend_o, all, 1, cp, cn, hn, gi, gf, gg, go, out);
                pending = 0;
            }
        }
    }
    for (int q = 0; q < pending; q++) states256(1, pend_p + q, pend_o + q, all, 1, cp, cn, hn, gi, gf, gg, go, out);
}

#endif  // GS_X86

void gs_lstm_cell(int path, const float *z, size_t zstride, int rows, const _Bool *mask, size_t mstride,
                  int b0, int b1, int units, const float *c_prev, float *c_next, float *h_next,
                  float *gi, float *gf, float *gg, float *go, float *out, size_t ostride) {
#ifdef GS_X86
    if (path == 2) rows512(z, zstride, rows, mask, mstride, b0, b1, units, c_prev, c_next, h_next, gi, gf, gg, go, out, ostride);
    else rows256(z, zstride, rows, mask, mstride, b0, b1, units, c_prev, c_next, h_next, gi, gf, gg, go, out, ostride);
#else
    (void)path; (void)z; (void)zstride; (void)rows; (void)mask; (void)mstride; (void)b0; (void)b1; (void)units;
    (void)c_prev; (void)c_next; (void)h_next; (void)gi; (void)gf; (void)gg; (void)go; (void)out; (void)ostride;
#endif
}

// ---- the barrier --------------------------------------------------------------------------------

struct gs_barrier {
    _Atomic int arrived;
    _Atomic int generation;
    _Atomic int aborted;
    _Atomic int stop;       // `aborted` as the last party found it when the current step's wait ended
    _Atomic int sleepers;
    int parties;
    // Per party: its items of the current step, (first << 32) | end, each on its own cache line.
    struct { _Atomic long long range; char pad[56]; } *ranges;
};

gs_barrier *gs_barrier_create(int parties) {
    gs_barrier *b = (gs_barrier *)malloc(sizeof(gs_barrier));
    if (!b) return NULL;
    atomic_init(&b->arrived, 0);
    atomic_init(&b->generation, 0);
    atomic_init(&b->aborted, 0);
    atomic_init(&b->sleepers, 0);
    atomic_init(&b->stop, 0);
    b->parties = parties;
    b->ranges = aligned_alloc(64, 64 * (size_t)parties);
    if (!b->ranges) { free(b); return NULL; }
    for (int k = 0; k < parties; k++) atomic_init(&b->ranges[k].range, 0);
    return b;
}

void gs_barrier_destroy(gs_barrier *b) {
    if (!b) return;
    free(b->ranges);
    free(b);
}

void gs_barrier_abort(gs_barrier *b) { atomic_store_explicit(&b->aborted, 1, memory_order_release); }


// Threads meet once per step, microseconds apart: spin first (a sleep and wake-up costs more
// than a step of a small layer), then sleep on a futex, so a waiting thread never keeps a core
// from a thread that needs it, such as a team member the system started on the same core.
static void sleep_while(_Atomic int *word, int value) {
#ifdef __linux__
    syscall(SYS_futex, (int *)word, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
#else
    (void)word; (void)value;
    sched_yield();
#endif
}

static void wake_all(_Atomic int *word) {
#ifdef __linux__
    syscall(SYS_futex, (int *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)word;
#endif
}

int gs_barrier_wait(gs_barrier *b) {
    int generation = atomic_load_explicit(&b->generation, memory_order_acquire);
    if (atomic_fetch_add_explicit(&b->arrived, 1, memory_order_acq_rel) == b->parties - 1) {
        // Every party reads this one value: a flag raised after this wait is seen at the next,
        // by all parties alike (one that saw it a wait early would leave the others waiting).
        atomic_store_explicit(&b->stop, atomic_load(&b->aborted), memory_order_relaxed);
        atomic_store_explicit(&b->arrived, 0, memory_order_relaxed);
        atomic_store(&b->generation, generation + 1);  // seq_cst: ordered before the sleepers check
        if (atomic_load(&b->sleepers) > 0) wake_all(&b->generation);
        return atomic_load_explicit(&b->stop, memory_order_relaxed);
    }
    for (int spins = 0; spins < 4000; spins++) {
        if (atomic_load_explicit(&b->generation, memory_order_acquire) != generation)
            return atomic_load_explicit(&b->stop, memory_order_relaxed);
        // Now and then let a thread that shares this core run: it may be the one we wait for.
        if (spins % 256 == 255) { sched_yield(); continue; }
#ifdef GS_X86
        _mm_pause();
#endif
    }
    atomic_fetch_add(&b->sleepers, 1);                // seq_cst: before the generation check
    while (atomic_load(&b->generation) == generation) sleep_while(&b->generation, generation);
    atomic_fetch_sub(&b->sleepers, 1);
    return atomic_load_explicit(&b->stop, memory_order_relaxed);
}

void gs_team_reset(gs_barrier *b, int self, int first, int end) {
    atomic_store_explicit(&b->ranges[self].range, ((long long)first << 32) | (unsigned)end, memory_order_release);
}

// The owner takes from the front of its range, others from the back: each item once.
int gs_team_next(gs_barrier *b, int self, int grain, int *start) {
    for (int k = 0; k < b->parties; k++) {
        int party = (self + k) % b->parties;
        _Atomic long long *word = &b->ranges[party].range;
        long long r = atomic_load_explicit(word, memory_order_acquire);
        for (;;) {
            int first = (int)(r >> 32), end = (int)(r & 0xFFFFFFFF);
            if (first >= end) break;
            int n = end - first < grain ? end - first : grain;
            long long next = k == 0 ? ((long long)(first + n) << 32) | (unsigned)end
                                    : ((long long)first << 32) | (unsigned)(end - n);
            if (atomic_compare_exchange_weak_explicit(word, &r, next, memory_order_acq_rel, memory_order_acquire)) {
                *start = k == 0 ? first : end - n;
                return n;
            }
        }
    }
    return 0;
}
