#ifndef GATESCOPE_CKERNELS_H
#define GATESCOPE_CKERNELS_H

#include <stddef.h>

/// 1 when this CPU runs the AVX-512 matrix kernel (checked once at run time).
int gs_gemm_available(void);

/// Floats needed to pack a [k, n] row-major matrix into 32-column panels.
size_t gs_packed_size(int k, int n);

/// Packs B [k, n] (row-major) into 32-column panels, zero-padded: panel p holds
/// B[0..k, 32p..32p+31] row after row, so the kernel reads it contiguously.
void gs_pack(const float *b, int k, int n, float *packed);

/// C[m, n] = A[m, k] @ B (+ C when accumulate), with B packed by gs_pack. Row-major.
void gs_gemm_packed(const float *a, int m, int k, const float *packed, int n, float *c, int accumulate);

// ---- LSTM step kernels (lstm_kernels.c) ----------------------------------------------------------

/// Which instruction set the LSTM kernels use on this CPU: 2 AVX-512, 1 AVX2 + FMA, 0 none
/// (then the engine's portable path runs; on non-x86 CPUs always 0).
int gs_lstm_path(void);

/// Blocks of 16 units for `units` (the last one zero-padded).
int gs_lstm_blocks(int units);

/// Floats needed to pack a [k, 4*units] Keras kernel into the interleaved layout.
size_t gs_lstm_packed_size(int k, int units);

/// Packs w [k, 4*units] (gates i, f, c, o side by side, row-major) into 32-column panels in which
/// each 16-unit block holds its four gates together: panel 2b = i, f of block b; 2b+1 = g, o.
void gs_lstm_pack(const float *w, int k, int units, float *packed);

/// The bias [4*units] (NULL: zeros) in the same interleaved column order: [blocks * 64].
void gs_lstm_pack_bias(const float *bias, int units, float *packed);

/// c[:, 32*p0 ..< 32*p1] = a[m, k] @ panels p0..<p1, plus c's old values when `accumulate`,
/// else plus `bias` (interleaved, NULL: none). Row strides lda, ldc in floats. `path` 1 or 2.
void gs_lstm_gemm(int path, const float *a, size_t lda, int m, int k, const float *packed,
                  int p0, int p1, float *c, size_t ldc, const float *bias, int accumulate);

/// One step's cell update for unit blocks b0..<b1 of `rows` sequences from interleaved
/// pre-activations z (recurrent sigmoid, tanh): c_next = f*c_prev + i*g, h_next = o*tanh(c_next),
/// gates stored. Row r reads z + r*zstride; its state and gate rows are [units] (not padded), at
/// r*units. Rows with mask[r*mstride] false are skipped (mask NULL: every row). If out is not
/// NULL, each computed row's h also goes to out + r*ostride.
void gs_lstm_cell(int path, const float *z, size_t zstride, int rows, const _Bool *mask, size_t mstride,
                  int b0, int b1, int units, const float *c_prev, float *c_next, float *h_next,
                  float *gi, float *gf, float *gg, float *go, float *out, size_t ostride);

/// A barrier for the threads that share one layer's steps.
typedef struct gs_barrier gs_barrier;
gs_barrier *gs_barrier_create(int parties);
void gs_barrier_destroy(gs_barrier *b);
/// Waits until all parties have arrived; also orders their memory writes before the others' reads.
/// Returns 1 to every party when the stop flag was raised before the last party arrived.
int gs_barrier_wait(gs_barrier *b);
/// Raises the barrier's stop flag: every party's next wait returns 1.
void gs_barrier_abort(gs_barrier *b);
/// Gives party `self` the work items first..<end of the step it starts (call after each wait).
void gs_team_reset(gs_barrier *b, int self, int first, int end);
/// Takes up to `grain` items: from the front of the caller's own range, else from the back of
/// another party's (a slower core's work is shared out). Returns how many, 0 when none are left.
int gs_team_next(gs_barrier *b, int self, int grain, int *start);

#endif
