"""Weighted training of a causal language model, and per-sequence perplexity.

Weighted loss.  For a sequence i with target tokens t = 1..T_i the per-sequence
loss is the mean token negative log-likelihood
``L_i = -(1/T_i) * sum_t log p(x_t | x_<t)``; the weights are first scaled to
mean 1 over the whole training set (``w_i <- w_i * N / sum_j w_j``) and a
(mini)batch B is trained on ``L = sum_{i in B} w_i L_i / |B|`` where ``w_i`` is
the record's ``sample_weight`` (1 when absent).  So the expected batch loss is
the weighted objective, a weight of 2 equals two copies, and a batch that holds
only low-weight records takes a proportionally smaller step (normalising inside
each batch, ``/ sum_{i in B} w_i``, would train it at full strength).

Perplexity of a sequence is ``exp(L_i)``; the corpus perplexity of a set is
``exp(sum_i T_i L_i / sum_i T_i)`` (token-weighted, as usually reported).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from provkit.core.lazy import lazy_import
from provkit.core.progress import Advance

if TYPE_CHECKING:
    from transformers import PreTrainedModel

torch = lazy_import("torch")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings for :func:`train_lm` (AdamW, linear warm-up then linear decay)."""

    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 10
    max_grad_norm: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class TrainStats:
    steps: int
    tokens: int
    seconds: float
    final_loss: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else float("nan")


def _batches(n: int, batch_size: int, order: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
    idx = order if order is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        yield idx[start : start + batch_size]


def per_sequence_loss(model: PreTrainedModel, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of target-token NLL, number of target tokens) per sequence on the model's device; padding is masked out."""
    ids, mask = ids.to(model.device), mask.to(model.device)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1, :]
    targets = ids[:, 1:]
    valid = (mask[:, 1:] > 0)
    nll = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1), reduction="none"
    ).view(targets.shape)
    nll = nll * valid
    return nll.sum(dim=1), valid.sum(dim=1)


def weighted_loss(nll_sum: torch.Tensor, ntok: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_i w_i L_i / |B|`` with ``L_i = nll_sum_i / ntok_i`` (weights of mean 1 over the training set)."""
    per_seq = nll_sum / ntok.clamp(min=1)
    return (weights * per_seq).sum() / max(1, per_seq.numel())


def train_lm(
    model: PreTrainedModel,
    ids: torch.Tensor,
    mask: torch.Tensor,
    weights: torch.Tensor | np.ndarray | None,
    cfg: TrainConfig,
    progress: Advance | None = None,
    on_epoch: Callable[[int, PreTrainedModel], None] | None = None,
) -> TrainStats:
    """Train ``model`` in place on right-padded ``ids``/``mask`` with per-sequence ``weights``.

    Shuffling is seeded by ``cfg.seed`` (a private generator: no global RNG state changes).
    ``on_epoch(epoch, model)`` runs after each epoch (model in eval mode), e.g. to keep the
    best epoch on a validation set.
    """
    n = ids.size(0)
    w = torch.ones(n) if weights is None else torch.as_tensor(np.asarray(weights, dtype=np.float32))
    if n and float(w.sum()) > 0:
        w = w * (n / float(w.sum()))  # mean 1 over the training set
    if n == 0:
        return TrainStats(0, 0, 0.0, float("nan"))
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def schedule(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        return max(0.0, (total - step) / max(1, total - cfg.warmup_steps))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    tokens, loss_val, t0, step = 0, float("nan"), time.perf_counter(), 0
    with _seeded(cfg.seed):
        for epoch in range(cfg.epochs):
            order = torch.randperm(n, generator=gen)
            for idx in _batches(n, cfg.batch_size, order):
                nll_sum, ntok = per_sequence_loss(model, ids[idx], mask[idx])
                loss = weighted_loss(nll_sum, ntok, w[idx].to(nll_sum.device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                opt.step()
                sched.step()
                step += 1
                tokens += int(mask[idx].sum())
                loss_val = float(loss.detach())
                if progress:
                    progress(len(idx))
            if on_epoch is not None:
                model.eval()
                on_epoch(epoch, model)
                model.train()
    model.eval()
    return TrainStats(step, tokens, time.perf_counter() - t0, loss_val)


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Run with torch's global RNG seeded (dropout), restoring the previous state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def sequence_nll(
    model: PreTrainedModel, ids: torch.Tensor, mask: torch.Tensor, batch_size: int = 64, progress: Advance | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sequence (summed NLL in nats, number of scored tokens)."""
    with torch.inference_mode():
        model.eval()
        sums, counts = [], []
        for idx in _batches(ids.size(0), batch_size):
            s, c = per_sequence_loss(model, ids[idx], mask[idx])
            sums.append(s.double().cpu().numpy())
            counts.append(c.cpu().numpy())
            if progress:
                progress(len(idx))
        if not sums:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        return np.concatenate(sums), np.concatenate(counts).astype(np.int64)


def sequence_perplexities(model: PreTrainedModel, ids: torch.Tensor, mask: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """``exp(L_i)`` for every sequence (NaN for a sequence with no target token)."""
    s, c = sequence_nll(model, ids, mask, batch_size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.exp(s / np.where(c > 0, c, np.nan))


def corpus_perplexity(model: PreTrainedModel, ids: torch.Tensor, mask: torch.Tensor, batch_size: int = 64) -> float:
    """Token-weighted perplexity ``exp(sum NLL / sum tokens)`` of a set of sequences."""
    s, c = sequence_nll(model, ids, mask, batch_size)
    return float(math.exp(s.sum() / max(1, c.sum())))
