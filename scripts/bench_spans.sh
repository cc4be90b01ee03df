#!/usr/bin/env bash
# The recorder's memory-span loop alone, against another revision's, alternating (prints figures).
#
#   scripts/bench_spans.sh                # this tree's AVX-512 and portable paths
#   OLD_REV=0688471 scripts/bench_spans.sh  # and that revision's loop, built beside it
#
# One batch of 64 sequences x 64 steps of an LSTM(128) layer per call (values from memory);
# ROUNDS (default 8) alternating rounds, then the medians. Built with clang -O2, as SwiftPM builds
# the C targets (CC= to change).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
${CC:-clang} -O2 -ISources/CSummaries/include scripts/bench_spans.c Sources/CSummaries/summaries.c -lm -o "$work/new"
sides="new portable"
if [ -n "${OLD_REV:-}" ]; then
    mkdir -p "$work/old/include"
    git show "$OLD_REV:Sources/CSummaries/summaries.c" > "$work/old/summaries.c"
    git show "$OLD_REV:Sources/CSummaries/include/csummaries.h" > "$work/old/include/csummaries.h"
    old_flags=$(grep -q "void gs_spans_add(int path" "$work/old/include/csummaries.h" || echo -DOLD)
    ${CC:-clang} -O2 $old_flags -I"$work/old/include" scripts/bench_spans.c "$work/old/summaries.c" -lm -o "$work/old/bench"
    sides="old new portable"
fi
echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
for round in $(seq "${ROUNDS:-8}"); do
    for side in $sides; do
        case $side in
        old) echo "old $("$work/old/bench" 64 2)" ;;
        new) echo "new $("$work/new" 64 2)" ;;
        portable) echo "portable $("$work/new" 64 0)" ;;
        esac
    done
done | python3 -c '
import sys, statistics
runs = {}
for line in sys.stdin:
    side, ns = line.split()[:2]
    runs.setdefault(side, []).append(float(ns))
base = statistics.median(runs["new"])
for side, v in runs.items():
    m = statistics.median(v)
    print(f"{side}: median {m:.2f} ns per forget-gate value over {len(v)} rounds, speed {base / m:.2f}x of new")
'
