"""Detector accuracy: human text vs text from a locally trained tiny OPT, four decoding settings.

Run:  python benchmarks/detector.py [--human 300] [--per-setting 150] [--epochs 2] [--kinds ngram,lm,embedding] [--json]

Setup (all local, seeded):

1. the builtin python-docs corpus is shuffled; ``--human`` documents of at least
   ``PROMPT + NEW`` tokens are held out as the human side; a byte-level BPE
   tokenizer and a tiny OPT (``provkit.train``, 2 layers x 128) are trained on
   all the other documents;
2. ``--per-setting`` prompts (the first ``PROMPT`` tokens of training documents,
   as the collapse paper prompts with training blocks) are continued by ``NEW``
   tokens under each decoding setting: greedy + repetition penalty 1.3,
   nucleus top-p 0.9, pure sampling at temperature 1.0, and 5-beam search +
   repetition penalty 3.0 (the paper's setting);  model text = prompt +
   continuation, human text = the first ``PROMPT + NEW`` tokens of a held-out
   document (decoded with the same tokenizer, so both look alike);
3. human and model texts are split 50/50 (seeded) into detector-train and
   test; each detector kind is trained on the train half with
   ``train_detector`` (its own held-out split for calibration) and evaluated on
   the test half, overall and per decoding setting (all test human texts vs
   that setting's test model texts).

Peers measured in the same run: the zero-shot Fast-DetectGPT criterion and the
zero-shot mean log-likelihood, both computed with the same tiny OPT on the same
test texts (no training); ratios print the trained detector's AUROC over them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
from sklearn.metrics import roc_auc_score

from provkit.filters.detector import DetectorConfig, detector_metrics, train_detector
from provkit.filters.detector.lm import LMFeaturizer
from provkit.provenance import builtin_texts
from provkit.lm import (
    DecodingConfig,
    TinyOPTConfig,
    TrainConfig,
    build_tiny_opt,
    generate_continuations,
    make_blocks,
    pad_right,
    save_model,
    train_bpe_tokenizer,
    train_lm,
)

PROMPT, NEW = 16, 64
SETTINGS = {
    "greedy+rep1.3": DecodingConfig(max_new_tokens=NEW, num_beams=1, repetition_penalty=1.3),
    "top-p0.9": DecodingConfig(max_new_tokens=NEW, num_beams=1, do_sample=True, top_p=0.9, repetition_penalty=1.0),
    "temp1.0": DecodingConfig(max_new_tokens=NEW, num_beams=1, do_sample=True, temperature=1.0, repetition_penalty=1.0),
    "beam5+rep3.0": DecodingConfig(max_new_tokens=NEW, num_beams=5, repetition_penalty=3.0),
}


def log(msg: str) -> None:
    """Progress and figures go to stderr, so ``--json`` leaves stdout pure JSON."""
    print(msg, file=sys.stderr, flush=True)


def build_corpus(args: argparse.Namespace, workdir: Path) -> tuple[list[str], dict[str, list[str]], Path, dict]:
    """Train the tiny OPT, return (human texts, model texts per setting, model dir, timings)."""
    rng = np.random.default_rng(args.seed)
    docs = builtin_texts("python-docs")
    order = rng.permutation(len(docs))
    t0 = time.perf_counter()
    tok = train_bpe_tokenizer([docs[i] for i in order[: len(docs) // 2]], vocab_size=2048)
    enc = {int(i): tok(docs[i], add_special_tokens=False)["input_ids"] for i in order}
    long_docs = [i for i in map(int, order) if len(enc[i]) >= PROMPT + NEW]
    held = set(long_docs[: args.human])
    train_docs = [docs[i] for i in map(int, order) if i not in held]
    model = build_tiny_opt(tok, TinyOPTConfig(), seed=args.seed)
    ids, mask = pad_right([b.token_ids for b in make_blocks(train_docs, tok, block_size=64)], tok.pad_token_id)
    stats = train_lm(model, ids, mask, None, TrainConfig(epochs=args.epochs, batch_size=32, lr=2e-3, seed=args.seed))
    t_train = time.perf_counter() - t0
    log(f"tiny OPT trained on {len(train_docs)} docs / {stats.tokens} tokens in {t_train:.0f} s "
        f"(final loss {stats.final_loss:.2f})")
    model_dir = save_model(model, tok, workdir / "tiny-opt")
    human = [tok.decode(enc[i][: PROMPT + NEW]) for i in long_docs[: args.human]]
    prompt_docs = [i for i in long_docs[args.human :]]
    generated: dict[str, list[str]] = {}
    t_gen = {}
    for k, (name, decoding) in enumerate(SETTINGS.items()):
        chosen = rng.choice(len(prompt_docs), size=min(args.per_setting, len(prompt_docs)), replace=False)
        prompts = [enc[prompt_docs[j]][:PROMPT] for j in chosen]
        t1 = time.perf_counter()
        new = generate_continuations(model, prompts, decoding, pad_id=tok.pad_token_id, eos_id=tok.eos_token_id,
                                     batch_size=32, seed=args.seed + k)
        t_gen[name] = time.perf_counter() - t1
        generated[name] = [tok.decode(p + n) for p, n in zip(prompts, new)]
        log(f"generated {len(new)} texts with {name} in {t_gen[name]:.0f} s; e.g. {generated[name][0][-120:]!r}")
    return human, generated, model_dir, {"train_lm_s": t_train, "generate_s": t_gen}


def split_half(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    perm = rng.permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2 :])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--human", type=int, default=300)
    ap.add_argument("--per-setting", type=int, default=150)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--kinds", default="ngram,lm,embedding")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed + 1)
    with TemporaryDirectory() as tmp:
        human, generated, model_dir, timings = build_corpus(args, Path(tmp))
        h_tr, h_te = split_half(len(human), rng)
        splits = {name: split_half(len(texts), rng) for name, texts in generated.items()}
        train_texts = [human[i] for i in h_tr] + [generated[n][i] for n, (tr, _) in splits.items() for i in tr]
        train_y = [0] * len(h_tr) + [1] * (len(train_texts) - len(h_tr))
        test_h = [human[i] for i in h_te]
        test_m = {n: [generated[n][i] for i in te] for n, (_, te) in splits.items()}
        test_texts = test_h + [t for n in test_m for t in test_m[n]]
        test_y = np.array([0] * len(test_h) + [1] * (len(test_texts) - len(test_h)))
        results: dict = {"n_train": len(train_texts), "n_test": len(test_texts), "timings": timings, "kinds": {}}

        # zero-shot peers with the same tiny OPT
        lm_feat = LMFeaturizer.for_model(str(model_dir), max_length=args.max_length)
        f_test = lm_feat.transform(test_texts)
        peers = {"zero-shot Fast-DetectGPT": f_test[:, 3], "zero-shot log-likelihood": f_test[:, 0]}
        results["peers"] = {}
        for name, s in peers.items():
            per = {n: float(roc_auc_score(_y(len(test_h), len(test_m[n])), _cat(s, test_h, test_m, n)))
                   for n in test_m}
            results["peers"][name] = {"auroc": float(roc_auc_score(test_y, s)),
                                      "tpr_at_1pct_fpr": detector_metrics(test_y, _rank01(s)).tpr_at_1pct_fpr,
                                      "per_setting_auroc": per}
        for kind in [k.strip() for k in args.kinds.split(",") if k.strip()]:
            cfg = DetectorConfig(kind=kind, model=str(model_dir) if kind == "lm" else None, seed=args.seed,
                                 max_length=args.max_length)
            t0 = time.perf_counter()
            trained = train_detector(train_texts, train_y, cfg)
            t_fit = time.perf_counter() - t0
            t0 = time.perf_counter()
            p = trained.detector.predict_proba(test_texts)
            t_score = time.perf_counter() - t0
            m = detector_metrics(test_y, p)
            per = {}
            for n in test_m:
                pm = detector_metrics(_y(len(test_h), len(test_m[n])), _cat(p, test_h, test_m, n))
                per[n] = {"auroc": pm.auroc, "tpr_at_1pct_fpr": pm.tpr_at_1pct_fpr}
            results["kinds"][kind] = {**m.to_json(), "per_setting": per, "train_s": t_fit, "score_s": t_score}
            log(f"{kind:>9}: AUROC {m.auroc:.4f}  TPR@1%FPR {m.tpr_at_1pct_fpr:.3f}  TPR@5%FPR "
                f"{m.tpr_at_5pct_fpr:.3f}  ECE {m.ece:.3f}  (train {t_fit:.0f} s, score {t_score:.0f} s)")
            for n, v in per.items():
                log(f"           {n:<14} AUROC {v['auroc']:.4f}  TPR@1%FPR {v['tpr_at_1pct_fpr']:.3f}")
    for name, v in results["peers"].items():
        log(f"peer {name}: AUROC {v['auroc']:.4f}  TPR@1%FPR {v['tpr_at_1pct_fpr']:.3f}  per setting "
            + ", ".join(f"{n} {a:.3f}" for n, a in v["per_setting_auroc"].items()))
    best = max(results["kinds"].items(), key=lambda kv: kv[1]["auroc"], default=None)
    if best:
        for name, v in results["peers"].items():
            log(f"ratio best kind ({best[0]}) AUROC / {name} AUROC = {best[1]['auroc'] / v['auroc']:.3f}")
        log(f"best kind {best[0]}: AUROC {best[1]['auroc']:.4f} (target >= 0.99: "
            f"{'met' if best[1]['auroc'] >= 0.99 else 'NOT met'})")
    if args.json:
        print(json.dumps(results, indent=2))


def _y(n_h: int, n_m: int) -> np.ndarray:
    return np.array([0] * n_h + [1] * n_m)


def _cat(scores: np.ndarray, test_h: list[str], test_m: dict[str, list[str]], name: str) -> np.ndarray:
    """Scores of all human test texts followed by those of setting ``name`` (test_texts order)."""
    start = len(test_h)
    for n in test_m:
        if n == name:
            return np.concatenate([scores[: len(test_h)], scores[start : start + len(test_m[n])]])
        start += len(test_m[n])
    raise KeyError(name)


def _rank01(s: np.ndarray) -> np.ndarray:
    """Scores mapped monotonically into [0, 1] (ranks), for TPR at FPR of a raw criterion."""
    return (np.argsort(np.argsort(s)) + 0.5) / len(s)


if __name__ == "__main__":
    main()
