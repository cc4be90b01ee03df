#!/usr/bin/env bash
# Engine throughput against Keras, over a sweep of LSTM sizes, in one run (prints figures).
#
#   scripts/bench_engine.sh [MIN_SECONDS]      (default 0.5 s timed per measurement)
#   CONFIGS="256:2:64 256:2:1" scripts/bench_engine.sh    (UNITS:LAYERS:BATCH; default: the sweep)
#   ROUNDS=3 scripts/bench_engine.sh          (default 2)
#
# Sweep: LSTM(32), LSTM(128), LSTM(256), LSTM(1024), one and two layers (return_sequences), at
# batch 1, 8, 64 and 256; input 64 features x TIME (default 50) steps. Per configuration:
#   * GateScope: Model.forward on one batch, with an observer that reads every gate value
#     (GateScopeBench --synthetic; every core), median of calls;
#   * Keras 3 on jax and on tensorflow: the fastest honest paths on one batch
#     (scripts/bench_keras_sweep.py: predict_on_batch, jax.jit(stateless_call), tf.function with
#     and without jit_compile), median of calls; the fastest of all is the one compared.
# This machine's FMA peak is measured in the same run (scripts/fma_peak.c, every core, before and
# after the sweep), and each engine's GFLOP/s is given as a share of it. FLOPs per step and
# sequence: sum over layers of 2 * (inputs + units) * 4 * units.
# The whole sweep runs ROUNDS times, and within a round each size runs GateScope and each Keras
# backend back to back (GateScope first in odd rounds, last in even ones; the Keras processes stay
# up between sizes), and each engine's figure for a size is its fastest round: a slow spell of the
# VM (it changes speed by up to 1.5x within minutes) then hits neither side alone. One round of a
# whole GateScope sweep and then a whole Keras sweep gave 0.68x for 2 x LSTM(128) at batch 256,
# where the same binary ran 1.0x of that Keras figure ten minutes later.
# Needs: pip install keras jax tensorflow-cpu; a C compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
min_seconds=${1:-0.5}
TIME=${TIME:-50}
SCRATCH=${SCRATCH:-.build-bench}
export TF_CPP_MIN_LOG_LEVEL=3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
scripts/setup.sh
swift build -c release --product GateScopeBench --scratch-path "$SCRATCH" 2>&1 | tail -1
BIN=$SCRATCH/release/GateScopeBench
cc -O3 -pthread scripts/fma_peak.c -o "$work/fma_peak"

if [ -z "${CONFIGS:-}" ]; then
    CONFIGS=""
    for u in 32 128 256 1024; do for l in 1 2; do for b in 1 8 64 256; do CONFIGS="$CONFIGS $u:$l:$b"; done; done; done
fi
cores=$(nproc)
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
isa=$(grep -q avx512f /proc/cpuinfo && echo "AVX-512" || (grep -q avx2 /proc/cpuinfo && echo "AVX2" || echo "no AVX"))
echo "machine: $cpu, $cores cores, $isa, $(free -g | awk '/Mem:/ {print $2}') GiB; load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$work/fma_peak" "$cores" 2 | tee "$work/peak1.txt"

: > "$work/gatescope.txt"
: > "$work/keras.jsonl"
gatescope_one() {  # $1 = UNITS:LAYERS:BATCH
    IFS=: read -r u l b <<< "$1"
    sizes=$(printf "$u,%.0s" $(seq "$l")); sizes=${sizes%,}
    line=$("$BIN" --synthetic "$sizes" --features 64 --time "$TIME" --batch "$b" --repeat 3 --min-seconds "$min_seconds")
    echo "$line"
    echo "$u $l $b $(echo "$line" | sed -n 's/.* \([0-9.]*\) steps\*seqs\/s.*/\1/p')" >> "$work/gatescope.txt"
}
# One Keras process per backend, serving one configuration at a time (bench_keras_sweep.py
# --serve), so that each size's Keras figures are taken seconds from GateScope's, not a sweep apart.
backends=""
fd=3
for backend in jax tensorflow; do
    if KERAS_BACKEND=$backend python3 -c "import keras" 2>/dev/null; then
        mkfifo "$work/$backend.in" "$work/$backend.out"
        KERAS_BACKEND=$backend python3 scripts/bench_keras_sweep.py --serve --time "$TIME" --min-seconds "$min_seconds" \
            < "$work/$backend.in" > "$work/$backend.out" 2>"$work/$backend.err" &
        eval "exec $fd>\"\$work/$backend.in\" $((fd + 1))<\"\$work/$backend.out\""
        read -r ready <&$((fd + 1))
        [ "$ready" = ready ] || { echo "keras-$backend did not start: $(tail -3 "$work/$backend.err")"; exit 1; }
        backends="$backends $backend:$fd"
        fd=$((fd + 2))
    else
        echo "keras-$backend: not installed, skipped"
    fi
done
keras_one() {  # $1 = UNITS:LAYERS:BATCH, $2 = backend:fd
    local w=${2#*:} r=$((${2#*:} + 1)) row
    echo "$1" >&$w
    while read -r row <&$r && [ "$row" != end ]; do echo "$row" | tee -a "$work/keras.jsonl"; done
}
for round in $(seq "${ROUNDS:-2}"); do
    echo "round $round"
    for c in $CONFIGS; do
        # GateScope first in odd rounds, last in even ones.
        if [ $((round % 2)) -eq 1 ]; then
            gatescope_one "$c"; for k in $backends; do keras_one "$c" "$k"; done
        else
            for k in $(echo $backends | tr ' ' '\n' | tac); do keras_one "$c" "$k"; done; gatescope_one "$c"
        fi
    done
done
for k in $backends; do eval "exec ${k#*:}>&-"; done
wait
"$work/fma_peak" "$cores" 2 | tee "$work/peak2.txt"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$work" "$TIME" "${ROUNDS:-2}" <<'PY'
import json, re, sys
work, steps, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
peaks = [float(re.search(r": ([0-9.]+) GFLOP/s", open(f"{work}/peak{k}.txt").read()).group(1)) for k in (1, 2)]
peak = max(peaks)
keras = {}
for line in open(f"{work}/keras.jsonl"):
    r = json.loads(line)
    if "steps_seqs_per_s" not in r:
        continue
    key = (r["units"], r["layers"], r["batch"])
    if key not in keras or r["steps_seqs_per_s"] > keras[key]["steps_seqs_per_s"]:
        keras[key] = r
def flops(u, l, f=64):
    total, d = 0, f
    for _ in range(l):
        total += 2 * (d + u) * 4 * u
        d = u
    return total
print(f"\nFMA peak, every core: {peaks[0]:.0f} GFLOP/s before the sweep, {peaks[1]:.0f} after; shares below are of {peak:.0f}.")
print(f"Throughput in steps x sequences per second ({steps} steps, 64 features); GateScope reads every gate;")
print(f"each engine's fastest of {rounds} alternating rounds.\n")
print("| LSTM | batch | GateScope | GFLOP/s | % peak | fastest Keras path | Keras | GFLOP/s | % peak | GateScope / Keras |")
print("|---|---|---|---|---|---|---|---|---|---|")
ratios = []
ours = {}
for line in open(f"{work}/gatescope.txt"):
    u, l, b, rate = line.split()
    key = (int(u), int(l), int(b))
    ours[key] = max(ours.get(key, 0.0), float(rate))
for (u, l, b), rate in ours.items():
    fl = flops(u, l)
    g = rate * fl / 1e9
    k = keras.get((u, l, b))
    if k:
        kr = k["steps_seqs_per_s"]; kg = kr * fl / 1e9
        ratios.append(rate / kr)
        ktext = f"{k['backend']} {k['path']} | {kr:,.0f} | {kg:.1f} | {100 * kg / peak:.0f}% | {rate / kr:.2f}x"
    else:
        ktext = "- | - | - | - | -"
    name = f"{l} x {u}" if l > 1 else f"{u}"
    print(f"| {name} | {b} | {rate:,.0f} | {g:.1f} | {100 * g / peak:.0f}% | {ktext} |")
if ratios:
    print(f"\nGateScope / fastest Keras: lowest {min(ratios):.2f}x, median {sorted(ratios)[len(ratios) // 2]:.2f}x, highest {max(ratios):.2f}x")
PY
