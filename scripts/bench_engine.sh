#!/usr/bin/env bash
# Engine throughput, side by side with Keras on the same model and input (prints figures).
#
# Model: 2 x LSTM(256, return_sequences) on 64 features; input 64 sequences x 100 steps.
# GateScope times Model.forward with an observer that reads every gate value; Keras times
# model.predict (and its faster direct paths, labelled) on jax and, if installed, tensorflow.
# Needs: pip install keras jax h5py (and tensorflow-cpu for the tensorflow backend).
#   scripts/bench_engine.sh [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-7}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
scripts/setup.sh
swift build -c release --product GateScopeBench 2>&1 | tail -1
KERAS_BACKEND=jax python3 scripts/bench_keras.py --backend jax --repeats 1 --warmup 0 \
    --save "$work/bench.keras" --save-input "$work/x.npy" >/dev/null
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
for b in 64 1; do
    .build/release/GateScopeBench "$work/bench.keras" "$work/x.npy" --batch "$b" --repeat "$repeats"
done
backends=jax
python3 -c "import tensorflow" 2>/dev/null && backends=all
python3 scripts/bench_keras.py --backend "$backends" --repeats "$repeats" 2>/dev/null | grep -E "^keras-|fastest"
