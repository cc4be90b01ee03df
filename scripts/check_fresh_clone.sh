#!/usr/bin/env bash
# The newcomer check: clone this repository into a temp dir and run the README's two commands
# there (the demo twice, since a second run must work too), then check what they produced.
#   scripts/check_fresh_clone.sh [--skip-tests]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
git clone -q "$repo" "$dir/gatescope"
cd "$dir/gatescope"
echo "== scripts/demo.sh (first run) in $dir/gatescope"
scripts/demo.sh
echo "== scripts/demo.sh (second run)"
scripts/demo.sh >/dev/null
for f in demo.db demo/saturation.svg demo/heatmap.svg demo/unit.svg; do
    [ -s "$f" ] || { echo "check: $f missing or empty" >&2; exit 1; }
done
rows=$(.build/release/gatescope query demo.db "$repo/scripts/check_rows.sql" --format csv --no-header)
[ "$rows" -gt 0 ] || { echo "check: demo.db has no gate rows" >&2; exit 1; }
echo "== demo.db: $rows gate rows; SVGs written"
if [ "${1:-}" != "--skip-tests" ]; then
    echo "== scripts/test.sh"
    scripts/test.sh
fi
echo "fresh-clone check passed"
