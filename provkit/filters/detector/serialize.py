"""Saving and loading detectors without pickle: a directory of JSON + safetensors.

::

    DET/detector.json         format, kind, featurizer settings, head scalars,
                              threshold, training info, the calibration
                              (thresholds at target FPRs, probability map,
                              calibration set; format_version >= 2), sha256 of
                              the weights, and a checksum of this document itself
    DET/weights.safetensors   coef_index (int64), coef_value (float64): the
                              non-zero linear weights; featurizer.* : the
                              featurizer's fitted state, where it has one (the
                              ngram kind's novelty bit sets and standardisation)

Loading parses JSON and a safetensors header (plain data; nothing is
imported, unpickled or executed), checks both checksums and every key, type
and shape, and raises :class:`DetectorError` with one line on any mismatch.
The checksums guard integrity (corruption, edits), not authenticity.

A detector's *fingerprint* is the sha256 of its ``detector.json`` bytes (the
document names the weights by their sha256, so it covers them too); scored
datasets record it beside every score.  Version-1 documents (no calibration)
still load.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as load_safetensors_bytes
from safetensors.numpy import save as save_safetensors_bytes

from provkit.filters.detector.base import KINDS, Detector, Featurizer, LinearHead
from provkit.filters.detector.calibration import Calibration
from provkit.filters.detector.embedding import EmbeddingFeaturizer
from provkit.filters.detector.lm import LMFeaturizer
from provkit.filters.detector.ngram import NgramFeaturizer
from provkit.filters.detector.params import DetectorError
from provkit.core.atomic import publish_dir, write_bytes_atomic
from provkit.filters.detector.zeroshot import ZeroShotFeaturizer

FORMAT = "provkit-detector"
FORMAT_VERSION = 2
DOCUMENT = "detector.json"
WEIGHTS = "weights.safetensors"
MAX_DOCUMENT_BYTES = 16 << 20
HOW_TO_MAKE = "a directory written by `prov detector train`"


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _checksum(doc: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical({k: v for k, v in doc.items() if k != "checksum"})).hexdigest()


def _featurizer_arrays(featurizer: Featurizer) -> dict[str, np.ndarray]:
    """The fitted state a featurizer saves beside the weights (the ngram kind's novelty sets; else none)."""
    arrays = getattr(featurizer, "arrays", None)
    return arrays() if arrays is not None else {}


def _weights_bytes(detector: Detector) -> bytes:
    head = detector.head
    nz = np.flatnonzero(head.coef)
    return save_safetensors_bytes(
        {"coef_index": nz.astype(np.int64), "coef_value": head.coef[nz].astype(np.float64),
         **{f"featurizer.{k}": v for k, v in _featurizer_arrays(detector.featurizer).items()}},
        metadata={"format": FORMAT},
    )


def detector_document(detector: Detector, weights_sha256: str) -> dict[str, Any]:
    """The JSON document describing ``detector`` (checksum included)."""
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": detector.kind,
        "featurizer": detector.featurizer.to_params(),
        "n_features": int(detector.featurizer.n_features),
        "head": {"intercept": detector.head.intercept, "platt_a": detector.head.platt_a,
                 "platt_b": detector.head.platt_b},
        "threshold": float(detector.threshold),
        "info": detector.info,
        "calibration": detector.calibration.to_json() if detector.calibration else None,
        "weights": {"file": WEIGHTS, "sha256": weights_sha256},
    }
    doc["checksum"] = _checksum(doc)
    return doc


def _document_bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=2, allow_nan=False).encode() + b"\n"


def detector_fingerprint(detector: Detector) -> str:
    """sha256 of the ``detector.json`` that :func:`save_detector` writes for ``detector``."""
    weights = _weights_bytes(detector)
    return hashlib.sha256(_document_bytes(detector_document(detector, hashlib.sha256(weights).hexdigest()))).hexdigest()


def _is_detector_dir(path: Path) -> bool:
    try:
        doc = json.loads((path / DOCUMENT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("format") == FORMAT


def save_detector(detector: Detector, path: str | Path) -> Path:
    """Write ``detector`` to the directory ``path`` atomically (temp dir, then rename); sets its fingerprint.

    An existing provkit detector at ``path`` is replaced; anything else there is an error.
    """
    path = Path(path)
    if path.exists() and not (path.is_dir() and (not any(path.iterdir()) or _is_detector_dir(path))):
        raise DetectorError(f"{path}: exists and is not a provkit detector; choose another --out")
    weights = _weights_bytes(detector)
    document = _document_bytes(detector_document(detector, hashlib.sha256(weights).hexdigest()))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        write_bytes_atomic(tmp / WEIGHTS, weights)
        write_bytes_atomic(tmp / DOCUMENT, document)
        publish_dir(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    detector.fingerprint = hashlib.sha256(document).hexdigest()
    return path


# ------------------------------------------------------------------ loading


def _not_a_detector(path: Path, why: str) -> DetectorError:
    return DetectorError(f"{path}: not a provkit detector ({why}); expected {HOW_TO_MAKE}")


def _read_document(path: Path) -> tuple[dict[str, Any], str]:
    if not path.exists():
        raise DetectorError(f"{path}: no such detector; train one with `prov detector train DS --out {path}`")
    if not path.is_dir():
        raise _not_a_detector(path, "a file, not a directory")
    doc_path = path / DOCUMENT
    if not doc_path.is_file():
        raise _not_a_detector(path, f"{DOCUMENT} is missing")
    if doc_path.stat().st_size > MAX_DOCUMENT_BYTES:
        raise _not_a_detector(doc_path, f"larger than {MAX_DOCUMENT_BYTES} bytes")
    raw = doc_path.read_bytes()
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _not_a_detector(doc_path, f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _not_a_detector(doc_path, f"its format field is not {FORMAT!r}")
    version = doc.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise DetectorError(f"{doc_path}: format_version {version!r} is not supported (this provkit reads "
                            f"<= {FORMAT_VERSION}); upgrade provkit or retrain")
    if doc.get("checksum") != _checksum(doc):
        raise DetectorError(f"{doc_path}: checksum mismatch (the file was modified or corrupted); "
                            f"restore it or retrain the detector")
    return doc, hashlib.sha256(raw).hexdigest()


def _number(doc: dict[str, Any], key: str, where: str) -> float:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DetectorError(f"{where}.{key}: expected a finite number, got {value!r:.40}")
    return float(value)


def _read_weights(path: Path, doc: dict[str, Any], featurizer: Featurizer) -> np.ndarray:
    entry = doc.get("weights")
    if not isinstance(entry, dict) or entry.get("file") != WEIGHTS or not isinstance(entry.get("sha256"), str):
        raise DetectorError(f"{path / DOCUMENT}: weights entry is missing or malformed")
    file = path / WEIGHTS
    if not file.is_file():
        raise DetectorError(f"{file}: missing (listed in {DOCUMENT})")
    payload = file.read_bytes()
    if hashlib.sha256(payload).hexdigest() != entry["sha256"]:
        raise DetectorError(f"{file}: sha256 mismatch (the file was modified or corrupted); restore it or retrain")
    try:
        arrays = load_safetensors_bytes(payload)
    except (SafetensorError, ValueError) as exc:
        raise DetectorError(f"{file}: unreadable safetensors ({exc})") from None
    n_features = featurizer.n_features
    shapes = getattr(featurizer, "array_shapes", dict)()
    expected = {"coef_index", "coef_value", *(f"featurizer.{k}" for k in shapes)}
    index, value = arrays.get("coef_index"), arrays.get("coef_value")
    if index is None or value is None or set(arrays) != expected:
        raise DetectorError(f"{file}: expected exactly the tensors {', '.join(sorted(expected))}")
    for name, (dtype, shape) in shapes.items():
        got = arrays[f"featurizer.{name}"]
        if got.dtype != np.dtype(dtype) or got.shape != shape:
            raise DetectorError(f"{file}: featurizer.{name} must be {dtype} of shape {shape}, got {got.dtype} {got.shape}")
    if shapes:
        featurizer.set_arrays({name: arrays[f"featurizer.{name}"] for name in shapes})  # type: ignore[attr-defined]
    if index.dtype != np.int64 or value.dtype != np.float64 or index.ndim != 1 or index.shape != value.shape:
        raise DetectorError(f"{file}: coef_index must be int64 and coef_value float64, both 1-D of equal length")
    if index.size and (index.min() < 0 or index.max() >= n_features):
        raise DetectorError(f"{file}: coef_index outside [0, {n_features})")
    coef = np.zeros(n_features, dtype=np.float64)
    coef[index] = value
    return coef


def featurizer_from_params(kind: Any, params: Any, where: str) -> Featurizer:
    """Rebuild a featurizer from its saved settings (validated; models load lazily)."""
    if kind == "ngram":
        return NgramFeaturizer.from_params(params, where)
    if kind == "lm":
        return LMFeaturizer.from_params(params, where)
    if kind == "embedding":
        return EmbeddingFeaturizer.from_params(params, where)
    if kind == "zeroshot":
        return ZeroShotFeaturizer.from_params(params, where)
    raise DetectorError(f"{where}: unknown detector kind {kind!r}; known kinds: {', '.join(KINDS)}")


def load_detector(path: str | Path) -> Detector:
    """Load a detector saved by :func:`save_detector`, checking everything before use."""
    path = Path(path)
    doc, fingerprint = _read_document(path)
    where = str(path / DOCUMENT)
    featurizer = featurizer_from_params(doc.get("kind"), doc.get("featurizer"), f"{where}: featurizer")
    n_features = doc.get("n_features")
    if n_features != featurizer.n_features:
        raise DetectorError(f"{where}: n_features {n_features!r} does not match the featurizer ({featurizer.n_features})")
    head_doc = doc.get("head")
    if not isinstance(head_doc, dict):
        raise DetectorError(f"{where}: head is missing")
    coef = _read_weights(path, doc, featurizer)
    head = LinearHead(coef, _number(head_doc, "intercept", "head"), _number(head_doc, "platt_a", "head"),
                      _number(head_doc, "platt_b", "head"))
    threshold = _number(doc, "threshold", where)
    info = doc.get("info") if isinstance(doc.get("info"), dict) else {}
    calibration = doc.get("calibration")
    if calibration is not None:
        calibration = Calibration.from_json(calibration, f"{where}: calibration")
    return Detector(featurizer, head, threshold, info, calibration, fingerprint)
