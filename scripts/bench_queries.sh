#!/usr/bin/env bash
# Benchmark of the questions users ask of a big run (issue 12): every shipped named query at its
# defaults, export of one unit, and stats at off-grid thresholds, on the 10-million-row run that
# scripts/bench_stats.sh builds, side by side in one run: the database as recorded, and a copy
# after `gatescope index`. Each answer is checked against its full-scan SQL (`query --scan`, or
# the same command on the database without the index). Prints figures; it is not a test.
#
#   scripts/bench_queries.sh [ROWS]          (default ROWS = 10000000)
#
# Environment: SCRATCH_PATH (SwiftPM scratch dir, default .build), BENCH_DIR (default
# /tmp/gatescope-bench-queries; bench.db there is reused when it has enough rows),
# SMALL_ROWS (default 1048576): the size of the run on which unit-correlation's scan SQL, a self
# join of units^2/2 pairs per step, is checked (about 70 s there; some 11 minutes on 10M rows).
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${1:-10000000}
SMALL_ROWS=${SMALL_ROWS:-1048576}
SCRATCH=${SCRATCH_PATH:-.build}
DIR=${BENCH_DIR:-/tmp/gatescope-bench-queries}
mkdir -p "$DIR"
echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"

# The databases: the 10M-row run (bench_stats.sh's recipe) and a small run of the same model.
BENCH_DIR=$DIR KEEP=1 scripts/bench_stats.sh "$ROWS" > "$DIR/stats.log" 2>&1 || { cat "$DIR/stats.log"; exit 1; }
grep -E "^== (recording|database)|recorded" "$DIR/stats.log" | sed 's/^/   /'
BIN="$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/gatescope"
DB=$DIR/bench.db
"$BIN" migrate "$DB" >/dev/null
SMALL=$DIR/small.db
if [[ ! -f $SMALL ]]; then
    awk -v need="$SMALL_ROWS" '{ c += length($0); print; if (c * 256 >= need) exit }' "$DIR/input.txt" > "$DIR/small.txt"
    "$BIN" record examples/charlstm/model.keras "$DIR/small.txt" --vocab examples/charlstm/vocab.json --unknown 97 \
        --db "$SMALL" --no-progress >/dev/null
fi

IDX=$DIR/indexed.db
if [[ ! -f $IDX ]]; then
    cp "$DB" "$IDX"
    echo "== gatescope index (on a copy)"
    "$BIN" index "$IDX" --no-progress | sed 's/^/   /'
fi

source scripts/bench_common.sh
once() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); awk -v a="$s" -v b="$e" 'BEGIN { printf "%.2f", b - a }'; }

# Warm the page cache of both files, as a user's second command would find it.
cat "$DB" "$IDX" > /dev/null

status=0
verdict() {  # name seconds target
    if awk -v t="$2" -v g="$3" 'BEGIN { exit !(t <= g) }'; then echo "meets <= $3 s"; else echo "MISSES <= $3 s"; status=1; fi
}
check() {  # label file-a file-b
    if cmp -s "$2" "$3"; then echo "   $1: identical ($(($(wc -l < "$2") - 1)) rows)"
    else echo "   $1: DIFFERENT"; diff "$2" "$3" | head -4; status=1; fi
}

echo "== timings: median of 5 on the indexed copy; 'as recorded' = the same command once on the database without the index"
printf '   %-58s %10s %14s  %s\n' "command" "indexed" "as recorded" "target"
row() {  # label target args... (DB is replaced by each database)
    local label=$1 target=$2; shift 2
    local a=() b=()
    for x in "$@"; do a+=("${x/DB/$IDX}"); b+=("${x/DB/$DB}"); done
    local t; t=$(median 5 "$BIN" "${a[@]}")
    local u; u=$(once "$BIN" "${b[@]}")
    printf '   %-58s %8s s %12s s  %s\n' "$label" "$t" "$u" "$(verdict "$label" "$t" "$target")"
}
for q in integrators dead-units memory-spans unit-correlation saturation; do
    row "query $q" 0.5 query DB "$q" --format csv
done
row "query top-tokens -p unit 5 -p layer lstm2" 0.5 query DB top-tokens -p unit 5 -p layer lstm2 --format csv
row "export --layer lstm2 --units 5 (one unit, all sequences)" 0.5 export DB --layer lstm2 --units 5 --format csv
row "stats --low 0.1234 --high 0.8766" 0.3 stats DB --low 0.1234 --high 0.8766 --format csv

echo "== answers against the full-scan SQL (query --scan) and the unindexed database"
for q in integrators dead-units memory-spans saturation; do
    s=$(date +%s.%N)
    "$BIN" query "$DB" "$q" --scan --format csv > "$DIR/scan.csv"
    e=$(date +%s.%N)
    "$BIN" query "$IDX" "$q" --format csv > "$DIR/fast.csv"
    check "query $q (scan SQL took $(awk -v a="$s" -v b="$e" 'BEGIN { printf "%.1f", b - a }') s)" "$DIR/fast.csv" "$DIR/scan.csv"
done
"$BIN" query "$DB" dead-units -p threshold 0.99 --scan --format csv > "$DIR/scan.csv"
"$BIN" query "$IDX" dead-units -p threshold 0.99 --format csv > "$DIR/fast.csv"
check "query dead-units -p threshold 0.99" "$DIR/fast.csv" "$DIR/scan.csv"
"$BIN" query "$DB" memory-spans -p threshold 0.5 -p min_length 3 --scan --format csv > "$DIR/scan.csv"
"$BIN" query "$IDX" memory-spans -p threshold 0.5 -p min_length 3 --format csv > "$DIR/fast.csv"
check "query memory-spans -p threshold 0.5 -p min_length 3" "$DIR/fast.csv" "$DIR/scan.csv"
small_rows=$("$BIN" runs "$SMALL" --format csv --no-header | awk -F, '{ r = $8 } END { print r }')
s=$(date +%s.%N)
"$BIN" query "$SMALL" unit-correlation -p limit=-1 --scan --format csv > "$DIR/scan.csv"
e=$(date +%s.%N)
"$BIN" query "$SMALL" unit-correlation -p limit=-1 --format csv > "$DIR/fast.csv"
check "query unit-correlation, all pairs, on a $small_rows-row run (scan SQL took $(awk -v a="$s" -v b="$e" 'BEGIN { printf "%.1f", b - a }') s)" "$DIR/fast.csv" "$DIR/scan.csv"
"$BIN" query "$IDX" top-tokens -p unit 5 -p layer lstm2 --format csv > "$DIR/fast.csv"
"$BIN" query "$DB" top-tokens -p unit 5 -p layer lstm2 --format csv > "$DIR/scan.csv"
check "query top-tokens (with and without the index)" "$DIR/fast.csv" "$DIR/scan.csv"
"$BIN" export "$IDX" --layer lstm2 --units 5 --format csv > "$DIR/fast.csv"
"$BIN" export "$DB" --layer lstm2 --units 5 --format csv > "$DIR/scan.csv"
check "export --units 5 (with and without the index)" "$DIR/fast.csv" "$DIR/scan.csv"
"$BIN" stats "$IDX" --low 0.1234 --high 0.8766 --format csv > "$DIR/fast.csv"
"$BIN" stats "$DB" --low 0.1234 --high 0.8766 --format csv > "$DIR/scan.csv"
check "stats off-grid (sorted values vs parallel scan)" "$DIR/fast.csv" "$DIR/scan.csv"
"$BIN" query "$DB" saturation -p low 0.1234 -p high 0.8766 --format csv | cut -d, -f1-8 > "$DIR/scan.csv"
cut -d, -f1-8 "$DIR/fast.csv" > "$DIR/fast8.csv"
check "stats off-grid, counts, against query saturation's SQL" "$DIR/fast8.csv" "$DIR/scan.csv"

echo "== sizes: $(du -m "$DB" | cut -f1) MB as recorded, $(du -m "$IDX" | cut -f1) MB indexed"
[[ $status == 0 ]] && echo "== all targets met, all answers identical" || echo "== SOME TARGET OR CHECK FAILED"
exit $status
