#!/usr/bin/env bash
# `make demo`: the whole job on the embedded default, offline.
#   1. ingest the embedded human corpus (python-docs) and look at it
#   2. curate it with the default pipeline
#   3. run the theory's toy loop and the tiny recursive-training collapse experiment, with its report
set -euo pipefail
OUT="${1:-demo-out}"
BIN="$(dirname "$0")/../.venv/bin"
PROV="$BIN/prov"
[ -x "$PROV" ] || PROV=prov
mkdir -p "$OUT"
step() { printf '\n\033[1m$ prov %s\033[0m\n' "$*"; "$PROV" "$@"; }

rm -rf "$OUT/human" "$OUT/curated"
step ingest builtin:python-docs --out "$OUT/human" --dataset python-docs --license PSF-2.0
step stats "$OUT/human"
step verify "$OUT/human"
step filter "$OUT/human" --out "$OUT/curated" --config default
step experiment toy gaussian --out "$OUT/toy" --repeats 1000 --generations 100 -M 50
# resumable: rerunning after an interruption continues from the last finished generation
step experiment run --out "$OUT/run"
echo
echo "report: $OUT/run/report.html (and report.md, figures/*.png, metrics.parquet)"
