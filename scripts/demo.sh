#!/usr/bin/env bash
# `make demo`: ingest the embedded human corpus (no download) and show what is in it.
set -euo pipefail
OUT="${1:-demo-out}"
BIN="$(dirname "$0")/../.venv/bin"
PROV="$BIN/prov"
[ -x "$PROV" ] || PROV=prov
mkdir -p "$OUT"
rm -rf "$OUT/human"
"$PROV" ingest builtin:python-docs --out "$OUT/human" --dataset python-docs --license PSF-2.0
"$PROV" stats "$OUT/human"
"$PROV" verify "$OUT/human"
