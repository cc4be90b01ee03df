#!/usr/bin/env bash
# The engine's LSTM cell kernel alone, against another revision's, alternating (prints figures).
#
#   scripts/bench_lstm_cell.sh                 # this tree's vector path
#   OLD_REV=d2d88f3 scripts/bench_lstm_cell.sh # and that revision's cell, built beside it
#   KERNEL_PATH=1 scripts/bench_lstm_cell.sh   # the AVX2 cell on an AVX-512 CPU
#
# 64 rows of LSTM(256) and of LSTM(37) (a partial last vector) per step, one unit block a call
# (bench_lstm_cell.c); ROUNDS (default 6) alternating rounds, then the medians. Built with
# clang -O2, as SwiftPM builds the C targets (CC= to change).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
${CC:-clang} -O2 -ISources/CKernels/include scripts/bench_lstm_cell.c Sources/CKernels/lstm_kernels.c -o "$work/new"
sides="new"
if [ -n "${OLD_REV:-}" ]; then
    mkdir -p "$work/old/include"
    git show "$OLD_REV:Sources/CKernels/lstm_kernels.c" > "$work/old/lstm_kernels.c"
    git show "$OLD_REV:Sources/CKernels/include/ckernels.h" > "$work/old/include/ckernels.h"
    ${CC:-clang} -O2 -I"$work/old/include" scripts/bench_lstm_cell.c "$work/old/lstm_kernels.c" -o "$work/old/bench"
    sides="old new"
fi
path=${KERNEL_PATH:-$(grep -q avx512f /proc/cpuinfo && echo 2 || echo 1)}  # 1: AVX2, 2: AVX-512
echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; path $path"
for round in $(seq "${ROUNDS:-6}"); do
    for units in 256 37; do
        for side in $sides; do
            bin=$work/new; [ "$side" = old ] && bin=$work/old/bench
            echo "$side $units $("$bin" 64 "$units" "$path")"
        done
    done
done | python3 -c '
import sys, statistics
runs, sums = {}, {}
for line in sys.stdin:
    side, units, rest = line.split(" ", 2)
    runs.setdefault((side, units), []).append(float(rest.split(": ")[1].split()[0]))
    sums.setdefault(units, set()).add(rest.split("checksum ")[1].strip(" )\n"))
for (side, units), v in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    print(f"{side}: LSTM({units}) median {statistics.median(v):.2f} ns a unit over {len(v)} rounds")
for units, s in sums.items():
    verdict = "equal" if len(s) == 1 else "DIFFER: " + " ".join(sorted(s))
    print(f"LSTM({units}): checksums {verdict}")
'
