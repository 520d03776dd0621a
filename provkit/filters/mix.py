"""Mixing policies: which human and model records go into the next training set, and their loss weights.

Groups: a record is *human* when ``origin == "human"``; every other record
(``model``, ``mixed``, ``unknown``) is *model* data, of generation
``generator.generation`` (0 when null).  Policies (Shumailov et al. 2024;
Gerstgrasser et al. 2024):

* ``replace`` — only the newest data: the model records of the highest
  generation (the human records only when there is no model data);
* ``keep-human=F`` — a training set of fixed size ``S`` (the number of records of the
  newest model generation: what ``replace`` would train on) of which a fraction F is
  human: ``k = min(round(F * S), n_human)`` human records and ``S - k`` records of the
  newest generation, each chosen by a seeded draw per id.  F = 0 is ``replace``; F = 1
  is ``S`` human records.  This is the one meaning of keep-human: ``prov filter --mix``
  and the collapse experiment (``provkit.train``) both call :func:`policy_selection`;
* ``accumulate`` — everything: all generations and the originals.

Budgets: with ``records`` (or ``tokens``, counted as word/punctuation tokens)
the selection is cut down to the budget keeping each group's share:
group ``g`` gets ``round(B * n_g / n)`` records (largest remainders, exact
total ``B``), or a prefix of its rows in seeded order whose tokens fit
``B * tokens_g / tokens``.

Loss weights: with ``alpha`` set, kept rows get ``mix_weight``::

    w_human = alpha * N / N_human,   w_model = (1 - alpha) * N / N_model

so ``(1/N) Σ w_i L_i = alpha · mean_human(L) + (1 - alpha) · mean_model(L)``
(mean weight 1).  When one group is empty every weight is 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from provkit.core.hashing import seeded_uniform
from provkit.errors import ConfigError
from provkit.filters.step import ORDER, RowPlanStep, append_columns, row_plan
from provkit.core.text import count_tokens

POLICIES = ("replace", "keep-human", "accumulate")


@dataclass
class MixConfig:
    """``mix`` step: policy, optional human fraction, budget, loss weight ``alpha``, seed."""

    policy: str = "accumulate"
    human_fraction: float = 0.1  # used by keep-human
    records: int | None = None
    tokens: int | None = None
    alpha: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ConfigError(f"policy: expected one of {', '.join(POLICIES)}, got {self.policy!r}")
        if not 0.0 <= self.human_fraction <= 1.0:
            raise ConfigError(f"human_fraction: must be in [0, 1], got {self.human_fraction}")
        if self.records is not None and self.tokens is not None:
            raise ConfigError("records: give a records budget or a tokens budget, not both")
        for key in ("records", "tokens"):
            value = getattr(self, key)
            if value is not None and value < 0:
                raise ConfigError(f"{key}: must be >= 0, got {value}")
        if self.alpha is not None and not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha: must be in [0, 1], got {self.alpha}")


def parse_mix_flag(value: str) -> dict[str, object]:
    """``replace`` | ``accumulate`` | ``keep-human=F`` -> mix step parameters."""
    name, _, arg = value.partition("=")
    name = name.strip()
    if name not in POLICIES:
        raise ConfigError(f"--mix: expected replace, accumulate or keep-human=F, got {value!r}")
    if name != "keep-human":
        if arg:
            raise ConfigError(f"--mix {name}: takes no value, got {value!r}")
        return {"policy": name}
    try:
        return {"policy": name, "human_fraction": float(arg) if arg else 0.1}
    except ValueError:
        raise ConfigError(f"--mix keep-human=F: F must be a number, got {arg!r}") from None


def policy_selection(is_human: np.ndarray, generation: np.ndarray, uniform: np.ndarray, cfg: MixConfig) -> np.ndarray:
    """Rows the policy keeps (before any budget)."""
    model = ~is_human
    if cfg.policy == "accumulate":
        return np.ones(len(is_human), dtype=bool)
    newest = newest_generation(is_human, generation)
    if cfg.policy == "replace":
        return newest if model.any() else is_human.copy()
    humans = np.flatnonzero(is_human)  # keep-human: fixed size S, a fraction F of it human
    fresh = np.flatnonzero(newest)
    size = len(fresh) if len(fresh) else len(humans)
    n_human = min(int(round(cfg.human_fraction * size)), len(humans))
    keep = np.zeros(len(is_human), dtype=bool)
    keep[humans[np.argsort(uniform[humans], kind="stable")[:n_human]]] = True
    keep[fresh[np.argsort(uniform[fresh], kind="stable")[: size - n_human]]] = True
    return keep


def group_quotas(sizes: list[float], budget: float) -> list[float]:
    """Split ``budget`` over groups in proportion to ``sizes`` (largest remainders for whole records)."""
    total = sum(sizes)
    if total <= budget:
        return list(sizes)
    exact = [budget * s / total for s in sizes]
    floors = [int(np.floor(e)) for e in exact]
    left = int(round(budget)) - sum(floors)
    for i in sorted(range(len(sizes)), key=lambda j: exact[j] - floors[j], reverse=True)[:left]:
        floors[i] += 1
    return floors


def budget_selection(keep: np.ndarray, is_human: np.ndarray, uniform: np.ndarray, tokens: np.ndarray | None,
                     cfg: MixConfig) -> np.ndarray:
    """Cut ``keep`` down to the record or token budget, each group keeping its share, in seeded order."""
    budget = cfg.records if cfg.records is not None else cfg.tokens
    if budget is None:
        return keep
    units = np.ones(len(keep)) if tokens is None else tokens.astype(np.float64)
    groups = [np.flatnonzero(keep & is_human), np.flatnonzero(keep & ~is_human)]
    if tokens is None:
        quotas = group_quotas([float(len(g)) for g in groups], float(budget))
    else:
        sizes = [float(units[g].sum()) for g in groups]
        quotas = sizes if sum(sizes) <= budget else [budget * s / sum(sizes) for s in sizes]
    out = np.zeros(len(keep), dtype=bool)
    for rows, quota in zip(groups, quotas):
        ordered = rows[np.argsort(uniform[rows], kind="stable")]
        fits = np.cumsum(units[ordered]) <= quota + 1e-9
        out[ordered[fits]] = True
    return out


def loss_weights(keep: np.ndarray, is_human: np.ndarray, alpha: float | None) -> np.ndarray:
    """``alpha·N/N_h`` for kept human rows, ``(1-alpha)·N/N_m`` for kept model rows (1 without alpha)."""
    weights = np.ones(len(keep), dtype=np.float64)
    n_h, n_m = int((keep & is_human).sum()), int((keep & ~is_human).sum())
    if alpha is None or n_h == 0 or n_m == 0:
        return weights
    n = n_h + n_m
    weights[is_human] = alpha * n / n_h
    weights[~is_human] = (1 - alpha) * n / n_m
    return weights


def newest_generation(is_human: np.ndarray, generation: np.ndarray) -> np.ndarray:
    """Model records of the highest generation present."""
    model = ~is_human
    return model & (generation == generation[model].max()) if model.any() else np.zeros_like(model)


def drop_reasons(keep: np.ndarray, by_policy: np.ndarray, is_human: np.ndarray, policy: str,
                 generation: np.ndarray) -> pa.Array:
    """``mix_budget`` (cut by the budget), ``mix_old_generation`` (model data not of the newest
    generation), ``mix_replace_human`` / ``mix_human_fraction`` (human records the policy leaves out),
    ``mix_human_share`` (newest-generation records that keep-human's human share replaced)."""
    human_reason = "mix_replace_human" if policy == "replace" else "mix_human_fraction"
    newest = newest_generation(is_human, generation)
    names = ["mix_budget", human_reason, "mix_human_share", "mix_old_generation"]
    code = np.select([by_policy, is_human, newest], [0, 1, 2], default=3).astype(np.int8)
    codes = pa.array(code, mask=np.asarray(keep, dtype=bool))  # null (kept) where keep
    return pa.DictionaryArray.from_arrays(codes, pa.array(names, pa.string())).cast(pa.string())


class MixStep(RowPlanStep):
    """Select the training mix by policy and budget; ``mix_weight`` for the mixed loss.

    Plan memory: id + ~30 bytes per alive row (origin, generation, tokens, order).
    """

    name = "mix"
    decide_columns = ("id", "origin", "_mix_generation", "_mix_tokens")
    weight_groups = "origin"  # sample_weight keeps the alpha split exact (provkit.filters.step.combine_weights)

    def __init__(self, config: MixConfig):
        super().__init__(config)
        self.weight_column = "mix_weight" if config.alpha is not None else None

    def score(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        generation = pc.fill_null(pc.struct_field(batch.column("generator"), "generation"), 0)
        columns = {"_mix_generation": generation.cast(pa.int64())}
        texts = batch.column("text").to_pylist() if self.config.tokens is not None else []
        columns["_mix_tokens"] = pa.array(count_tokens(texts) if texts else np.zeros(batch.num_rows, np.int64))
        return append_columns(batch, columns)

    def plan(self, table: pa.Table) -> pa.Table:
        cfg = self.config
        orders = table.column(ORDER).to_numpy()
        is_human = pc.fill_null(pc.equal(table.column("origin").cast(pa.string()), "human"), False).to_numpy(
            zero_copy_only=False)
        generation = table.column("_mix_generation").to_numpy()
        uniform = seeded_uniform(table.column("id"), cfg.seed, salt="mix")
        by_policy = policy_selection(is_human, generation, uniform, cfg)
        tokens = table.column("_mix_tokens").to_numpy() if cfg.tokens is not None else None
        keep = budget_selection(by_policy, is_human, uniform, tokens, cfg)
        reasons = drop_reasons(keep, by_policy, is_human, cfg.policy, generation)
        annotations = {}
        if cfg.alpha is not None:
            annotations["mix_weight"] = pa.array(loss_weights(keep, is_human, cfg.alpha))
        return row_plan(orders, reasons, **annotations)
