// The recorder's per-value summary loop (gs_summary_add) alone, on synthetic LSTM gates: prints
// nanoseconds per value for each path. Built and run by scripts/bench_summary_loop.sh.
//
//   bench_summary_loop [units] [sequences]     (defaults 128 and 64: one batch of 2 x LSTM(128)'s layer)
#include "csummaries.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint64_t state = 2026;
static double uniform(void) {  // splitmix64
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return ((z ^ (z >> 31)) >> 11) * 0x1p-53 + 0x1p-54;
}
static double gauss(void) { return sqrt(-2 * log(uniform())) * cos(2 * M_PI * uniform()); }

int main(int argc, char **argv) {
    const int units = argc > 1 ? atoi(argv[1]) : 128, sequences = argc > 2 ? atoi(argv[2]) : 64;
    const int width = 6, steps = 64;  // LSTM planes i f g o c h; grids [0,1] [0,1] [-1,1] [0,1] none [-1,1]
    const size_t n = (size_t)sequences * steps * units * width;
    float *v = malloc(n * sizeof(float));
    bool *active = malloc((size_t)sequences * steps);
    for (size_t i = 0; i < (size_t)sequences * steps; i++) active[i] = true;
    // Each unit's pre-activations are an AR(1) walk (stationary std 2), through the plane's function.
    for (int s = 0; s < sequences; s++)
        for (int u = 0; u < units; u++) {
            double z[6] = { 0 };
            for (int t = 0; t < steps; t++)
                for (int g = 0; g < width; g++) {
                    z[g] = 0.8 * z[g] + 1.2 * gauss();
                    const double x = g == 2 || g == 5 ? tanh(z[g]) : g == 4 ? 1.5 * z[g] : 1 / (1 + exp(-z[g]));
                    v[((size_t)(s * steps + t) * units + u) * width + g] = (float)x;
                }
        }
    gs_summary_layer l = { 0 };
    l.units = units;
    l.width = width;
    l.n = calloc(units, sizeof(int64_t));
    l.sums = calloc((size_t)units * width * GS_SUM_WIDTH, sizeof(int64_t));
    l.min = malloc(sizeof(double) * units * width);
    l.max = malloc(sizeof(double) * units * width);
    const int lows[6] = { 0, 0, -1000, 0, 1, -1000 };
    int stride = 0;
    for (int g = 0; g < GS_MAX_WIDTH; g++) l.hist_offset[g] = -1;
    for (int g = 0; g < width; g++) {
        if (lows[g] == 1) continue;  // the cell state has no grid
        l.hist_offset[g] = stride;
        l.grid_low[g] = lows[g];
        stride += (lows[g] == 0 ? 1000 : 2000) + 2;
    }
    l.hist_stride = stride;
    l.hist = calloc((size_t)units * stride, sizeof(int64_t));
    l.edge_eq = calloc((size_t)units * width * GS_EDGE_SLOTS, sizeof(int64_t));
    printf("gs_summary_add: %d units x %d planes, %d sequences x %d steps a call (%.1f MB of values)\n",
           units, width, sequences, steps, n * 4 / 1e6);
    for (int path = gs_summary_path(); path >= 0; path--) {
        for (int i = 0; i < units * width; i++) { l.min[i] = INFINITY; l.max[i] = -INFINITY; }
        double times[9];
        for (int r = 0; r < 9; r++) {
            const double t0 = now();
            gs_summary_add(path, &l, sequences, steps, v, (size_t)steps * units * width, active, steps, 0, units);
            times[r] = now() - t0;
        }
        for (int a = 0; a < 9; a++)  // median
            for (int b = a + 1; b < 9; b++)
                if (times[b] < times[a]) { const double x = times[a]; times[a] = times[b]; times[b] = x; }
        printf("  path %d (%s): median of 9 calls %.3f ms = %.2f ns a value\n", path, path == 2 ? "AVX-512" : path == 1 ? "AVX2" : "portable",
               times[4] * 1e3, times[4] * 1e9 / n);
    }
    return 0;
}
