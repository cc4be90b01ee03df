#!/usr/bin/env bash
# record --summaries-only against the bare engine, side by side in one run (prints figures).
#
#   scripts/bench_summaries.sh            # 2 x LSTM(128), 1024 sequences x 64 steps, 16 features
#   SEQUENCES=4096 UNITS=256 scripts/bench_summaries.sh
#   FULL=0 SEQUENCES=8192 scripts/bench_summaries.sh   # skip the (slow) full recording
#
# Per round (ROUNDS, default 3; the order alternates), in steps x sequences per second:
#   * engine: GateScopeBench, Model.forward alone over the same input in batches of 64 (no
#     observer), on one thread (the recorder's engine thread) and on every core;
#   * record --summaries-only: the whole command's wall time (model load, hashing, input, engine,
#     summaries, pair moments, spans, sequences rows, commit);
#   * record (full): the same with every gate row stored, for scale.
# Then the medians and the ratio of record --summaries-only to each engine figure.
# Needs Python with keras + jax for the model (made once, cached in $BENCH_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCRATCH=${SCRATCH:-.build-bench}
SEQUENCES=${SEQUENCES:-1024}
STEPS=${STEPS:-64}
UNITS=${UNITS:-128}
ROUNDS=${ROUNDS:-3}
BENCH_DIR=${BENCH_DIR:-/tmp/gatescope-bench-summaries-$UNITS}
mkdir -p "$BENCH_DIR"
swift build -c release --product gatescope --scratch-path "$SCRATCH" 2>&1 | tail -1
swift build -c release --product GateScopeBench --scratch-path "$SCRATCH" 2>&1 | tail -1
BIN=$ROOT/$SCRATCH/release/gatescope
ENGINE=$ROOT/$SCRATCH/release/GateScopeBench
if [ "$(cat "$BENCH_DIR/shape" 2>/dev/null)" != "$SEQUENCES $STEPS $UNITS" ]; then
    TF_CPP_MIN_LOG_LEVEL=3 KERAS_BACKEND=jax python3 scripts/make_bench_model.py "$BENCH_DIR" --sequences "$SEQUENCES" \
        --time "$STEPS" --features 16 --cell lstm --units "$UNITS" >/dev/null
    echo "$SEQUENCES $STEPS $UNITS" > "$BENCH_DIR/shape"
fi
cd "$BENCH_DIR"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "model: 2 x LSTM($UNITS), input $SEQUENCES sequences x $STEPS steps x 16 features"
total=$((SEQUENCES * STEPS))
engine() {  # $1 = threads
    "$ENGINE" model.keras input.npy --batch 64 --repeat 1 --threads "$1" --no-observer | sed -n 's/.* \([0-9.]*\) steps\*seqs\/s.*/\1/p'
}
record() {  # $@ = extra options; prints steps*seqs/s of the whole command
    rm -f r.db r.db-wal r.db-shm r.db-gatescope-*
    local s e
    s=$(date +%s.%N)
    "$BIN" record model.keras input.npy --db r.db --no-progress "$@" > /dev/null
    e=$(date +%s.%N)
    awk -v n="$total" -v s="$s" -v e="$e" 'BEGIN {printf "%.0f\n", n / (e - s)}'
}
: > e1.txt; : > e2.txt; : > so.txt; : > full.txt
for k in $(seq "$ROUNDS"); do
    order="e1 e2 so full"; [ $((k % 2)) -eq 0 ] && order="full so e2 e1"
    [ "${FULL:-1}" = 0 ] && order=${order/full/}
    for w in $order; do
        case $w in
            e1) v=$(engine 1) ;;
            e2) v=$(engine "$(nproc)") ;;
            so) v=$(record --summaries-only) ;;
            full) v=$(record) ;;
        esac
        echo "$v" >> "$w.txt"
        echo "round $k $w: $v steps*seqs/s"
    done
done
med() { sort -g "$1" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
e1=$(med e1.txt); e2=$(med e2.txt); so=$(med so.txt); full=$(med full.txt); full=${full:-0}
awk -v e1="$e1" -v e2="$e2" -v so="$so" -v full="$full" -v r="$ROUNDS" -v c="$(nproc)" 'BEGIN {
    printf "medians of %d rounds, steps x sequences per second:\n", r
    printf "  engine, 1 thread:          %8.0f\n", e1
    printf "  engine, %d threads:         %8.0f\n", c, e2
    printf "  record --summaries-only:   %8.0f  = %.2fx engine (1 thread), %.2fx engine (%d threads)\n", so, so / e1, so / e2, c
    if (full > 0) printf "  record (every gate row):   %8.0f  = %.2fx engine (1 thread)\n", full, full / e1
}'
