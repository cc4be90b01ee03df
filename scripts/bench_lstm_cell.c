// The LSTM cell kernel alone (see bench_lstm_cell.sh).
//   bench_lstm_cell ROWS UNITS PATH
// One step's cell over ROWS rows of UNITS units from a fixed z, called as runInterleaved calls it
// on one thread at batch 64 and up: one unit block (16 units) of every row a call. Prints the best
// of 30 runs of 20 steps, in ns a unit, and a checksum of every output (equal on every path).
#include "ckernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s ROWS UNITS PATH\n", argv[0]); return 2; }
    const int rows = atoi(argv[1]), u = atoi(argv[2]), path = atoi(argv[3]);
    const int blocks = gs_lstm_blocks(u), zw = blocks * 64;
    const size_t bu = (size_t)rows * u;
    float *z = aligned_alloc(64, (sizeof(float) * (size_t)rows * zw + 63) / 64 * 64);
    float *p = aligned_alloc(64, (sizeof(float) * bu * 8 + 63) / 64 * 64);
    if (!z || !p) { perror("aligned_alloc"); return 1; }
    // Pre-activations in [-4, 4), where every gate is far from saturated.
    for (size_t i = 0; i < (size_t)rows * zw; i++) z[i] = (float)((int)(i * 37 % 200) - 100) / 25.0f;
    for (size_t i = 0; i < bu * 8; i++) p[i] = 0.1f;
    double best = 1e9;
    for (int rep = 0; rep < 30; rep++) {
        const double t0 = now();
        for (int s = 0; s < 20; s++)
            for (int c = 0; c < blocks; c++)  // c_prev, then c, h, i, f, g, o and the output sequence
                gs_lstm_cell(path, z, zw, rows, NULL, 0, c, c + 1, u, p, p + bu, p + 2 * bu, p + 3 * bu, p + 4 * bu,
                             p + 5 * bu, p + 6 * bu, p + 7 * bu, u);
        const double t = (now() - t0) / 20;
        if (t < best) best = t;
    }
    double sum = 0;
    for (size_t i = bu; i < bu * 8; i++) sum += p[i];
    printf("cell, %d rows x %d units, path %d: %.2f ns a unit (checksum %.9g)\n", rows, u, path, best * 1e9 / bu, sum);
    return 0;
}
