// The recorder's memory-span loop alone (see bench_spans.sh): gs_spans_add on one batch of
// SEQUENCES x 64 steps of an LSTM(128) layer (6 planes, the forget gate's values uniform in
// [0, 1)), medians of 15 calls, ns per forget-gate value. OLD: the signature before the path argument.
#include "csummaries.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int less(const void *a, const void *b) { return *(const double *)a < *(const double *)b ? -1 : 1; }

int main(int argc, char **argv) {
    const int sequences = argc > 1 ? atoi(argv[1]) : 64, steps = 64, units = 128, width = 6, path = argc > 2 ? atoi(argv[2]) : 2;
    const size_t n = (size_t)sequences * steps * units * width;
    float *values = malloc(n * sizeof(float));
    bool *active = malloc((size_t)sequences * steps);
    int64_t *ids = malloc((size_t)sequences * sizeof(int64_t));
    gs_span *spans = calloc((size_t)units * (GS_SPAN_GRID + 1), sizeof(gs_span));
    int scratch[3 * 64 + 1];
    if (!values || !active || !ids || !spans) { perror("malloc"); return 1; }
    for (size_t i = 0; i < n; i++) values[i] = (float)((i * 2654435761u) % 1000) / 1000.0f;
    for (int i = 0; i < sequences * steps; i++) active[i] = true;
    for (int s = 0; s < sequences; s++) ids[s] = s;
    double t[15];
    for (int r = 0; r < 15; r++) {
        const double t0 = now();
#ifdef OLD
        (void)path;
        gs_spans_add(spans, units, width, 1, sequences, ids, steps, values, (size_t)steps * units * width, active, steps, scratch);
#else
        gs_spans_add(path, spans, units, width, 1, sequences, ids, steps, values, (size_t)steps * units * width, active, steps, scratch);
#endif
        t[r] = now() - t0;
    }
    qsort(t, 15, sizeof t[0], less);
    printf("%.2f ns per value\n", t[7] * 1e9 / ((double)sequences * steps * units));
    return 0;
}
