"""Locating and fingerprinting the local model directories the lm / embedding detectors use."""

from __future__ import annotations

import hashlib
from pathlib import Path

from provkit.filters.detector.params import DetectorError


def safetensors_files(model_dir: Path) -> list[Path]:
    """The ``*.safetensors`` weight files of a model directory (sorted); an error if there are none.

    provkit only loads safetensors weights, never pickled ``*.bin`` checkpoints.
    """
    if not model_dir.is_dir():
        raise DetectorError(f"{model_dir}: no such model directory; pass --model PATH to a local model folder")
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise DetectorError(f"{model_dir}: no *.safetensors weights (provkit does not load pickled .bin files); "
                            f"re-save the model with save_pretrained(..., safe_serialization=True)")
    return files


def model_fingerprint(model_dir: Path) -> str:
    """sha256 over the names and bytes of the directory's safetensors files."""
    h = hashlib.sha256()
    for file in safetensors_files(model_dir):
        h.update(file.name.encode() + b"\0")
        with open(file, "rb") as f:
            while block := f.read(1 << 22):
                h.update(block)
    return h.hexdigest()


def check_fingerprint(model_dir: Path, expected: str, where: str) -> None:
    """Fail with one line when the model at ``model_dir`` is not the one the detector was trained with."""
    got = model_fingerprint(model_dir)
    if got != expected:
        raise DetectorError(f"{where}: the model at {model_dir} differs from the one this detector was trained "
                            f"with (sha256 {got[:12]} != {expected[:12]}); use that model or retrain")
