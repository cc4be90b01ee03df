#!/usr/bin/env bash
# Engine throughput, side by side with Keras on the same model and input (prints figures).
#
# Model: 2 x LSTM(256, return_sequences) on 64 features; input 64 sequences x 100 steps.
# GateScope times Model.forward with an observer that reads every gate value; Keras times
# model.predict (and its faster direct paths, labelled) on jax and, if installed, tensorflow.
# Needs: pip install keras jax h5py (and tensorflow-cpu for the tensorflow backend).
#   scripts/bench_engine.sh [REPEATS]
#   OLD_REV=3062ccc scripts/bench_engine.sh [REPEATS]
#       # also the GateScopeBench of that commit (git worktree in /tmp/gatescope-old-<rev>, built
#       # in release with its own scratch path there): new and old alternate, ROUNDS (default 5)
#       # rounds per batch size (one run of each, back to back, who goes first alternating), each
#       # line labelled; then the median over rounds of new/old throughput within a round (robust
#       # to load drifting between rounds) and the ratio of the two medians.
# GateScope is built in release into $SCRATCH (default .build-bench), not .build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
repeats=${1:-7}
SCRATCH=${SCRATCH:-.build-bench}
OLD_REV=${OLD_REV:-}
ROUNDS=${ROUNDS:-5}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
scripts/setup.sh
swift build -c release --product GateScopeBench --scratch-path "$SCRATCH" 2>&1 | tail -1
NEW_BIN="$ROOT/$SCRATCH/release/GateScopeBench"
if [ -n "$OLD_REV" ]; then
    OLD_SHA=$(git rev-parse --short "$OLD_REV^{commit}")
    OLD_TREE=/tmp/gatescope-old-$OLD_SHA
    [ -d "$OLD_TREE" ] || git worktree add --detach "$OLD_TREE" "$OLD_SHA" >/dev/null
    echo "old $OLD_SHA (worktree $OLD_TREE):"
    (cd "$OLD_TREE" && swift build -c release --product GateScopeBench --scratch-path .build-bench 2>&1 | tail -1)
    OLD_BIN="$OLD_TREE/.build-bench/release/GateScopeBench"
fi
KERAS_BACKEND=jax python3 scripts/bench_keras.py --backend jax --repeats 1 --warmup 0 \
    --save "$work/bench.keras" --save-input "$work/x.npy" >/dev/null
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
if [ -z "$OLD_REV" ]; then
    for b in 64 1; do
        "$NEW_BIN" "$work/bench.keras" "$work/x.npy" --batch "$b" --repeat "$repeats"
    done
else
    rate() { sed -n 's/.* \([0-9.]*\) steps\*seqs\/s.*/\1/p'; }  # throughput of a GateScopeBench line
    median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
    for b in 64 1; do
        : > "$work/new.txt"; : > "$work/old.txt"; : > "$work/ratio.txt"
        for k in $(seq "$ROUNDS"); do
            order="new old"; [ $((k % 2)) -eq 0 ] && order="old new"  # alternate who goes first
            for which in $order; do
                bin=$NEW_BIN; [ "$which" = old ] && bin=$OLD_BIN
                line=$("$bin" "$work/bench.keras" "$work/x.npy" --batch "$b" --repeat "$repeats")
                echo "$which $line"
                echo "$line" | rate >> "$work/$which.txt"
            done
            paste "$work/new.txt" "$work/old.txt" | tail -1 | awk '{print $1 / $2}' >> "$work/ratio.txt"
        done
        awk -v q="$(median < "$work/ratio.txt")" -v n="$(median < "$work/new.txt")" -v o="$(median < "$work/old.txt")" \
            -v b="$b" -v r="$ROUNDS" -v s="$OLD_SHA" \
            'BEGIN {printf "batch=%d new / old (%s): %.3fx median of %d paired rounds; medians %.0f vs %.0f steps*seqs/s = %.3fx (no slower: >= 1.00x)\n", b, s, q, r, n, o, n / o}'
    done
    echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
fi
backends=jax
python3 -c "import tensorflow" 2>/dev/null && backends=all
python3 scripts/bench_keras.py --backend "$backends" --repeats "$repeats" 2>/dev/null | grep -E "^keras-|fastest"
