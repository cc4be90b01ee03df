// The recorder's per-value loops: exact summaries of each unit's planes, and the exact
// symmetric rank-k update behind the pair moments. See include/csummaries.h.
#include "csummaries.h"

#include <float.h>
#include <math.h>
#include <string.h>


#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GS_X86 1
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

// The histogram slot of v (0 underflow, 1 + k bin k, bins + 1 overflow), as
// SummaryAccumulator.locate; *edge = the edge index v equals, or -1.
static inline int locate(double v, int lo, int bins, const double *edges, int *edge) {
    *edge = -1;
    if (!(v >= edges[0])) return 0;
    if (v >= edges[bins]) {
        if (v == edges[bins]) *edge = bins;
        return bins + 1;
    }
    // A guess, corrected against the exact edges below. v * 1000 - lo >= 0, so truncation is
    // floor (no libm call) and the guess is off by one only where rounding crossed an edge, which
    // keeps the correction branches predictable.
    int k = (int)(v * 1000 - lo);
    if (k < 0) k = 0; else if (k >= bins) k = bins - 1;
    while (v < edges[k]) k--;
    while (v >= edges[k + 1]) k++;
    if (v == edges[k]) *edge = k;
    return 1 + k;
}

// Adds `steps` values of one plane of one unit, `stride` floats apart (active NULL: all). Inlined
// per kind of grid (none, [0, 1], [-1, 1]), so that every per-plane constant stays in a register.
__attribute__((always_inline))
static inline void add_plane(const float *p, size_t stride, const bool *active, int steps, int64_t *sums,
                             double *min, double *max, int64_t *hist, int lo, int bins, const double *edges,
                             int64_t *edge_eq) {
    double mn = *min, mx = *max;
    for (int t = 0; t < steps; t++) {
        if (active && !active[t]) continue;
        const float x = p[(size_t)t * stride];
        const double d = x;
        add_exact(x, sums);
        mn = d < mn ? d : mn;
        mx = d > mx ? d : mx;
        if (!hist) continue;
        int e;
        hist[locate(d, lo, bins, edges, &e)]++;
        // A float32 equals edge k/1000 only when k/1000 is a multiple of 1/8 (the nearest double
        // to any other k/1000 has more than 24 significant bits), so e is a multiple of
        // GS_EDGE_STEP; SummaryKernelTests checks this for every edge.
        if (e >= 0) edge_eq[e / GS_EDGE_STEP]++;
    }
    *min = mn;
    *max = mx;
}

// Adds `steps` steps of one unit: p points at its first plane at step 0, steps are `stride`
// floats apart; active NULL means every step.
static void add_unit(const gs_summary_layer *l, int unit, const float *p, size_t stride,
                     const bool *active, int steps, int64_t count) {
    const int w = l->width;
    const size_t at = (size_t)unit * (size_t)w;
    l->n[unit] += count;
    for (int g = 0; g < w; g++) {
        int64_t *sums = l->sums + (at + g) * GS_SUM_WIDTH;
        int64_t *edge_eq = l->edge_eq + (at + g) * GS_EDGE_SLOTS;
        double *mn = l->min + at + g, *mx = l->max + at + g;
        if (l->hist_offset[g] < 0) {
            add_plane(p + g, stride, active, steps, sums, mn, mx, NULL, 0, 0, NULL, NULL);
            continue;
        }
        int64_t *hist = l->hist + (size_t)unit * l->hist_stride + l->hist_offset[g];
        if (l->grid_low[g] == 0) add_plane(p + g, stride, active, steps, sums, mn, mx, hist, 0, 1000, l->edges01, edge_eq);
        else add_plane(p + g, stride, active, steps, sums, mn, mx, hist, -1000, 2000, l->edges11, edge_eq);
    }
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

/// Slots (unit x plane) of one group: 8 units of at most GS_MAX_WIDTH planes.
enum { FAST_UNITS = 8, FAST_SLOTS = FAST_UNITS * GS_MAX_WIDTH, FAST_ROWS = 8192 };

typedef struct {
    int64_t ax[FAST_SLOTS], ah[FAST_SLOTS], al[FAST_SLOTS];  // Σ x 2^(50-T), Σ hi, Σ lo of x² 2^(100-2T)
    double mn[FAST_SLOTS], mx[FAST_SLOTS];
    double sx[FAST_SLOTS], ss[FAST_SLOTS];                   // 2^(50-T), 2^(50-2T)
    uint32_t lo[FAST_SLOTS], hi[FAST_SLOTS];                 // |x| bits in [lo, hi): the window
    int t[FAST_SLOTS];                                       // T
    int64_t *sums[FAST_SLOTS];                               // the slot's buckets
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
    }
}

// Sums and extremes of one row of `slots` values, portable.
static inline void fast_row_portable(fast_group *g, const float *row, int slots) {
    for (int j = 0; j < slots; j++) {
        const float x = row[j];
        union { float f; uint32_t u; } bits = { x };
        const uint32_t a = bits.u & 0x7FFFFFFF;
        const double d = x;
        if ((a >= g->lo[j] && a < g->hi[j]) || a == 0) {
            g->ax[j] += (int64_t)(d * g->sx[j]);
            const double q = d * d * g->ss[j], h = floor(q);
            g->ah[j] += (int64_t)h;
            g->al[j] += (int64_t)((q - h) * 0x1p50);
        } else {
            add_exact(x, g->sums[j]);
        }
        g->mn[j] = d < g->mn[j] ? d : g->mn[j];
        g->mx[j] = d > g->mx[j] ? d : g->mx[j];
    }
}

#ifdef GS_X86
// The same, 8 slots a vector (slots beyond `slots` masked off).
__attribute__((target("avx512f,avx512dq,avx512vl")))
static void fast_row512(fast_group *g, const float *row, int slots) {
    const __m256i abs_mask = _mm256_set1_epi32(0x7FFFFFFF);
    for (int j = 0; j < slots; j += 8) {
        const __mmask8 m = (__mmask8)(slots - j >= 8 ? 0xFF : (1u << (slots - j)) - 1);
        const __m256 xf = _mm256_maskz_loadu_ps(m, row + j);
        const __m256i a = _mm256_and_si256(_mm256_castps_si256(xf), abs_mask);
        const __m256i lo = _mm256_loadu_si256((const __m256i *)(g->lo + j));
        const __m256i hi = _mm256_loadu_si256((const __m256i *)(g->hi + j));
        const __mmask8 fast = m & ((_mm256_cmpge_epu32_mask(a, lo) & _mm256_cmplt_epu32_mask(a, hi)) |
                                   _mm256_cmpeq_epi32_mask(a, _mm256_setzero_si256()));
        const __m512d d = _mm512_cvtps_pd(xf);
        const __m512d q = _mm512_mul_pd(_mm512_mul_pd(d, d), _mm512_loadu_pd(g->ss + j));
        const __m512d h = _mm512_roundscale_pd(q, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
        const __m512i xi = _mm512_cvttpd_epi64(_mm512_mul_pd(d, _mm512_loadu_pd(g->sx + j)));
        const __m512i hi2 = _mm512_cvttpd_epi64(h);
        const __m512i lo2 = _mm512_cvttpd_epi64(_mm512_mul_pd(_mm512_sub_pd(q, h), _mm512_set1_pd(0x1p50)));
        _mm512_storeu_si512(g->ax + j, _mm512_mask_add_epi64(_mm512_loadu_si512(g->ax + j), fast, _mm512_loadu_si512(g->ax + j), xi));
        _mm512_storeu_si512(g->ah + j, _mm512_mask_add_epi64(_mm512_loadu_si512(g->ah + j), fast, _mm512_loadu_si512(g->ah + j), hi2));
        _mm512_storeu_si512(g->al + j, _mm512_mask_add_epi64(_mm512_loadu_si512(g->al + j), fast, _mm512_loadu_si512(g->al + j), lo2));
        // min(d, mn) is d < mn ? d : mn, as the scalar loop: a NaN never replaces an extreme.
        _mm512_mask_storeu_pd(g->mn + j, m, _mm512_min_pd(d, _mm512_loadu_pd(g->mn + j)));
        _mm512_mask_storeu_pd(g->mx + j, m, _mm512_max_pd(d, _mm512_loadu_pd(g->mx + j)));
        for (unsigned slow = m & ~fast; slow; slow &= slow - 1) {
            const int k = j + __builtin_ctz(slow);
            add_exact(row[k], g->sums[k]);
        }
    }
}
#endif

int gs_summary_path(void) {
#ifdef GS_X86
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                 __builtin_cpu_supports("avx512vl") ? 2 : 0;
    }
    return cached;
#else
    return 0;
#endif
}

// The histogram of one row: every slot with a grid.
static inline void hist_row(const float *row, int slots, int64_t *const *hist, const int *grid,
                            int64_t *const *edge_eq, const gs_summary_layer *l) {
    for (int j = 0; j < slots; j++) {
        if (!hist[j]) continue;
        const double d = row[j];
        int e;
        const int k = grid[j] == 0 ? locate(d, 0, 1000, l->edges01, &e) : locate(d, -1000, 2000, l->edges11, &e);
        hist[j][k]++;
        if (e >= 0) edge_eq[j][e / GS_EDGE_STEP]++;
    }
}

void gs_summary_add(int path, const gs_summary_layer *l, int sequences, int steps, const float *values,
                    size_t value_stride, const bool *active, size_t active_stride, int unit0, int unit1) {
    if (path > gs_summary_path()) path = gs_summary_path();
    const int w = l->width;
    const size_t stride = (size_t)l->units * (size_t)w;
    fast_group g;
    memset(&g, 0, sizeof g);
    int64_t *hist[FAST_SLOTS], *edge_eq[FAST_SLOTS];
    int grid[FAST_SLOTS];
    // A group of units over every row of the batch: each row's slots of the group are adjacent,
    // and the group's histograms (8 to 16 KB a plane) stay in L2 over thousands of rows.
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
            hist[j] = offset < 0 ? NULL : l->hist + (size_t)unit * l->hist_stride + offset;
            grid[j] = l->grid_low[plane];
            edge_eq[j] = l->edge_eq + at * GS_EDGE_SLOTS;
        }
        int rows = 0;
        for (int s = 0; s < sequences; s++) {
            const bool *act = active + (size_t)s * active_stride;
            const float *v = values + (size_t)s * value_stride + (size_t)u0 * w;
            int64_t count = 0;
            for (int t = 0; t < steps; t++) {
                if (!act[t]) continue;
                const float *row = v + (size_t)t * stride;
#ifdef GS_X86
                if (path == 2) fast_row512(&g, row, slots);
                else
#endif
                    fast_row_portable(&g, row, slots);
                hist_row(row, slots, hist, grid, edge_eq, l);
                count++;
                if (++rows == FAST_ROWS) {
                    fast_flush(&g, slots);
                    rows = 0;
                }
            }
            for (int unit = u0; unit < u1; unit++) l->n[unit] += count;
        }
        fast_flush(&g, slots);
        for (int j = 0; j < slots; j++) {
            const size_t at = (size_t)(u0 + j / w) * (size_t)w + (size_t)(j % w);
            l->min[at] = g.mn[j];
            l->max[at] = g.mx[j];
        }
    }
}

void gs_summary_add_row(const gs_summary_layer *l, int unit, const float *row) {
    add_unit(l, unit, row, 0, NULL, 1, 1);
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

// The largest k with thresholds[k] < v, or -1.
static inline int threshold_index(double v, const double *thresholds) {
    if (!(v > 0)) return -1;
    if (v > 1) return GS_SPAN_GRID;
    // A guess, corrected against the exact thresholds.
    int k = (int)(v * GS_SPAN_GRID);
    if (k > GS_SPAN_GRID) k = GS_SPAN_GRID;
    while (k >= 0 && !(thresholds[k] < v)) k--;
    while (k < GS_SPAN_GRID && thresholds[k + 1] < v) k++;
    return k;
}

// One sequence: see SpanAccumulator for the method (each step is the minimum of the widest
// interval around it whose levels are all >= its own, found with a monotonic stack). Only O(steps)
// per unit: an interval goes to the table at its own level, and a span start to the count
// differences; gs_spans_finish takes the suffix best and the prefix sums once at the end.
static void spans_one(gs_span *spans, int units, int width, int plane, const double *thresholds, int64_t seq_id,
                      int steps, const float *values, const bool *active, int *kmax, int *left, int *stack) {
    const size_t row = (size_t)units * (size_t)width;
    for (int unit = 0; unit < units; unit++) {
        const float *p = values + (size_t)unit * width + plane;
        gs_span *raw = spans + (size_t)unit * (GS_SPAN_GRID + 1);
        int top = -1;
        for (int t = 0; t < steps; t++) {
            kmax[t] = active[t] ? threshold_index((double)p[(size_t)t * row], thresholds) : -1;
            if (kmax[t] > top) top = kmax[t];
        }
        if (top < 0) continue;
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

void gs_spans_add(gs_span *spans, int units, int width, int plane, const double *thresholds, int sequences,
                  const int64_t *seq_ids, int steps, const float *values, size_t value_stride,
                  const bool *active, size_t active_stride, int *scratch) {
    if (steps <= 0) return;
    for (int s = 0; s < sequences; s++)
        spans_one(spans, units, width, plane, thresholds, seq_ids[s], steps, values + (size_t)s * value_stride,
                  active + (size_t)s * active_stride, scratch, scratch + steps, scratch + 2 * (size_t)steps);
}

// ---- exact symmetric rank-k update ----------------------------------------------------------------

int gs_syrk_path(void) {
#ifdef GS_X86
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") ? 2 : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1 : 0;
    }
    return cached;
#else
    return 0;
#endif
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
            const __mmask8 m0 = (__mmask8)(cols >= 8 ? 0xFF : (1u << cols) - 1);
            const __mmask8 m1 = (__mmask8)(cols >= 16 ? 0xFF : cols > 8 ? (1u << (cols - 8)) - 1 : 0);
            if (rows == 8) tile512(a, k, n, c, i0, 8, j0, m0, m1);
            else tile512(a, k, n, c, i0, rows, j0, m0, m1);
        }
    }
}

// AVX2: tiles of 4 rows by 8 columns.
__attribute__((always_inline, target("avx2,fma")))
static inline void tile256(const double *a, int k, int n, double *c, int i0, int rows, int j0, __m256i m0, __m256i m1) {
    __m256d acc[4][2];
    for (int q = 0; q < 4; q++) {
        if (q >= rows) break;
        acc[q][0] = _mm256_maskload_pd(c + (size_t)(i0 + q) * n + j0, m0);
        acc[q][1] = _mm256_maskload_pd(c + (size_t)(i0 + q) * n + j0 + 4, m1);
    }
    for (int r = 0; r < k; r++) {
        const double *ar = a + (size_t)r * n;
        const __m256d b0 = _mm256_maskload_pd(ar + j0, m0);
        const __m256d b1 = _mm256_maskload_pd(ar + j0 + 4, m1);
        for (int q = 0; q < 4; q++) {
            if (q >= rows) break;
            const __m256d s = _mm256_set1_pd(ar[i0 + q]);
            acc[q][0] = _mm256_fmadd_pd(s, b0, acc[q][0]);
            acc[q][1] = _mm256_fmadd_pd(s, b1, acc[q][1]);
        }
    }
    for (int q = 0; q < 4; q++) {
        if (q >= rows) break;
        _mm256_maskstore_pd(c + (size_t)(i0 + q) * n + j0, m0, acc[q][0]);
        _mm256_maskstore_pd(c + (size_t)(i0 + q) * n + j0 + 4, m1, acc[q][1]);
    }
}

__attribute__((target("avx2,fma")))
static __m256i lanes256(int count) {
    const __m256i idx = _mm256_setr_epi64x(0, 1, 2, 3);
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(count), idx);
}

__attribute__((target("avx2,fma")))
static void syrk256(const double *a, int k, int n, double *c) {
    for (int i0 = 0; i0 < n; i0 += 4) {
        const int rows = n - i0 < 4 ? n - i0 : 4;
        for (int j0 = i0 / 8 * 8; j0 < n; j0 += 8) {
            const int cols = n - j0 < 8 ? n - j0 : 8;
            const __m256i m0 = lanes256(cols), m1 = lanes256(cols - 4);
            if (rows == 4) tile256(a, k, n, c, i0, 4, j0, m0, m1);
            else tile256(a, k, n, c, i0, rows, j0, m0, m1);
        }
    }
}

#endif

void gs_syrk_upper_exact(int path, const double *a, int k, int n, double *c) {
    if (k <= 0 || n <= 0) return;
    const int best = gs_syrk_path();
    if (path > best) path = best;
#ifdef GS_X86
    if (path == 2) { syrk512(a, k, n, c); return; }
    if (path == 1) { syrk256(a, k, n, c); return; }
#endif
    syrk_portable(a, k, n, c);
}
