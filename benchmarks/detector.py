"""Detector accuracy per kind: in-distribution, across decodings, by length, calibrated, records/s.

Run:  python benchmarks/detector.py [--human 600] [--per-setting 150] [--epochs 2]
                                    [--kinds ngram,lm,embedding,zeroshot,fast-detectgpt] [--cache DIR] [--json]

Setup (all local, seeded):

1. the builtin python-docs corpus is shuffled; ``--human`` documents of at least
   ``PROMPT + NEW`` tokens are held out as the human side; a byte-level BPE
   tokenizer and a tiny OPT (2 layers x 128, the *generator*) are trained on
   all the other documents, and a smaller second OPT (1 layer x 64, other seed,
   one epoch: the zero-shot kind's *reference*) on the same data and tokenizer;
2. ``--per-setting`` prompts (the first ``PROMPT`` tokens of training
   documents) are continued by ``NEW`` tokens under four decodings, two sampled
   (pure sampling T=1.0; nucleus top-p 0.9) and two deterministic (greedy +
   repetition penalty 1.3; 5-beam search + repetition penalty 3.0, the
   collapse paper's setting); model text = prompt + continuation, human text =
   the first ``PROMPT + NEW`` tokens of a held-out document;
3. human texts and each setting's texts are split 50/50 (seeded) into train and
   test.  Each kind's features are computed once per text; a logistic head
   (``fit_head``: the same fit ``prov detector train`` uses, folds grouped by
   content hash) is fitted per regime on train rows and scored on test rows:

   * ``in-distribution``: trained on all four decodings, tested on all four;
   * ``sampled -> deterministic`` and ``deterministic -> sampled`` (cross-decoding);
   * ``leave-one-out``: trained on the three other decodings, tested on the fourth;
   * the ``zeroshot`` kind uses no model text: every regime is the same test;
     ``zeroshot`` is its Binoculars criterion, ``fast-detectgpt`` its analytic
     Fast-DetectGPT criterion (Bao et al. 2024; sampling model = the second OPT,
     scoring model = the generator); both come from one pass of both models;

   AUROC and TPR at 1 % FPR come from the test ROC (the threshold that flags at
   most 1 % of the test human texts, as RAID reports them).  The length curve
   scores the in-distribution head on test texts cut to 32 / 64 / 128 tokens.
4. **calibrated**: for ``ngram`` (the default kind) and the zero-shot criteria, the real
   ``train_detector`` pipeline (``test_fraction`` 0.5: half of the train half is
   the held-out calibration set; zeroshot: every train human text) and
   its stored 1 % FPR threshold applied to the test half: the FPR it actually
   gives on fresh human text, and the TPR.
5. records/s: featurisation + scoring, one process (ngram: of the test texts, once its novelty sets
   are fitted on the train half; the others: of all texts).

The generator writes poor text, and the ``lm`` / ``zeroshot`` kinds score with
the very model that generated it, so their figures flatter them (a real
deployment has a different generator).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
from sklearn.metrics import roc_auc_score

from provkit.filters.detector import DetectorConfig, train_detector
from provkit.filters.detector.base import fit_head, make_featurizer
from provkit.filters.detector.breakdown import roc_threshold
from provkit.provenance import builtin_texts, content_hash
from provkit.lm import (
    DecodingConfig,
    TinyOPTConfig,
    TrainConfig,
    build_tiny_opt,
    generate_continuations,
    load_tokenizer,
    make_blocks,
    pad_right,
    save_model,
    train_bpe_tokenizer,
    train_lm,
)

PROMPT, NEW = 8, 120
LENGTHS = (32, 64, 128)
SAMPLED = ("temp1.0", "top-p0.9")
DETERMINISTIC = ("greedy+rep1.3", "beam5+rep3.0")
SETTINGS = {
    "temp1.0": DecodingConfig(max_new_tokens=NEW, num_beams=1, do_sample=True, temperature=1.0, repetition_penalty=1.0),
    "top-p0.9": DecodingConfig(max_new_tokens=NEW, num_beams=1, do_sample=True, top_p=0.9, repetition_penalty=1.0),
    "greedy+rep1.3": DecodingConfig(max_new_tokens=NEW, num_beams=1, repetition_penalty=1.3),
    "beam5+rep3.0": DecodingConfig(max_new_tokens=NEW, num_beams=5, repetition_penalty=3.0),
}
REFERENCE_SHAPE = TinyOPTConfig(layers=1, hidden=64, heads=2, ffn=256)


def log(msg: str) -> None:
    """Progress and figures go to stderr, so ``--json`` leaves stdout pure JSON."""
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ corpus (cached)


def build_corpus(args: argparse.Namespace, workdir: Path) -> dict:
    """Train the generator and the reference OPT, generate; returns token lists and model dirs.

    With ``--cache DIR`` everything is kept in DIR and reused by later runs of the same settings.
    """
    meta = workdir / "corpus.json"
    key = {"human": args.human, "per_setting": args.per_setting, "epochs": args.epochs, "seed": args.seed,
           "prompt": PROMPT, "new": NEW}
    if meta.exists():
        corpus = json.loads(meta.read_text())
        if corpus["key"] == key:
            log(f"corpus from cache {workdir}")
            return corpus
    rng = np.random.default_rng(args.seed)
    docs = builtin_texts("python-docs")
    order = rng.permutation(len(docs))
    t0 = time.perf_counter()
    tok = train_bpe_tokenizer([docs[i] for i in order[: len(docs) // 2]], vocab_size=2048)
    enc = {int(i): tok(docs[i], add_special_tokens=False)["input_ids"] for i in order}
    long_docs = [i for i in map(int, order) if len(enc[i]) >= PROMPT + NEW]
    held = set(long_docs[: args.human])
    train_docs = [docs[i] for i in map(int, order) if i not in held]
    ids, mask = pad_right([b.token_ids for b in make_blocks(train_docs, tok, block_size=64)], tok.pad_token_id)
    dirs = {}
    for name, shape, seed, epochs in (("generator", TinyOPTConfig(), args.seed, args.epochs),
                                      ("reference", REFERENCE_SHAPE, args.seed + 1, 1)):
        model = build_tiny_opt(tok, shape, seed=seed)
        stats = train_lm(model, ids, mask, None, TrainConfig(epochs=epochs, batch_size=32, lr=2e-3, seed=seed))
        dirs[name] = str(save_model(model, tok, workdir / name))
        log(f"{name} OPT trained on {len(train_docs)} docs / {stats.tokens} tokens (final loss {stats.final_loss:.2f})")
        if name == "generator":
            generator = model
    t_train = time.perf_counter() - t0
    human = [enc[i][: PROMPT + NEW] for i in long_docs[: args.human]]
    prompt_docs = long_docs[args.human :]
    generated: dict[str, list[list[int]]] = {}
    t_gen = {}
    for k, (name, decoding) in enumerate(SETTINGS.items()):
        chosen = rng.choice(len(prompt_docs), size=min(args.per_setting, len(prompt_docs)), replace=False)
        prompts = [enc[prompt_docs[j]][:PROMPT] for j in chosen]
        t1 = time.perf_counter()
        new = generate_continuations(generator, prompts, decoding, pad_id=tok.pad_token_id, eos_id=tok.eos_token_id,
                                     batch_size=32, seed=args.seed + k)
        t_gen[name] = time.perf_counter() - t1
        generated[name] = [p + n for p, n in zip(prompts, new)]
        log(f"generated {len(new)} texts with {name} in {t_gen[name]:.0f} s; e.g. {tok.decode(generated[name][0])[-100:]!r}")
    corpus = {"key": key, "human": human, "generated": generated, "dirs": dirs,
              "timings": {"train_lms_s": t_train, "generate_s": t_gen}}
    meta.write_text(json.dumps(corpus))
    return corpus


def split_half(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    perm = rng.permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2 :])


def figures(y: np.ndarray, s: np.ndarray) -> dict:
    """AUROC and TPR at 1 % / 5 % FPR from the ROC of test scores ``s``."""
    out = {"auroc": float(roc_auc_score(y, s))}
    for a, name in ((0.01, "tpr_at_1pct_fpr"), (0.05, "tpr_at_5pct_fpr")):
        t = roc_threshold(y, s, a)
        out[name] = float((s[y == 1] >= t).mean())
    return out


# ------------------------------------------------------------------ the measurements


class Bench:
    """Texts, labels, settings and splits of one run; featurises once per kind."""

    def __init__(self, corpus: dict, seed: int):
        self.tok = load_tokenizer(corpus["dirs"]["generator"])
        rng = np.random.default_rng(seed + 1)
        decode = self.tok.decode
        self.texts: list[str] = []
        self.tokens: list[list[int]] = []
        self.setting: list[str] = []
        self.train: list[bool] = []
        for name, seqs in [("human", corpus["human"])] + list(corpus["generated"].items()):
            tr, _ = split_half(len(seqs), rng)
            tr = set(tr.tolist())
            for i, ids in enumerate(seqs):
                self.texts.append(decode(ids))
                self.tokens.append(ids)
                self.setting.append(name)
                self.train.append(i in tr)
        self.setting_arr = np.asarray(self.setting)
        self.train_arr = np.asarray(self.train)
        self.y = (self.setting_arr != "human").astype(np.int64)
        self.groups = np.asarray([content_hash(t) for t in self.texts], dtype=object)

    def rows(self, train: bool, settings: tuple[str, ...]) -> np.ndarray:
        keep = np.isin(self.setting_arr, ("human",) + settings) & (self.train_arr == train)
        return np.flatnonzero(keep)

    def truncated(self, rows: np.ndarray, n_tokens: int) -> list[str]:
        return [self.tok.decode(self.tokens[i][:n_tokens]) for i in rows]


def regimes() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    every = tuple(SETTINGS)
    out = {"in-distribution": (every, every), "sampled -> deterministic": (SAMPLED, DETERMINISTIC),
           "deterministic -> sampled": (DETERMINISTIC, SAMPLED)}
    for s in every:
        out[f"leave-one-out: {s}"] = (tuple(x for x in every if x != s), (s,))
    return out


ZERO_SHOT = {"zeroshot": "binoculars", "fast-detectgpt": "fast-detectgpt"}  # benchmark name -> criterion


def config_for(kind: str, corpus: dict, args: argparse.Namespace) -> DetectorConfig:
    zeroshot = kind in ZERO_SHOT
    model = corpus["dirs"]["generator"] if kind == "lm" or zeroshot else None
    return DetectorConfig(kind="zeroshot" if zeroshot else kind, model=model, seed=args.seed,
                          max_length=args.max_length, C=args.C, criterion=ZERO_SHOT.get(kind, "binoculars"),
                          reference_model=corpus["dirs"]["reference"] if zeroshot else None)


def featurize(featurizer, texts: list[str], memo: dict, key: str) -> np.ndarray:
    """Features of ``texts``; the zero-shot criteria share one pass of both models (``memo[key]``)."""
    if getattr(featurizer, "kind", None) != "zeroshot":
        return featurizer.transform(texts)
    if key not in memo:
        memo[key] = featurizer.statistics(texts)
    return memo[key][:, featurizer.column : featurizer.column + 1]


def measure_kind(kind: str, bench: Bench, corpus: dict, args: argparse.Namespace, memo: dict) -> dict:
    cfg = config_for(kind, corpus, args)
    featurizer = make_featurizer(cfg)
    fit = getattr(featurizer, "fit_transform", None)  # ngram: novelty against the train half's human texts
    t0 = time.perf_counter()
    if fit is not None:
        features = fit(bench.texts, bench.y, np.flatnonzero(bench.train_arr), bench.groups)
        test_texts = [bench.texts[i] for i in np.flatnonzero(~bench.train_arr)]
        t0 = time.perf_counter()
        featurizer.transform(test_texts)
        rate = len(test_texts) / (time.perf_counter() - t0)
    else:
        features = featurize(featurizer, bench.texts, memo, "all")
        rate = memo.setdefault(f"rate:{cfg.kind}", len(bench.texts) / (time.perf_counter() - t0))  # one shared pass
    zeroshot = cfg.kind == "zeroshot"
    out: dict = {"records_per_s": rate, "regimes": {}, "per_setting": {}, "length_curve": {}}
    heads = {}
    for name, (train_settings, test_settings) in regimes().items():
        train_rows, test_rows = bench.rows(True, train_settings), bench.rows(False, test_settings)
        if zeroshot:  # nothing is trained: the criterion itself scores
            raw = features[test_rows, 0]
        else:
            head, _ = fit_head(features[train_rows], bench.y[train_rows], cfg.inverse_l2, cfg.cv_folds, cfg.seed,
                               groups=bench.groups[train_rows])
            heads[name] = head
            raw = head.decision(features[test_rows])
        out["regimes"][name] = figures(bench.y[test_rows], raw)
        if name == "in-distribution":
            for s in SETTINGS:
                keep = np.isin(bench.setting_arr[test_rows], ("human", s))
                out["per_setting"][s] = figures(bench.y[test_rows][keep], raw[keep])
    test_rows = bench.rows(False, tuple(SETTINGS))
    for n in LENGTHS:
        f = featurize(featurizer, bench.truncated(test_rows, n), memo, f"test@{n}")
        raw = f[:, 0] if zeroshot else heads["in-distribution"].decision(f)
        out["length_curve"][str(n)] = figures(bench.y[test_rows], raw)
    return out


def measure_calibrated(kind: str, bench: Bench, corpus: dict, args: argparse.Namespace) -> dict:
    """The real training pipeline on the train half; its stored thresholds applied to the test half."""
    cfg = replace(config_for(kind, corpus, args), test_fraction=0.5)  # half of the train half calibrates
    train_rows, test_rows = bench.rows(True, tuple(SETTINGS)), bench.rows(False, tuple(SETTINGS))
    if cfg.kind == "zeroshot":  # human text only
        train_rows = train_rows[bench.y[train_rows] == 0]
    trained = train_detector([bench.texts[i] for i in train_rows], bench.y[train_rows], cfg)
    det = trained.detector
    raw = det.decision_function([bench.texts[i] for i in test_rows])
    y = bench.y[test_rows]
    out = {"calibration_n_human": det.calibration.n_human}
    for t in det.calibration.thresholds:
        key = f"{t.target_fpr:g}"
        out[key] = {"threshold": t.threshold, "resolvable": t.resolvable,
                    "test_fpr": float((raw[y == 0] > t.threshold).mean()),
                    "test_tpr": float((raw[y == 1] > t.threshold).mean())}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--human", type=int, default=600)
    ap.add_argument("--per-setting", type=int, default=150)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--kinds", default="ngram,lm,embedding,zeroshot,fast-detectgpt")
    ap.add_argument("--max-length", type=int, default=160)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--C", type=float, default=None, help="inverse L2 of the trained kinds (default: the kind's)")
    ap.add_argument("--cache", type=Path, default=None, help="keep models and generated text here for reruns")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with TemporaryDirectory() as tmp:
        workdir = args.cache or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        corpus = build_corpus(args, workdir)
        bench = Bench(corpus, args.seed)
        n_test = int((~bench.train_arr).sum())
        log(f"{len(bench.texts)} texts: {int((bench.y == 0).sum())} human, {int(bench.y.sum())} model; "
            f"test half {n_test}")
        results: dict = {"n_texts": len(bench.texts), "n_test": n_test, "timings": corpus["timings"], "kinds": {}}
        memo: dict = {}  # the zero-shot criteria's shared statistics
        for kind in [k.strip() for k in args.kinds.split(",") if k.strip()]:
            t0 = time.perf_counter()
            r = measure_kind(kind, bench, corpus, args, memo)
            if kind in ("ngram", *ZERO_SHOT):
                r["calibrated"] = measure_calibrated(kind, bench, corpus, args)
            r["seconds"] = time.perf_counter() - t0
            results["kinds"][kind] = r
            report_kind(kind, r)
    report_targets(results)
    if args.json:
        print(json.dumps(results, indent=2))


def report_kind(kind: str, r: dict) -> None:
    log(f"{kind}: {r['records_per_s']:.0f} records/s (features), {r['seconds']:.0f} s in all")
    for name, f in r["regimes"].items():
        log(f"  {name:<30} AUROC {f['auroc']:.4f}  TPR@1%FPR {f['tpr_at_1pct_fpr']:.3f}  "
            f"TPR@5%FPR {f['tpr_at_5pct_fpr']:.3f}")
    log("  in-distribution per decoding: " + ", ".join(
        f"{s} {f['auroc']:.3f}/{f['tpr_at_1pct_fpr']:.3f}" for s, f in r["per_setting"].items()) + "  (AUROC/TPR@1%)")
    log("  length curve (tokens): " + ", ".join(
        f"{n}: {f['auroc']:.3f}/{f['tpr_at_1pct_fpr']:.3f}" for n, f in r["length_curve"].items()) + "  (AUROC/TPR@1%)")
    if "calibrated" in r:
        c = r["calibrated"]
        log(f"  calibrated (n_human {c['calibration_n_human']}): " + ", ".join(
            f"target {k}: test FPR {v['test_fpr']:.4f} TPR {v['test_tpr']:.3f}" + ("" if v["resolvable"] else " (unresolvable)")
            for k, v in c.items() if isinstance(v, dict)))


def report_targets(results: dict) -> None:
    default = results["kinds"].get("ngram")
    if not default:
        return
    ind = default["regimes"]["in-distribution"]["tpr_at_1pct_fpr"]
    cross = {k: v["tpr_at_1pct_fpr"] for k, v in default["regimes"].items() if "->" in k}
    loo = {k: v["tpr_at_1pct_fpr"] for k, v in default["regimes"].items() if k.startswith("leave")}
    log(f"default kind (ngram): in-distribution TPR@1%FPR {ind:.3f} (target >= 0.98: {'met' if ind >= 0.98 else 'NOT met'})")
    for k, v in cross.items():
        log(f"  cross-decoding {k}: TPR@1%FPR {v:.3f} (target >= 0.90: {'met' if v >= 0.90 else 'NOT met'})")
    for k, v in loo.items():
        log(f"  trained on the other three decodings, {k}: TPR@1%FPR {v:.3f} "
            f"(target >= 0.90: {'met' if v >= 0.90 else 'NOT met'})")


if __name__ == "__main__":
    main()
