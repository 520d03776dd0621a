"""Human-vs-model text detectors: ``ngram``, ``lm`` and ``embedding`` kinds behind one interface.

Typical use (the pipeline's detector step does the same)::

    det = load_detector("DET")                 # JSON + safetensors, no pickle
    p = det.predict_proba(texts)                # calibrated P(model), np.ndarray

    trained = train_detector(texts, labels, DetectorConfig(kind="ngram"))
    trained.heldout.auroc; save_detector(trained.detector, "DET")
"""

from provkit.filters.detector.base import (
    KINDS,
    Detector,
    DetectorConfig,
    Featurizer,
    LinearHead,
    TrainedDetector,
    fit_linear_head,
    train_detector,
)
from provkit.filters.detector.dataset import (
    LABELS,
    SCORE_COLUMN,
    LabelledTexts,
    ScoreSummary,
    evaluate_detector_on_dataset,
    labelled_texts,
    read_labelled,
    score_batch,
    score_dataset,
    tag_unknown,
    train_detector_on_dataset,
)
from provkit.filters.detector.embedding import load_sentence_encoder, resolve_embedding_model
from provkit.filters.detector.metrics import (
    DetectorMetrics,
    detector_metrics,
    expected_calibration_error,
    tpr_at_fpr,
)
from provkit.filters.detector.params import DetectorError
from provkit.filters.detector.serialize import load_detector, save_detector

__all__ = [
    "load_sentence_encoder", "resolve_embedding_model",
    "KINDS", "Detector", "DetectorConfig", "Featurizer", "LinearHead", "TrainedDetector", "fit_linear_head",
    "train_detector",
    "LABELS", "SCORE_COLUMN", "LabelledTexts", "ScoreSummary", "evaluate_detector_on_dataset", "labelled_texts", "read_labelled",
    "score_batch", "score_dataset", "tag_unknown", "train_detector_on_dataset",
    "DetectorMetrics", "detector_metrics", "expected_calibration_error", "tpr_at_fpr",
    "DetectorError", "load_detector", "save_detector",
]
