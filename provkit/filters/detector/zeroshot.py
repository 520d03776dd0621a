"""The ``zeroshot`` kind: Binoculars / Fast-DetectGPT scores from two local language models, no training.

Two causal LMs that share one tokenizer: the *scorer* ``S`` (``--model``) and
the *reference* ``R`` (``--reference-model``; the scorer itself when absent).
For a text ``x_0 .. x_T`` and next-token distributions ``s_t = S(. | x_<t)``,
``r_t = R(. | x_<t)``:

* cross term       ``c_t = sum_v r_t(v) log s_t(v)``
* **Binoculars** (Hans et al. 2024) — the scorer's log-perplexity over the
  cross-perplexity of the two models::

      B(x) = [-(1/T) sum_t log s_t(x_t)] / [-(1/T) sum_t c_t]

  model text is unsurprising *relative to* what a model would expect, so ``B``
  is low for it; the criterion is ``-B`` (higher = model).
* **Fast-DetectGPT** (Bao et al. 2024) with sampling model ``R`` and scoring
  model ``S`` (the analytic form; ``R = S`` gives the ``lm`` kind's feature)::

      v_t = sum_v r_t(v) (log s_t(v))^2 - c_t^2
      d(x) = (sum_t log s_t(x_t) - sum_t c_t) / sqrt(sum_t v_t)

The featurizer outputs one column, the chosen ``criterion`` (``binoculars`` ->
``-B``, ``fast-detectgpt`` -> ``d``); the detector's linear head is the
identity, so nothing is fitted on model text: ``prov detector train --kind
zeroshot`` only calibrates (thresholds from human text; a probability from
model text when there is some, else the human quantile).  Both models are
loaded like the ``lm`` kind's (safetensors, fingerprints checked).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from provkit.filters.detector.lm import LMFeaturizer, has_tokenizer, tokenizer_fingerprint, resolve_lm_model
from provkit.filters.detector.local_model import model_fingerprint
from provkit.filters.detector.params import DetectorError, Progress, dataclass_from_params, params_of

CRITERIA = ("binoculars", "fast-detectgpt")


def resolve_reference(path: str) -> Path:
    """The model directory of ``--reference-model``: a model folder, or a run's generation-0 model."""
    root = Path(path).expanduser().resolve()
    gen0 = sorted(root.glob("seed*/gen00/model/config.json"))
    model_dir = gen0[0].parent if gen0 else root
    if not (model_dir / "config.json").is_file():
        raise DetectorError(f"{root}: not a model directory (no config.json); --reference-model needs a local causal "
                            f"LM folder (safetensors) that uses the scoring model's tokenizer")
    return model_dir


def cross_statistics(scorer: Any, reference: Any, ids: Any, mask: Any) -> np.ndarray:
    """``(batch, 2)`` array of ``[-B, d]`` (module docstring) for right-padded ``ids`` / ``mask``."""
    import torch

    with torch.inference_mode():
        logp = torch.log_softmax(scorer(input_ids=ids, attention_mask=mask).logits[:, :-1, :].float(), dim=-1)
        if reference is scorer:
            ref_p = logp.exp()
        else:
            ref_p = torch.softmax(reference(input_ids=ids, attention_mask=mask).logits[:, :-1, :].float(), dim=-1)
        valid = mask[:, 1:].to(logp.dtype)
        token_lp = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        cross = (ref_p * logp).sum(-1)
        var = ((ref_p * logp.square()).sum(-1) - cross.square()).clamp(min=0.0)
        lp_sum, cross_sum = (token_lp * valid).sum(1), (cross * valid).sum(1)
        binoculars = lp_sum / cross_sum.clamp(max=-1e-9)  # B = (-lp_sum / T) / (-cross_sum / T)
        d = (lp_sum - cross_sum) / (var * valid).sum(1).sqrt().clamp(min=1e-6)
        out = torch.stack([-binoculars, d], dim=1)
    return out.double().numpy()


@dataclass
class ZeroShotFeaturizer:
    """Settings of the zero-shot criterion; both models load on first use and are kept."""

    kind: ClassVar[str] = "zeroshot"
    model: str = ""
    tokenizer: str = ""
    model_sha256: str = ""
    tokenizer_sha256: str = ""
    reference_model: str = ""
    reference_sha256: str = ""
    criterion: str = "binoculars"
    max_length: int = 256
    batch_size: int = 16
    _scorer: Any = field(default=None, init=False, repr=False, compare=False)
    _reference: Any = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def for_models(cls, model: str | None, reference: str | None = None, criterion: str = "binoculars",
                   max_length: int = 256, batch_size: int = 16) -> "ZeroShotFeaturizer":
        if criterion not in CRITERIA:
            raise DetectorError(f"--criterion {criterion!r}: choose one of {', '.join(CRITERIA)}")
        model_dir, tok_dir = resolve_lm_model(model)
        ref_dir = model_dir if reference is None else resolve_reference(reference)
        if ref_dir != model_dir and has_tokenizer(ref_dir) and tokenizer_fingerprint(ref_dir) != tokenizer_fingerprint(tok_dir):
            raise DetectorError(f"{ref_dir}: its tokenizer differs from the scoring model's ({tok_dir}); the zeroshot "
                                f"kind needs two models that share one tokenizer")
        return cls(model=str(model_dir), tokenizer=str(tok_dir), model_sha256=model_fingerprint(model_dir),
                   tokenizer_sha256=tokenizer_fingerprint(tok_dir), reference_model=str(ref_dir),
                   reference_sha256=model_fingerprint(ref_dir), criterion=criterion, max_length=max_length,
                   batch_size=batch_size)

    @property
    def n_features(self) -> int:
        return 1

    @property
    def column(self) -> int:
        return CRITERIA.index(self.criterion)

    def scorer(self) -> LMFeaturizer:
        if self._scorer is None:
            self._scorer = LMFeaturizer(self.model, self.tokenizer, self.model_sha256, self.tokenizer_sha256,
                                        self.max_length, self.batch_size)
        return self._scorer

    def models(self) -> tuple[Any, Any]:
        """(scorer model, reference model), fingerprints checked; the same object when they are one model."""
        scorer, _ = self.scorer().load()
        if self._reference is None:
            if self.reference_model == self.model and self.reference_sha256 == self.model_sha256:
                self._reference = scorer
            else:
                ref, _ = LMFeaturizer(self.reference_model, self.tokenizer, self.reference_sha256,
                                      self.tokenizer_sha256, self.max_length, self.batch_size).load()
                if ref.config.vocab_size != scorer.config.vocab_size:
                    raise DetectorError(f"{self.reference_model}: vocabulary of {ref.config.vocab_size} tokens, the "
                                        f"scoring model has {scorer.config.vocab_size}; the two must share a tokenizer")
                self._reference = ref
        return scorer, self._reference

    def statistics(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """``(len(texts), 2)`` array of both criteria ``[-B, d]``; texts under two tokens get zeros."""
        scorer, reference = self.models()
        out = np.zeros((len(texts), len(CRITERIA)), dtype=np.float64)
        for idx, ids, mask in self.scorer().iter_batches(texts, progress):
            out[idx] = cross_statistics(scorer, reference, ids, mask)
        return out

    def transform(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """``(len(texts), 1)``: the chosen criterion, higher = more model-like."""
        return self.statistics(texts, progress)[:, self.column : self.column + 1]

    def to_params(self) -> dict[str, Any]:
        return params_of(self)

    @classmethod
    def from_params(cls, params: Any, where: str = "featurizer") -> "ZeroShotFeaturizer":
        feat = dataclass_from_params(cls, params, where)
        if not feat.model or not feat.tokenizer or not feat.reference_model or any(
                len(h) != 64 for h in (feat.model_sha256, feat.tokenizer_sha256, feat.reference_sha256)):
            raise DetectorError(f"{where}: model, reference_model, tokenizer and their sha256 fingerprints are required")
        if feat.criterion not in CRITERIA:
            raise DetectorError(f"{where}.criterion: expected one of {', '.join(CRITERIA)}, got {feat.criterion!r}")
        if feat.max_length < 2 or feat.batch_size < 1:
            raise DetectorError(f"{where}: need max_length >= 2 and batch_size >= 1")
        return feat
