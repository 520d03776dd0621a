"""Detectors on provkit datasets: labels from ``origin``, evaluation, and scoring into a new dataset.

Labels: ``origin == "human"`` is 0, ``origin == "model"`` is 1; ``unknown``
and ``mixed`` records are not labels (skipped for training and evaluation).
Scoring streams the input batch by batch and writes a new dataset (parents =
[input]) with a ``detector_score`` column = calibrated P(model); with ``tag``,
records whose origin is ``unknown`` get ``origin`` = model when the score is at
or above the threshold (else human), ``origin_evidence`` = detector and
``origin_confidence`` = the calibrated probability of the assigned class
(``p`` for model, ``1 - p`` for human).  Every other column is copied as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from provkit.filters.detector.base import DetectorConfig, Detector, TrainedDetector, train_detector
from provkit.filters.detector.metrics import DetectorMetrics
from provkit.filters.detector.params import Progress
from provkit.filters.step import append_columns
from provkit.core.atomic import sha256_file
from provkit.provenance import Activity, Dataset, DatasetWriter, Evidence, Origin

LABELS = {Origin.HUMAN.value: 0, Origin.MODEL.value: 1}
SCORE_COLUMN = "detector_score"


@dataclass(frozen=True)
class LabelledTexts:
    """The human/model records of a dataset: texts, labels (0 human, 1 model), ids."""

    texts: list[str]
    labels: np.ndarray
    ids: list[str]
    skipped: int  # records with origin unknown / mixed


def labelled_texts(dataset: Dataset, batch_size: int = 8192) -> LabelledTexts:
    """Read the labelled records of ``dataset`` (streaming its ``id``, ``text``, ``origin`` columns)."""
    texts: list[str] = []
    labels: list[int] = []
    ids: list[str] = []
    skipped = 0
    for batch in dataset.iter_batches(columns=["id", "text", "origin"], batch_size=batch_size):
        for ident, text, origin in zip(*(batch.column(c).to_pylist() for c in ("id", "text", "origin"))):
            label = LABELS.get(origin)
            if label is None:
                skipped += 1
                continue
            texts.append(text)
            labels.append(label)
            ids.append(ident)
    return LabelledTexts(texts, np.asarray(labels, dtype=np.int64), ids, skipped)


def read_labelled(paths: str | Path | Sequence[str | Path]) -> LabelledTexts:
    """:func:`labelled_texts` of one dataset or of several, concatenated in the given order."""
    parts = [labelled_texts(Dataset.open(p)) for p in _as_paths(paths)]
    return LabelledTexts(
        [t for part in parts for t in part.texts],
        np.concatenate([part.labels for part in parts]) if parts else np.zeros(0, dtype=np.int64),
        [i for part in parts for i in part.ids],
        sum(part.skipped for part in parts),
    )


def _as_paths(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    return [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]


def _dataset_ref(path: Path) -> dict[str, Any]:
    ref: dict[str, Any] = {"path": str(path.resolve())}
    manifest = path / "manifest.json"
    if manifest.exists():
        ref["manifest_sha256"] = sha256_file(manifest)
    return ref


def train_detector_on_dataset(paths: str | Path | Sequence[str | Path], config: DetectorConfig = DetectorConfig(),
                              progress: Progress | None = None, data: LabelledTexts | None = None) -> TrainedDetector:
    """Train on the human/model records of one or more datasets (held-out split inside).

    ``data``: their :func:`read_labelled` when the caller has read them already.
    """
    data = data if data is not None else read_labelled(paths)
    trained = train_detector(data.texts, data.labels, config, progress)
    trained.detector.info["datasets"] = [_dataset_ref(p) for p in _as_paths(paths)]
    trained.detector.info["skipped_unlabelled"] = data.skipped
    return trained


def evaluate_detector_on_dataset(detector: Detector, paths: str | Path | Sequence[str | Path],
                                 threshold: float | None = None, progress: Progress | None = None) -> DetectorMetrics:
    """Figures of ``detector`` on every human/model record of one or more datasets."""
    data = read_labelled(paths)
    return detector.evaluate(data.texts, data.labels, progress, threshold)


@dataclass(frozen=True)
class ScoreSummary:
    """What :func:`score_dataset` wrote."""

    out: Path
    rows: int
    mean_score: float | None  # None for an empty input
    tagged_model: int
    tagged_human: int

    def to_json(self) -> dict[str, Any]:
        return {"out": str(self.out), "rows": self.rows, "mean_score": self.mean_score,
                "tagged_model": self.tagged_model, "tagged_human": self.tagged_human}


def tag_unknown(batch: pa.RecordBatch, p: np.ndarray, threshold: float) -> tuple[pa.RecordBatch, int, int]:
    """Set origin / evidence / confidence of the ``unknown`` rows from scores ``p``.

    Returns the new batch and how many rows became model and human.
    """
    origin = batch.column("origin").cast(pa.string())
    unknown = pc.equal(origin, Origin.UNKNOWN.value).fill_null(False)
    is_model = p >= threshold
    assigned = pa.array(np.where(is_model, Origin.MODEL.value, Origin.HUMAN.value), type=pa.string())
    confidence = pa.array(np.where(is_model, p, 1.0 - p), type=pa.float32())
    replaced = {
        "origin": pc.if_else(unknown, assigned, origin),
        "origin_evidence": pc.if_else(unknown, pa.scalar(Evidence.DETECTOR.value),
                                      batch.column("origin_evidence").cast(pa.string())),
        "origin_confidence": pc.if_else(unknown, confidence, batch.column("origin_confidence").cast(pa.float32())),
    }
    arrays = [replaced.get(name, batch.column(i)) for i, name in enumerate(batch.schema.names)]
    mask = np.asarray(unknown.to_numpy(zero_copy_only=False), dtype=bool)
    n_model = int((mask & is_model).sum())
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names), n_model, int(mask.sum()) - n_model


def score_batch(detector: Detector, batch: pa.RecordBatch, progress: Progress | None = None) -> pa.RecordBatch:
    """``batch`` with ``detector_score`` (float32 calibrated P(model)) appended or replaced."""
    p = detector.predict_proba(batch.column("text").to_pylist(), progress)
    return append_columns(batch, {SCORE_COLUMN: pa.array(p, type=pa.float32())})


def score_dataset(detector: Detector, src: str | Path, out: str | Path, *, tag: bool = False,
                  threshold: float | None = None, detector_path: str | Path | None = None,
                  batch_size: int = 1024, progress: Progress | None = None) -> ScoreSummary:
    """Write ``out``: the records of ``src`` with ``detector_score`` (and, with ``tag``, origins for unknowns)."""
    src, out = Path(src), Path(out)
    dataset = Dataset.open(src)
    t = detector.threshold if threshold is None else threshold
    params: dict[str, Any] = {"detector": None, "kind": detector.kind, "tag": tag, "threshold": t}
    if detector_path is not None:  # which detector scored the records, by path and content
        doc = Path(detector_path) / "detector.json"
        params.update(detector=str(Path(detector_path).resolve()),
                      detector_sha256=sha256_file(doc) if doc.is_file() else None)
    rows, total, n_model, n_human = 0, 0.0, 0, 0
    with DatasetWriter(out, Activity("detector-score", params, used=[str(src.resolve())]), parents=[src]) as writer:
        for batch in dataset.iter_batches(batch_size=batch_size):
            scored = score_batch(detector, batch, progress)
            p = scored.column(SCORE_COLUMN).to_numpy().astype(np.float64)
            if tag:
                scored, m, h = tag_unknown(scored, p, t)
                n_model, n_human = n_model + m, n_human + h
            writer.write(scored)
            rows += batch.num_rows
            total += float(p.sum())
    return ScoreSummary(out, rows, total / rows if rows else None, n_model, n_human)
