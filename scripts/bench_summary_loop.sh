#!/usr/bin/env bash
# The recorder's per-value summary loop alone (prints figures): ns a value on each path, for one
# batch of 64 sequences of an LSTM(128) layer (values from memory) and one of 8 (values in L2).
# Built with clang -O2, as SwiftPM builds the C targets (CC= to change).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${TMPDIR:-/tmp}/gatescope-bench-summary-loop
${CC:-clang} -O2 -ISources/CSummaries/include scripts/bench_summary_loop.c Sources/CSummaries/summaries.c -lm -o "$out"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
"$out" 128 64
"$out" 128 8
