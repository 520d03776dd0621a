"""Human-vs-model text detectors: ``ngram``, ``lm``, ``embedding`` and ``zeroshot`` kinds behind one interface.

Typical use (the pipeline's detector step does the same)::

    det = load_detector("DET")                 # JSON + safetensors, no pickle
    p = det.predict_proba(texts)                # calibrated P(model), np.ndarray
    t = det.threshold_at(0.01)                  # threshold at 1 % FPR on held-out human text
    flagged = det.decision_function(texts) > t.threshold

    trained = train_detector(texts, labels, DetectorConfig(kind="ngram"))
    trained.heldout.auroc; save_detector(trained.detector, "DET")
    recal = calibrate_detector(det, read_labelled("MY_HUMAN_DS"))   # new thresholds, same weights
"""

from provkit.filters.detector.base import (
    KINDS,
    grouped_split,
    Detector,
    DetectorConfig,
    Featurizer,
    LinearHead,
    TrainedDetector,
    fit_linear_head,
    train_detector,
)
from provkit.filters.detector.breakdown import MIN_RECORDS, Breakdown, breakdown_report, decoding_label, plot_roc
from provkit.filters.detector.calibration import (
    FPR_TARGETS,
    Calibration,
    ProbabilityMap,
    Threshold,
    fpr_label,
    length_bucket,
    token_length,
)
from provkit.filters.detector.dataset import (
    LABELS,
    Decider,
    Evaluation,
    evaluate_with_breakdown,
    calibrate_detector,
    calibrate_detector_on_dataset,
    decide_batch,
    RAW_COLUMN,
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
from provkit.filters.detector.serialize import detector_fingerprint, load_detector, save_detector
from provkit.filters.detector.spans import (
    WINDOW_STRIDE,
    WINDOW_WORDS,
    SpanVerdict,
    span_verdict,
    window_bounds,
    window_scores,
)
from provkit.filters.detector.zeroshot import CRITERIA, ZeroShotFeaturizer

__all__ = [
    "load_sentence_encoder", "resolve_embedding_model",
    "KINDS", "Detector", "DetectorConfig", "Featurizer", "LinearHead", "TrainedDetector", "fit_linear_head",
    "train_detector",
    "LABELS", "RAW_COLUMN", "SCORE_COLUMN", "LabelledTexts", "ScoreSummary", "evaluate_detector_on_dataset", "labelled_texts", "read_labelled",
    "score_batch", "score_dataset", "tag_unknown", "train_detector_on_dataset",
    "DetectorMetrics", "detector_metrics", "expected_calibration_error", "tpr_at_fpr",
    "DetectorError", "load_detector", "save_detector", "detector_fingerprint",
    "grouped_split", "MIN_RECORDS", "fpr_label", "Breakdown", "breakdown_report", "decoding_label", "plot_roc",
    "FPR_TARGETS", "Calibration", "ProbabilityMap", "Threshold", "length_bucket", "token_length",
    "Decider", "Evaluation", "evaluate_with_breakdown", "calibrate_detector", "calibrate_detector_on_dataset", "decide_batch",
    "WINDOW_STRIDE", "WINDOW_WORDS", "SpanVerdict", "span_verdict", "window_bounds", "window_scores", "CRITERIA", "ZeroShotFeaturizer",
]
