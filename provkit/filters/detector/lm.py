"""Features from a causal language model: log-prob, log-rank, entropy, Fast-DetectGPT curvature.

For a text tokenised as ``x_0 .. x_T`` (``x_0`` = the tokenizer's BOS when it
has one) and the model's next-token distribution ``p_t = p(. | x_<t)``,
averaged over the ``T`` predicted positions ``t = 1..T``:

* mean log-prob      ``(1/T) sum_t log p_t(x_t)``
* mean log-rank      ``(1/T) sum_t log r_t``, ``r_t = 1 + #{v : p_t(v) > p_t(x_t)}``
* mean entropy       ``(1/T) sum_t H_t``, ``H_t = -sum_v p_t(v) log p_t(v)``
* Fast-DetectGPT analytic conditional probability curvature (Bao et al. 2024,
  sampling model = scoring model)::

      mu_t  = sum_v p_t(v) log p_t(v)                 (= -H_t)
      s2_t  = sum_v p_t(v) (log p_t(v))^2 - mu_t^2
      d(x)  = (sum_t log p_t(x_t) - sum_t mu_t) / sqrt(sum_t s2_t)

  model text sits near the mode of its model, so ``d`` is larger for it.

The model is a local ``from_pretrained`` directory with safetensors weights
(``trust_remote_code=False``), e.g. the tiny OPT of ``prov experiment run``
(pass the run directory: its generation-0 model and tokenizer are used).
The saved detector records the model's weights sha256; loading it with other
weights fails with one line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator, Sequence

import numpy as np

from provkit.filters.detector.local_model import check_fingerprint, model_fingerprint, safetensors_files
from provkit.filters.detector.params import DetectorError, Progress, dataclass_from_params, params_of
from provkit.lm import load_model, load_tokenizer, pad_right

FEATURES = ("mean_logprob", "mean_logrank", "mean_entropy", "fast_detectgpt")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
NEEDS_MODEL = ("the lm detector needs --model PATH: a local causal LM directory (from_pretrained layout, "
               "safetensors weights, with its tokenizer) or a `prov experiment run` directory")


def has_tokenizer(path: Path) -> bool:
    return any((path / f).is_file() for f in TOKENIZER_FILES)


def resolve_lm_model(path: str | Path | None) -> tuple[Path, Path]:
    """``(model_dir, tokenizer_dir)`` for ``--model PATH``.

    PATH is a model directory holding its tokenizer, or an experiment run
    directory (``RUN/seed*/gen00/model`` of the lowest seed with ``RUN/setup/tokenizer``).
    """
    if path is None:
        raise DetectorError(NEEDS_MODEL)
    root = Path(path).expanduser().resolve()
    gen0 = sorted(root.glob("seed*/gen00/model/config.json"))  # a run directory also has a config.json
    if gen0 and has_tokenizer(root / "setup" / "tokenizer"):
        return gen0[0].parent, root / "setup" / "tokenizer"
    if (root / "config.json").is_file():
        if not has_tokenizer(root):
            raise DetectorError(f"{root}: has no tokenizer ({' or '.join(TOKENIZER_FILES)}); save the tokenizer "
                                f"next to the model, or pass the experiment run directory")
        return root, root
    if root.exists():
        raise DetectorError(f"{root}: neither a model directory (no config.json) nor an experiment run "
                            f"(no seed*/gen00/model); {NEEDS_MODEL}")
    raise DetectorError(f"{root}: no such directory; {NEEDS_MODEL}")


def tokenizer_fingerprint(tokenizer_dir: Path) -> str:
    h = hashlib.sha256()
    for name in TOKENIZER_FILES:
        file = tokenizer_dir / name
        if file.is_file():
            h.update(name.encode() + b"\0" + file.read_bytes())
    return h.hexdigest()


def token_statistics(model: Any, ids: Any, mask: Any) -> np.ndarray:
    """``(batch, 4)`` array of :data:`FEATURES` for right-padded ``ids`` / ``mask`` (torch tensors)."""
    import torch

    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1, :].float()
        logp = torch.log_softmax(logits, dim=-1)
        targets = ids[:, 1:]
        valid = mask[:, 1:].to(logp.dtype)
        token_lp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        rank = (logp > token_lp.unsqueeze(-1)).sum(-1).to(logp.dtype) + 1.0
        probs = logp.exp()
        mu = (probs * logp).sum(-1)
        var = ((probs * logp.square()).sum(-1) - mu.square()).clamp(min=0.0)
        n = valid.sum(1).clamp(min=1.0)
        feats = torch.stack(
            [
                (token_lp * valid).sum(1) / n,
                (rank.log() * valid).sum(1) / n,
                (-mu * valid).sum(1) / n,
                ((token_lp - mu) * valid).sum(1) / (var * valid).sum(1).sqrt().clamp(min=1e-6),
            ],
            dim=1,
        )
    return feats.double().numpy()


@dataclass
class LMFeaturizer:
    """Settings of the language-model features; model and tokenizer load on first use and are kept."""

    kind: ClassVar[str] = "lm"
    model: str = ""
    tokenizer: str = ""
    model_sha256: str = ""
    tokenizer_sha256: str = ""
    max_length: int = 256
    batch_size: int = 16
    _loaded: Any = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def for_model(cls, path: str | None, max_length: int = 256, batch_size: int = 16) -> "LMFeaturizer":
        model_dir, tok_dir = resolve_lm_model(path)
        return cls(model=str(model_dir), tokenizer=str(tok_dir), model_sha256=model_fingerprint(model_dir),
                   tokenizer_sha256=tokenizer_fingerprint(tok_dir), max_length=max_length, batch_size=batch_size)

    @property
    def n_features(self) -> int:
        return len(FEATURES)

    def load(self) -> tuple[Any, Any]:
        """The (model, tokenizer) pair, checked against the recorded fingerprints."""
        if self._loaded is None:
            model_dir, tok_dir = Path(self.model), Path(self.tokenizer)
            safetensors_files(model_dir)
            check_fingerprint(model_dir, self.model_sha256, "lm detector")
            if tokenizer_fingerprint(tok_dir) != self.tokenizer_sha256:
                raise DetectorError(f"lm detector: the tokenizer at {tok_dir} differs from the one it was trained "
                                    f"with; use that tokenizer or retrain")
            model, _ = load_model(model_dir, with_tokenizer=False)
            self._loaded = (model, load_tokenizer(tok_dir))
        return self._loaded

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text (no special tokens), BOS prepended when the tokenizer has one, cut at max_length
        (and at the model's context length, whichever is shorter)."""
        model, tok = self.load()
        encoded = tok(list(texts), add_special_tokens=False)["input_ids"]
        bos = tok.bos_token_id
        prefix = [bos] if bos is not None else []
        limit = min(self.max_length, getattr(model.config, "max_position_embeddings", None) or self.max_length)
        return [(prefix + list(ids))[:limit] for ids in encoded]

    def iter_batches(self, texts: Sequence[str], progress: Progress | None = None) -> Iterator[tuple[np.ndarray, Any, Any]]:
        """``(rows, ids, mask)`` per batch of texts of similar length: right-padded token ids of ``rows``.

        Texts of fewer than two tokens have nothing to predict and are left out of ``rows``.
        """
        _, tok = self.load()
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        encoded = self.encode(texts)
        order = np.argsort([len(e) for e in encoded], kind="stable")
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            idx = np.asarray([i for i in batch if len(encoded[i]) >= 2], dtype=np.int64)
            if len(idx):
                ids, mask = pad_right([encoded[i] for i in idx], pad_id)
                yield idx, ids, mask
            if progress:
                progress(len(batch))

    def transform(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """``(len(texts), 4)`` array of :data:`FEATURES`; texts are batched by similar length.

        A text of fewer than two tokens has nothing to predict: its row is all zeros.
        """
        model, _ = self.load()
        out = np.zeros((len(texts), len(FEATURES)), dtype=np.float64)
        for idx, ids, mask in self.iter_batches(texts, progress):
            out[idx] = token_statistics(model, ids, mask)
        return out

    def to_params(self) -> dict[str, Any]:
        return params_of(self)

    @classmethod
    def from_params(cls, params: Any, where: str = "featurizer") -> "LMFeaturizer":
        feat = dataclass_from_params(cls, params, where)
        if not feat.model or not feat.tokenizer or len(feat.model_sha256) != 64 or len(feat.tokenizer_sha256) != 64:
            raise DetectorError(f"{where}: model, tokenizer and their sha256 fingerprints are required")
        if feat.max_length < 2 or feat.batch_size < 1:
            raise DetectorError(f"{where}: need max_length >= 2 and batch_size >= 1")
        return feat

