#!/usr/bin/env bash
# What page checksums cost (issue 14): `record` and `export` of the bundled example into a
# database with page checksums (what gatescope creates) and into one without (created first by
# the sqlite3 shell with the same page size, so gatescope keeps its 0 reserve bytes), side by
# side with the same release binary, alternating; median of N runs each. Prints figures; it is
# not a test. Needs: swift, sqlite3 (apt: sqlite3).
#   scripts/bench_checksums.sh        # N = 5
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench_common.sh
N=${N:-5}
swift build -c release --product gatescope 2>&1 | grep -E "error|Build" || true
bin=$PWD/.build/release/gatescope
ex=examples/charlstm
dir=${BENCH_DIR:-/tmp/gatescope-bench-checksums}
mkdir -p "$dir"

record() {  # record DB with|without
    rm -f "$1" "$1-wal" "$1-shm"
    if [ "$2" = without ]; then sqlite3 "$1" "PRAGMA page_size = 16384; PRAGMA journal_mode = WAL;" >/dev/null; fi
    "$bin" record "$ex/model.keras" "$ex/heldout.txt" --vocab "$ex/vocab.json" --db "$1" --no-progress >/dev/null
}
declare -A rec exp
for k in $(seq "$N"); do
    for mode in with without; do
        s=$(date +%s.%N); record "$dir/$mode.db" "$mode"; e=$(date +%s.%N)
        rec[$mode]+="$(awk -v a="$s" -v b="$e" 'BEGIN { printf "%.4f", b - a }') "
    done
done
for mode in with without; do exp[$mode]=$(median "$N" "$bin" export "$dir/$mode.db" --format csv); done
reserve() { python3 -c "import sys; print(open(sys.argv[1],'rb').read(21)[20])" "$1"; }
med() { printf '%s\n' $1 | sort -g | awk '{ t[NR] = $1 } END { printf "%.3f", (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2 }'; }
rows=$("$bin" runs "$dir/with.db" --format csv --no-header | cut -d, -f8)
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; $rows gate rows; median of $N"
printf '%-22s %14s %14s %7s\n' "" "checksums" "no checksums" ratio
printf '%-22s %14s %14s %7s\n' "reserve bytes" "$(reserve "$dir/with.db")" "$(reserve "$dir/without.db")" ""
r1=$(med "${rec[with]}"); r0=$(med "${rec[without]}")
printf '%-22s %13ss %13ss %7s\n' "record (whole command)" "$r1" "$r0" "$(awk -v a="$r1" -v b="$r0" 'BEGIN { printf "%.3f", a / b }')"
printf '%-22s %13ss %13ss %7s\n' "export (all rows, csv)" "${exp[with]}" "${exp[without]}" "$(awk -v a="${exp[with]}" -v b="${exp[without]}" 'BEGIN { printf "%.3f", a / b }')"
