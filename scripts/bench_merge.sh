#!/usr/bin/env bash
# Merge benchmark: rows/s of `gatescope merge` for 4 shards of the bundled example
# (examples/charlstm, heldout.txt repeated REPEAT times), side by side in the same run with a
# plain SQL baseline in the sqlite3 CLI that does the same row copy (ATTACH + INSERT ... SELECT of
# gates, sequences and tokens into an emptied copy of shard 0, page size as the recorder's, WAL,
# synchronous=NORMAL, one transaction); median of 3 runs each, alternating. Then a crash check:
# a merge into an OUT that already holds a run is killed with SIGKILL, OUT must be unchanged, and
# a rerun must work. Prints figures (and PASS/FAIL lines for the crash check); it is not a test.
# Needs: swift, sqlite3 (CLI).
#
#   scripts/bench_merge.sh             # REPEAT = 8: 1280 lines of heldout.txt
#   REPEAT=16 scripts/bench_merge.sh
#   KILL_AFTER=0.5 scripts/bench_merge.sh   # when the crash check kills the merge (seconds)
#
# The merge figure is the wall time of the whole command (open and check the shards, copy rows,
# add summaries, checkpoint, rename); the baseline's includes its final checkpoint as well.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCRATCH=${SCRATCH:-.build-bench}
BENCH_DIR=${BENCH_DIR:-/tmp/gatescope-bench-merge}
REPEAT=${REPEAT:-8}
SHARDS=4
KILL_AFTER=${KILL_AFTER:-0.3}
EXAMPLE=$ROOT/examples/charlstm
# Must match Recorder.pageSize (Recorder.swift, wherever it lives under Sources/).
PAGE_SIZE=$(grep -rh 'public static let pageSize = ' Sources/ | sed -n 's/.*public static let pageSize = \([0-9]*\).*/\1/p' | head -1)
[ -n "$PAGE_SIZE" ] || { echo "cannot find Recorder.pageSize under Sources/" >&2; exit 1; }
mkdir -p "$BENCH_DIR"

echo "== build (release)"
swift build -c release --product gatescope --scratch-path "$SCRATCH" 2>&1 | tail -1
BIN="$ROOT/$SCRATCH/release/gatescope"
cd "$BENCH_DIR"
rm -f ./*.db ./*.db-wal ./*.db-shm ./*.db.merge-*

echo "== input and shards"
: > input.txt
for _ in $(seq "$REPEAT"); do cat "$EXAMPLE/heldout.txt" >> input.txt; done
LINES=$(wc -l < input.txt)
echo "   input: heldout.txt x $REPEAT = $LINES lines, $(wc -c < input.txt) bytes"
record_shard() {  # $1 = K
    "$BIN" record "$EXAMPLE/model.keras" input.txt --vocab "$EXAMPLE/vocab.json" --db "shard-$1.db" --shard "$1/$SHARDS" --no-progress > /dev/null
}
start=$(date +%s.%N)
for ((k = 0; k < SHARDS; k += 2)); do  # two at a time (2 cores)
    record_shard "$k" & p1=$!
    record_shard "$((k + 1))" & p2=$!
    wait "$p1"; wait "$p2"
done
end=$(date +%s.%N)
SHARD_FILES=()
for ((k = 0; k < SHARDS; k++)); do SHARD_FILES+=("shard-$k.db"); done
for f in "${SHARD_FILES[@]}"; do
    printf "   %s: %s rows, %s\n" "$f" "$(sqlite3 "$f" "SELECT row_count FROM runs")" "$(du -h "$f" | cut -f1)"
done
awk -v s="$start" -v e="$end" 'BEGIN {printf "   recorded %d shards in %.1f s (2 at a time)\n", 4, e - s}'

# Baseline database: shard 0 with its rows deleted (runs and layers kept, so the copied rows
# belong to its run 1, as in the shards), made once; each baseline run starts from a copy.
cp shard-0.db base-template.db
sqlite3 base-template.db "DELETE FROM gates; DELETE FROM sequences; DELETE FROM tokens; DELETE FROM unit_summaries; VACUUM;"
# ATTACH is not allowed inside a transaction: attach all shards, then one transaction.
{
    echo "PRAGMA page_size=$PAGE_SIZE; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    for ((k = 0; k < SHARDS; k++)); do echo "ATTACH 'shard-$k.db' AS s$k;"; done
    echo "BEGIN;"
    for ((k = 0; k < SHARDS; k++)); do
        echo "INSERT INTO gates SELECT * FROM s$k.gates; INSERT INTO sequences SELECT * FROM s$k.sequences; INSERT INTO tokens SELECT * FROM s$k.tokens;"
    done
    echo "COMMIT;"
    for ((k = 0; k < SHARDS; k++)); do echo "DETACH s$k;"; done
    echo "PRAGMA wal_checkpoint(TRUNCATE);"
} > baseline.sql

median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

merge() {  # prints rows/s (whole command)
    rm -f out.db out.db-wal out.db-shm
    local start end rows
    start=$(date +%s.%N)
    "$BIN" merge out.db "${SHARD_FILES[@]}" > /dev/null 2>&1
    end=$(date +%s.%N)
    rows=$(sqlite3 out.db "SELECT row_count FROM runs")
    awk -v r="$rows" -v s="$start" -v e="$end" 'BEGIN {printf "%.0f\n", r / (e - s)}'
}

baseline() {  # prints rows/s
    rm -f base.db base.db-wal base.db-shm
    local start end rows
    start=$(date +%s.%N)
    cp base-template.db base.db
    sqlite3 base.db < baseline.sql > /dev/null
    end=$(date +%s.%N)
    rows=$(sqlite3 base.db "SELECT count(*) FROM gates")
    awk -v r="$rows" -v s="$start" -v e="$end" 'BEGIN {printf "%.0f\n", r / (e - s)}'
}

merge > /dev/null  # once (warm-up), for the row count
ROWS=$(sqlite3 out.db "SELECT row_count FROM runs")
SUM=0; for f in "${SHARD_FILES[@]}"; do SUM=$((SUM + $(sqlite3 "$f" "SELECT row_count FROM runs"))); done
[ "$ROWS" = "$SUM" ] || { echo "merge wrote $ROWS rows, the shards hold $SUM" >&2; exit 1; }
echo "== speed: $ROWS rows ($LINES sequences, $SHARDS shards, page $PAGE_SIZE), 3 runs each, alternating"
echo "   load before: $(cut -d' ' -f1-3 /proc/loadavg)"
: > m.txt; : > b.txt
for i in 1 2 3; do
    m=$(merge); echo "$m" >> m.txt
    b=$(baseline); echo "$b" >> b.txt
    printf "   run %d: merge %s rows/s, SQL baseline %s rows/s\n" "$i" "$m" "$b"
done
B_ROWS=$(sqlite3 base.db "SELECT count(*) FROM gates")
[ "$B_ROWS" = "$ROWS" ] || { echo "baseline copied $B_ROWS rows, expected $ROWS" >&2; exit 1; }
M=$(median < m.txt); B=$(median < b.txt)
echo "   load after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "median gatescope merge:   %10.0f rows/s\n" "$M"
printf "median SQL baseline:      %10.0f rows/s\n" "$B"
awk -v m="$M" -v b="$B" 'BEGIN {printf "merge / SQL baseline: %.2fx\n", m / b}'
printf "   sizes: out.db %s, base.db %s\n" "$(du -h out.db | cut -f1)" "$(du -h base.db | cut -f1)"

echo "== crash check: kill -9 a merge into an OUT that holds one run (after $KILL_AFTER s)"
FAILS=0
check() {  # $1 = what, $2 = got, $3 = expected
    if [ "$2" = "$3" ]; then echo "PASS $1: $2"; else echo "FAIL $1: got '$2', expected '$3'"; FAILS=$((FAILS + 1)); fi
}
rm -f out2.db out2.db-wal out2.db-shm out2.db.merge-*
"$BIN" merge out2.db "${SHARD_FILES[@]}" > /dev/null 2>&1
BEFORE=$(sqlite3 out2.db "SELECT count(*), sum(row_count) FROM runs")
check "first merge into out2.db (runs, rows)" "$BEFORE" "1|$ROWS"
"$BIN" merge out2.db "${SHARD_FILES[@]}" > /dev/null 2>&1 &
PID=$!
sleep "$KILL_AFTER"
if kill -0 "$PID" 2> /dev/null; then
    kill -9 "$PID"
    wait "$PID" 2> /dev/null || true
    echo "   killed merge (pid $PID) after $KILL_AFTER s, while it was running"
    LEFT=$(ls out2.db.merge-"$PID"* 2> /dev/null || true)
    if [ -n "$LEFT" ]; then
        echo "   left behind: $(for f in $LEFT; do printf '%s (%s) ' "$f" "$(du -h "$f" | cut -f1)"; done)"
    else
        echo "   left behind: nothing"
    fi
else
    wait "$PID" || true
    echo "FAIL the merge finished before $KILL_AFTER s: nothing was killed (try a smaller KILL_AFTER)"
    FAILS=$((FAILS + 1))
fi
check "out2.db after kill (runs, rows)" "$(sqlite3 out2.db "SELECT count(*), sum(row_count) FROM runs" 2>&1)" "$BEFORE"
check "out2.db after kill, integrity_check" "$(sqlite3 out2.db "PRAGMA integrity_check" 2>&1)" "ok"
"$BIN" merge out2.db "${SHARD_FILES[@]}" > /dev/null 2>&1 || echo "   rerun exited $?"
check "out2.db after rerun (runs, rows)" "$(sqlite3 out2.db "SELECT count(*), sum(row_count) FROM runs" 2>&1)" "2|$((2 * ROWS))"
check "out2.db after rerun, integrity_check" "$(sqlite3 out2.db "PRAGMA integrity_check" 2>&1)" "ok"
LEFT=$(ls out2.db.merge-* 2> /dev/null || true)
[ -z "$LEFT" ] || echo "   still left after the rerun: $LEFT"
echo "crash check: $([ "$FAILS" = 0 ] && echo PASS || echo "FAIL ($FAILS)")"
rm -f ./*.db ./*.db-wal ./*.db-shm ./*.db.merge-*
