#!/usr/bin/env bash
# Benchmark of `gatescope stats` on a 10-million-row run (issue 4: target < 0.5 s), and a check
# that its answer equals the full-scan SQL (`gatescope query DB saturation`).
#
#   scripts/bench_stats.sh [ROWS]        (default ROWS = 10000000)
#
# Environment: SCRATCH_PATH (SwiftPM scratch dir, default .build), BENCH_DIR (where the database
# goes, default a temp dir; an existing $BENCH_DIR/bench.db with enough rows is reused), KEEP=1
# keeps the temp dir.
#
# How the run is made: the bundled example model (Embedding -> LSTM(128) -> LSTM(128), 256 rows
# per character) records copies of examples/charlstm/heldout.txt, one sequence per line, until
# ROWS rows are reached; `gatescope record` writes the per-unit summaries when the run completes.
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${1:-10000000}
SCRATCH=${SCRATCH_PATH:-.build}
MODEL=examples/charlstm/model.keras
VOCAB=examples/charlstm/vocab.json
HELDOUT=examples/charlstm/heldout.txt

echo "== building release ($SCRATCH)"
swift build -c release --scratch-path "$SCRATCH" --product gatescope >/dev/null
BIN="$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/gatescope"

if [[ -n "${BENCH_DIR:-}" ]]; then
    DIR=$BENCH_DIR
    mkdir -p "$DIR"
else
    DIR=$(mktemp -d "${TMPDIR:-/tmp}/gatescope-bench-stats.XXXXXX")
    if [[ "${KEEP:-0}" != 1 ]]; then trap 'rm -rf "$DIR"' EXIT; fi
fi
DB=$DIR/bench.db

rows_in_db() { "$BIN" runs "$DB" --format csv --no-header 2>/dev/null | awk -F, '$3 == "complete" { r = $8 } END { print r + 0 }'; }

if [[ -f "$DB" && $(rows_in_db) -ge $ROWS ]]; then
    echo "== reusing $DB ($(rows_in_db) rows)"
else
    rm -f "$DB" "$DB-wal" "$DB-shm"
    # 256 rows per character (2 layers x 128 units); lines are sequences, newlines are not recorded.
    awk -v need="$ROWS" 'BEGIN { chars = 0 }
        { line[NR] = $0 }
        END {
            while (chars * 256 < need) {
                for (k = 1; k <= NR && chars * 256 < need; k++) {
                    if (length(line[k]) == 0) continue
                    print line[k]; chars += length(line[k])
                }
            }
        }' "$HELDOUT" > "$DIR/input.txt"
    echo "== recording $(wc -l < "$DIR/input.txt") sequences, $(awk '{ c += length($0) } END { print c }' "$DIR/input.txt") characters"
    start=$(date +%s.%N)
    "$BIN" record "$MODEL" "$DIR/input.txt" --vocab "$VOCAB" --unknown 97 --db "$DB" --name bench --no-progress >/dev/null
    end=$(date +%s.%N)
    echo "   recorded $(rows_in_db) rows in $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s"
fi
echo "== database $(du -h "$DB" | cut -f1), $(rows_in_db) rows in the run"

source scripts/bench_common.sh

# Warm the page cache once, as a user's second command would find it.
"$BIN" stats "$DB" --format csv >/dev/null

echo "== gatescope stats (median of 5)"
t_default=$(median 5 "$BIN" stats "$DB" --format csv)
echo "   default thresholds (0.1 / 0.9, from summaries):      ${t_default} s"
t_grid=$(median 5 "$BIN" stats "$DB" --low 0.25 --high 0.75 --format csv)
echo "   on-grid thresholds (0.25 / 0.75, from summaries):    ${t_grid} s"
t_top=$(median 5 "$BIN" stats "$DB" --gates f --sort right --top 10 --format csv)
echo "   --gates f --sort right --top 10:                     ${t_top} s"
t_off=$(median 5 "$BIN" stats "$DB" --low 0.1234 --high 0.8766 --format csv)
echo "   off-grid thresholds (0.1234 / 0.8766, full scan):    ${t_off} s"

echo "== checking stats == full-scan SQL (query saturation), columns run_id..right"
status=0
for th in "0.1 0.9" "0.1234 0.8766"; do
    set -- $th
    s=$(date +%s.%N)
    "$BIN" query "$DB" saturation -p low "$1" -p high "$2" --format csv | cut -d, -f1-8 > "$DIR/sql.csv"
    e=$(date +%s.%N)
    "$BIN" stats "$DB" --low "$1" --high "$2" --format csv | cut -d, -f1-8 > "$DIR/stats.csv"
    if cmp -s "$DIR/sql.csv" "$DIR/stats.csv"; then
        echo "   low=$1 high=$2: identical ($(($(wc -l < "$DIR/stats.csv") - 1)) rows; the SQL took $(awk -v a="$s" -v b="$e" 'BEGIN { printf "%.1f", b - a }') s)"
    else
        echo "   low=$1 high=$2: DIFFERENT"; diff "$DIR/sql.csv" "$DIR/stats.csv" | head -5; status=1
    fi
done

target=0.5
if awk -v t="$t_default" -v g="$target" 'BEGIN { exit !(t < g) }'; then verdict="meets"; else verdict="MISSES"; status=1; fi
echo "== stats on the default thresholds: ${t_default} s ($verdict the < ${target} s target)"
exit $status
