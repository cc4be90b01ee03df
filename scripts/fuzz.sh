#!/usr/bin/env bash
# Runs the libFuzzer harnesses of gatescope's file readers (Sources/GateScopeFuzz).
#   scripts/fuzz.sh [SECONDS] [HARNESS...]     default: 60 s each, every harness
# Builds GateScopeFuzz with -sanitize=fuzzer,address into .build/fuzz, fuzzes each harness from
# its seed corpus Tests/Fuzz/<harness> (copied to a work corpus, so the repo is not changed),
# and prints executions and coverage per harness. Exits 1 on any crash, leak, timeout (10 s per
# input), resident memory over 1 GB or multi-line refusal; the input is saved in
# $FUZZ_DIR/artifacts. As in the release binary, an allocation too large to satisfy returns NULL
# (libhdf5 then refuses the file) instead of stopping the run: what counts is memory used.
# FUZZ_SEED (default 1) makes a run repeat the same mutations for the same build.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(npy npz jsonl csv txt vocab keras-config keras-zip h5 onnx pt safetensors)
work=${FUZZ_DIR:-/tmp/gatescope-fuzz}
mkdir -p "$work/artifacts"

# lld: gold crashes formatting its messages on the sanitizer-instrumented objects.
swift build -c release --scratch-path .build/fuzz --product GateScopeFuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DGATESCOPE_FUZZ -Xswiftc -use-ld=lld 2>&1 \
    | grep -E "error|Compiling|Build" | grep -v "Cannot export" || true
bin=.build/fuzz/release/GateScopeFuzz
[ -x "$bin" ] || { echo "fuzz.sh: the fuzz build failed" >&2; exit 1; }

status=0
printf '%-13s %10s %8s %8s %7s  %s\n' harness executions exec/s coverage corpus result
for h in "${harnesses[@]}"; do
    [ -d "Tests/Fuzz/$h" ] || { echo "fuzz.sh: no seed corpus Tests/Fuzz/$h" >&2; exit 2; }
    corpus="$work/corpus/$h"
    rm -rf "$corpus"; mkdir -p "$corpus"
    cp "Tests/Fuzz/$h"/* "$corpus/"
    log="$work/$h.log"
    rc=0
    GATESCOPE_FUZZ_HARNESS=$h ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:quarantine_size_mb=64 LSAN_OPTIONS=suppressions=$PWD/Tests/Fuzz/lsan.supp "$bin" "$corpus" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=1048576 \
        -seed="${FUZZ_SEED:-1}" -print_final_stats=1 -artifact_prefix="$work/artifacts/$h-" >"$log" 2>&1 || rc=$?
    runs=$(grep -aoE 'stat::number_of_executed_units: *[0-9]+' "$log" | tail -1 | grep -aoE '[0-9]+$' || echo "?")
    speed=$(grep -aoE 'stat::average_exec_per_sec: *[0-9]+' "$log" | tail -1 | grep -aoE '[0-9]+$' || echo "?")
    cov=$(grep -aoE 'cov: [0-9]+' "$log" | tail -1 | grep -aoE '[0-9]+' || echo "?")
    files=$(ls "$corpus" | wc -l)
    if [ $rc -eq 0 ]; then
        result=ok
    else
        status=1
        result="FAILED (rc $rc): $(grep -a -m1 -E 'ERROR|SUMMARY|timeout|multi-line|out-of-memory|deadly' "$log" || echo see $log) -> $(ls -t "$work/artifacts/$h-"* 2>/dev/null | head -1)"
    fi
    printf '%-13s %10s %8s %8s %7s  %s\n' "$h" "$runs" "$speed" "$cov" "$files" "$result"
done
exit $status
