#!/usr/bin/env bash
# Makes Tests/Fixtures/v1: a database written by the release before schema version 2 (commit
# 3062ccc, schema version 1) and that release's own read-command outputs on it. The migration
# test (MigrationCLITests) migrates a copy with today's binary and expects the same outputs.
#
#   scripts/make_v1_fixture.sh [OLD_BIN]     # default: builds 3062ccc in a worktree under /tmp
set -euo pipefail
cd "$(dirname "$0")/.."
REV=3062ccc
OUT=Tests/Fixtures/v1
BIN=${1:-}
if [ -z "$BIN" ]; then
    WT=/tmp/gatescope-old-$REV
    [ -d "$WT" ] || git worktree add --detach "$WT" "$REV"
    (cd "$WT" && swift build -c release --product gatescope --scratch-path "$WT/.build-old" 2>&1 | tail -1)
    BIN=$WT/.build-old/release/gatescope
fi
"$BIN" --version
FIX=Tests/Fixtures/keras/char_embedding
rm -rf "$OUT" && mkdir -p "$OUT"
"$BIN" record "$FIX/model.keras" "$FIX/input.npy" --db "$OUT/v1.db" --name v1-fixture --no-progress > /dev/null
sqlite3 "$OUT/v1.db" "PRAGMA journal_mode = DELETE" > /dev/null   # one self-contained file
sqlite3 "$OUT/v1.db" "PRAGMA user_version" | grep -qx 1
"$BIN" stats "$OUT/v1.db" --format csv > "$OUT/stats.csv"
"$BIN" stats "$OUT/v1.db" --format csv --low 0.1234 --high 0.8766 > "$OUT/stats_offgrid.csv"
"$BIN" export "$OUT/v1.db" --format csv > "$OUT/export.csv"
"$BIN" export "$OUT/v1.db" --format csv --long --seq 1 > "$OUT/export_long.csv"
"$BIN" query "$OUT/v1.db" saturation --format csv > "$OUT/saturation.csv"
"$BIN" query "$OUT/v1.db" dead-units -p threshold 0.5 --format csv > "$OUT/dead_units.csv"
"$BIN" query "$OUT/v1.db" top-tokens -p unit 1 --format csv > "$OUT/top_tokens.csv"
echo "$REV" > "$OUT/RELEASE"
ls -l "$OUT"
