#!/usr/bin/env bash
# Recorder benchmark (issues 3, 8, 9): rows/s of `gatescope record` for a 2-layer LSTM(128) or
# GRU(128) model, side by side in the same run with a tight C loop (scripts/bench_insert.c) that
# inserts the same number of rows into the same table (`gates`, or `gru_gates` for CELL=gru) with
# one prepared statement in one transaction; median of 3 runs each, alternating. Then peak RSS
# for N and 8N sequences. Prints figures; it is not a test. Needs: swift, cc, libsqlite3-dev,
# git, /usr/bin/time (apt: time), and Python with keras + jax for the model (made once per cell,
# cached in $BENCH_DIR).
#
#   scripts/bench_record.sh            # N = 128 sequences x 64 steps -> 2,097,152 rows
#   SEQUENCES=256 scripts/bench_record.sh
#   CELL=gru scripts/bench_record.sh   # GRU(128) x 2 model, C loop into gru_gates
#   OLD_REV=3062ccc scripts/bench_record.sh
#       # also the gatescope of that commit (git worktree in /tmp/gatescope-old-<rev>, built in
#       # release with its own scratch path there), timed in the same loop: C loop / new / old
#
# The record figure is the wall time of the whole command (model load, hashing, input check,
# engine, inserts, summaries, close); GATESCOPE_TIMING=1 makes record print where it went.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCRATCH=${SCRATCH:-.build-bench}
CELL=${CELL:-lstm}
case "$CELL" in lstm|gru) ;; *) echo "CELL must be lstm or gru, not $CELL" >&2; exit 2 ;; esac
BENCH_DIR=${BENCH_DIR:-/tmp/gatescope-bench-$CELL}
OLD_REV=${OLD_REV:-}
[ -z "$OLD_REV" ] || [ "$CELL" = lstm ] || { echo "OLD_REV compares LSTM recording only (CELL=lstm)" >&2; exit 2; }
SEQUENCES=${SEQUENCES:-128}
STEPS=${STEPS:-64}
FEATURES=16
UNITS=128
LAYERS=2
# Must match RunWriter.pageSize (Sources/GateScopeStore/RunWriter.swift).
PAGE_SIZE=$(sed -n 's/.*public static let pageSize = \([0-9]*\).*/\1/p' Sources/GateScopeStore/RunWriter.swift)
ROWS=$((SEQUENCES * STEPS * UNITS * LAYERS))
mkdir -p "$BENCH_DIR"

echo "== build (release)"
swift build -c release --product gatescope --scratch-path "$SCRATCH" 2>&1 | tail -1
BIN="$ROOT/$SCRATCH/release/gatescope"
cc -O2 -o "$BENCH_DIR/bench_insert" scripts/bench_insert.c -lsqlite3
# The C loop's database gets every migration, as the recorder's does (gru_gates is from 003).
cat schema/*.sql > "$BENCH_DIR/schema.sql"

if [ -n "$OLD_REV" ]; then
    OLD_SHA=$(git rev-parse --short "$OLD_REV^{commit}")
    OLD_TREE=/tmp/gatescope-old-$OLD_SHA
    [ -d "$OLD_TREE" ] || git worktree add --detach "$OLD_TREE" "$OLD_SHA" >/dev/null
    echo "== build old $OLD_SHA (release, in $OLD_TREE)"
    (cd "$OLD_TREE" && swift build -c release --product gatescope --scratch-path .build-bench 2>&1 | tail -1)
    OLD_BIN="$OLD_TREE/.build-bench/release/gatescope"
fi

if [ ! -f "$BENCH_DIR/model.keras" ] || [ ! -f "$BENCH_DIR/input.npy" ] || [ "$(cat "$BENCH_DIR/shape" 2>/dev/null)" != "$SEQUENCES $STEPS $CELL" ]; then
    echo "== model and inputs (Keras, jax backend)"
    TF_CPP_MIN_LOG_LEVEL=3 KERAS_BACKEND=jax python3 scripts/make_bench_model.py "$BENCH_DIR" --sequences "$SEQUENCES" --time "$STEPS" --features "$FEATURES" --cell "$CELL"
    echo "$SEQUENCES $STEPS $CELL" > "$BENCH_DIR/shape"
fi
cd "$BENCH_DIR"

median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

c_loop() {  # $1 = page size; prints rows/s
    rm -f c.db c.db-wal c.db-shm
    "$BENCH_DIR/bench_insert" c.db "$BENCH_DIR/schema.sql" "$SEQUENCES" "$STEPS" "$UNITS" "$LAYERS" "$1" "$CELL" | awk '{print $6}'
}

record() {  # $1 = binary (default the new one); prints rows/s (whole command)
    local bin=${1:-$BIN}
    rm -f r.db r.db-wal r.db-shm
    local start end rows
    start=$(date +%s.%N)
    "$bin" record model.keras input.npy --db r.db --no-progress > /dev/null
    end=$(date +%s.%N)
    rows=$(sqlite3 r.db "SELECT row_count FROM runs")
    [ "$rows" = "$ROWS" ] || { echo "record ($bin) wrote $rows rows, expected $ROWS" >&2; exit 1; }
    awk -v r="$rows" -v s="$start" -v e="$end" 'BEGIN {printf "%.0f\n", r / (e - s)}'
}

TABLE=gates; [ "$CELL" = gru ] && TABLE=gru_gates
echo "== speed ($CELL, table $TABLE): $ROWS rows ($SEQUENCES sequences x $STEPS steps x $LAYERS layers x $UNITS units), 3 runs each, alternating"
echo "   load before: $(cut -d' ' -f1-3 /proc/loadavg)"
: > c.txt; : > c4k.txt; : > r.txt; : > o.txt
for i in 1 2 3; do
    c=$(c_loop "$PAGE_SIZE"); echo "$c" >> c.txt
    r=$(record); echo "$r" >> r.txt
    old=""
    if [ -n "$OLD_REV" ]; then o=$(record "$OLD_BIN"); echo "$o" >> o.txt; old=", old record $o rows/s"; fi
    c4=$(c_loop 4096); echo "$c4" >> c4k.txt
    printf "   run %d: C loop %s rows/s (page %s), record %s rows/s%s, C loop %s rows/s (page 4096)\n" "$i" "$c" "$PAGE_SIZE" "$r" "$old" "$c4"
done
C=$(median < c.txt); R=$(median < r.txt); C4=$(median < c4k.txt)
echo "   load after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "median C loop (page %s):   %10.0f rows/s\n" "$PAGE_SIZE" "$C"
printf "median C loop (page 4096):  %10.0f rows/s\n" "$C4"
printf "median gatescope record:    %10.0f rows/s\n" "$R"
TARGET=">= 0.90x"; [ "$CELL" = gru ] && TARGET=">= 1.00x, as LSTM (issue 9)"
awk -v r="$R" -v c="$C" -v c4="$C4" -v cell="$CELL" -v t="$TARGET" 'BEGIN {printf "record / C loop (%s): %.2fx (same page size), %.2fx (C at SQLite default page size); target %s\n", cell, r / c, r / c4, t}'
if [ -n "$OLD_REV" ]; then
    O=$(median < o.txt)
    printf "median old record (%s): %10.0f rows/s\n" "$OLD_SHA" "$O"
    awk -v r="$R" -v o="$O" 'BEGIN {printf "new / old record: %.2fx (no slower: >= 1.00x)\n", r / o}'
fi

echo "== memory: peak RSS (/usr/bin/time -v)"
rss() {  # $1 = input file; prints KB
    rm -f m.db m.db-wal m.db-shm
    /usr/bin/time -v "$BIN" record model.keras "$1" --db m.db --no-progress 2>&1 >/dev/null | awk '/Maximum resident/ {print $6}'
}
M1=$(rss input.npy)
M8=$(rss input8.npy)
printf "N  = %5d sequences (%9d rows): %7.1f MB\n" "$SEQUENCES" "$ROWS" "$(echo "$M1 / 1024" | bc -l)"
printf "8N = %5d sequences (%9d rows): %7.1f MB\n" "$((8 * SEQUENCES))" "$((8 * ROWS))" "$(echo "$M8 / 1024" | bc -l)"
awk -v a="$M1" -v b="$M8" 'BEGIN {printf "8N / N: +%.1f%% (target < +20%%, and < 200 MB)\n", (b / a - 1) * 100}'
rm -f c.db* r.db* m.db*
