// This machine's FMA peak, for scripts/bench_engine.sh: every thread runs a register-blocked loop
// of independent fused multiply-adds (2 flops per lane) for a fixed time; the sum over threads is
// the GFLOP/s that float32 matrix code could reach at best. The accumulators must all stay in
// registers with the two operands: 16 of the 32 zmm registers, but only 12 of the 16 ymm ones
// (with 16, the AVX2 loop spilled and measured half of a Zen 3 core's peak; 12 chains still
// cover 4 cycles of latency on two FMA pipes).
//   cc -O2 -pthread scripts/fma_peak.c -o fma_peak && ./fma_peak [THREADS] [SECONDS]
// Uses AVX-512 where the CPU has it, else AVX2 + FMA; prints one line.
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double seconds = 1.0;
static int wide = 0;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define LOOP(V, SET1, FMA, ADD, STORE, LANES, ACC)                                              \
    V acc[ACC];                                                                                 \
    for (int k = 0; k < ACC; k++) acc[k] = SET1(0.001f * k);                                    \
    V a = SET1(0.999999f), b = SET1(1e-7f);                                                     \
    long rounds = 0;                                                                            \
    double t0 = now(), t1 = t0;                                                                 \
    while (t1 - t0 < seconds) {                                                                 \
        for (int r = 0; r < 100000; r++)                                                        \
            for (int k = 0; k < ACC; k++) acc[k] = FMA(acc[k], a, b);                           \
        rounds++;                                                                               \
        t1 = now();                                                                             \
    }                                                                                           \
    V s = acc[0];                                                                               \
    for (int k = 1; k < ACC; k++) s = ADD(s, acc[k]);                                           \
    float out[LANES];                                                                           \
    STORE(out, s);                                                                              \
    *sink = out[0];                                                                             \
    return rounds * 100000.0 * ACC * LANES * 2 / (t1 - t0);

__attribute__((target("avx512f"))) static double run512(float *sink) {
    LOOP(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_storeu_ps, 16, 16)
}
__attribute__((target("avx2,fma"))) static double run256(float *sink) {
    LOOP(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps, 8, 12)
}

typedef struct { double flops; float sink; } result;

static void *worker(void *arg) {
    result *r = arg;
    r->flops = wide ? run512(&r->sink) : run256(&r->sink);
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (argc > 2) seconds = atof(argv[2]);
    __builtin_cpu_init();
    wide = __builtin_cpu_supports("avx512f");
    if (!wide && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) {
        printf("fma-peak: this CPU has neither AVX-512 nor AVX2+FMA\n");
        return 1;
    }
    pthread_t t[64];
    result r[64];
    if (threads < 1 || threads > 64) threads = 1;
    for (int k = 0; k < threads; k++) pthread_create(&t[k], NULL, worker, &r[k]);
    double total = 0;
    for (int k = 0; k < threads; k++) { pthread_join(t[k], NULL); total += r[k].flops; }
    printf("fma-peak threads=%d isa=%s: %.1f GFLOP/s (%.1f per thread)\n", threads, wide ? "avx512" : "avx2",
           total / 1e9, total / 1e9 / threads);
    return 0;
}
