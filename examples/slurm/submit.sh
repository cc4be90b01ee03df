#!/usr/bin/env bash
# Records MODEL over INPUT as an N-task Slurm job array and merges the shards into OUT.
#   examples/slurm/submit.sh N MODEL INPUT OUT [record options, e.g. --vocab vocab.json]
# Prints the two job ids; with WAIT=1 it waits for the merge (sbatch --wait) and exits with its status.
set -euo pipefail
n=$1 model=$2 input=$3 out=$4
shift 4
here=$(cd "$(dirname "$0")" && pwd)
outdir=${OUTDIR:-$(dirname "$out")/$(basename "$out" .db)-shards}
array=$(sbatch --parsable --array="0-$((n - 1))" --export=ALL "$here/record.sbatch" "$model" "$input" "$outdir" "$@")
echo "record array job $array ($n tasks) -> $outdir"
wait=()
[ "${WAIT:-0}" = 1 ] && wait=(--wait)
merge=$(sbatch --parsable "${wait[@]}" --dependency="afterok:$array" --kill-on-invalid-dep=yes --export=ALL "$here/merge.sbatch" "$outdir" "$out")
echo "merge job $merge -> $out"
