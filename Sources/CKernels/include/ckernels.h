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

#endif

/// One LSTM cell update for one sequence with Keras's default activations (recurrent sigmoid,
/// tanh), AVX-512: z [4u] holds the pre-activations i, f, c, o; c [u] is updated in
/// place; h [u] receives the new hidden state; gi/gf/gg/go [u] receive the gate values.
/// Same Cephes exp as the Swift FastMath (relative error about 2e-7).
void gs_lstm_cell_sigmoid_tanh(const float *z, int u, float *c, float *h,
                               float *gi, float *gf, float *gg, float *go);
