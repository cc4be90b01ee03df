#!/usr/bin/env bash
# The engine's LSTM products alone against one core's FMA peak, side by side (prints figures).
# The two layers of 2 x LSTM(256) on 64 features at batch 64 (the sizes of bench_engine.sh's
# batch-64 row), one thread, weights packed once and reused: what the kernel reaches when the
# rest of the engine's step is not there. Built with clang -O2, as SwiftPM builds the C targets.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
${CC:-clang} -O2 -ISources/CKernels/include scripts/bench_lstm_gemm.c Sources/CKernels/lstm_kernels.c -o "$work/gemm"
${CC:-clang} -O3 -pthread scripts/fma_peak.c -o "$work/fma_peak"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
"$work/fma_peak" 1 2
"$work/gemm" 64 64 256
"$work/gemm" 64 256 256
"$work/fma_peak" 1 2
