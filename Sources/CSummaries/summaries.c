// The recorder's per-value loops: exact summaries of each unit's planes, and the exact
// symmetric rank-k update behind the pair moments. See include/csummaries.h.
#include "csummaries.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>


#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GS_X86 1
#endif

// The CPU's vector features, read once: every path choice below asks here.
enum { CPU_AVX2_FMA = 1, CPU_AVX512F = 2, CPU_AVX512_DQ_VL = 4, CPU_AVX512BW = 8, CPU_AVX512IFMA = 16 };

static int cpu_features(void) {
#ifdef GS_X86
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? CPU_AVX2_FMA : 0) |
                 (__builtin_cpu_supports("avx512f") ? CPU_AVX512F : 0) |
                 (__builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") ? CPU_AVX512_DQ_VL : 0) |
                 (__builtin_cpu_supports("avx512bw") ? CPU_AVX512BW : 0) |
                 (__builtin_cpu_supports("avx512ifma") ? CPU_AVX512IFMA : 0);
    }
    return cached;
#else
    return 0;
#endif
}

#ifdef GS_X86
// The first `count` of 8 lanes (none for count <= 0, all for count >= 8): an AVX-512 mask of a
// row's last, partial vector.
static inline __mmask8 lanes8(int count) { return (__mmask8)(count >= 8 ? 0xFFu : count <= 0 ? 0u : (1u << count) - 1); }
#endif

// ---- per-unit summaries -------------------------------------------------------------------------

// x's exact Σx and Σx² buckets, as ExactSums.add: Σx in bucket e (value m * 2^(e - 150)), the
// square's two 24-bit halves in square buckets 2e and 2e + 24.
static inline void add_exact(float x, int64_t *p) {
    union { float f; uint32_t u; } bits = { x };
    int e = (int)((bits.u >> 23) & 0xFF);
    uint64_t m = bits.u & 0x7FFFFF;
    if (e == 0) e = 1; else m |= 0x800000;
    p[e] += (bits.u >> 31) == 0 ? (int64_t)m : -(int64_t)m;
    uint64_t sq = m * m;
    p[GS_SUM_LINEAR + 2 * e] += (int64_t)(sq & 0xFFFFFF);
    p[GS_SUM_LINEAR + 2 * e + 24] += (int64_t)(sq >> 24);
}

// The histogram slot of x on the grid of `bins` bins from lo/1000 (0 underflow, 1 + k bin k,
// bins + 1 overflow), as SummaryAccumulator.locate; *edge = the edge index x equals, or -1.
//
// No table of edges: t = x * 1000 is exact in a double (24 times 7 significant bits), and for a
// float32 x, x >= the double nearest k/1000 exactly when t >= k. (A float32 other than k/1000
// differs from it by at least ulp(x)/1000, about 2^-34 x, far more than that double's error of
// 2^-53 x; and x equals k/1000 only at multiples of 1/8, where the double is exact.)
static inline int locate(float x, int lo, int bins, int *edge) {
    const double t = (double)x * 1000;
    *edge = -1;
    if (!(t >= lo)) return 0;
    if (t >= lo + bins) {
        if (t == lo + bins) *edge = bins;
        return bins + 1;
    }
    int f = (int)t;  // |t| < 1000: truncation is exact; floor it
    if ((double)f > t) f--;
    if ((double)f == t) *edge = f - lo;
    return 1 + f - lo;
}

// Counts x in its histogram slot and, when it equals an edge, in that edge's slot.
static inline void count_value(float x, int lo, int bins, int64_t *hist, int64_t *edge_eq) {
    int e;
    hist[locate(x, lo, bins, &e)]++;
    // A float32 equals edge k/1000 only when k/1000 is a multiple of 1/8 (the nearest double to
    // any other k/1000 has more than 24 significant bits), so e is a multiple of GS_EDGE_STEP;
    // SummaryKernelTests checks this for every edge.
    if (e >= 0) edge_eq[e / GS_EDGE_STEP]++;
}

// ---- the fixed-point fast path ------------------------------------------------------------------
//
// Most values of a plane lie in [2^(T-27), 2^T) for a small T (gates below 2, cell states below a
// few dozen). There x * 2^(50-T) is an integer below 2^50, and x² * 2^(100-2T) an integer below
// 2^100 whose two 50-bit halves come out of one floor in double arithmetic, all exactly. 8192 such
// terms sum in an Int64 without overflow, so a slot's Σx and Σx² accumulate in three plain Int64
// adds a value (no data-dependent bucket) and go to the buckets once, in 21-bit pieces, at the end.
// Values outside the window (and non-finite ones) take add_exact. The sums are exact either way;
// only their split over the buckets differs, and ExactSums reads its canonical form.

/// Slots (unit x plane) of one group: 4 units of at most GS_MAX_WIDTH planes.
///
/// The vector paths count a group's histograms in 16-bit counters first (COUNT_BINS a slot),
/// added to the Int64 histograms at each flush: 4 units of an LSTM then count in 56 KB, about L1,
/// where 8 units in Int64 counters (450 KB) made every increment an L1 miss, and the increments
/// two thirds of the loop's time. FAST_ROWS < 2^16, so no counter overflows between flushes.
enum { FAST_UNITS = 4, FAST_SLOTS = FAST_UNITS * GS_MAX_WIDTH, FAST_ROWS = 8192, COUNT_BINS = 2002 };

typedef struct {
    int64_t ax[FAST_SLOTS], ah[FAST_SLOTS], al[FAST_SLOTS];  // Σ x 2^(50-T), Σ hi, Σ lo of x² 2^(100-2T)
    double mn[FAST_SLOTS], mx[FAST_SLOTS];
    double sx[FAST_SLOTS], ss[FAST_SLOTS];                   // 2^(50-T), 2^(50-2T)
    uint32_t lo[FAST_SLOTS], hi[FAST_SLOTS];                 // |x| bits in [lo, hi): the window
    int t[FAST_SLOTS];                                       // T
    int64_t *sums[FAST_SLOTS];                               // the slot's buckets
    int64_t *hist[FAST_SLOTS];                               // the slot's histogram, NULL: none
    uint16_t *count[FAST_SLOTS];                             // its counters since the last flush (vector paths)
    int64_t *edge_eq[FAST_SLOTS];
    int32_t low[FAST_SLOTS], bins[FAST_SLOTS];               // its grid: bins from low/1000
} fast_group;

// T of a slot from what it has seen: the least T in [-90, 100] with max |x| < 2^T (1 at first).
static int window_top(double mn, double mx) {
    const double m = fabs(mn) > fabs(mx) ? fabs(mn) : fabs(mx);
    if (!(m <= DBL_MAX) || !(mn <= mx)) return 1;
    if (m == 0) return -90;
    int t = ilogb(m) + 1;
    return t < -90 ? -90 : t > 100 ? 100 : t;
}

// Adds v (|v| < 2^63) to bucket k of `b` in three 21-bit pieces, so that no bucket takes more
// than 2^21 a flush.
static inline void add_pieces(int64_t *b, int k, int64_t v) {
    const int64_t p0 = v & 0x1FFFFF;
    v >>= 21;  // arithmetic: the pieces keep the sign in the last one
    b[k] += p0;
    b[k + 21] += v & 0x1FFFFF;
    b[k + 42] += v >> 21;
}

static void fast_flush(fast_group *g, int slots) {
    for (int j = 0; j < slots; j++) {
        const int t = g->t[j];
        int64_t *b = g->sums[j];
        // x 2^(50-T) weighs 2^(T-50) = bucket (T + 100)'s 2^(k-150); the halves of x² 2^(100-2T)
        // weigh 2^(2T-100) and 2^(2T-50): square buckets 2T + 200 and 2T + 250 (2^(k-300)).
        if (g->ax[j]) add_pieces(b, t + 100, g->ax[j]);
        if (g->al[j]) add_pieces(b + GS_SUM_LINEAR, 2 * t + 200, g->al[j]);
        if (g->ah[j]) add_pieces(b + GS_SUM_LINEAR, 2 * t + 250, g->ah[j]);
        g->ax[j] = g->ah[j] = g->al[j] = 0;
        if (g->hist[j] && g->count[j]) {
            const int n = g->bins[j] + 2;
            int64_t *h = g->hist[j];
            uint16_t *c = g->count[j];
            for (int k = 0; k < n; k++) h[k] += c[k];
            memset(c, 0, (size_t)n * sizeof *c);
        }
    }
}

// A block of rows of one group: slot j of row r is rows[r][j]. Each pass below takes one slot (or
// 8) over every row of the block, so that its accumulators stay in registers, while the block's
// rows (12 KB for 8 units of an LSTM) stay in L1 and the group's histograms (up to 450 KB) in L2.
enum { BLOCK_ROWS = 64 };

// Sums and extremes of slot j over a block, portable.
static void fast_block_portable(fast_group *g, const float *const *rows, int n, int j) {
    int64_t ax = 0, ah = 0, al = 0;
    double mn = g->mn[j], mx = g->mx[j];
    const uint32_t lo = g->lo[j], hi = g->hi[j];
    const double sx = g->sx[j], ss = g->ss[j];
    for (int r = 0; r < n; r++) {
        const float x = rows[r][j];
        union { float f; uint32_t u; } bits = { x };
        const uint32_t a = bits.u & 0x7FFFFFFF;
        const double d = x;
        if ((a >= lo && a < hi) || a == 0) {
            ax += (int64_t)(d * sx);
            const double q = d * d * ss;
            // q >= 0, so truncation is floor.
            const int64_t h = (int64_t)q;
            ah += h;
            al += (int64_t)((q - (double)h) * 0x1p50);
        } else {
            add_exact(x, g->sums[j]);
        }
        mn = d < mn ? d : mn;
        mx = d > mx ? d : mx;
    }
    g->ax[j] += ax;
    g->ah[j] += ah;
    g->al[j] += al;
    g->mn[j] = mn;
    g->mx[j] = mx;
}

#ifdef GS_X86
// The same for slots [j, j + 8) (those below `slots`), one vector a row, with their histograms
// (locate's arithmetic, 8 lanes at once; exact edge hits go through locate itself).
__attribute__((target("avx512f,avx512dq,avx512vl")))
static void fast_block512(fast_group *g, const float *const *rows, int n, int j, int slots) {
    const __mmask8 m = lanes8(slots - j);
    const __m256i abs_mask = _mm256_set1_epi32(0x7FFFFFFF), zero = _mm256_setzero_si256();
    const __m256i lo = _mm256_loadu_si256((const __m256i *)(g->lo + j));
    const __m256i hi = _mm256_loadu_si256((const __m256i *)(g->hi + j));
    const __m512d sx = _mm512_loadu_pd(g->sx + j), ss = _mm512_loadu_pd(g->ss + j), half = _mm512_set1_pd(0x1p50);
    __m512i ax = _mm512_setzero_si512(), ah = _mm512_setzero_si512(), al = _mm512_setzero_si512();
    __m512d mn = _mm512_loadu_pd(g->mn + j), mx = _mm512_loadu_pd(g->mx + j);
    // The histogram lanes.
    __mmask8 hm = 0;
    for (int q = 0; q < 8 && j + q < slots; q++) hm |= g->hist[j + q] ? (__mmask8)(1u << q) : 0;
    const __m256i low = _mm256_loadu_si256((const __m256i *)(g->low + j));
    const __m256i bins = _mm256_loadu_si256((const __m256i *)(g->bins + j));
    const __m512d lowd = _mm512_cvtepi32_pd(low), top = _mm512_set1_pd(1000.0), thousand = _mm512_set1_pd(1000.0);
    const __m256i one = _mm256_set1_epi32(1);
    // Spare counters, a cache line apart so that their increments do not chain.
    uint16_t spare[8 * 32] = { 0 };
    uint64_t hist_at[8], spare_addr[8], addr[8];
    for (int q = 0; q < 8; q++) {
        hist_at[q] = hm & (1u << q) ? (uint64_t)(uintptr_t)g->count[j + q] : 0;
        spare_addr[q] = (uint64_t)(uintptr_t)(spare + 32 * q);
    }
    const __m512i hbase = _mm512_loadu_si512(hist_at), spare_at = _mm512_loadu_si512(spare_addr);
    for (int r = 0; r < n; r++) {
        const __m256 xf = _mm256_maskz_loadu_ps(m, rows[r] + j);
        const __m256i a = _mm256_and_si256(_mm256_castps_si256(xf), abs_mask);
        const __mmask8 fast = m & ((_mm256_cmpge_epu32_mask(a, lo) & _mm256_cmplt_epu32_mask(a, hi)) |
                                   _mm256_cmpeq_epi32_mask(a, zero));
        const __m512d d = _mm512_cvtps_pd(xf);
        const __m512d q = _mm512_mul_pd(_mm512_mul_pd(d, d), ss);
        const __m512d h = _mm512_roundscale_pd(q, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
        ax = _mm512_mask_add_epi64(ax, fast, ax, _mm512_cvttpd_epi64(_mm512_mul_pd(d, sx)));
        ah = _mm512_mask_add_epi64(ah, fast, ah, _mm512_cvttpd_epi64(h));
        al = _mm512_mask_add_epi64(al, fast, al, _mm512_cvttpd_epi64(_mm512_mul_pd(_mm512_sub_pd(q, h), half)));
        // min(d, mn) is d < mn ? d : mn, as the scalar loop: a NaN never replaces an extreme.
        mn = _mm512_min_pd(d, mn);
        mx = _mm512_max_pd(d, mx);
        for (unsigned slow = m & ~fast; slow; slow &= slow - 1) {
            const int k = j + __builtin_ctz(slow);
            add_exact(rows[r][k], g->sums[k]);
        }
        if (!hm) continue;
        // t = x * 1000, exact (see locate). Below the grid (or NaN): slot 0; at or past its top
        // (1000 on both grids): slot bins + 1; else 1 + floor(t) - low, an edge where t is whole.
        const __m512d t = _mm512_mul_pd(d, thousand);
        const __mmask8 under = hm & ~_mm512_cmp_pd_mask(t, lowd, _CMP_GE_OQ);
        const __mmask8 over = hm & ~under & _mm512_cmp_pd_mask(t, top, _CMP_GE_OQ);
        const __mmask8 inside = hm & ~under & ~over;
        const __m512d f = _mm512_roundscale_pd(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
        const __mmask8 edge = (inside | over) & _mm512_cmp_pd_mask(f, t, _CMP_EQ_OQ);
        const __m256i k = _mm256_sub_epi32(_mm512_cvttpd_epi32(f), low);
        __m256i sv = _mm256_mask_add_epi32(_mm256_setzero_si256(), inside, k, one);
        sv = _mm256_mask_add_epi32(sv, over, bins, one);
        // Every lane increments one counter, no branches: its histogram slot, or (no histogram,
        // or an edge, done below) a lane's own spare counter.
        __m512i at = _mm512_add_epi64(hbase, _mm512_slli_epi64(_mm512_cvtepi32_epi64(sv), 1));
        at = _mm512_mask_mov_epi64(at, (__mmask8)(~hm | edge), spare_at);
        _mm512_storeu_si512(addr, at);
        for (int q2 = 0; q2 < 8; q2++) (*(uint16_t *)(uintptr_t)addr[q2])++;
        for (unsigned lanes = edge; lanes; lanes &= lanes - 1) {
            const int jj = j + __builtin_ctz(lanes);
            count_value(rows[r][jj], g->low[jj], g->bins[jj], g->hist[jj], g->edge_eq[jj]);
        }
    }
    _mm512_storeu_si512(g->ax + j, _mm512_add_epi64(_mm512_loadu_si512(g->ax + j), ax));
    _mm512_storeu_si512(g->ah + j, _mm512_add_epi64(_mm512_loadu_si512(g->ah + j), ah));
    _mm512_storeu_si512(g->al + j, _mm512_add_epi64(_mm512_loadu_si512(g->al + j), al));
    _mm512_mask_storeu_pd(g->mn + j, m, mn);
    _mm512_mask_storeu_pd(g->mx + j, m, mx);
}
#endif

#ifdef GS_X86
// A double that holds an integer below 2^51 in magnitude, as an Int64, exactly: v + 1.5 * 2^52
// keeps v + 2^51 in the low mantissa bits. AVX2 has no double -> Int64 conversion, and every value
// converted below is such an integer (see the fast path above), so this equals cvttpd_epi64.
__attribute__((always_inline, target("avx2,fma")))
static inline __m256i int64_of(__m256d v) {
    const __m256d magic = _mm256_set1_pd(0x1.8p52);
    return _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(v, magic)), _mm256_castpd_si256(magic));
}

// fast_block512 on AVX2 + FMA: the same slots, values and counters, the doubles in two halves of
// four lanes, and vector masks where AVX-512 has mask registers.
__attribute__((target("avx2,fma")))
static void fast_block256(fast_group *g, const float *const *rows, int n, int j, int slots) {
    const int live = slots - j;
    const int full = live >= 8;
    const unsigned lanes = full ? 0xFFu : (1u << live) - 1;
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(live), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256i m0 = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(m)), m1 = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(m, 1));
    const __m256i abs_mask = _mm256_set1_epi32(0x7FFFFFFF), zero = _mm256_setzero_si256();
    // The group's arrays hold FAST_SLOTS >= j + 8 entries, so whole vectors stay inside them.
    const __m256i lo = _mm256_loadu_si256((const __m256i *)(g->lo + j));
    const __m256i hi = _mm256_loadu_si256((const __m256i *)(g->hi + j));
    const __m256d sx0 = _mm256_loadu_pd(g->sx + j), sx1 = _mm256_loadu_pd(g->sx + j + 4);
    const __m256d ss0 = _mm256_loadu_pd(g->ss + j), ss1 = _mm256_loadu_pd(g->ss + j + 4);
    const __m256d half = _mm256_set1_pd(0x1p50);
    __m256i ax0 = zero, ax1 = zero, ah0 = zero, ah1 = zero, al0 = zero, al1 = zero;
    __m256d mn0 = _mm256_loadu_pd(g->mn + j), mn1 = _mm256_loadu_pd(g->mn + j + 4);
    __m256d mx0 = _mm256_loadu_pd(g->mx + j), mx1 = _mm256_loadu_pd(g->mx + j + 4);
    // The histogram lanes, and each lane's counter base or spare counter (a cache line apart).
    unsigned hm = 0;
    int64_t hmask[8];
    uint16_t spare[8 * 32] = { 0 };
    uint64_t hist_at[8], spare_addr[8], addr[8];
    for (int q = 0; q < 8; q++) {
        const int has = q < live && g->hist[j + q];
        hm |= has ? 1u << q : 0;
        hmask[q] = has ? -1 : 0;
        hist_at[q] = has ? (uint64_t)(uintptr_t)g->count[j + q] : 0;
        spare_addr[q] = (uint64_t)(uintptr_t)(spare + 32 * q);
    }
    const __m256i hm0 = _mm256_loadu_si256((const __m256i *)hmask), hm1 = _mm256_loadu_si256((const __m256i *)(hmask + 4));
    const __m256i hbase0 = _mm256_loadu_si256((const __m256i *)hist_at), hbase1 = _mm256_loadu_si256((const __m256i *)(hist_at + 4));
    const __m256i spare0 = _mm256_loadu_si256((const __m256i *)spare_addr), spare1 = _mm256_loadu_si256((const __m256i *)(spare_addr + 4));
    const __m256i low = _mm256_loadu_si256((const __m256i *)(g->low + j));
    const __m128i low0 = _mm256_castsi256_si128(low), low1 = _mm256_extracti128_si256(low, 1);
    const __m256d lowd0 = _mm256_cvtepi32_pd(low0), lowd1 = _mm256_cvtepi32_pd(low1);
    const __m256i bins = _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(g->bins + j)), _mm256_set1_epi32(1));
    const __m256i binsp0 = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(bins)), binsp1 = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(bins, 1));
    const __m256d thousand = _mm256_set1_pd(1000.0);
    const __m256i one64 = _mm256_set1_epi64x(1);
    for (int r = 0; r < n; r++) {
        const __m256 xf = full ? _mm256_loadu_ps(rows[r] + j) : _mm256_maskload_ps(rows[r] + j, m);
        const __m256i a = _mm256_and_si256(_mm256_castps_si256(xf), abs_mask);
        // a, lo and hi are below 2^31, so signed compares order them as unsigned ones.
        __m256i fast = _mm256_or_si256(_mm256_andnot_si256(_mm256_cmpgt_epi32(lo, a), _mm256_cmpgt_epi32(hi, a)),
                                       _mm256_cmpeq_epi32(a, zero));
        fast = _mm256_and_si256(fast, m);
        const __m256i f0 = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(fast)), f1 = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(fast, 1));
        const __m256d d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(xf)), d1 = _mm256_cvtps_pd(_mm256_extractf128_ps(xf, 1));
#define HALF_SUMS(d, ss, sx, f, ax, ah, al, mn, mx)                                                                  \
        {                                                                                                       \
            const __m256d q = _mm256_mul_pd(_mm256_mul_pd(d, d), ss);                                           \
            const __m256d h = _mm256_floor_pd(q);                                                               \
            ax = _mm256_add_epi64(ax, _mm256_and_si256(int64_of(_mm256_mul_pd(d, sx)), f));                      \
            ah = _mm256_add_epi64(ah, _mm256_and_si256(int64_of(h), f));                                          \
            al = _mm256_add_epi64(al, _mm256_and_si256(int64_of(_mm256_mul_pd(_mm256_sub_pd(q, h), half)), f));   \
            /* min(d, mn) is d < mn ? d : mn, as the scalar loop: a NaN never replaces an extreme. */          \
            mn = _mm256_min_pd(d, mn);                                                                          \
            mx = _mm256_max_pd(d, mx);                                                                          \
        }
        HALF_SUMS(d0, ss0, sx0, f0, ax0, ah0, al0, mn0, mx0)
        HALF_SUMS(d1, ss1, sx1, f1, ax1, ah1, al1, mn1, mx1)
#undef HALF_SUMS
        for (unsigned slow = lanes & ~(unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(fast)); slow; slow &= slow - 1) {
            const int k = j + __builtin_ctz(slow);
            add_exact(rows[r][k], g->sums[k]);
        }
        if (!hm) continue;
        // As fast_block512: below the grid (or NaN) slot 0, at or past its top slot bins + 1, else
        // 1 + floor(t) - low; a lane without a histogram, or on an edge (done below), counts in its
        // spare counter.
        unsigned edges = 0;
#define HALF_HIST(d, lowd, lowh, hmv, binsp, hbase, spare_at, out, shift)                                            \
        {                                                                                                       \
            const __m256d t = _mm256_mul_pd(d, thousand);                                                       \
            const __m256i ge = _mm256_and_si256(hmv, _mm256_castpd_si256(_mm256_cmp_pd(t, lowd, _CMP_GE_OQ)));   \
            const __m256i top = _mm256_castpd_si256(_mm256_cmp_pd(t, thousand, _CMP_GE_OQ));                     \
            const __m256i over = _mm256_and_si256(ge, top), inside = _mm256_andnot_si256(top, ge);              \
            const __m256d f = _mm256_floor_pd(t);                                                               \
            const __m256i edge = _mm256_and_si256(ge, _mm256_castpd_si256(_mm256_cmp_pd(f, t, _CMP_EQ_OQ)));     \
            const __m256i k = _mm256_cvtepi32_epi64(_mm_sub_epi32(_mm256_cvttpd_epi32(f), lowh));                \
            const __m256i sv = _mm256_or_si256(_mm256_and_si256(inside, _mm256_add_epi64(k, one64)),             \
                                               _mm256_and_si256(over, binsp));                                  \
            __m256i at = _mm256_add_epi64(hbase, _mm256_slli_epi64(sv, 1));                                      \
            const __m256i to_spare = _mm256_or_si256(_mm256_xor_si256(hmv, _mm256_set1_epi64x(-1)), edge);       \
            at = _mm256_castpd_si256(_mm256_blendv_pd(_mm256_castsi256_pd(at), _mm256_castsi256_pd(spare_at),    \
                                                      _mm256_castsi256_pd(to_spare)));                          \
            _mm256_storeu_si256((__m256i *)(out), at);                                                          \
            edges |= (unsigned)_mm256_movemask_pd(_mm256_castsi256_pd(edge)) << (shift);                         \
        }
        HALF_HIST(d0, lowd0, low0, hm0, binsp0, hbase0, spare0, addr, 0)
        HALF_HIST(d1, lowd1, low1, hm1, binsp1, hbase1, spare1, addr + 4, 4)
#undef HALF_HIST
        for (int q2 = 0; q2 < 8; q2++) (*(uint16_t *)(uintptr_t)addr[q2])++;
        for (; edges; edges &= edges - 1) {
            const int jj = j + __builtin_ctz(edges);
            count_value(rows[r][jj], g->low[jj], g->bins[jj], g->hist[jj], g->edge_eq[jj]);
        }
    }
    _mm256_storeu_si256((__m256i *)(g->ax + j), _mm256_add_epi64(_mm256_loadu_si256((const __m256i *)(g->ax + j)), ax0));
    _mm256_storeu_si256((__m256i *)(g->ax + j + 4), _mm256_add_epi64(_mm256_loadu_si256((const __m256i *)(g->ax + j + 4)), ax1));
    _mm256_storeu_si256((__m256i *)(g->ah + j), _mm256_add_epi64(_mm256_loadu_si256((const __m256i *)(g->ah + j)), ah0));
    _mm256_storeu_si256((__m256i *)(g->ah + j + 4), _mm256_add_epi64(_mm256_loadu_si256((const __m256i *)(g->ah + j + 4)), ah1));
    _mm256_storeu_si256((__m256i *)(g->al + j), _mm256_add_epi64(_mm256_loadu_si256((const __m256i *)(g->al + j)), al0));
    _mm256_storeu_si256((__m256i *)(g->al + j + 4), _mm256_add_epi64(_mm256_loadu_si256((const __m256i *)(g->al + j + 4)), al1));
    _mm256_maskstore_pd(g->mn + j, m0, mn0);
    _mm256_maskstore_pd(g->mn + j + 4, m1, mn1);
    _mm256_maskstore_pd(g->mx + j, m0, mx0);
    _mm256_maskstore_pd(g->mx + j + 4, m1, mx1);
}
#endif

int gs_summary_path(void) {
    const int both = CPU_AVX512F | CPU_AVX512_DQ_VL;
    return (cpu_features() & both) == both ? 2 : (cpu_features() & CPU_AVX2_FMA) ? 1 : 0;
}

// The histogram and edge hits of slot j over a block, on grid [0, 1] (lo 0) or [-1, 1].
__attribute__((always_inline))
static inline void hist_block_grid(const float *const *rows, int n, int j, int64_t *hist, int64_t *edge_eq,
                                   int lo, int bins) {
    for (int r = 0; r < n; r++) count_value(rows[r][j], lo, bins, hist, edge_eq);
}

static void hist_block(const fast_group *g, const float *const *rows, int n, int j) {
    if (g->low[j] == 0) hist_block_grid(rows, n, j, g->hist[j], g->edge_eq[j], 0, 1000);
    else hist_block_grid(rows, n, j, g->hist[j], g->edge_eq[j], -1000, 2000);
}

// Where the next active row of a group's slice is: sequence s, step t; and the row (active or
// not) PREFETCH_ROWS past it that is being fetched into L2: ps, pt.
typedef struct {
    const float *base;  // the group's first slot of sequence 0, step 0
    size_t value_stride, stride;
    const bool *active;
    size_t active_stride;
    int sequences, steps, s, t, ps, pt;
} row_cursor;

// A group's slice of a row is a few cache lines, rows 3 to 30 KB apart: too far apart for the
// hardware prefetcher, and one block of prefetches ahead is too little to hide L3's latency (the
// loads of a block stalled 46% of the loop's time). So rows are fetched into L2 this far ahead,
// and into L1 one block ahead.
enum { PREFETCH_ROWS = 4 * BLOCK_ROWS };

static inline void prefetch_l2(row_cursor *c, int bytes) {
    if (c->ps >= c->sequences) return;
    const char *row = (const char *)(c->base + (size_t)c->ps * c->value_stride + (size_t)c->pt * c->stride);
    for (int b = 0; b < bytes; b += 64) __builtin_prefetch(row + b, 0, 2);
    __builtin_prefetch(row + bytes - 1, 0, 2);
    if (++c->pt == c->steps) {
        c->pt = 0;
        c->ps++;
    }
}

// Up to BLOCK_ROWS next active rows into `rows`, prefetched into L1 (`bytes` of each).
static int gather(row_cursor *c, const float **rows, int bytes) {
    int n = 0;
    while (c->s < c->sequences && n < BLOCK_ROWS) {
        prefetch_l2(c, bytes);
        if (c->active[(size_t)c->s * c->active_stride + c->t]) {
            const float *row = c->base + (size_t)c->s * c->value_stride + (size_t)c->t * c->stride;
            for (int b = 0; b < bytes; b += 64) __builtin_prefetch((const char *)row + b);
            __builtin_prefetch((const char *)row + bytes - 1);
            rows[n++] = row;
        }
        if (++c->t == c->steps) {
            c->t = 0;
            c->s++;
        }
    }
    return n;
}

void gs_summary_add(int path, const gs_summary_layer *l, int sequences, int steps, const float *values,
                    size_t value_stride, const bool *active, size_t active_stride, int unit0, int unit1) {
    if (path > gs_summary_path()) path = gs_summary_path();
    const int w = l->width;
    const size_t stride = (size_t)l->units * (size_t)w;
    int64_t active_rows = 0;
    for (int s = 0; s < sequences; s++)
        for (int t = 0; t < steps; t++) active_rows += active[(size_t)s * active_stride + t];
    if (active_rows == 0) return;
    for (int unit = unit0; unit < unit1; unit++) l->n[unit] += active_rows;
    fast_group g;
    memset(&g, 0, sizeof g);
    // The vector paths' 16-bit counters, one row of COUNT_BINS a slot (zero between flushes).
    uint16_t *counts = path > 0 ? calloc((size_t)FAST_SLOTS * COUNT_BINS, sizeof(uint16_t)) : NULL;
    if (path > 0 && !counts) path = 0;
    const float *blocks[2][BLOCK_ROWS];
    for (int u0 = unit0; u0 < unit1; u0 += FAST_UNITS) {
        const int u1 = u0 + FAST_UNITS < unit1 ? u0 + FAST_UNITS : unit1;
        const int slots = (u1 - u0) * w;
        for (int j = 0; j < slots; j++) {
            const int unit = u0 + j / w, plane = j % w;
            const size_t at = (size_t)unit * (size_t)w + (size_t)plane;
            g.mn[j] = l->min[at];
            g.mx[j] = l->max[at];
            const int t = window_top(g.mn[j], g.mx[j]);
            g.t[j] = t;
            g.sx[j] = ldexp(1, 50 - t);
            g.ss[j] = ldexp(1, 50 - 2 * t);
            g.lo[j] = (uint32_t)(t + 100) << 23;
            g.hi[j] = (uint32_t)(t + 127) << 23;
            g.ax[j] = g.ah[j] = g.al[j] = 0;
            g.sums[j] = l->sums + at * GS_SUM_WIDTH;
            const int offset = l->hist_offset[plane];
            g.hist[j] = offset < 0 ? NULL : l->hist + (size_t)unit * l->hist_stride + offset;
            g.count[j] = counts ? counts + (size_t)j * COUNT_BINS : NULL;
            g.edge_eq[j] = l->edge_eq + at * GS_EDGE_SLOTS;
            g.low[j] = l->grid_low[plane] == 0 ? 0 : -1000;
            g.bins[j] = l->grid_low[plane] == 0 ? 1000 : 2000;
        }
        // Active rows in order, BLOCK_ROWS at a time: the next block is gathered (and prefetched)
        // before the current one is summed.
        row_cursor c = { values + (size_t)u0 * w, value_stride, stride, active, active_stride, sequences, steps, 0, 0, 0, 0 };
        const int bytes = slots * (int)sizeof(float);
        for (int r = 0; r < PREFETCH_ROWS; r++) prefetch_l2(&c, bytes);
        int cur = 0, since_flush = 0;
        int count[2];
        count[cur] = gather(&c, blocks[cur], bytes);
        while (count[cur] > 0) {
            count[1 - cur] = gather(&c, blocks[1 - cur], bytes);
            const float *const *rows = blocks[cur];
            const int n = count[cur];
            if (since_flush + n > FAST_ROWS) {
                fast_flush(&g, slots);
                since_flush = 0;
            }
            since_flush += n;
#ifdef GS_X86
            if (path == 2) {
                for (int j = 0; j < slots; j += 8) fast_block512(&g, rows, n, j, slots);
            } else if (path == 1) {
                for (int j = 0; j < slots; j += 8) fast_block256(&g, rows, n, j, slots);
            } else
#endif
            {
                for (int j = 0; j < slots; j++) {
                    fast_block_portable(&g, rows, n, j);
                    if (g.hist[j]) hist_block(&g, rows, n, j);
                }
            }
            cur = 1 - cur;
        }
        fast_flush(&g, slots);
        for (int j = 0; j < slots; j++) {
            const size_t at = (size_t)(u0 + j / w) * (size_t)w + (size_t)(j % w);
            l->min[at] = g.mn[j];
            l->max[at] = g.mx[j];
        }
    }
    free(counts);
}

void gs_summary_add_row(const gs_summary_layer *l, int unit, const float *row) {
    const size_t at = (size_t)unit * (size_t)l->width;
    l->n[unit] += 1;
    for (int g = 0; g < l->width; g++) {
        const float x = row[g];
        const double d = x;
        add_exact(x, l->sums + (at + g) * GS_SUM_WIDTH);
        l->min[at + g] = d < l->min[at + g] ? d : l->min[at + g];
        l->max[at + g] = d > l->max[at + g] ? d : l->max[at + g];
        if (l->hist_offset[g] < 0) continue;
        const bool unit_grid = l->grid_low[g] == 0;
        count_value(x, unit_grid ? 0 : -1000, unit_grid ? 1000 : 2000,
                    l->hist + (size_t)unit * l->hist_stride + l->hist_offset[g], l->edge_eq + (at + g) * GS_EDGE_SLOTS);
    }
}

// ---- memory spans ------------------------------------------------------------------------------

// Keeps the better longest span of the two (longer, then earlier) and adds the counts (Span.merge).
static inline void span_merge(gs_span *a, const gs_span *o) {
    if (o->longest > a->longest || (o->longest == a->longest && o->longest > 0 &&
        (o->seq_id < a->seq_id || (o->seq_id == a->seq_id && o->first_step < a->first_step)))) {
        a->longest = o->longest;
        a->seq_id = o->seq_id;
        a->first_step = o->first_step;
    }
    a->count += o->count;
}

// The largest k with thresholds[k] = k / GS_SPAN_GRID (as doubles) below x, or -1. As locate does:
// t = x * 100 is exact, and a float32 x is above the double nearest k/100 exactly when t > k (x
// equals k/100 only at multiples of 1/4, where that double is exact), so no table is read.
static inline int threshold_index(float x) {
    const double t = (double)x * GS_SPAN_GRID;
    if (!(t > 0)) return -1;
    if (t > GS_SPAN_GRID) return GS_SPAN_GRID;
    const int k = (int)t;  // floor, t > 0
    return (double)k == t ? k - 1 : k;
}

// One unit of one sequence (levels kmax, at least one >= 0), any length: each step is the minimum
// of the widest interval around it whose levels are all >= its own, found with a monotonic stack.
// An interval goes to the table at its own level, and a span start to the count differences.
static void spans_stack(gs_span *raw, const int8_t *kmax, int steps, int64_t seq_id, int *left, int *stack) {
    int depth = 0;
    for (int t = 0; t <= steps; t++) {
        const int level = t < steps ? kmax[t] : -1;
        // Popping step j at t: t is the first step right of j with a smaller level.
        while (depth > 0 && kmax[stack[depth - 1]] > level) {
            const int j = stack[--depth];
            const int from = left[j] + 1;
            const gs_span candidate = { t - from, from, seq_id, 0 };
            span_merge(&raw[kmax[j]], &candidate);
        }
        if (t == steps) break;
        if (depth > 0) {
            const int j = stack[depth - 1];
            left[t] = kmax[j] < level ? j : left[j];
        } else {
            left[t] = -1;
        }
        if (level >= 0) {
            // A step starts a span at the thresholds in [level of t - 1, level of t): +1 at
            // previous + 1 and -1 past `level` (past the grid: nothing to undo there).
            const int previous = t > 0 ? kmax[t - 1] : -1;
            if (level > previous) {
                raw[previous + 1].count += 1;
                if (level + 1 <= GS_SPAN_GRID) raw[level + 1].count -= 1;
            }
        }
        stack[depth++] = t;
    }
}

// The same for at most 64 steps, with few unpredictable branches: the steps join the mask m of
// steps above the threshold in order of falling level (a counting sort), each joining the runs
// (spans) left and right of it, whose lengths the mask gives. Runs only grow as the threshold
// falls, so the longest span (earliest on ties) and the number of spans are running values; the
// state after a level's last step is that threshold's answer, and a threshold no step sits at
// repeats the one above. Threshold k's longest span goes to the table at k, where
// gs_spans_finish's best over k' >= k still finds it (a span of a higher threshold lies inside
// one of k, so it never beats k's best).
static void spans_masks(gs_span *table, const int8_t *kmax, int steps, int64_t seq_id, int top) {
    int at[GS_SPAN_GRID + 2];  // steps per level, then where each level starts in `order`
    int8_t order[64], levels[64];  // steps by falling level; the levels that have steps, falling
    int32_t longest_at[GS_SPAN_GRID + 1], first_at[GS_SPAN_GRID + 1];
    int64_t runs_at[GS_SPAN_GRID + 1];
    for (int k = 0; k <= top + 1; k++) at[k] = 0;
    // Inactive steps (level -1) sort last, at top + 1, and are never joined.
    for (int t = 0; t < steps; t++) at[kmax[t] < 0 ? top + 1 : kmax[t]]++;
    int joined = 0, distinct = 0;
    for (int k = top; k >= 0; k--) {
        const int n = at[k];
        levels[distinct] = (int8_t)k;
        distinct += n > 0;
        at[k] = joined;
        joined += n;
    }
    at[top + 1] = joined;
    for (int t = 0; t < steps; t++) order[at[kmax[t] < 0 ? top + 1 : kmax[t]]++] = (int8_t)t;
    uint64_t m = 0;
    int64_t runs = 0;
    int longest = 0, first = 0;
    for (int i = 0; i < joined; i++) {
        const int t = order[i], level = kmax[t];
        const uint64_t below = ~m & ((1ull << t) - 1);  // clear steps below t
        const int left = below ? t - 1 - (63 - __builtin_clzll(below)) : t;
        const uint64_t clear_above = t == 63 ? 0 : ~m >> (t + 1);  // 0: every step above t is set
        const int right = clear_above ? __builtin_ctzll(clear_above) : 63 - t;
        m |= 1ull << t;
        runs += 1 - (left > 0) - (right > 0);
        const int length = left + 1 + right, start = t - left;
        const bool better = length > longest || (length == longest && start < first);
        longest = better ? length : longest;
        first = better ? start : first;
        // The last step of a level leaves that threshold's answer here.
        longest_at[level] = longest;
        first_at[level] = first;
        runs_at[level] = runs;
    }
    // Only thresholds that steps sit at: the others repeat the one above, whose longest span
    // gs_spans_finish finds anyway, and their count differences are 0. Threshold k's count is
    // that of the lowest level >= k; the table holds c_k - c_(k-1).
    int64_t runs_above = 0;
    for (int g = 0; g < distinct; g++) {
        const int k = levels[g];
        const gs_span candidate = { longest_at[k], first_at[k], seq_id, 0 };
        span_merge(&table[k], &candidate);
        if (k + 1 <= GS_SPAN_GRID) table[k + 1].count += runs_above - runs_at[k];
        runs_above = runs_at[k];
    }
    table[0].count += runs_above;
}

void gs_spans_finish(const gs_span *raw, int units, gs_span *out) {
    for (int unit = 0; unit < units; unit++) {
        const gs_span *r = raw + (size_t)unit * (GS_SPAN_GRID + 1);
        gs_span *o = out + (size_t)unit * (GS_SPAN_GRID + 1);
        // An interval whose minimum level is k is a span at every threshold k' <= k.
        gs_span suffix = { 0, 0, 0, 0 };
        for (int k = GS_SPAN_GRID; k >= 0; k--) {
            gs_span best = r[k];
            best.count = 0;
            span_merge(&suffix, &best);
            o[k] = suffix;
        }
        int64_t count = 0;
        for (int k = 0; k <= GS_SPAN_GRID; k++) {
            count += r[k].count;
            o[k].count = count;
        }
    }
}

#ifdef GS_X86
// The span lanes' results into the table: per threshold, its longest span and its count as a
// difference over thresholds (gs_spans_finish sums them).
static void lanes_to_table(gs_span *table, const int8_t *best, const int8_t *first, const int32_t *best_seq,
                           const int32_t *count, const int64_t *seq_ids) {
    for (int k = 0; k <= GS_SPAN_GRID; k++) {
        const gs_span candidate = { best[k], first[k], best[k] ? seq_ids[best_seq[k]] : 0, count[k] - (k > 0 ? count[k - 1] : 0) };
        span_merge(&table[k], &candidate);
    }
}

// One unit over every sequence of a call (up to 127 steps each, sequence IDs rising), 128
// thresholds at once: lane k of a byte vector is threshold k, the run above it at this step, its
// longest run so far and where that started. A step of level L extends the runs of lanes k <= L
// and ends the others; an ended run that is longer than the lane's best replaces it (strictly
// longer, so the earliest sequence and step win ties, as span_merge's order says, since the IDs
// rise). The table gets each threshold's longest span and count once, at the end.
__attribute__((target("avx512f,avx512bw")))
static void spans_unit512(gs_span *table, const int8_t *levels, size_t seq_stride, int sequences, int steps,
                          const int64_t *seq_ids) {
    int8_t lane[128], best[128], first[128], runs[128];
    int32_t best_seq[128], count[128];
    for (int k = 0; k < 128; k++) { lane[k] = (int8_t)k; best_seq[k] = 0; count[k] = 0; }
    const __m512i k_lo = _mm512_loadu_si512(lane), k_hi = _mm512_loadu_si512(lane + 64), one = _mm512_set1_epi8(1);
    __m512i best_lo = _mm512_setzero_si512(), best_hi = best_lo, first_lo = best_lo, first_hi = best_lo;
    for (int s = 0; s < sequences; s++) {
        const int8_t *lv = levels + (size_t)s * seq_stride;
        __m512i run_lo = _mm512_setzero_si512(), run_hi = run_lo, n_lo = run_lo, n_hi = run_lo;
        for (int t = 0; t <= steps; t++) {
            const __m512i level = _mm512_set1_epi8(t < steps ? lv[t] : -1);  // past the end: every run ends
            const __mmask64 in_lo = _mm512_cmple_epi8_mask(k_lo, level), in_hi = _mm512_cmple_epi8_mask(k_hi, level);
            const __mmask64 was_lo = _mm512_test_epi8_mask(run_lo, run_lo), was_hi = _mm512_test_epi8_mask(run_hi, run_hi);
            const __mmask64 better_lo = was_lo & ~in_lo & _mm512_cmpgt_epi8_mask(run_lo, best_lo);
            const __mmask64 better_hi = was_hi & ~in_hi & _mm512_cmpgt_epi8_mask(run_hi, best_hi);
            if (better_lo | better_hi) {
                const __m512i tv = _mm512_set1_epi8((char)t);
                best_lo = _mm512_mask_mov_epi8(best_lo, better_lo, run_lo);
                best_hi = _mm512_mask_mov_epi8(best_hi, better_hi, run_hi);
                first_lo = _mm512_mask_mov_epi8(first_lo, better_lo, _mm512_sub_epi8(tv, run_lo));
                first_hi = _mm512_mask_mov_epi8(first_hi, better_hi, _mm512_sub_epi8(tv, run_hi));
                for (uint64_t b = better_lo; b; b &= b - 1) best_seq[__builtin_ctzll(b)] = s;
                for (uint64_t b = better_hi; b; b &= b - 1) best_seq[64 + __builtin_ctzll(b)] = s;
            }
            // A run starts where the lane rises and had none.
            n_lo = _mm512_mask_add_epi8(n_lo, in_lo & ~was_lo, n_lo, one);
            n_hi = _mm512_mask_add_epi8(n_hi, in_hi & ~was_hi, n_hi, one);
            run_lo = _mm512_maskz_add_epi8(in_lo, run_lo, one);
            run_hi = _mm512_maskz_add_epi8(in_hi, run_hi, one);
        }
        _mm512_storeu_si512(runs, n_lo);
        _mm512_storeu_si512(runs + 64, n_hi);
        for (int k = 0; k <= GS_SPAN_GRID; k++) count[k] += runs[k];
    }
    _mm512_storeu_si512(best, best_lo);
    _mm512_storeu_si512(best + 64, best_hi);
    _mm512_storeu_si512(first, first_lo);
    _mm512_storeu_si512(first + 64, first_hi);
    lanes_to_table(table, best, first, best_seq, count, seq_ids);
}
#endif

#ifdef GS_X86
// spans_unit512 on AVX2: the 128 threshold lanes in four byte vectors, masks as byte vectors.
// k, levels (-1 to 100) and runs (up to 127 steps) all fit a signed byte, so signed compares
// order them.
__attribute__((target("avx2,fma")))
static void spans_unit256(gs_span *table, const int8_t *levels, size_t seq_stride, int sequences, int steps,
                          const int64_t *seq_ids) {
    int8_t lane[128], best[128], first[128], runs[128];
    int32_t best_seq[128], count[128];
    for (int k = 0; k < 128; k++) { lane[k] = (int8_t)k; best_seq[k] = 0; count[k] = 0; }
    const __m256i one = _mm256_set1_epi8(1), zero = _mm256_setzero_si256();
    __m256i kv[4], bv[4], fv[4];
    for (int q = 0; q < 4; q++) {
        kv[q] = _mm256_loadu_si256((const __m256i *)(lane + 32 * q));
        bv[q] = fv[q] = zero;
    }
    for (int s = 0; s < sequences; s++) {
        const int8_t *lv = levels + (size_t)s * seq_stride;
        __m256i run[4] = { zero, zero, zero, zero }, nv[4] = { zero, zero, zero, zero };
        for (int t = 0; t <= steps; t++) {
            const __m256i level = _mm256_set1_epi8(t < steps ? lv[t] : -1);  // past the end: every run ends
            // out: lane k > level (its run ends or stays empty); none: the lane had no run.
            __m256i out[4], none[4], better[4];
            __m256i any = zero;
            for (int q = 0; q < 4; q++) {
                out[q] = _mm256_cmpgt_epi8(kv[q], level);
                none[q] = _mm256_cmpeq_epi8(run[q], zero);
                better[q] = _mm256_andnot_si256(none[q], _mm256_and_si256(out[q], _mm256_cmpgt_epi8(run[q], bv[q])));
                any = _mm256_or_si256(any, better[q]);
            }
            if (!_mm256_testz_si256(any, any)) {
                const __m256i tv = _mm256_set1_epi8((char)t);
                for (int q = 0; q < 4; q++) {
                    bv[q] = _mm256_blendv_epi8(bv[q], run[q], better[q]);
                    fv[q] = _mm256_blendv_epi8(fv[q], _mm256_sub_epi8(tv, run[q]), better[q]);
                    for (uint32_t b = (uint32_t)_mm256_movemask_epi8(better[q]); b; b &= b - 1) best_seq[32 * q + __builtin_ctz(b)] = s;
                }
            }
            for (int q = 0; q < 4; q++) {
                // A run starts where the lane rises and had none (subtracting -1 adds one).
                nv[q] = _mm256_sub_epi8(nv[q], _mm256_andnot_si256(out[q], none[q]));
                run[q] = _mm256_andnot_si256(out[q], _mm256_add_epi8(run[q], one));
            }
        }
        for (int q = 0; q < 4; q++) _mm256_storeu_si256((__m256i *)(runs + 32 * q), nv[q]);
        for (int k = 0; k <= GS_SPAN_GRID; k++) count[k] += runs[k];
    }
    for (int q = 0; q < 4; q++) {
        _mm256_storeu_si256((__m256i *)(best + 32 * q), bv[q]);
        _mm256_storeu_si256((__m256i *)(first + 32 * q), fv[q]);
    }
    lanes_to_table(table, best, first, best_seq, count, seq_ids);
}

// levels_row512 on AVX2: the same arithmetic, four doubles a half.
__attribute__((target("avx2,fma")))
static void levels_row256(int8_t *out, size_t out_stride, const float *r, int units, int width) {
    const __m256d grid = _mm256_set1_pd(GS_SPAN_GRID), one = _mm256_set1_pd(1), none = _mm256_set1_pd(-1), zero = _mm256_setzero_pd();
    for (int unit = 0; unit < units; unit += 8) {
        const int n = units - unit < 8 ? units - unit : 8;
        float x[8] = { 0 };
        int32_t level[8];
        for (int q = 0; q < n; q++) x[q] = r[(size_t)(unit + q) * width];
        const __m256 xf = _mm256_loadu_ps(x);
        for (int h = 0; h < 2; h++) {
            const __m256d t = _mm256_mul_pd(_mm256_cvtps_pd(h ? _mm256_extractf128_ps(xf, 1) : _mm256_castps256_ps128(xf)), grid);
            const __m256d k = _mm256_min_pd(_mm256_sub_pd(_mm256_ceil_pd(t), one), grid);
            const __m256d v = _mm256_blendv_pd(none, k, _mm256_cmp_pd(t, zero, _CMP_GT_OQ));
            _mm_storeu_si128((__m128i *)(level + 4 * h), _mm256_cvtpd_epi32(v));
        }
        for (int q = 0; q < n; q++) out[(size_t)(unit + q) * out_stride] = (int8_t)level[q];
    }
}
#endif

#ifdef GS_X86
// threshold_index of a row's units, 8 at once: for t = x * GS_SPAN_GRID > 0 (exact in a double),
// the largest k below t is ceil(t) - 1 (floor(t) unless t is whole, when it is t - 1), capped at
// the grid; t <= 0 and NaN give -1. The values are loaded one by one: with a masked gather the
// whole span loop took 1.8x as long on Zen 4; the scalar threshold_index loop takes 1.13x
// (scripts/bench_spans.sh, medians of 8 alternating rounds).
__attribute__((target("avx512f,avx512dq,avx512vl")))
static void levels_row512(int8_t *out, size_t out_stride, const float *r, int units, int width) {
    const __m512d grid = _mm512_set1_pd(GS_SPAN_GRID), one = _mm512_set1_pd(1), none = _mm512_set1_pd(-1);
    for (int unit = 0; unit < units; unit += 8) {
        const int n = units - unit < 8 ? units - unit : 8;
        float x[8] = { 0 };
        int8_t level[16];
        for (int q = 0; q < n; q++) x[q] = r[(size_t)(unit + q) * width];
        const __m512d t = _mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x)), grid);
        const __m512d k = _mm512_min_pd(_mm512_sub_pd(_mm512_roundscale_pd(t, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC), one), grid);
        const __m512d v = _mm512_mask_mov_pd(none, _mm512_cmp_pd_mask(t, _mm512_setzero_pd(), _CMP_GT_OQ), k);
        _mm_storeu_si128((__m128i *)level, _mm256_cvtepi32_epi8(_mm512_cvtpd_epi32(v)));
        for (int q = 0; q < n; q++) out[(size_t)(unit + q) * out_stride] = level[q];
    }
}
#endif

void gs_spans_add(int path, gs_span *spans, int units, int width, int plane, int sequences, const int64_t *seq_ids, int steps,
                  const float *values, size_t value_stride, const bool *active, size_t active_stride, int *scratch) {
    if (steps <= 0 || sequences <= 0) return;
    const size_t row = (size_t)units * (size_t)width;
#ifdef GS_X86
    const int features = cpu_features();
    const bool vector_levels = path == 2 && (features & CPU_AVX512F) && (features & CPU_AVX512_DQ_VL);
    const bool levels_avx2 = !vector_levels && path >= 1 && (features & CPU_AVX2_FMA);
#else
    (void)path;
#endif
    // Every level first, [sequence, unit, step], row by row: a unit's own values are a whole row
    // apart, and reading them unit by unit waited on memory for each. Then one unit at a time over
    // every sequence, into a table of the unit's own that stays in L1 and is merged once.
    int8_t *levels = malloc((size_t)sequences * (size_t)units * (size_t)steps);
    for (int s = 0; s < sequences && levels; s++) {
        const bool *act = active + (size_t)s * active_stride;
        int8_t *out = levels + (size_t)s * units * steps;
        for (int t = 0; t < steps; t++) {
            const float *r = values + (size_t)s * value_stride + (size_t)t * row + plane;
#ifdef GS_X86
            if (vector_levels && act[t]) {
                levels_row512(out + t, (size_t)steps, r, units, width);
                continue;
            }
            if (levels_avx2 && act[t]) {
                levels_row256(out + t, (size_t)steps, r, units, width);
                continue;
            }
#endif
            for (int unit = 0; unit < units; unit++)
                out[(size_t)unit * steps + t] = (int8_t)(act[t] ? threshold_index(r[(size_t)unit * width]) : -1);
        }
    }
    int8_t *one = (int8_t *)(scratch + 2 * (size_t)steps + 1);  // without the table: one sequence's unit at a time
    gs_span local[GS_SPAN_GRID + 1];
#ifdef GS_X86
    bool rising = true;
    for (int s = 1; s < sequences; s++) rising &= seq_ids[s] > seq_ids[s - 1];
    const bool lanes = path == 2 && levels && rising && steps <= 127 && (features & CPU_AVX512BW);
    const bool lanes_avx2 = !lanes && path >= 1 && levels && rising && steps <= 127 && (features & CPU_AVX2_FMA);
#endif
    for (int unit = 0; unit < units; unit++) {
        memset(local, 0, sizeof local);
#ifdef GS_X86
        if (lanes || lanes_avx2) {
            if (lanes) spans_unit512(local, levels + (size_t)unit * steps, (size_t)units * steps, sequences, steps, seq_ids);
            else spans_unit256(local, levels + (size_t)unit * steps, (size_t)units * steps, sequences, steps, seq_ids);
            gs_span *raw = spans + (size_t)unit * (GS_SPAN_GRID + 1);
            for (int k = 0; k <= GS_SPAN_GRID; k++) span_merge(&raw[k], &local[k]);
            continue;
        }
#endif
        for (int s = 0; s < sequences; s++) {
            const int8_t *kmax = levels + ((size_t)s * units + unit) * steps;
            if (!levels) {
                const float *p = values + (size_t)s * value_stride + (size_t)unit * width + plane;
                for (int t = 0; t < steps; t++)
                    one[t] = (int8_t)(active[(size_t)s * active_stride + t] ? threshold_index(p[(size_t)t * row]) : -1);
                kmax = one;
            }
            int top = -1;
            for (int t = 0; t < steps; t++) top = kmax[t] > top ? kmax[t] : top;
            if (top < 0) continue;
            if (steps <= 64) spans_masks(local, kmax, steps, seq_ids[s], top);
            else spans_stack(local, kmax, steps, seq_ids[s], scratch, scratch + steps);
        }
        gs_span *raw = spans + (size_t)unit * (GS_SPAN_GRID + 1);
        for (int k = 0; k <= GS_SPAN_GRID; k++) span_merge(&raw[k], &local[k]);
    }
    free(levels);
}

// ---- the batch buffer ---------------------------------------------------------------------------

// Unit-major with the planes innermost: every store lands next to the last, and each plane is read
// in order (plane-major stores, `width` floats apart, cost the recorder's worker more than the
// engine's cell). Inlined per common width so that the plane loop unrolls.
__attribute__((always_inline))
static inline void interleave(float *dst, const float *const *planes, int width, int units) {
    for (int j = 0; j < units; j++)
        for (int p = 0; p < width; p++) dst[(size_t)j * width + p] = planes[p][j];
}

static void interleave_any(float *dst, const float *const *planes, int width, int units) {
    switch (width) {
    case 6: interleave(dst, planes, 6, units); break;   // LSTM
    case 4: interleave(dst, planes, 4, units); break;   // GRU
    default: interleave(dst, planes, width, units);
    }
}

#ifdef GS_X86
// Copies count floats, the whole 64-byte lines of dst with non-temporal stores: the batch buffer is
// megabytes, read again only when the batch is summarized, and ordinary stores first read each
// line from memory, stalling the engine's thread that runs this. The sfence orders the stores
// before whatever hands the buffer to another thread.
__attribute__((target("avx512f")))
static void stream_copy(float *dst, const float *src, size_t count) {
    size_t head = ((64 - ((uintptr_t)dst & 63)) & 63) / sizeof(float);
    if (head > count) head = count;
    memcpy(dst, src, head * sizeof(float));
    size_t k = head;
    for (; k + 16 <= count; k += 16) _mm512_stream_ps(dst + k, _mm512_loadu_ps(src + k));
    memcpy(dst + k, src + k, (count - k) * sizeof(float));
    _mm_sfence();
}
#endif

void gs_interleave(float *dst, const float *const *planes, int width, int units) {
#ifdef GS_X86
    enum { SCRATCH = 4096 };
    const size_t count = (size_t)width * (size_t)units;
    // Rows of a few lines gain nothing from streaming; longer ones than the scratch take plain stores.
    if ((cpu_features() & CPU_AVX512F) && ((uintptr_t)dst & 3) == 0 && count >= 64 && count <= SCRATCH) {
        float scratch[SCRATCH];
        interleave_any(scratch, planes, width, units);
        stream_copy(dst, scratch, count);
        return;
    }
#endif
    interleave_any(dst, planes, width, units);
}

// ---- pair moments: staging one step's h ----------------------------------------------------------

// q = round(h * 2^40) (ties to even; exact arithmetic for |h| <= 1), split as q = A1 2^20 + A0.
// Whether every unit's h (at h[u * width]) has |h| <= 1 (so no NaN either): pairs are kept only then.
static inline int all_within_one(const float *h, int units, int width) {
    for (int u = 0; u < units; u++)
        if (!(fabsf(h[(size_t)u * width]) <= 1)) return 0;
    return 1;
}

// q = round(h * 2^40), ties to even (the current rounding mode).
static inline int64_t quantized(float h) { return (int64_t)nearbyint((double)h * 0x1p40); }

static inline int stage_portable(const float *h, int units, int width, double *stage, size_t lo_offset, int64_t *unit_sum) {
    if (!all_within_one(h, units, width)) return 0;
    for (int u = 0; u < units; u++) {
        const int64_t q = quantized(h[(size_t)u * width]);
        const int64_t hi = q >> 20;
        stage[u] = (double)hi;
        stage[lo_offset + u] = (double)(q - hi * (1 << 20));
        unit_sum[u] += q;
    }
    return 1;
}

#ifdef GS_X86
// Steps of a sequence follow each other: fetch the one after next, whose gathers otherwise wait
// on L3 or DRAM (79% of the staging loop's time on the gather before).
static inline void prefetch_step_after_next(const float *h, int units, int width) {
    const char *ahead = (const char *)(h + 2 * (size_t)units * width);
    for (size_t b = 0; b < (size_t)units * width * sizeof(float); b += 64) __builtin_prefetch(ahead + b);
}

// q = round(h * 2^40) of units u..u+7 (lanes m; unit j's h at h[j * width]); the lanes whose
// |h| > 1 (or NaN) are added to *bad.
__attribute__((always_inline, target("avx512f,avx512dq,avx512vl")))
static inline __m512d quantize512(const float *h, int width, int u, __mmask8 m, __mmask8 *bad) {
    const __m512i index = _mm512_mullo_epi64(_mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7), _mm512_set1_epi64(width));
    const __m512d d = _mm512_cvtps_pd(_mm512_mask_i64gather_ps(_mm256_setzero_ps(), m, index, h + (size_t)u * width, 4));
    *bad |= m & ~_mm512_cmp_pd_mask(_mm512_abs_pd(d), _mm512_set1_pd(1.0), _CMP_LE_OQ);
    return _mm512_roundscale_pd(_mm512_mul_pd(d, _mm512_set1_pd(0x1p40)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

__attribute__((target("avx512f,avx512dq,avx512vl")))
static int stage512(const float *h, int units, int width, double *stage, size_t lo_offset, int64_t *unit_sum) {
    const __m512d low = _mm512_set1_pd(0x1p20), inv_low = _mm512_set1_pd(0x1p-20);
    __mmask8 bad = 0;
    prefetch_step_after_next(h, units, width);
    // Staged first (a rejected step's stage is overwritten by the next one); counted only if
    // every |h| <= 1 (so no NaN either).
    for (int u = 0; u < units; u += 8) {
        const __mmask8 m = lanes8(units - u);
        const __m512d q = quantize512(h, width, u, m, &bad);
        // q >> 20 and its low 20 bits, in doubles: floor(q * 2^-20) is exact.
        const __m512d hi = _mm512_roundscale_pd(_mm512_mul_pd(q, inv_low), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
        _mm512_mask_storeu_pd(stage + u, m, hi);
        _mm512_mask_storeu_pd(stage + lo_offset + u, m, _mm512_fnmadd_pd(hi, low, q));
    }
    if (bad) return 0;
    for (int u = 0; u < units; u += 8) {
        const __mmask8 m = lanes8(units - u);
        const __m512d q = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(m, stage + u), low, _mm512_maskz_loadu_pd(m, stage + lo_offset + u));
        _mm512_mask_storeu_epi64(unit_sum + u, m, _mm512_add_epi64(_mm512_maskz_loadu_epi64(m, unit_sum + u), _mm512_cvtpd_epi64(q)));
    }
    return 1;
}
#endif

#ifdef GS_X86
// stage512 on AVX2, four units a vector (loaded one by one: the values are `width` floats apart).
__attribute__((target("avx2,fma")))
static int stage256(const float *h, int units, int width, double *stage, size_t lo_offset, int64_t *unit_sum) {
    const __m256d low = _mm256_set1_pd(0x1p20), inv_low = _mm256_set1_pd(0x1p-20), scale = _mm256_set1_pd(0x1p40);
    const __m256d one = _mm256_set1_pd(1.0), sign = _mm256_set1_pd(-0.0);
    __m256d ok = _mm256_castsi256_pd(_mm256_set1_epi64x(-1));
    prefetch_step_after_next(h, units, width);
    for (int u = 0; u < units; u += 4) {
        const int n = units - u < 4 ? units - u : 4;
        float x[4] = { 0, 0, 0, 0 };
        for (int q = 0; q < n; q++) x[q] = h[(size_t)(u + q) * width];
        const __m256d d = _mm256_cvtps_pd(_mm_loadu_ps(x));
        // |d| <= 1, false for NaN; the lanes past `units` hold 0.
        ok = _mm256_and_pd(ok, _mm256_cmp_pd(_mm256_andnot_pd(sign, d), one, _CMP_LE_OQ));
        const __m256d q = _mm256_round_pd(_mm256_mul_pd(d, scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m256d hi = _mm256_floor_pd(_mm256_mul_pd(q, inv_low));
        const __m256d lo = _mm256_fnmadd_pd(hi, low, q);
        if (n == 4) {
            _mm256_storeu_pd(stage + u, hi);
            _mm256_storeu_pd(stage + lo_offset + u, lo);
        } else {
            double a[4], b[4];
            _mm256_storeu_pd(a, hi);
            _mm256_storeu_pd(b, lo);
            for (int k = 0; k < n; k++) { stage[u + k] = a[k]; stage[lo_offset + u + k] = b[k]; }
        }
    }
    if (_mm256_movemask_pd(ok) != 0xF) return 0;
    for (int u = 0; u < units; u++) unit_sum[u] += (int64_t)stage[u] * (1 << 20) + (int64_t)stage[lo_offset + u];
    return 1;
}
#endif

int gs_pairs_stage(int path, const float *h, int units, int width, double *stage, size_t lo_offset, int64_t *unit_sum) {
#ifdef GS_X86
    if (path >= 2 && gs_summary_path() >= 2) return stage512(h, units, width, stage, lo_offset, unit_sum);
    if (path >= 1 && gs_summary_path() >= 1) return stage256(h, units, width, stage, lo_offset, unit_sum);
#else
    (void)path;
#endif
    return stage_portable(h, units, width, stage, lo_offset, unit_sum);
}

// ---- exact symmetric rank-k update ----------------------------------------------------------------

int gs_syrk_path(void) {
    const int f = cpu_features();
    return f & CPU_AVX512F ? 2 : f & CPU_AVX2_FMA ? 1 : 0;
}

// Portable: row r of a adds a[r, i] * a[r, j] to every c[i, j] with j >= i.
static void syrk_portable(const double *a, int k, int n, double *c) {
    for (int r = 0; r < k; r++) {
        const double *ar = a + (size_t)r * n;
        for (int i = 0; i < n; i++) {
            const double ai = ar[i];
            double *ci = c + (size_t)i * n;
            for (int j = i; j < n; j++) ci[j] += ai * ar[j];
        }
    }
}

#ifdef GS_X86

// A tile of `rows` (<= 8) rows from i0 by 16 columns from j0 (m0, m1: the columns that exist),
// k summed in order; inlined with rows = 8 so that the 16 accumulators stay in registers.
__attribute__((always_inline, target("avx512f")))
static inline void tile512(const double *a, int k, int n, double *c, int i0, int rows, int j0, __mmask8 m0, __mmask8 m1) {
    __m512d acc[8][2];
    for (int q = 0; q < 8; q++) {
        if (q >= rows) break;
        acc[q][0] = _mm512_maskz_loadu_pd(m0, c + (size_t)(i0 + q) * n + j0);
        acc[q][1] = _mm512_maskz_loadu_pd(m1, c + (size_t)(i0 + q) * n + j0 + 8);
    }
    for (int r = 0; r < k; r++) {
        const double *ar = a + (size_t)r * n;
        const __m512d b0 = _mm512_maskz_loadu_pd(m0, ar + j0);
        const __m512d b1 = _mm512_maskz_loadu_pd(m1, ar + j0 + 8);
        for (int q = 0; q < 8; q++) {
            if (q >= rows) break;
            const __m512d s = _mm512_set1_pd(ar[i0 + q]);
            acc[q][0] = _mm512_fmadd_pd(s, b0, acc[q][0]);
            acc[q][1] = _mm512_fmadd_pd(s, b1, acc[q][1]);
        }
    }
    for (int q = 0; q < 8; q++) {
        if (q >= rows) break;
        _mm512_mask_storeu_pd(c + (size_t)(i0 + q) * n + j0, m0, acc[q][0]);
        _mm512_mask_storeu_pd(c + (size_t)(i0 + q) * n + j0 + 8, m1, acc[q][1]);
    }
}

__attribute__((target("avx512f")))
static void syrk512(const double *a, int k, int n, double *c) {
    for (int i0 = 0; i0 < n; i0 += 8) {
        const int rows = n - i0 < 8 ? n - i0 : 8;
        // Column tiles from the one holding the diagonal of row i0.
        for (int j0 = i0 / 16 * 16; j0 < n; j0 += 16) {
            const int cols = n - j0 < 16 ? n - j0 : 16;
            const __mmask8 m0 = lanes8(cols), m1 = lanes8(cols - 8);
            if (rows == 8) tile512(a, k, n, c, i0, 8, j0, m0, m1);
            else tile512(a, k, n, c, i0, rows, j0, m0, m1);
        }
    }
}

// AVX2: tiles of 6 rows by 8 columns, from packed copies of their columns. Twelve accumulators:
// with 4 x 8 (eight) the two FMA pipes of a Zen 3 core, four cycles deep, had no chain to spare.
// The copies matter more: a's rows are n doubles apart, 2 KB for an LSTM(128)'s 2u = 256 columns,
// and at that power-of-two stride every row a tile reads fell into the same two sets of L1 (and
// 64 of L2), so each tile re-read its 32 KB from memory. Packed, a tile reads 12 KB that stay in
// L1 for the whole row block and 16 KB in order. Every partial sum is an integer below 2^53, so
// the sums are exact in any order, on every path. Masked moves only for a partial column tile:
// a VMASKMOVPD store takes about 12 cycles on Zen 2 and 3.
enum { SYRK_MR = 6, SYRK_NR = 8 };

__attribute__((always_inline, target("avx2,fma")))
static inline void tile256(const double *ap, const double *bp, int k, double *c, size_t ldc, const int rows,
                           int full, __m256i m0, __m256i m1) {
    __m256d acc[SYRK_MR][2];
    for (int q = 0; q < rows; q++) {
        const double *cq = c + (size_t)q * ldc;
        acc[q][0] = full ? _mm256_loadu_pd(cq) : _mm256_maskload_pd(cq, m0);
        acc[q][1] = full ? _mm256_loadu_pd(cq + 4) : _mm256_maskload_pd(cq + 4, m1);
    }
    for (int r = 0; r < k; r++) {
        const __m256d b0 = _mm256_load_pd(bp + (size_t)r * SYRK_NR), b1 = _mm256_load_pd(bp + (size_t)r * SYRK_NR + 4);
        for (int q = 0; q < rows; q++) {
            const __m256d s = _mm256_broadcast_sd(ap + (size_t)r * SYRK_MR + q);
            acc[q][0] = _mm256_fmadd_pd(s, b0, acc[q][0]);
            acc[q][1] = _mm256_fmadd_pd(s, b1, acc[q][1]);
        }
    }
    for (int q = 0; q < rows; q++) {
        double *cq = c + (size_t)q * ldc;
        if (full) {
            _mm256_storeu_pd(cq, acc[q][0]);
            _mm256_storeu_pd(cq + 4, acc[q][1]);
        } else {
            _mm256_maskstore_pd(cq, m0, acc[q][0]);
            _mm256_maskstore_pd(cq + 4, m1, acc[q][1]);
        }
    }
}

__attribute__((target("avx2,fma")))
static __m256i lanes256(int count) {
    const __m256i idx = _mm256_setr_epi64x(0, 1, 2, 3);
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(count), idx);
}

// False (nothing done) when the packed copies cannot be allocated.
__attribute__((target("avx2,fma")))
static bool syrk256(const double *a, int k, int n, double *c) {
    const int panels = (n + SYRK_NR - 1) / SYRK_NR;
    // bp: panel p is [k, 8] (columns 8p..8p+7, zero past n); ap: one row block's [k, 6].
    double *bp = aligned_alloc(32, (size_t)panels * (size_t)k * SYRK_NR * sizeof(double));
    double *ap = aligned_alloc(32, ((size_t)k * SYRK_MR * sizeof(double) + 31) / 32 * 32);
    if (!bp || !ap) {
        free(bp);
        free(ap);
        return false;
    }
    for (int r = 0; r < k; r++) {
        const double *ar = a + (size_t)r * n;
        for (int p = 0; p < panels; p++) {
            double *dst = bp + ((size_t)p * k + r) * SYRK_NR;
            const int j0 = p * SYRK_NR;
            for (int q = 0; q < SYRK_NR; q++) dst[q] = j0 + q < n ? ar[j0 + q] : 0.0;
        }
    }
    for (int i0 = 0; i0 < n; i0 += SYRK_MR) {
        const int rows = n - i0 < SYRK_MR ? n - i0 : SYRK_MR;
        for (int r = 0; r < k; r++)
            for (int q = 0; q < SYRK_MR; q++) ap[(size_t)r * SYRK_MR + q] = q < rows ? a[(size_t)r * n + i0 + q] : 0.0;
        // Column tiles from the one holding the diagonal of row i0 (rows below it in the tile
        // compute entries below the diagonal, which may change).
        for (int p = i0 / SYRK_NR; p < panels; p++) {
            const int j0 = p * SYRK_NR, cols = n - j0 < SYRK_NR ? n - j0 : SYRK_NR;
            const __m256i m0 = lanes256(cols), m1 = lanes256(cols - 4);
            const double *b = bp + (size_t)p * k * SYRK_NR;
            double *ct = c + (size_t)i0 * n + j0;
#define T(R) do { if (cols == SYRK_NR) tile256(ap, b, k, ct, (size_t)n, R, 1, m0, m1); \
                  else tile256(ap, b, k, ct, (size_t)n, R, 0, m0, m1); } while (0)
            switch (rows) {
            case 6: T(6); break;
            case 5: T(5); break;
            case 4: T(4); break;
            case 3: T(3); break;
            case 2: T(2); break;
            default: T(1); break;
            }
#undef T
        }
    }
    free(bp);
    free(ap);
    return true;
}

#endif

void gs_syrk_upper_exact(int path, const double *a, int k, int n, double *c) {
    if (k <= 0 || n <= 0) return;
    const int best = gs_syrk_path();
    if (path > best) path = best;
#ifdef GS_X86
    if (path == 2) { syrk512(a, k, n, c); return; }
    if (path == 1 && syrk256(a, k, n, c)) return;
#endif
    syrk_portable(a, k, n, c);
}

// ---- exact pair products in 52-bit integer multiply-adds ----------------------------------------
//
// q' = q + 2^40 is an integer in [0, 2^41], so q'_a q'_b < 2^83 and IFMA's two halves of the 104-bit
// product (bits 0..51 and 52..103) add into 64-bit lanes exactly for up to 4096 rows: one product a
// pair and row in two instructions, where the Double path's 20-bit halves take four.

int gs_pairs_ifma_path(void) {
    const int need = CPU_AVX512F | CPU_AVX512_DQ_VL | CPU_AVX512IFMA;
    return (cpu_features() & need) == need;
}

#ifdef GS_X86
__attribute__((target("avx512f,avx512dq,avx512vl")))
static int stage_q512(const float *h, int units, int width, uint64_t *stage, int64_t *unit_sum) {
    __mmask8 bad = 0;
    prefetch_step_after_next(h, units, width);
    // As stage512: staged first, counted only if every |h| <= 1.
    for (int u = 0; u < units; u += 8) {
        const __mmask8 m = lanes8(units - u);
        const __m512d q = quantize512(h, width, u, m, &bad);
        // |q| <= 2^40: q + 2^40 is exact.
        _mm512_mask_storeu_epi64(stage + u, m, _mm512_cvtpd_epu64(_mm512_add_pd(q, _mm512_set1_pd(0x1p40))));
    }
    if (bad) return 0;
    for (int u = 0; u < units; u += 8) {
        const __mmask8 m = lanes8(units - u);
        const __m512i q = _mm512_sub_epi64(_mm512_maskz_loadu_epi64(m, stage + u), _mm512_set1_epi64(1LL << 40));
        _mm512_mask_storeu_epi64(unit_sum + u, m, _mm512_add_epi64(_mm512_maskz_loadu_epi64(m, unit_sum + u), q));
    }
    return 1;
}

// A tile of `rows` (<= 6) rows from i0 by 16 columns from j0 (m0, m1: the columns that exist);
// inlined with rows = 6 so that its 24 accumulators stay in registers.
__attribute__((always_inline, target("avx512f,avx512ifma")))
static inline void qtile512(const uint64_t *a, int k, int n, uint64_t *lo, uint64_t *hi, int i0, int rows, int j0,
                            __mmask8 m0, __mmask8 m1) {
    __m512i l[6][2], h[6][2];
    for (int q = 0; q < 6; q++) {
        if (q >= rows) break;
        const size_t at = (size_t)(i0 + q) * n + j0;
        l[q][0] = _mm512_maskz_loadu_epi64(m0, lo + at);
        l[q][1] = _mm512_maskz_loadu_epi64(m1, lo + at + 8);
        h[q][0] = _mm512_maskz_loadu_epi64(m0, hi + at);
        h[q][1] = _mm512_maskz_loadu_epi64(m1, hi + at + 8);
    }
    for (int r = 0; r < k; r++) {
        const uint64_t *ar = a + (size_t)r * n;
        const __m512i b0 = _mm512_maskz_loadu_epi64(m0, ar + j0);
        const __m512i b1 = _mm512_maskz_loadu_epi64(m1, ar + j0 + 8);
        for (int q = 0; q < 6; q++) {
            if (q >= rows) break;
            const __m512i s = _mm512_set1_epi64((long long)ar[i0 + q]);
            l[q][0] = _mm512_madd52lo_epu64(l[q][0], s, b0);
            h[q][0] = _mm512_madd52hi_epu64(h[q][0], s, b0);
            l[q][1] = _mm512_madd52lo_epu64(l[q][1], s, b1);
            h[q][1] = _mm512_madd52hi_epu64(h[q][1], s, b1);
        }
    }
    for (int q = 0; q < 6; q++) {
        if (q >= rows) break;
        const size_t at = (size_t)(i0 + q) * n + j0;
        _mm512_mask_storeu_epi64(lo + at, m0, l[q][0]);
        _mm512_mask_storeu_epi64(lo + at + 8, m1, l[q][1]);
        _mm512_mask_storeu_epi64(hi + at, m0, h[q][0]);
        _mm512_mask_storeu_epi64(hi + at + 8, m1, h[q][1]);
    }
}

__attribute__((target("avx512f,avx512ifma")))
static void pairs_ifma512(const uint64_t *a, int k, int n, uint64_t *lo, uint64_t *hi) {
    for (int i0 = 0; i0 < n; i0 += 6) {
        const int rows = n - i0 < 6 ? n - i0 : 6;
        for (int j0 = i0 / 16 * 16; j0 < n; j0 += 16) {
            const int cols = n - j0 < 16 ? n - j0 : 16;
            const __mmask8 m0 = lanes8(cols), m1 = lanes8(cols - 8);
            if (rows == 6) qtile512(a, k, n, lo, hi, i0, 6, j0, m0, m1);
            else qtile512(a, k, n, lo, hi, i0, rows, j0, m0, m1);
        }
    }
}
#endif

int gs_pairs_stage_q(int path, const float *h, int units, int width, uint64_t *stage, int64_t *unit_sum) {
#ifdef GS_X86
    if (path == 2 && gs_pairs_ifma_path()) return stage_q512(h, units, width, stage, unit_sum);
#else
    (void)path;
#endif
    if (!all_within_one(h, units, width)) return 0;
    for (int u = 0; u < units; u++) {
        const int64_t q = quantized(h[(size_t)u * width]);
        stage[u] = (uint64_t)(q + (1LL << 40));
        unit_sum[u] += q;
    }
    return 1;
}

void gs_pairs_ifma(int path, const uint64_t *a, int k, int n, uint64_t *lo, uint64_t *hi) {
    if (k <= 0 || n <= 0) return;
#ifdef GS_X86
    if (path == 2 && gs_pairs_ifma_path()) { pairs_ifma512(a, k, n, lo, hi); return; }
#else
    (void)path;
#endif
    // Without IFMA (or asked for, by the tests): the same halves in 128-bit arithmetic, slower but
    // with the same sums, since every product and sum is exact.
    for (int r = 0; r < k; r++) {
        const uint64_t *ar = a + (size_t)r * n;
        for (int i = 0; i < n; i++)
            for (int j = i; j < n; j++) {
                const unsigned __int128 p = (unsigned __int128)ar[i] * ar[j];
                lo[(size_t)i * n + j] += (uint64_t)p & ((1ULL << 52) - 1);
                hi[(size_t)i * n + j] += (uint64_t)(p >> 52);
            }
    }
}
