// The LSTM step's products alone, as runInterleaved calls them (see bench_lstm_gemm.sh).
//   bench_lstm_gemm BATCH INPUTS UNITS
// Per step and unit block: z = x W + b (k = INPUTS), then z += h U (k = UNITS), on one thread,
// every buffer reused, so weights stay in cache as far as they fit. Prints the best of 10 runs
// of 50 steps: us a step and GFLOP/s.
#include "ckernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static float *filled(size_t n, float scale) {
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!p) { perror("aligned_alloc"); exit(1); }
    for (size_t i = 0; i < n; i++) p[i] = scale * (float)(i % 7);
    return p;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s BATCH INPUTS UNITS\n", argv[0]); return 2; }
    int m = atoi(argv[1]), d = atoi(argv[2]), u = atoi(argv[3]);
    int path = gs_lstm_path(), blocks = gs_lstm_blocks(u), zw = blocks * 64;
    if (path == 0) { fprintf(stderr, "no vector path on this CPU\n"); return 1; }
    float *w = filled(gs_lstm_packed_size(d, u), 0.01f), *rk = filled(gs_lstm_packed_size(u, u), 0.01f);
    float *x = filled((size_t)m * d, 0.1f), *h = filled((size_t)m * u, 0.1f);
    float *z = filled((size_t)m * zw, 0), *bias = filled(zw, 0.01f);
    double best = 1e9;
    for (int rep = 0; rep < 10; rep++) {
        double t0 = now();
        for (int step = 0; step < 50; step++)
            for (int c = 0; c < blocks; c++) {  // one unit block (two panels) a call, as the engine's grain at this size
                gs_lstm_gemm(path, x, d, m, d, w, 2 * c, 2 * c + 2, z, zw, bias, 0);
                gs_lstm_gemm(path, h, u, m, u, rk, 2 * c, 2 * c + 2, z, zw, NULL, 1);
            }
        double t = (now() - t0) / 50;
        if (t < best) best = t;
    }
    double flops = 2.0 * m * (d + u) * 4 * u;
    printf("products of one step, batch %d, %d inputs, LSTM(%d), path %d: %.1f us, %.1f GFLOP/s\n",
           m, d, u, path, best * 1e6, flops / best / 1e9);
    return 0;
}
