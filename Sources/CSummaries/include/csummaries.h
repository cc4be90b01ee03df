#ifndef GATESCOPE_CSUMMARIES_H
#define GATESCOPE_CSUMMARIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// The recorder's per-value hot loops (GateScopeStore's SummaryAccumulator, SpanAccumulator and
// PairAccumulator, and GateScopeRecording's batch buffer): plain C so that a pass over a batch
// keeps each unit's tables in cache, runs 8 values a vector where the CPU has AVX-512, and pays
// no Swift exclusivity checks. add_exact and locate in summaries.c are the twins of ExactSums.add
// and HistogramGrid.locate (SummaryKernelTests compares the two sides value by value, on every
// path). Every result is exact, so neither the order of the loops nor the path shows in it.

/// Buckets of one value's exact Σx and Σx² (`ExactSums.width`): 256 linear, then 536 square.
#define GS_SUM_LINEAR 256
#define GS_SUM_WIDTH (256 + 536)
/// Grid edges a float32 can equal exactly: the multiples of 1/8 (k/1000 with 125 | k), 17 on [-1, 1].
#define GS_EDGE_STEP 125
#define GS_EDGE_SLOTS 17
/// Most planes a cell has.
#define GS_MAX_WIDTH 8

/// One recorded layer's summary tables (owned by the Swift side).
typedef struct {
    int units;                       // units of the layer
    int width;                       // planes per unit (<= GS_MAX_WIDTH)
    int64_t *n;                      // [units] values per plane
    int64_t *sums;                   // [units * width * GS_SUM_WIDTH]
    double *min;                     // [units * width]
    double *max;                     // [units * width]
    int64_t *hist;                   // [units * hist_stride]
    int hist_stride;                 // histogram slots per unit
    int hist_offset[GS_MAX_WIDTH];   // start of plane g's slots in a unit's histogram, -1: none
    int grid_low[GS_MAX_WIDTH];      // first edge in thousandths: 0 or -1000
    int64_t *edge_eq;                // [units * width * GS_EDGE_SLOTS] values equal to edge 125*j
} gs_summary_layer;

/// Adds units [unit0, unit1) of `sequences` sequences to `l`: sequence s has its values
/// [steps, units, width] at values + s * value_stride, and active[s * active_stride + t] says
/// whether its step t was computed (inactive steps add nothing). path: 2 AVX-512 (F, DQ, VL),
/// 1 AVX2 + FMA, 0 portable; a path the CPU lacks runs the best one it has. Every path adds the
/// same sums.
void gs_summary_add(int path, const gs_summary_layer *l, int sequences, int steps, const float *values,
                    size_t value_stride, const bool *active, size_t active_stride, int unit0, int unit1);

/// The best path of gs_summary_add on this CPU (2, 1 or 0).
int gs_summary_path(void);

/// Adds one row of `unit`: its `width` planes at `row`.
void gs_summary_add_row(const gs_summary_layer *l, int unit, const float *row);

/// The longest span of one unit at one threshold (GateScopeStore's `Span`).
typedef struct {
    int32_t longest;     // steps in the longest span, 0: none
    int32_t first_step;  // where it starts (the earliest on ties)
    int64_t seq_id;
    int64_t count;       // spans in all
} gs_span;

/// Thresholds of the span grid: k / GS_SPAN_GRID for k in 0...GS_SPAN_GRID.
#define GS_SPAN_GRID 100

/// Adds `sequences` sequences of one layer to the raw table `spans` [units, GS_SPAN_GRID + 1]
/// (zeros at first; per threshold index, spans and count differences: read it through
/// gs_spans_finish): sequence s is seq_ids[s], with values and active laid out as in
/// gs_summary_add; the memory gate is plane `plane`, and the thresholds are k / GS_SPAN_GRID for
/// k in 0...GS_SPAN_GRID (as doubles). `scratch` holds 3 * steps + 1 ints. path 2 runs the AVX-512
/// loops where the CPU has them, 1 (or 2 without AVX-512) the AVX2 ones, 0 the portable C ones
/// (the same spans on every path).
void gs_spans_add(int path, gs_span *spans, int units, int width, int plane, int sequences, const int64_t *seq_ids, int steps,
                  const float *values, size_t value_stride, const bool *active, size_t active_stride, int *scratch);

/// The spans of every threshold from a raw table: out[unit, k] = the best of raw[unit, k' >= k],
/// with count = the sum of raw counts at k' <= k.
void gs_spans_finish(const gs_span *raw, int units, gs_span *out);

/// Interleaves `width` planes of `units` floats: dst[j * width + p] = planes[p][j] (the recorder's
/// batch buffer holds a step's planes unit by unit).
void gs_interleave(float *dst, const float *const *planes, int width, int units);

/// Stages one step's h for the pair moments (PairAccumulator): the h of unit u is h[u * width];
/// q = round(h * 2^40) (ties to even) goes to stage[u] = q >> 20 and stage[lo_offset + u] = the
/// low 20 bits, and is added to unit_sum[u]. Returns 0 (staging nothing) unless every |h| <= 1.
/// path as gs_summary_add; every path stages the same.
int gs_pairs_stage(int path, const float *h, int units, int width, double *stage, size_t lo_offset, int64_t *unit_sum);

/// Exact symmetric rank-k update of the upper triangle: c[n, n] += a^T a, a = [k, n] row-major,
/// c row-major with row stride n. Exact (and so equal on every path) when every partial sum is an
/// integer below 2^53, as PairAccumulator's are. path: 2 AVX-512, 1 AVX2 + FMA, 0 portable; a path
/// the CPU lacks runs the best one it has. Entries below the diagonal may change too.
void gs_syrk_upper_exact(int path, const double *a, int k, int n, double *c);

/// The best path of gs_syrk_upper_exact on this CPU (2, 1 or 0).
int gs_syrk_path(void);

/// 1 when this CPU has AVX-512 IFMA (with DQ and VL): PairAccumulator then keeps its products
/// as gs_pairs_ifma's 52-bit halves instead of gs_syrk_upper_exact's Doubles.
int gs_pairs_ifma_path(void);

/// Stages one step's h as gs_pairs_stage does, as q + 2^40 (an integer in [0, 2^41]) in stage[u].
/// path 2 runs the AVX-512 loop where gs_pairs_ifma_path() is 1, anything else the portable C one.
int gs_pairs_stage_q(int path, const float *h, int units, int width, uint64_t *stage, int64_t *unit_sum);

/// Upper triangle (j >= i) of the products of a = [k, n] row-major (entries in [0, 2^41]):
/// lo[i, j] += sum of the low 52 bits of a[r, i] a[r, j], hi[i, j] += sum of the bits from 52 on.
/// Exact for k up to 4096 since the last clear. Entries below the diagonal may change too.
/// path 2 runs IFMA where gs_pairs_ifma_path() is 1; anything else the same halves in portable C.
void gs_pairs_ifma(int path, const uint64_t *a, int k, int n, uint64_t *lo, uint64_t *hi);

#endif
