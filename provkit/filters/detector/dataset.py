"""Detectors on provkit datasets: labels from ``origin``, evaluation, calibration, and scoring into a new dataset.

Labels: ``origin == "human"`` is 0, ``origin == "model"`` is 1; ``unknown``
and ``mixed`` records are not labels (skipped for training and evaluation).

Scoring streams the input batch by batch and writes a new dataset (parents =
[input]) with annotation columns (origin columns are never rewritten, except
by ``tag`` as below):

* ``detector_score``      float32, the calibrated P(model) (the calibration's probability map);
* ``detector_raw``        float64, the raw score the thresholds compare against;
* ``detector_decision``   ``model`` / ``human`` (``mixed`` with spans): raw score
  above the calibrated threshold at ``fpr`` (or, with an explicit probability
  ``threshold``, ``detector_score >= threshold``);
* ``detector_fpr``        float32, the target FPR of that decision (null with an explicit ``threshold``);
* ``detector_threshold``  float64, the threshold used (raw-score scale; the
  ``detector_score`` scale with an explicit ``threshold``);
* ``detector_id``         the detector's fingerprint (sha256 of its ``detector.json``);
* ``detector_spans``      (with ``spans``) list of ``{start, end, score}``: the
  model-written character ranges from sliding-window scores (see :mod:`.spans`).

With ``tag``, records whose origin is ``unknown`` get ``origin`` = the decision
(``model``, ``human``, or ``mixed`` with spans), ``origin_evidence`` = detector
and ``origin_confidence`` = the calibrated probability of the assigned class
(``p`` for model, ``1 - p`` for human, null for mixed).  Every other column is copied as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from provkit.filters.detector.base import (
    DetectorConfig,
    Detector,
    TrainedDetector,
    calibrate_scores,
    train_detector,
)
from provkit.filters.detector.breakdown import MIN_RECORDS, Breakdown, breakdown_report, decoding_label, group_masks, plot_roc
from provkit.filters.detector.calibration import FPR_TARGETS, ProbabilityMap, token_length
from provkit.filters.detector.metrics import DetectorMetrics, detector_metrics
from provkit.filters.detector.params import DetectorError, Progress
from provkit.filters.detector.serialize import detector_fingerprint
from provkit.filters.detector.spans import MIN_RUN, WINDOW_STRIDE, WINDOW_WORDS, span_verdict, window_scores
from provkit.filters.step import append_columns
from provkit.core.atomic import sha256_file
from provkit.provenance import Activity, Dataset, DatasetWriter, Evidence, Origin, content_hash

LABELS = {Origin.HUMAN.value: 0, Origin.MODEL.value: 1}
SCORE_COLUMN = "detector_score"
RAW_COLUMN = "detector_raw"


@dataclass(frozen=True)
class LabelledTexts:
    """The human/model records of a dataset: texts, labels (0 human, 1 model), ids, and what calibration and
    breakdowns need (content hashes, dataset names, generator structs)."""

    texts: list[str]
    labels: np.ndarray
    ids: list[str]
    skipped: int  # records with origin unknown / mixed
    hashes: list[str] = field(default_factory=list)
    datasets: list[str | None] = field(default_factory=list)
    generators: list[dict[str, Any] | None] = field(default_factory=list)


COLUMNS_READ = ("id", "text", "origin", "content_hash", "dataset", "generator")


def labelled_texts(dataset: Dataset, batch_size: int = 8192) -> LabelledTexts:
    """Read the labelled records of ``dataset`` (streaming the columns of :data:`COLUMNS_READ`)."""
    present = set(dataset.schema().names) if dataset.schema() is not None else set()
    columns = [c for c in COLUMNS_READ if c in present or c in ("id", "text", "origin")]
    out: dict[str, list[Any]] = {c: [] for c in COLUMNS_READ}
    labels: list[int] = []
    skipped = 0
    for batch in dataset.iter_batches(columns=columns, batch_size=batch_size):
        values = {c: batch.column(c).to_pylist() for c in columns}
        for i, origin in enumerate(values["origin"]):
            label = LABELS.get(origin)
            if label is None:
                skipped += 1
                continue
            labels.append(label)
            for c in COLUMNS_READ:
                out[c].append(values[c][i] if c in values else None)
    hashes = [h if h is not None else content_hash(t) for h, t in zip(out["content_hash"], out["text"])]
    return LabelledTexts(out["text"], np.asarray(labels, dtype=np.int64), out["id"], skipped, hashes,
                         out["dataset"], out["generator"])


def read_labelled(paths: str | Path | Sequence[str | Path]) -> LabelledTexts:
    """:func:`labelled_texts` of one dataset or of several, concatenated in the given order."""
    parts = [labelled_texts(Dataset.open(p)) for p in _as_paths(paths)]
    return LabelledTexts(
        [t for part in parts for t in part.texts],
        np.concatenate([part.labels for part in parts]) if parts else np.zeros(0, dtype=np.int64),
        [i for part in parts for i in part.ids],
        sum(part.skipped for part in parts),
        [h for part in parts for h in part.hashes],
        [d for part in parts for d in part.datasets],
        [g for part in parts for g in part.generators],
    )


def _as_paths(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    return [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]


def _dataset_ref(path: Path) -> dict[str, Any]:
    ref: dict[str, Any] = {"path": str(path.resolve())}
    manifest = path / "manifest.json"
    if manifest.exists():
        ref["manifest_sha256"] = sha256_file(manifest)
    return ref


def model_decodings(data: LabelledTexts) -> dict[str, int]:
    """Model records per generator decoding (``decoding_label``); a detector trained on one decoding
    generalises poorly to others (see the README's cross-decoding figures)."""
    counts: dict[str, int] = {}
    for label, gen in zip(data.labels, data.generators or [None] * len(data.labels)):
        if label == 1:
            key = decoding_label((gen or {}).get("decoding"))
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def train_detector_on_dataset(paths: str | Path | Sequence[str | Path], config: DetectorConfig = DetectorConfig(),
                              progress: Progress | None = None, data: LabelledTexts | None = None) -> TrainedDetector:
    """Train on the human/model records of one or more datasets (held-out split inside).

    ``data``: their :func:`read_labelled` when the caller has read them already.
    """
    data = data if data is not None else read_labelled(paths)
    trained = train_detector(data.texts, data.labels, config, progress, groups=data.hashes or None,
                             datasets=data.datasets or None)
    trained.detector.info["datasets"] = [_dataset_ref(p) for p in _as_paths(paths)]
    trained.detector.info["skipped_unlabelled"] = data.skipped
    trained.detector.info["model_decodings"] = model_decodings(data)
    return trained


@dataclass(frozen=True)
class Evaluation:
    """A detector's figures on labelled records: metrics on P(model), the breakdowns on the raw score."""

    metrics: DetectorMetrics
    breakdown: Breakdown
    raw: np.ndarray
    data: LabelledTexts

    def plot(self, path: str | Path, title: str = "detector ROC") -> Path:
        """ROC PNG: all model records, and each decoding with enough records."""
        keys = [decoding_label((g or {}).get("decoding")) for g in self.data.generators] or ["(none)"] * len(self.raw)
        return plot_roc(path, self.data.labels, self.raw, group_masks(keys, self.data.labels,
                                                                      self.breakdown.doc["min_records"]), title)


def evaluate_with_breakdown(detector: Detector, data: LabelledTexts, *, threshold: float | None = None,
                            min_records: int = MIN_RECORDS, progress: Progress | None = None) -> Evaluation:
    """:class:`Evaluation` of ``detector`` on ``data`` (each text scored once)."""
    raw = detector.decision_function(data.texts, progress)
    metrics = detector_metrics(data.labels, detector.probability(raw),
                               detector.threshold if threshold is None else threshold)
    breakdown = breakdown_report(data.labels, raw, lengths=[token_length(t) for t in data.texts],
                                 generators=data.generators or None, calibration=detector.calibration,
                                 min_records=min_records)
    return Evaluation(metrics, breakdown, raw, data)


def evaluate_detector_on_dataset(detector: Detector, paths: str | Path | Sequence[str | Path],
                                 threshold: float | None = None, progress: Progress | None = None) -> DetectorMetrics:
    """Figures of ``detector`` on every human/model record of one or more datasets."""
    data = read_labelled(paths)
    return detector.evaluate(data.texts, data.labels, progress, threshold)


def calibrate_detector(detector: Detector, data: LabelledTexts, *, targets: Sequence[float] | None = None,
                       probability: str | None = None, source: str = "", progress: Progress | None = None,
                       info: dict[str, Any] | None = None) -> Detector:
    """A copy of ``detector`` recalibrated on ``data``: same featurizer and weights, new thresholds.

    Thresholds come from the human records (none -> an error).  The probability
    map is refitted (``probability``: platt | isotonic; default the detector's
    method) when ``data`` has at least 4 human and 4 model records; with human
    records only it is kept, except for a ``human-quantile`` map, which is
    refitted on the new human text.  The recalibrated detector records the
    fingerprint of the one it came from.
    """
    if not (data.labels == 0).any():
        raise DetectorError(f"{source or 'calibration data'}: no human (origin=human) records to calibrate on")
    old = detector.calibration
    targets = tuple(targets) if targets else (old.targets if old else FPR_TARGETS)
    counts = np.bincount(data.labels, minlength=2)
    method = probability or (old.probability.method if old else "platt")
    if method == "human-quantile" or counts.min() >= 4:
        prob: ProbabilityMap | str = method
    elif probability is not None:
        raise DetectorError(f"--probability {probability}: fitting it needs at least 4 human and 4 model records; "
                            f"{source} has {counts[0]} human and {counts[1]} model")
    else:
        prob = old.probability if old else ProbabilityMap("platt", a=detector.head.platt_a, b=detector.head.platt_b)
    raw = detector.decision_function(data.texts, progress)
    windows = old.windows if old else None
    recal = Detector(detector.featurizer, detector.head, detector.threshold, dict(detector.info))
    recal.calibration = calibrate_scores(
        recal, data.texts, data.labels, raw, probability=prob, targets=targets, source=source,
        datasets=data.datasets or None, recalibrated_from=detector.fingerprint or detector_fingerprint(detector),
        info=info, **({"window_words": windows.words, "window_stride": windows.stride} if windows else {}))
    return recal


def calibrate_detector_on_dataset(detector: Detector, paths: str | Path | Sequence[str | Path], *,
                                  targets: Sequence[float] | None = None, probability: str | None = None,
                                  progress: Progress | None = None, data: LabelledTexts | None = None) -> Detector:
    """:func:`calibrate_detector` on the labelled records of one or more datasets (their paths are recorded)."""
    data = data if data is not None else read_labelled(paths)
    return calibrate_detector(detector, data, targets=targets, probability=probability,
                              source="prov detector calibrate on " + ", ".join(str(p) for p in _as_paths(paths)),
                              progress=progress, info={"datasets": [_dataset_ref(p) for p in _as_paths(paths)]})


@dataclass(frozen=True)
class ScoreSummary:
    """What :func:`score_dataset` wrote."""

    out: Path
    rows: int
    mean_score: float | None  # None for an empty input
    tagged_model: int
    tagged_human: int
    decisions: dict[str, int] = field(default_factory=dict)
    fpr: float | None = None
    threshold: float | None = None
    detector_id: str = ""
    tagged_mixed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"out": str(self.out), "rows": self.rows, "mean_score": self.mean_score,
                "tagged_model": self.tagged_model, "tagged_human": self.tagged_human,
                "tagged_mixed": self.tagged_mixed, "decisions": self.decisions, "fpr": self.fpr,
                "threshold": self.threshold, "detector_id": self.detector_id}


def tag_unknown(batch: pa.RecordBatch, p: np.ndarray, threshold: float | None = None,
                decisions: Sequence[str] | None = None) -> tuple[pa.RecordBatch, int, int]:
    """Set origin / evidence / confidence of the ``unknown`` rows from scores ``p``.

    The origin assigned is ``decisions`` (model / human / mixed) when given, else
    model where ``p >= threshold``.  Returns the new batch and how many rows became
    model and human (mixed: the rest of the unknown rows).
    """
    origin = batch.column("origin").cast(pa.string())
    unknown = pc.equal(origin, Origin.UNKNOWN.value).fill_null(False)
    if decisions is None:
        if threshold is None:
            raise DetectorError("tag_unknown needs a threshold or decisions")
        decided = np.where(p >= threshold, Origin.MODEL.value, Origin.HUMAN.value)
    else:
        decided = np.asarray(decisions, dtype=object)
    is_model, is_human = decided == Origin.MODEL.value, decided == Origin.HUMAN.value
    assigned = pa.array(decided.tolist(), type=pa.string())
    confidence = pa.array(np.where(is_model, p, 1.0 - p), type=pa.float32(), mask=~(is_model | is_human))
    replaced = {
        "origin": pc.if_else(unknown, assigned, origin),
        "origin_evidence": pc.if_else(unknown, pa.scalar(Evidence.DETECTOR.value),
                                      batch.column("origin_evidence").cast(pa.string())),
        "origin_confidence": pc.if_else(unknown, confidence, batch.column("origin_confidence").cast(pa.float32())),
    }
    arrays = [replaced.get(name, batch.column(i)) for i, name in enumerate(batch.schema.names)]
    mask = np.asarray(unknown.to_numpy(zero_copy_only=False), dtype=bool)
    return (pa.RecordBatch.from_arrays(arrays, names=batch.schema.names), int((mask & is_model).sum()),
            int((mask & is_human).sum()))


def score_batch(detector: Detector, batch: pa.RecordBatch, progress: Progress | None = None) -> pa.RecordBatch:
    """``batch`` with ``detector_score`` (float32 calibrated P(model)) and ``detector_raw`` (float64, the raw
    score the calibrated thresholds compare against) appended or replaced."""
    raw = detector.decision_function(batch.column("text").to_pylist(), progress)
    return append_columns(batch, {SCORE_COLUMN: pa.array(detector.probability(raw), type=pa.float32()),
                                  RAW_COLUMN: pa.array(raw, type=pa.float64())})


SPAN_TYPE = pa.list_(pa.struct([("start", pa.int64()), ("end", pa.int64()), ("score", pa.float64())]))


@dataclass(frozen=True)
class Decider:
    """How :func:`decide_batch` turns scores into decisions: one calibrated FPR or one probability threshold."""

    detector_id: str
    fpr: float | None  # None: decide on detector_score >= probability_threshold
    threshold: float  # raw-score threshold at fpr, or the probability threshold
    window_threshold: float | None = None  # raw-score threshold of windows at fpr (spans)
    spans: bool = False
    min_run: int = MIN_RUN

    @classmethod
    def for_detector(cls, detector: Detector, fpr: float | None = 0.01, threshold: float | None = None,
                     spans: bool = False) -> "Decider":
        """At ``threshold`` (a probability) when given; else at the calibrated threshold for ``fpr``.

        A detector without a calibration decides at its probability threshold.
        """
        ident = detector.fingerprint or detector_fingerprint(detector)
        if threshold is not None or detector.calibration is None:
            return cls(ident, None, detector.threshold if threshold is None else threshold, None, spans)
        doc = detector.threshold_at(fpr if fpr is not None else 0.01)
        win = detector.calibration.windows
        wt = detector.threshold_at(doc.target_fpr, windows=True).threshold if win else doc.threshold
        return cls(ident, doc.target_fpr, doc.threshold, wt, spans)


def decide_batch(detector: Detector, decider: Decider, batch: pa.RecordBatch,
                 progress: Progress | None = None) -> tuple[pa.RecordBatch, np.ndarray, list[str]]:
    """``batch`` with the scoring columns of the module docstring; also returns P(model) and the decisions."""
    texts = batch.column("text").to_pylist()
    raw = detector.decision_function(texts, progress)
    p = detector.probability(raw)
    is_model = raw > decider.threshold if decider.fpr is not None else p >= decider.threshold
    decisions = np.where(is_model, Origin.MODEL.value, Origin.HUMAN.value).astype(object)
    columns: dict[str, Any] = {}
    if decider.spans:
        calib = detector.calibration.windows if detector.calibration else None
        words, stride = (calib.words, calib.stride) if calib else (WINDOW_WORDS, WINDOW_STRIDE)
        bounds, scores = window_scores(texts, detector.decision_function, words, stride)
        spans_col = []
        for i, (text, b, s) in enumerate(zip(texts, bounds, scores)):
            if decider.fpr is None:
                flags = detector.probability(s) >= decider.threshold
            else:
                flags = s > (decider.window_threshold if decider.window_threshold is not None else decider.threshold)
            v = span_verdict(text, b, s, flags, bool(is_model[i]), decider.min_run)
            decisions[i] = v.verdict
            spans_col.append([{"start": a, "end": e, "score": sc} for a, e, sc in v.spans])
        columns["detector_spans"] = pa.array(spans_col, type=SPAN_TYPE)
    n = len(texts)
    columns = {
        SCORE_COLUMN: pa.array(p, type=pa.float32()),
        RAW_COLUMN: pa.array(raw, type=pa.float64()),
        "detector_decision": pa.array(decisions.tolist(), type=pa.string()),
        "detector_fpr": pa.array([decider.fpr] * n, type=pa.float32()),
        "detector_threshold": pa.array([decider.threshold] * n, type=pa.float64()),
        "detector_id": pa.array([decider.detector_id] * n, type=pa.string()),
        **columns,
    }
    return append_columns(batch, columns), p, decisions.tolist()


def score_dataset(detector: Detector, src: str | Path, out: str | Path, *, tag: bool = False,
                  threshold: float | None = None, fpr: float | None = 0.01, spans: bool = False,
                  detector_path: str | Path | None = None, batch_size: int = 1024,
                  progress: Progress | None = None) -> ScoreSummary:
    """Write ``out``: the records of ``src`` with the scoring columns (and, with ``tag``, origins for unknowns).

    Decisions at the calibrated threshold for ``fpr`` (default 1 %), or at the
    probability ``threshold`` when one is given.
    """
    src, out = Path(src), Path(out)
    dataset = Dataset.open(src)
    decider = Decider.for_detector(detector, fpr, threshold, spans)
    params: dict[str, Any] = {"detector": None, "kind": detector.kind, "tag": tag, "fpr": decider.fpr,
                              "threshold": decider.threshold, "detector_id": decider.detector_id, "spans": spans}
    if detector_path is not None:  # which detector scored the records, by path and content
        doc = Path(detector_path) / "detector.json"
        params.update(detector=str(Path(detector_path).resolve()),
                      detector_sha256=sha256_file(doc) if doc.is_file() else None)
    rows, total, n_model, n_human, n_mixed = 0, 0.0, 0, 0, 0
    counts: dict[str, int] = {}
    with DatasetWriter(out, Activity("detector-score", params, used=[str(src.resolve())]), parents=[src]) as writer:
        for batch in dataset.iter_batches(batch_size=batch_size):
            scored, p, decisions = decide_batch(detector, decider, batch, progress)
            if tag:
                before = int(pc.sum(pc.equal(batch.column("origin").cast(pa.string()), Origin.UNKNOWN.value)
                                    .fill_null(False).cast(pa.int64())).as_py() or 0)
                scored, m, h = tag_unknown(scored, p, decisions=decisions)
                n_model, n_human, n_mixed = n_model + m, n_human + h, n_mixed + before - m - h
            for d in decisions:
                counts[d] = counts.get(d, 0) + 1
            writer.write(scored)
            rows += batch.num_rows
            total += float(p.sum())
    return ScoreSummary(out, rows, total / rows if rows else None, n_model, n_human, dict(sorted(counts.items())),
                        decider.fpr, decider.threshold, decider.detector_id, n_mixed)
