"""How well a detector separates human (label 0) from model text (label 1).

All figures take ``y`` (0 = human, 1 = model) and ``p`` = the detector's
calibrated P(model | text):

* **AUROC** — probability that a random model text scores above a random
  human text (ties count half); ``sklearn.metrics.roc_auc_score``.
* **TPR at x % FPR** — the largest true-positive rate (share of model texts
  caught) over ROC operating points whose false-positive rate (share of human
  texts flagged) is at most x %; points from ``sklearn.metrics.roc_curve``.
* **ECE** (expected calibration error) — with ``B`` equal-width bins of ``p``
  on [0, 1], ``ECE = sum_b (n_b / N) * |mean(y in b) - mean(p in b)|``: the
  average gap between predicted and observed model share.
* **confusion** at ``threshold``: predict "model" when ``p >= threshold``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from provkit.errors import InputError


@dataclass(frozen=True)
class DetectorMetrics:
    """Held-out or evaluation figures of a detector (JSON-ready through :meth:`to_json`)."""

    auroc: float
    tpr_at_1pct_fpr: float
    tpr_at_5pct_fpr: float
    ece: float
    threshold: float
    accuracy: float
    true_negative: int
    false_positive: int
    false_negative: int
    true_positive: int
    n_human: int
    n_model: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def tpr_at_fpr(y: np.ndarray, p: np.ndarray, max_fpr: float) -> float:
    """Largest TPR among ROC points with FPR <= ``max_fpr``."""
    from sklearn.metrics import roc_curve  # lazy: scikit-learn costs ~1.5 s to import

    fpr, tpr, _ = roc_curve(y, p)
    ok = fpr <= max_fpr + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """``sum_b (n_b/N) |mean(y_b) - mean(p_b)|`` over ``bins`` equal-width bins of ``p``."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    counts = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, weights=y, minlength=bins) - np.bincount(which, weights=p, minlength=bins))
    return float(gap.sum() / max(len(p), 1)) if counts.sum() else 0.0


def detector_metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> DetectorMetrics:
    """All figures of :class:`DetectorMetrics` for labels ``y`` and scores ``p``.

    Raises :class:`InputError` when one of the two classes is absent (AUROC is undefined).
    """
    from sklearn.metrics import confusion_matrix, roc_auc_score  # lazy: scikit-learn costs ~1.5 s to import

    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    n_model = int(y.sum())
    n_human = int(len(y) - n_model)
    if n_model == 0 or n_human == 0:
        raise InputError(
            f"evaluation needs both human and model records; found {n_human} human and {n_model} model "
            f"(records with origin unknown/mixed are not labels)"
        )
    pred = (p >= threshold).astype(np.int64)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, pred, labels=[0, 1]).ravel())
    return DetectorMetrics(
        auroc=float(roc_auc_score(y, p)),
        tpr_at_1pct_fpr=tpr_at_fpr(y, p, 0.01),
        tpr_at_5pct_fpr=tpr_at_fpr(y, p, 0.05),
        ece=expected_calibration_error(y, p),
        threshold=float(threshold),
        accuracy=(tn + tp) / len(y),
        true_negative=tn,
        false_positive=fp,
        false_negative=fn,
        true_positive=tp,
        n_human=n_human,
        n_model=n_model,
    )
