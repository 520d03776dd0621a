"""Watermarks over datasets: detect into annotation columns, tag origins on ingest, watermark a share of generators.

* :func:`detect_dataset` - ``prov detector watermark DS --model M --key-file K [--z 4] [--out DS2]``:
  scores every record (:data:`provkit.lm.watermark.COLUMNS`), writes them as annotation
  columns of a new dataset (origin columns untouched) and counts records at or above ``z``.
* :class:`WatermarkTagger` - the :class:`provkit.provenance.annotate.RecordAnnotator` that
  ``prov ingest --watermark-model M --watermark-key-file K`` hands to ingest: records with
  ``z >= threshold`` become ``origin=model``, ``origin_evidence=watermark``,
  ``origin_confidence = 1 - p``; the others keep what they had.
* :func:`watermark_share` / :func:`generate_with_share` - the provenance-lost scenario's
  crawl: a configurable share of the model text comes from generators that watermark.

Stored fingerprints (``generator.decoding`` -> ``"watermark"``) are compared with the
scorer's: another key id, tokenizer or green-list parameters is one clear warning line,
not a silent "human".
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from provkit.core.hashing import seeded_uniform
from provkit.core.progress import Advance, quiet_advance
from provkit.errors import ConfigError
from provkit.lm.generate import DecodingConfig, generate_continuations
from provkit.lm.watermark import (
    COLUMNS,
    DEFAULT_MIN_TOKENS,
    DEFAULT_Z,
    WatermarkConfig,
    WatermarkScorer,
    WatermarkScores,
    load_scorer,
    read_key,
)
from provkit.provenance import Activity, Dataset, DatasetWriter, Evidence, Origin
from provkit.provenance.annotate import retag

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def record_fingerprints(batch: pa.RecordBatch | pa.Table) -> list[dict[str, Any]]:
    """The distinct watermark fingerprints stored in the ``generator.decoding`` JSON of ``batch``."""
    if "generator" not in batch.schema.names:
        return []
    decoding = pc.struct_field(batch.column("generator"), "decoding")
    seen: dict[str, dict[str, Any]] = {}
    for text in pc.unique(pc.drop_null(decoding)).to_pylist():
        try:
            fp = json.loads(text).get("watermark")
        except (json.JSONDecodeError, AttributeError):
            continue
        if isinstance(fp, dict):
            seen.setdefault(json.dumps(fp, sort_keys=True), fp)
    return list(seen.values())


def watermark_batch(scorer: WatermarkScorer, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, WatermarkScores]:
    """``batch`` with the watermark annotation columns appended (replacing same-named ones), and the scores."""
    scores = scorer.score_texts(batch.column("text").to_pylist())
    keep = [n for n in batch.schema.names if n not in COLUMNS]
    cols = scores.columns()
    arrays = [batch.column(n) for n in keep] + list(cols.values())
    return pa.RecordBatch.from_arrays(arrays, names=keep + list(cols)), scores


@dataclass
class WatermarkSummary:
    """What a watermark detection found; ``scored + too_short == rows``."""

    rows: int = 0
    scored: int = 0
    too_short: int = 0
    above: int = 0
    z_threshold: float = DEFAULT_Z
    min_tokens: int = 0
    key_id: str = ""
    tokenizer_hash: str = ""
    mean_z: float | None = None
    out: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Counts:
    """Running counts shared by :func:`detect_dataset` and :class:`WatermarkTagger`."""

    def __init__(self, scorer: WatermarkScorer, z_threshold: float):
        self.scorer = scorer
        self.summary = WatermarkSummary(z_threshold=z_threshold, min_tokens=scorer.min_tokens, key_id=scorer.key_id,
                                        tokenizer_hash=scorer.tokenizer_hash)
        self.fingerprints: dict[str, dict[str, Any]] = {}
        self.z_sum = 0.0

    def add(self, batch: pa.RecordBatch, scores: WatermarkScores) -> np.ndarray:
        s = self.summary
        above = scores.above(s.z_threshold)
        short = scores.too_short
        s.rows += len(scores)
        s.too_short += int(short.sum())
        s.scored += int((~short).sum())
        s.above += int(above.sum())
        self.z_sum += float(np.nansum(scores.z))
        s.mean_z = self.z_sum / s.scored if s.scored else None
        for fp in record_fingerprints(batch):
            self.fingerprints.setdefault(json.dumps(fp, sort_keys=True), fp)
        return above

    def finish(self) -> WatermarkSummary:
        s = self.summary
        s.warnings = self.scorer.check_fingerprints(self.fingerprints.values())
        if s.scored and not s.above and not s.warnings:
            s.warnings.append(f"no record reached z >= {s.z_threshold:g}: if these records were watermarked, the key "
                              f"(id {s.key_id}) or the tokenizer (hash {s.tokenizer_hash}) is not the generator's")
        return s


def detect_dataset(scorer: WatermarkScorer, src: str | Path, out: str | Path | None = None, *,
                   z_threshold: float = DEFAULT_Z, batch_size: int = 1024,
                   progress: Advance = quiet_advance) -> WatermarkSummary:
    """Score every record of ``src``; with ``out``, write its records plus the :data:`COLUMNS` (parent: ``src``).

    The activity records the scorer's fingerprint and threshold, never the key.
    """
    src = Path(src)
    dataset = Dataset.open(src)
    counts = _Counts(scorer, z_threshold)
    params = {"model": scorer.model, "watermark": scorer.fingerprint, "z_threshold": z_threshold,
              "min_tokens": scorer.min_tokens}
    writer = None
    if out is not None:
        writer = DatasetWriter(out, Activity("watermark-detect", params, used=[str(src.resolve())]), parents=[src])
    with writer or contextlib.nullcontext():
        for batch in dataset.iter_batches(batch_size=batch_size):
            scored, scores = watermark_batch(scorer, batch)
            counts.add(batch, scores)
            if writer is not None:
                writer.write(scored)
            progress(batch.num_rows)
    summary = counts.finish()
    summary.out = str(out) if out is not None else None
    return summary


class WatermarkTagger:
    """Ingest annotator: records with ``z >= z_threshold`` -> ``origin=model``, evidence ``watermark``, confidence ``1 - p``.

    Implements :class:`provkit.provenance.annotate.RecordAnnotator`; records below the
    threshold, and too-short ones, keep their origin.  ``summary()`` counts what it tagged
    and which origins it overrode.
    """

    name = "watermark"

    def __init__(self, scorer: WatermarkScorer, z_threshold: float = DEFAULT_Z):
        self.scorer = scorer
        self.counts = _Counts(scorer, z_threshold)
        self.overrode: Counter[str] = Counter()

    def params(self) -> dict[str, Any]:
        return {"model": self.scorer.model, "watermark": self.scorer.fingerprint,
                "z_threshold": self.counts.summary.z_threshold, "min_tokens": self.scorer.min_tokens}

    def annotate(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        scores = self.scorer.score_texts(batch.column("text").to_pylist())
        above = self.counts.add(batch, scores)
        if above.any():
            before = batch.column("origin").dictionary_decode().cast(pa.string()).to_numpy(zero_copy_only=False)
            self.overrode.update(str(o) for o in before[above] if o != Origin.MODEL.value)
        return retag(batch, above, Origin.MODEL.value, Evidence.WATERMARK.value, 1.0 - np.nan_to_num(scores.p, nan=1.0))

    def summary(self) -> dict[str, Any]:
        s = self.counts.finish().to_json()
        s.pop("out", None)
        s["tagged"] = s.pop("above")
        s["overrode"] = dict(self.overrode)
        return s


def build_tagger(model: str | None, key_file: str | Path | None = None, key_env: str | None = None,
                 z_threshold: float = DEFAULT_Z, min_tokens: int = DEFAULT_MIN_TOKENS) -> WatermarkTagger | None:
    """The ingest tagger for ``--watermark-model/--watermark-key-file/--watermark-key-env`` (None when none is given)."""
    if model is None:
        if key_file is not None or key_env is not None:
            raise ConfigError("--watermark-key-file/--watermark-key-env: also give --watermark-model (the generator)")
        return None
    key = read_key(key_file, key_env, file_flag="--watermark-key-file", env_flag="--watermark-key-env")
    config = WatermarkConfig(key_file=str(key_file) if key_file is not None else None, key_env=key_env)
    return WatermarkTagger(load_scorer(model, config, key=key, min_tokens=min_tokens), z_threshold)


# ---------------------------------------------------------------- the scenario's crawl
def watermark_share(ids: Sequence[str], share: float, seed: int = 0) -> np.ndarray:
    """Which records come from a watermarking generator: ``seeded_uniform(id, seed) < share`` (reproducible)."""
    if not 0.0 <= share <= 1.0:
        raise ConfigError(f"watermark share: must be in [0, 1], got {share}")
    return seeded_uniform(list(ids), seed, "watermark-share") < share


def generate_with_share(model: PreTrainedModel, prompts: Sequence[Sequence[int]], decoding: DecodingConfig,
                        watermark: WatermarkConfig, share: float, *, ids: Sequence[str], pad_id: int,
                        eos_id: int | None, seed: int = 0, batch_size: int = 32,
                        watermark_seed: int | None = None) -> tuple[list[list[int]], np.ndarray]:
    """Continuations where a ``share`` of the prompts (by :func:`watermark_share` of ``ids`` at ``seed``) are watermarked.

    Returns ``(new tokens per prompt, watermarked mask)``; ``decoding.watermark`` is ignored
    (``watermark`` is used for the watermarked share, none for the rest).  The plain prompts
    are generated in one call seeded ``seed`` (so ``share = 0`` is ``generate_continuations``
    at ``seed``, token for token), the watermarked ones in one seeded ``watermark_seed``
    (default ``seed + 1``).
    """
    mask = watermark_share(ids, share, seed)
    out: list[list[int]] = [[] for _ in prompts]
    for on in (False, True):
        rows = np.flatnonzero(mask == on)
        if not len(rows):
            continue
        dec = DecodingConfig(**{**{k: getattr(decoding, k) for k in decoding.__dataclass_fields__},
                                "watermark": watermark if on else None})
        run_seed = (seed + 1 if watermark_seed is None else watermark_seed) if on else seed
        new = generate_continuations(model, [prompts[i] for i in rows], dec, pad_id=pad_id, eos_id=eos_id,
                                     batch_size=batch_size, seed=run_seed)
        for i, toks in zip(rows, new):
            out[i] = toks
    return out, mask
