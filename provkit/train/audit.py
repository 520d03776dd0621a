"""``prov audit DS``: the collapse-risk report of a corpus, optionally against a human reference.

What it measures (each figure on the whole corpus unless noted; the text
metrics on a seeded sample of at most ``sample`` records per dataset):

* **origin mix**: records by ``origin`` x ``origin_evidence``;
* **model-written share**: with a detector, the adjusted classify-and-count
  estimate ``(cc - FPR) / (TPR - FPR)`` (:func:`adjusted_share`: the
  detector's held-out error rates correct the flagged share ``cc``; its
  interval covers their uncertainty too), and the probabilistic estimate
  ``mean_i P(model | x_i)`` (Bella et al. 2010: unbiased only when the
  probabilities are calibrated *on this corpus's mix*); on the reference the
  same mean is the detector's false model share.  Without a detector, the
  declared share ``model / (human + model)`` with a Wilson interval;
* **duplicates**: exact (same ``content_hash``: ``1 - distinct / n``) and near
  (MinHash + LSH components at Jaccard ``near_dup_threshold``: ``1 -
  components / n``, on the sample);
* **diversity**: vocabulary diversity, distinct-1/2/3, self-BLEU
  (:mod:`provkit.train.metrics`), embedding diversity when ``embedding`` and a
  local sentence encoder are available - corpus and reference side by side;
* **length and repetition profiles**: words per record (quantiles, histogram)
  and the Gopher repetition scores (:func:`provkit.filters.quality.quality_scores`);
* **tail coverage**: the share of the reference's tail words (outside the
  most frequent words covering ``head_mass`` of its tokens) that occur in the corpus;
* **perplexity** (``model``): per-record perplexities under a local causal LM,
  corpus against reference (collapse makes model text *less* surprising).

``findings`` turns these into a few sentences, each naming its figure; the
report is ``audit.json`` plus a self-contained ``audit.html`` with the plots.
Memory: the sampled texts, 512 bytes of MinHash signature per sampled record,
and 8 bytes per record for the exact-duplicate count.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from provkit.core.atomic import write_bytes_atomic, write_json_atomic
from provkit.core.hashing import seeded_uniform
from provkit.core.text import words
from provkit.errors import ConfigError
from provkit.filters.dedup import NearDupConfig, near_duplicate_components
from provkit.filters.detector import load_detector
from provkit.filters.minhash import MinHashConfig, signatures
from provkit.filters.quality import quality_scores
from provkit.lm import encode_texts, load_model, sequence_perplexities
from provkit.provenance import Dataset
from provkit.train.metrics import distinct_n, embedding_diversity, local_sentence_encoder, self_bleu, vocabulary_diversity

Z95 = 1.959963984540054


@dataclass(frozen=True)
class AuditConfig:
    """What ``prov audit`` compares and how much it reads."""

    reference: str | None = None  # a human dataset to compare against
    detector: str | None = None  # a trained detector directory (prov detector train)
    model: str | None = None  # a local causal LM directory: perplexity histograms
    sample: int = 5000  # records per dataset read for the text metrics (seeded)
    self_bleu_samples: int = 64
    near_dup_threshold: float = 0.8
    head_mass: float = 0.9
    embedding: bool = False
    bootstrap: int = 1000
    max_tokens: int = 128  # tokens per record for perplexity
    seed: int = 0

    def __post_init__(self) -> None:
        if self.sample < 2:
            raise ConfigError(f"--sample {self.sample}: must be >= 2")
        if not 0 < self.near_dup_threshold <= 1:
            raise ConfigError(f"--near-dup-threshold {self.near_dup_threshold}: must be in (0, 1]")
        if self.bootstrap < 100:
            raise ConfigError(f"--bootstrap {self.bootstrap}: must be >= 100")


@dataclass
class _Corpus:
    path: str
    records: int
    origin_by_evidence: dict[str, dict[str, int]]
    exact_dup_rate: float
    ids: list[str]
    texts: list[str]
    origins: list[str]


@dataclass
class AuditResult:
    """Every figure of an audit (see the module docstring); ``to_json`` is ``audit.json``."""

    dataset: str
    reference: str | None
    config: dict[str, Any]
    records: int
    sampled: int
    origin_by_evidence: dict[str, dict[str, int]]
    model_share: dict[str, Any]
    duplicates: dict[str, Any]
    diversity: dict[str, dict[str, float]]
    length: dict[str, Any]
    repetition: dict[str, Any]
    tail_coverage: dict[str, Any] | None
    perplexity: dict[str, Any] | None
    findings: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return _finite(asdict(self))


def _finite(obj: Any) -> Any:
    """NaN and inf become None (JSON has neither)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _plain(col: pa.Array) -> list[Any]:
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return col.to_pylist()


def read_corpus(path: str | Path, sample: int, seed: int) -> _Corpus:
    """Stream a dataset once: origin x evidence counts, the exact-duplicate rate, and a seeded sample."""
    ds = Dataset.open(path)
    n = ds.num_rows()
    keep = min(1.0, sample / max(n, 1))
    mix: dict[str, Counter[str]] = {}
    hashes: list[np.ndarray] = []
    ids: list[str] = []
    texts: list[str] = []
    origins: list[str] = []
    for batch in ds.iter_batches(columns=["id", "content_hash", "text", "origin", "origin_evidence"]):
        origin, evidence = _plain(batch.column("origin")), _plain(batch.column("origin_evidence"))
        for o, e in zip(origin, evidence):
            mix.setdefault(o or "unknown", Counter())[e or "none"] += 1
        hashes.append(np.frombuffer(b"".join(bytes.fromhex(h[:16]) for h in batch.column("content_hash").to_pylist()),
                                    dtype=np.uint64))
        batch_ids = batch.column("id").to_pylist()
        chosen = np.flatnonzero(seeded_uniform(batch_ids, seed, "audit-sample") < keep) if keep < 1 else \
            np.arange(len(batch_ids))
        text = batch.column("text")
        for i in chosen:
            ids.append(batch_ids[i])
            texts.append(text[int(i)].as_py())
            origins.append(origin[i] or "unknown")
    all_hashes = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
    exact = 1.0 - len(np.unique(all_hashes)) / n if n else float("nan")
    return _Corpus(str(ds.path), n, {o: dict(c.most_common()) for o, c in sorted(mix.items())}, exact, ids, texts,
                   origins)


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial share ``k / n``."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_mean_interval(values: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of ``mean(values)`` (resampling records)."""
    if len(values) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for b in range(resamples):
        means[b] = values[rng.integers(0, len(values), len(values))].mean()
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(lo), float(hi)


def model_share(corpus: _Corpus, reference: _Corpus | None, config: AuditConfig) -> tuple[dict[str, Any], np.ndarray | None]:
    """The estimated model-written share (detector) or the declared one (tags); and the detector scores."""
    tagged = {o: sum(c.values()) for o, c in corpus.origin_by_evidence.items()}
    declared_model, declared_human = tagged.get("model", 0), tagged.get("human", 0)
    lo, hi = wilson_interval(declared_model, declared_model + declared_human)
    out: dict[str, Any] = {"declared": {"model": declared_model, "human": declared_human,
                                        "unknown": tagged.get("unknown", 0) + tagged.get("mixed", 0),
                                        "share": declared_model / max(1, declared_model + declared_human),
                                        "interval": [lo, hi]}}
    if not config.detector:
        out["method"] = "declared tags (no --detector)"
        return out, None
    detector = load_detector(config.detector)
    p = np.asarray(detector.predict_proba(corpus.texts), dtype=np.float64)
    lo, hi = bootstrap_mean_interval(p, config.bootstrap, config.seed)
    pcc = {"estimate": float(p.mean()) if len(p) else float("nan"), "interval": [lo, hi]}
    out.update({"threshold": detector.threshold, "probabilistic": pcc,
                "classify_and_count": float((p >= detector.threshold).mean()) if len(p) else float("nan")})
    q = None
    if reference is not None:
        q = np.asarray(detector.predict_proba(reference.texts), dtype=np.float64)
        out["reference_estimate"] = float(q.mean()) if len(q) else float("nan")
    adjusted = adjusted_share(p >= detector.threshold, detector.info.get("heldout") or {},
                              None if q is None else q >= detector.threshold, config)
    if adjusted is not None:
        out.update(adjusted)
        out["method"] = (f"adjusted classify-and-count with the {detector.kind} detector {config.detector}: "
                         "(flagged share - FPR) / (TPR - FPR), TPR and FPR from its held-out confusion"
                         + (" and the reference" if q is not None else "")
                         + "; 95% bootstrap interval over records and the TPR/FPR uncertainty")
    else:
        out.update(pcc)
        out["method"] = (f"probabilistic classify-and-count with the {detector.kind} detector {config.detector} "
                         f"(mean calibrated P(model) over {len(p)} records, 95% bootstrap interval)")
    return out, p


def adjusted_share(flagged: np.ndarray, heldout: dict[str, Any], reference_flagged: np.ndarray | None,
                   config: AuditConfig) -> dict[str, Any] | None:
    """Adjusted classify-and-count (Forman 2008): ``s = (cc - FPR) / (TPR - FPR)``, clipped to [0, 1].

    ``cc`` is the flagged share of the corpus; TPR and FPR come from the
    detector's held-out confusion counts (FPR pooled with the flagged share of
    the human reference when given).  The 95 % interval is a percentile
    bootstrap: each resample redraws the corpus records and draws TPR and FPR
    from their Beta(k + 1/2, n - k + 1/2) posteriors, so it covers the
    detector's own uncertainty as well as the sampling.  None when the
    detector has no held-out counts or ``TPR - FPR < 0.1`` (no signal to adjust with).
    """
    tp, fn = int(heldout.get("true_positive", 0)), int(heldout.get("false_negative", 0))
    fp, tn = int(heldout.get("false_positive", 0)), int(heldout.get("true_negative", 0))
    if reference_flagged is not None:
        fp, tn = fp + int(reference_flagged.sum()), tn + int((~reference_flagged).sum())
    if tp + fn == 0 or fp + tn == 0 or len(flagged) == 0:
        return None
    tpr, fpr = tp / (tp + fn), fp / (fp + tn)
    if tpr - fpr < 0.1:
        return None
    cc = float(flagged.mean())
    rng = np.random.default_rng(config.seed)
    flags = flagged.astype(np.float64)
    draws = np.empty(config.bootstrap)
    for b in range(config.bootstrap):
        cc_b = flags[rng.integers(0, len(flags), len(flags))].mean()
        tpr_b, fpr_b = rng.beta(tp + 0.5, fn + 0.5), rng.beta(fp + 0.5, tn + 0.5)
        draws[b] = np.clip((cc_b - fpr_b) / max(tpr_b - fpr_b, 1e-6), 0.0, 1.0)
    lo, hi = np.quantile(draws, [0.025, 0.975])
    return {"estimate": float(np.clip((cc - fpr) / (tpr - fpr), 0.0, 1.0)), "interval": [float(lo), float(hi)],
            "tpr": tpr, "fpr": fpr}


def near_dup_rate(texts: Sequence[str], threshold: float, seed: int) -> float:
    """``1 - components / n`` of the MinHash-LSH near-duplicate graph (:mod:`provkit.filters.dedup`)."""
    if len(texts) < 2:
        return 0.0
    cfg = NearDupConfig(threshold=threshold, seed=seed + 1)
    sigs = signatures(list(texts), MinHashConfig(ngram=cfg.ngram, num_perm=cfg.num_perm, seed=cfg.seed,
                                                  scheme=cfg.scheme))
    return 1.0 - len(np.unique(near_duplicate_components(sigs, cfg))) / len(texts)


def diversity(texts: Sequence[str], config: AuditConfig, encoder: Any) -> dict[str, float]:
    out = {"vocab_diversity": vocabulary_diversity(texts), "distinct_1": distinct_n(texts, 1),
           "distinct_2": distinct_n(texts, 2), "distinct_3": distinct_n(texts, 3),
           "self_bleu": self_bleu(texts, config.self_bleu_samples, config.seed)}
    if encoder is not None:
        out["embedding_diversity"] = embedding_diversity(texts, encoder, config.self_bleu_samples, config.seed)
    return out


def _quantiles(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {}
    qs = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {"mean": float(values.mean()), **{f"p{p}": float(q) for p, q in zip((5, 25, 50, 75, 95), qs)}}


REPETITION = {"dup_line_frac": 0.30, "top_2gram_frac": 0.20, "dup_5gram_frac": 0.15}
"""Repetition scores profiled, with the thresholds of the default pipeline's quality step (share above them)."""


def repetition(texts: Sequence[str]) -> dict[str, Any]:
    scores = quality_scores(texts) if texts else {k: np.zeros(0) for k in REPETITION}
    return {name: {**_quantiles(scores[name]), "above": limit,
                   "share_above": float((scores[name] > limit).mean()) if len(texts) else float("nan")}
            for name, limit in REPETITION.items()}


def tail_words(texts: Sequence[str], head_mass: float) -> set[str]:
    """The words outside the most frequent ones covering ``head_mass`` of all word tokens."""
    counts = Counter(w for t in texts for w in words(t))
    total, acc, head = sum(counts.values()), 0, set()
    for word, k in counts.most_common():
        if acc >= head_mass * total:
            break
        head.add(word)
        acc += k
    return set(counts) - head


def perplexities(texts: Sequence[str], model_dir: str, max_tokens: int) -> np.ndarray:
    model, tokenizer = load_model(model_dir)
    ids, mask = encode_texts(texts, tokenizer, max_tokens)
    return sequence_perplexities(model, ids, mask)


def _word_counts(texts: Sequence[str]) -> np.ndarray:
    return np.array([len(t.split()) for t in texts], dtype=np.float64)


def audit(path: str | Path, config: AuditConfig = AuditConfig()) -> AuditResult:
    """Audit the dataset at ``path`` (see the module docstring)."""
    corpus = read_corpus(path, config.sample, config.seed)
    reference = read_corpus(config.reference, config.sample, config.seed) if config.reference else None
    share, scores = model_share(corpus, reference, config)
    encoder = local_sentence_encoder() if config.embedding else None
    div = {"corpus": diversity(corpus.texts, config, encoder)}
    dups = {"exact_rate": corpus.exact_dup_rate,
            "near_rate": near_dup_rate(corpus.texts, config.near_dup_threshold, config.seed),
            "near_threshold": config.near_dup_threshold, "near_on_records": len(corpus.texts)}
    lengths = {"corpus": _quantiles(_word_counts(corpus.texts))}
    rep = {"corpus": repetition(corpus.texts)}
    tail = ppl = None
    ppl_values: dict[str, np.ndarray] = {}
    if reference is not None:
        div["reference"] = diversity(reference.texts, config, encoder)
        dups["reference_exact_rate"] = reference.exact_dup_rate
        dups["reference_near_rate"] = near_dup_rate(reference.texts, config.near_dup_threshold, config.seed)
        lengths["reference"] = _quantiles(_word_counts(reference.texts))
        rep["reference"] = repetition(reference.texts)
        tail_set = tail_words(reference.texts, config.head_mass)
        seen = {w for t in corpus.texts for w in words(t)}
        tail = {"reference_tail_words": len(tail_set), "covered": len(tail_set & seen),
                "coverage": len(tail_set & seen) / len(tail_set) if tail_set else float("nan"),
                "head_mass": config.head_mass}
    if config.model:
        ppl_values["corpus"] = perplexities(corpus.texts, config.model, config.max_tokens)
        if reference is not None:
            ppl_values["reference"] = perplexities(reference.texts, config.model, config.max_tokens)
        ppl = {"model": config.model, **{k: _quantiles(v[np.isfinite(v)]) for k, v in ppl_values.items()}}
    result = AuditResult(str(corpus.path), reference.path if reference else None, asdict(config), corpus.records,
                         len(corpus.texts), corpus.origin_by_evidence, share, dups, div, lengths, rep, tail, ppl)
    result.findings = findings(result)
    result.samples = _Samples(corpus, reference, scores, ppl_values)  # for the plots; not part of audit.json
    return result


@dataclass
class _Samples:
    corpus: _Corpus
    reference: _Corpus | None
    scores: np.ndarray | None
    perplexities: dict[str, np.ndarray]


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.1f}%"


def findings(r: AuditResult) -> list[dict[str, str]]:
    """A few sentences, each with the figure (``figure`` id in the HTML) that shows it."""
    out = []
    ms = r.model_share
    dec = ms["declared"]
    if "estimate" in ms:
        lo, hi = ms["interval"]
        text = (f"An estimated {_pct(ms['estimate'])} of the records are model-written (95% interval "
                f"{_pct(lo)} to {_pct(hi)}); {dec['model']:,} records are tagged model and {dec['unknown']:,} carry no "
                "human/model tag.")
        if "reference_estimate" in ms:
            text += f" On the human reference the same detector estimates {_pct(ms['reference_estimate'])}."
        out.append({"finding": text, "figure": "model-share"})
    else:
        lo, hi = dec["interval"]
        out.append({"finding": f"{_pct(dec['share'])} of the tagged records are declared model-written (95% interval "
                               f"{_pct(lo)} to {_pct(hi)}); {dec['unknown']:,} records have no human/model tag - "
                               "give --detector to estimate their share.", "figure": "origin-mix"})
    d = r.duplicates
    ref = f" (reference: {_pct(d['reference_exact_rate'])} exact, {_pct(d['reference_near_rate'])} near)" \
        if "reference_exact_rate" in d else ""
    out.append({"finding": f"{_pct(d['exact_rate'])} of the records are exact duplicates and {_pct(d['near_rate'])} "
                           f"near duplicates at Jaccard {d['near_threshold']}{ref}.", "figure": "diversity"})
    if "reference" in r.diversity:
        c, h = r.diversity["corpus"], r.diversity["reference"]
        change = (c["distinct_2"] - h["distinct_2"]) / h["distinct_2"] if h["distinct_2"] else float("nan")
        out.append({"finding": f"distinct-2 is {c['distinct_2']:.3f} against {h['distinct_2']:.3f} in the reference "
                               f"({'+' if change >= 0 else ''}{100 * change:.0f}%); self-BLEU {c['self_bleu']:.3f} against "
                               f"{h['self_bleu']:.3f} (higher is less diverse).", "figure": "diversity"})
    if r.tail_coverage:
        t = r.tail_coverage
        out.append({"finding": f"The corpus contains {_pct(t['coverage'])} of the reference's {t['reference_tail_words']:,} "
                               "tail words (the rare words collapse loses first).", "figure": "diversity"})
    if r.length.get("corpus"):
        ref = f" against {r.length['reference']['p50']:.0f} in the reference" if r.length.get("reference") else ""
        rep = r.repetition["corpus"]["dup_5gram_frac"]
        out.append({"finding": f"Median length {r.length['corpus']['p50']:.0f} words{ref}; {_pct(rep['share_above'])} of "
                               f"the records repeat more than {rep['above']:.0%} of their 5-gram characters.",
                    "figure": "length"})
    if r.perplexity:
        p = r.perplexity
        ref = f" against {p['reference']['p50']:.1f} for the reference" if p.get("reference") else ""
        out.append({"finding": f"Median perplexity under {p['model']} is {p['corpus'].get('p50', float('nan')):.1f}{ref} "
                               "(model text that collapses becomes less surprising).", "figure": "perplexity"})
    return out


# ------------------------------------------------------------------ report files
def _plt():
    import matplotlib  # lazy: pyplot costs ~1 s to import and must be set to Agg before it loads

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _plt().close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _figures(r: AuditResult, corpus: _Corpus, reference: _Corpus | None, scores: np.ndarray | None) -> dict[str, str]:
    plt = _plt()
    figs: dict[str, str] = {}
    fig, ax = plt.subplots(figsize=(6, 3))
    evidences = sorted({e for c in r.origin_by_evidence.values() for e in c})
    left = np.zeros(len(r.origin_by_evidence))
    for e in evidences:
        vals = np.array([c.get(e, 0) for c in r.origin_by_evidence.values()], dtype=float)
        ax.barh(list(r.origin_by_evidence), vals, left=left, label=e)
        left += vals
    ax.set_xlabel("records")
    ax.legend(title="evidence", fontsize=8)
    ax.set_title("origin mix by evidence")
    figs["origin-mix"] = _png(fig)
    if scores is not None:
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.hist(scores, bins=20, range=(0, 1), color="tab:orange")
        ms = r.model_share
        ax.axvline(ms["threshold"], color="k", lw=0.8)
        ax.set_xlabel("calibrated P(model)")
        ax.set_ylabel("records")
        ax.set_title(f"estimated model share {_pct(ms['estimate'])} [{_pct(ms['interval'][0])}, {_pct(ms['interval'][1])}]")
        figs["model-share"] = _png(fig)
    fig, ax = plt.subplots(figsize=(6, 3))
    names = [k for k in r.diversity["corpus"] if k != "self_bleu"] + ["self_bleu"]
    x = np.arange(len(names))
    ax.bar(x - 0.2, [r.diversity["corpus"].get(k, np.nan) for k in names], 0.4, label="corpus")
    if "reference" in r.diversity:
        ax.bar(x + 0.2, [r.diversity["reference"].get(k, np.nan) for k in names], 0.4, label="reference")
    ax.set_xticks(x, names, rotation=30, fontsize=8)
    ax.legend(fontsize=8)
    ax.set_title("diversity (self-BLEU: higher is less diverse)")
    figs["diversity"] = _png(fig)
    fig, ax = plt.subplots(figsize=(6, 3))
    series = [("corpus", corpus.texts)] + ([("reference", reference.texts)] if reference else [])
    hi = max((np.quantile(_word_counts(t), 0.99) for _, t in series if t), default=1.0)
    for label, texts in series:
        ax.hist(_word_counts(texts), bins=30, range=(0, max(hi, 1)), alpha=0.6, density=True, label=label)
    ax.set_xlabel("words per record")
    ax.legend(fontsize=8)
    ax.set_title("length profile")
    figs["length"] = _png(fig)
    return figs


def _perplexity_figure(r: AuditResult, values: dict[str, np.ndarray]) -> str | None:
    if not r.perplexity:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3))
    for label, ppl in values.items():
        ppl = ppl[np.isfinite(ppl)]
        ax.hist(np.log10(ppl), bins=30, alpha=0.6, density=True, label=label)
    ax.set_xlabel(f"log10 perplexity under {Path(r.perplexity['model']).name}")
    ax.legend(fontsize=8)
    ax.set_title("perplexity histogram")
    return _png(fig)


def write_audit(result: AuditResult, out: str | Path) -> tuple[Path, Path]:
    """Write ``out/audit.json`` and a self-contained ``out/audit.html`` (figures embedded); return both paths.

    ``result`` comes from :func:`audit` (it holds the sampled texts and scores the plots need).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    samples: _Samples = result.samples
    figs = _figures(result, samples.corpus, samples.reference, samples.scores)
    ppl = _perplexity_figure(result, samples.perplexities)
    if ppl:
        figs["perplexity"] = ppl
    data = result.to_json()
    json_path, html_path = out / "audit.json", out / "audit.html"
    write_json_atomic(json_path, data)
    esc = html.escape
    parts = ["<!doctype html><meta charset='utf-8'><title>provkit audit</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:auto}td,th{padding:2px 8px}</style>",
             f"<h1>Audit of {esc(result.dataset)}</h1>",
             f"<p>{result.records:,} records ({result.sampled:,} sampled for the text metrics)"
             + (f"; reference {esc(result.reference)}" if result.reference else "") + "</p>", "<h2>Findings</h2><ol>"]
    for f in result.findings:
        parts.append(f"<li>{esc(f['finding'])} <a href='#{esc(f['figure'])}'>[figure]</a></li>")
    parts.append("</ol>")
    for name, png in figs.items():
        parts.append(f"<h2 id='{esc(name)}'>{esc(name)}</h2><img src='data:image/png;base64,{png}'>")
    parts.append(f"<h2>All figures</h2><pre>{esc(json.dumps(data, indent=2))}</pre>")
    write_bytes_atomic(html_path, "\n".join(parts).encode())
    return json_path, html_path
