#!/usr/bin/env bash
# The main job on the bundled example: builds release, records the char-level LSTM's gates over
# held-out Python source into demo.db, prints the most saturated forget gates and writes plots
# into demo/. Safe to run again: it starts a fresh demo.db each time.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product gatescope
bin=.build/release/gatescope
ex=examples/charlstm
mkdir -p demo
rm -f demo.db demo.db-wal demo.db-shm
"$bin" record "$ex/model.keras" "$ex/heldout.txt" --vocab "$ex/vocab.json" --db demo.db --name charlstm-heldout --no-progress
echo
echo "Most right-saturated forget gates (fraction of steps with f > 0.9):"
"$bin" stats demo.db --gates f --sort right --top 10 --format table
"$bin" plot saturation demo.db -o demo/saturation.svg
"$bin" plot heatmap demo.db --seq 10 --layer lstm2 --gate h --units 0-31 -o demo/heatmap.svg
"$bin" plot unit demo.db --seq 10 --layer lstm2 --unit 127 -o demo/unit.svg
echo
echo "Wrote demo.db and demo/saturation.svg, demo/heatmap.svg, demo/unit.svg"
