"""Watermark detection: TPR / FPR by text length, under token edits and regeneration, and its perplexity cost.

Run:  python benchmarks/watermark.py [--texts 100] [--human 400] [--epochs 3] [--decoding sample|beam5] [--json]

Setup (all local, seeded):

1. a byte-level BPE tokenizer (1024) and a tiny OPT (1 layer x 64) are trained on
   400 builtin python-docs documents (``provkit.lm``);
2. ``--texts`` prompts (8 tokens of held-out documents) are continued by 128
   tokens with and without the watermark (transformers' ``WatermarkingConfig``,
   lefthash, greenlist ratio 0.25, bias 2.0, key from a temp file), same prompts
   and seeds; ``--decoding sample`` samples at temperature 1, ``beam5`` is the
   paper's 5-beam search with repetition penalty 3.0;
3. human text: non-overlapping 128-token windows of other held-out documents
   (up to ``--human``).  Every text is decoded to a string and re-tokenised before
   scoring, as a dataset would hold it.

Measured, at 16 / 32 / 64 / 128 tokens (prefixes of the same texts):
``FPR@z4`` and ``TPR@z4`` (z >= 4, the default threshold); ``z_1%``, the
smallest threshold (>= 4 is not assumed) whose measured FPR on the human texts is
<= 1 %, and ``TPR@z_1%`` -- twice: z over every n-gram window (transformers'
default) and over distinct n-grams (``ignore_repeated_ngrams=True``), on the same
texts; plus the human z's standard deviation and maximum (N(0, 1) under the null).
At 64 tokens also (provkit's default scoring, distinct n-grams): TPR after replacing 10 % and 30 % of
the tokens by random ones, and of a regeneration round trip (the watermarked text
as the prompt of the un-watermarked model, its 64-token continuation scored);
the perplexity cost (generation-0 perplexity of watermarked / plain text).

Peer: transformers' ``WatermarkDetector`` is used directly (``WatermarkScorer``
wraps it: tokenising, too-short handling, key derivation); the last lines
print the wrapper's time over the bare detector on the same token ids and the
largest z difference (0: same numbers).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from tempfile import TemporaryDirectory
from pathlib import Path

import numpy as np
import torch

from provkit.lm import (
    DecodingConfig,
    TinyOPTConfig,
    TrainConfig,
    WatermarkConfig,
    build_tiny_opt,
    generate_continuations,
    load_scorer,
    make_blocks,
    pad_right,
    save_model,
    sequence_perplexities,
    train_bpe_tokenizer,
    train_lm,
)
from provkit.lm.watermark import IGNORE_REPEATED_NGRAMS
from provkit.provenance import iter_builtin

LENGTHS = (16, 32, 64, 128)
PROMPT, NEW = 8, 128
MODES = ("counted", "distinct")  # every n-gram window scored / each distinct n-gram once (ignore_repeated_ngrams)
DEFAULT_MODE = "distinct" if IGNORE_REPEATED_NGRAMS else "counted"  # provkit's default: edits, regeneration, peer
DECODINGS = {
    "sample": dict(num_beams=1, do_sample=True, repetition_penalty=1.0),
    "beam5": dict(num_beams=5, do_sample=False, repetition_penalty=3.0),
}


def rates(z: np.ndarray, t: float) -> float:
    return float(np.mean(np.nan_to_num(z, nan=-np.inf) >= t))


def threshold_at_fpr(z_human: np.ndarray, fpr: float = 0.01) -> float:
    """Smallest t with mean(z_human >= t) <= fpr (just above the k-th largest human z)."""
    z = np.sort(np.nan_to_num(z_human, nan=-np.inf))[::-1]
    k = int(np.floor(fpr * len(z)))  # at most k human texts may reach t
    return float(np.nextafter(z[k], np.inf)) if k < len(z) else float(z[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=100)
    ap.add_argument("--human", type=int, default=400)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--decoding", choices=sorted(DECODINGS), default="sample")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    docs = [d.text for d in itertools.islice(iter_builtin("python-docs"), 2000)]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(docs))
    train = [docs[i] for i in order[:400]]
    held = [docs[i] for i in order[400:]]
    tok = train_bpe_tokenizer(train, vocab_size=1024)
    model = build_tiny_opt(tok, TinyOPTConfig(layers=1, hidden=64, heads=2, ffn=128, max_positions=320), seed=0)
    ids, mask = pad_right([b.token_ids for b in make_blocks(train, tok, block_size=64)], tok.pad_token_id)
    train_lm(model, ids, mask, None, TrainConfig(epochs=args.epochs, batch_size=16, lr=3e-3, seed=0))
    enc = [tok(t, add_special_tokens=False)["input_ids"] for t in held]
    prompt_docs = [e for e in enc if len(e) >= PROMPT][: args.texts]
    prompts = [e[:PROMPT] for e in prompt_docs]
    human_ids = [e[s : s + NEW] for e in enc[len(prompt_docs) * 2 :] for s in range(0, len(e) - NEW + 1, NEW)][: args.human]
    with TemporaryDirectory() as tmp:
        key = Path(tmp) / "wm.key"
        key.write_text(bytes(rng.integers(33, 126, 40, dtype=np.uint8)).decode())
        model_dir = save_model(model, tok, Path(tmp) / "model")
        wm = WatermarkConfig(key_file=str(key))
        dec = DECODINGS[args.decoding]
        t0 = time.perf_counter()
        plain = generate_continuations(model, prompts, DecodingConfig(max_new_tokens=NEW, **dec), pad_id=tok.pad_token_id, eos_id=None)
        marked = generate_continuations(model, prompts, DecodingConfig(max_new_tokens=NEW, watermark=wm, **dec),
                                        pad_id=tok.pad_token_id, eos_id=None)
        gen_seconds = time.perf_counter() - t0
        scorers = {mode: load_scorer(model_dir, wm, min_tokens=8, ignore_repeated_ngrams=mode == "distinct")
                   for mode in MODES}
        scorer = scorers[DEFAULT_MODE]

        def z_of(seqs: list[list[int]], mode: str = DEFAULT_MODE) -> np.ndarray:  # decode -> text -> re-tokenise -> score
            return scorers[mode].score_texts([tok.decode(s) for s in seqs]).z

        by_mode = {}
        for mode in MODES:
            by_mode[mode] = rows = []
            for n in LENGTHS:
                zh = z_of([h[:n] for h in human_ids], mode)
                zm, zp = z_of([m[:n] for m in marked], mode), z_of([p[:n] for p in plain], mode)
                t1 = threshold_at_fpr(zh)
                rows.append({"tokens": n, "fpr_z4": rates(zh, 4.0), "tpr_z4": rates(zm, 4.0), "plain_z4": rates(zp, 4.0),
                             "z_1pct": round(t1, 3), "tpr_z_1pct": rates(zm, t1), "fpr_z_1pct": rates(zh, t1),
                             "median_z_marked": float(np.nanmedian(zm)), "median_z_human": float(np.nanmedian(zh)),
                             "human_z_max": float(np.nanmax(zh)), "human_z_sd": float(np.nanstd(zh))})
        rows = by_mode[DEFAULT_MODE]
        m64 = [m[:64] for m in marked]
        t64 = next(r["z_1pct"] for r in rows if r["tokens"] == 64)
        edits = {}
        for frac in (0.1, 0.3):
            edit_rng = np.random.default_rng(int(frac * 100))
            edited = []
            for m in m64:
                m = list(m)
                for i in edit_rng.choice(len(m), int(round(frac * len(m))), replace=False):
                    m[i] = int(edit_rng.integers(3, len(tok)))
                edited.append(m)
            z = z_of(edited)
            edits[f"{int(frac * 100)}%"] = {"tpr_z4": rates(z, 4.0), "tpr_z_1pct": rates(z, t64), "median_z": float(np.nanmedian(z))}
        regen = generate_continuations(model, m64, DecodingConfig(max_new_tokens=64, **dec), pad_id=tok.pad_token_id, eos_id=None)
        z_regen = z_of(regen)
        edits["regeneration"] = {"tpr_z4": rates(z_regen, 4.0), "tpr_z_1pct": rates(z_regen, t64),
                                 "median_z": float(np.nanmedian(z_regen))}
        ids_m, mask_m = pad_right(m64, tok.pad_token_id)
        ids_p, mask_p = pad_right([p[:64] for p in plain], tok.pad_token_id)
        ppl_m = float(np.median(sequence_perplexities(model, ids_m, mask_m)))
        ppl_p = float(np.median(sequence_perplexities(model, ids_p, mask_p)))
        # peer: transformers' WatermarkDetector called directly on the same ids
        seqs = [tok(tok.decode(m), add_special_tokens=False)["input_ids"] for m in m64]
        t0 = time.perf_counter()
        ours = scorer.score_ids(seqs).z
        t_ours = time.perf_counter() - t0
        bare = scorer._detector
        t0 = time.perf_counter()
        theirs = np.array([bare(torch.tensor([s]), return_dict=True).z_score[0] for s in seqs])
        t_bare = time.perf_counter() - t0
    result = {"decoding": args.decoding, "texts": len(prompts), "human": len(human_ids), "by_length": by_mode["counted"],
              "by_length_distinct_ngrams": by_mode["distinct"],
              "at_64_tokens": edits, "ppl_gen0_watermarked": ppl_m, "ppl_gen0_plain": ppl_p,
              "ppl_ratio": ppl_m / ppl_p, "wrapper_over_transformers_time": t_ours / t_bare,
              "max_abs_z_difference": float(np.nanmax(np.abs(ours - theirs))), "generate_seconds": round(gen_seconds, 1),
              "seconds": round(time.perf_counter() - t_start, 1)}
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return
    print(f"decoding {args.decoding}: {len(prompts)} watermarked + {len(prompts)} plain continuations, "
          f"{len(human_ids)} human windows; tiny OPT (1x64), vocab {len(tok)}")
    for mode in MODES:
        print(f"z over {'every n-gram window (transformers default)' if mode == 'counted' else 'distinct n-grams (ignore_repeated_ngrams=True)'}:")
        print(f"{'tokens':>6} {'FPR@z4':>7} {'TPR@z4':>7} {'plain@z4':>8} {'z_1%':>6} {'TPR@z_1%':>8} {'FPR@z_1%':>8} "
              f"{'med z wm':>8} {'med z hum':>9} {'sd z hum':>8} {'max z hum':>9}")
        for r in by_mode[mode]:
            print(f"{r['tokens']:>6} {r['fpr_z4']:>7.3f} {r['tpr_z4']:>7.3f} {r['plain_z4']:>8.3f} {r['z_1pct']:>6.2f} "
                  f"{r['tpr_z_1pct']:>8.3f} {r['fpr_z_1pct']:>8.3f} {r['median_z_marked']:>8.2f} "
                  f"{r['median_z_human']:>9.2f} {r['human_z_sd']:>8.2f} {r['human_z_max']:>9.2f}")
    print(f"below: z over {DEFAULT_MODE} n-grams (provkit's default)")
    for name, e in edits.items():
        what = f"{name} tokens replaced" if name.endswith("%") else "regeneration round trip (continuation of the wm text)"
        print(f"64 tokens, {what}: TPR@z4 {e['tpr_z4']:.3f}  TPR@z_1% {e['tpr_z_1pct']:.3f}  median z {e['median_z']:.2f}")
    print(f"perplexity cost: gen-0 median ppl watermarked {ppl_m:.1f} / plain {ppl_p:.1f} = {ppl_m / ppl_p:.3f}")
    print(f"ratio provkit WatermarkScorer / transformers WatermarkDetector (same ids): time "
          f"{result['wrapper_over_transformers_time']:.3f}, max |dz| {result['max_abs_z_difference']:.2g}")
    print(f"{result['seconds']} s (generation {result['generate_seconds']} s)")


if __name__ == "__main__":
    main()
