#!/usr/bin/env bash
# Runs the code blocks of README.md's "Reading the database elsewhere" section against a demo
# database, so that what the README shows is what works.
#
#   scripts/readme_snippets.sh DB [LANG ...]     LANG: python (default) and/or r
#
# Each ```python block runs with the Python in $PYTHON (default python3) and each ```r block
# with Rscript, in a temporary directory where demo.db is a copy of DB. A block whose imports
# are missing fails: install them first (pandas polars matplotlib; r-cran-rsqlite). A block after
# a line starting `<!-- not run` is skipped; the comment says why.
set -euo pipefail
cd "$(dirname "$0")/.."
DB=${1:?usage: scripts/readme_snippets.sh DB [python] [r]}
shift
LANGS=("${@:-python}")
PY=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gatescope-snippets.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cp "$DB" "$WORK/demo.db"
# Blocks of the section, one file each: NN.python / NN.r
awk -v dir="$WORK" '
    /^## / { inside = ($0 == "## Reading the database elsewhere") }
    inside && /^<!-- not run/ { skip = 1; next }
    inside && /^```(python|r)$/ {
        n++
        if (skip) { skip = 0; print "== block " n ": not run (the README says why)"; inblock = 1; next }
        lang = substr($0, 4); file = sprintf("%s/%02d.%s", dir, n, lang); next
    }
    inblock && /^```$/ { inblock = 0; next }
    inblock { next }
    inside && /^```$/ && file != "" { close(file); file = ""; next }
    file != "" { print > file }
' README.md
status=0
for f in "$WORK"/[0-9][0-9].*; do
    lang=${f##*.}
    case " ${LANGS[*]} " in *" $lang "*) ;; *) echo "== $(basename "$f"): skipped ($lang not asked for)"; continue ;; esac
    echo "== $(basename "$f")"
    if [[ $lang == python ]]; then run=("$PY" "$f"); else run=(Rscript "$f"); fi
    if ! (cd "$WORK" && "${run[@]}"); then echo "FAILED: $(basename "$f")"; status=1; fi
done
if [[ -f $WORK/heatmap.png ]]; then echo "== heatmap.png: $(wc -c < "$WORK/heatmap.png") bytes"; [[ -n ${KEEP_PLOT:-} ]] && cp "$WORK/heatmap.png" "$KEEP_PLOT"; fi
exit $status
