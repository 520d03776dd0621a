#!/usr/bin/env bash
# The paper preset on a GPU machine, in one command:
#   bash scripts/paper.sh OUT [WORKERS_PER_DEVICE] [extra `prov experiment run` flags...]
# OPT-125m on wikitext-2-raw-v1 (train / validation / test), 64-token blocks, 9 generations, 5 seeds,
# replace, keep-human=0.1, accumulate, accumulate-fixed; beam search (5 beams, repetition penalty 3.0);
# 5 epochs without original data, 10 with, best epoch on the validation split.
# Worker k uses GPU k mod (number of GPUs): --workers = GPUs x WORKERS_PER_DEVICE (an OPT-125m unit
# needs ~3 GB, so 2-4 workers share one 24+ GB card well).
# Offline machines: download first where there is network, then pass the copies:
#   python -c "import datasets; datasets.load_dataset('wikitext','wikitext-2-raw-v1').save_to_disk('wikitext-2')"
#   python -c "from transformers import AutoModelForCausalLM as M, AutoTokenizer as T; \
#              M.from_pretrained('facebook/opt-125m').save_pretrained('opt-125m'); T.from_pretrained('facebook/opt-125m').save_pretrained('opt-125m')"
#   bash scripts/paper.sh OUT 2 --model opt-125m --corpus wikitext-2
# Resumable: rerun the same command after an interruption.
set -euo pipefail
OUT="${1:?usage: scripts/paper.sh OUT [WORKERS_PER_DEVICE] [flags...]}"
PER_DEVICE="${2:-2}"
shift $(( $# >= 2 ? 2 : 1 ))
BIN="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin"
PROV="$BIN/prov"
[ -x "$PROV" ] || PROV=prov
GPUS="$(python3 -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)"
if [ "$GPUS" -lt 1 ]; then
  echo "scripts/paper.sh: no CUDA device visible (torch.cuda.device_count() = 0); this preset needs a GPU" >&2
  exit 2
fi
WORKERS=$(( GPUS * PER_DEVICE ))
echo "paper preset: $GPUS GPU(s) x $PER_DEVICE workers = $WORKERS workers -> $OUT"
time "$PROV" experiment run --preset paper --out "$OUT" --workers "$WORKERS" "$@"
"$PROV" experiment compare "$OUT"
