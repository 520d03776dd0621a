"""Mixing policies, budgets and mixed-loss weights on human + bigram-generated data."""

from __future__ import annotations

import numpy as np
import pytest

from filter_fixtures import bigram_model_texts, human_texts, write_dataset
from provkit.errors import ConfigError
from provkit.core.text import count_tokens
from provkit.engines import run_filter
from provkit.filters import parse_pipeline
from provkit.filters.mix import MixConfig, group_quotas, loss_weights, parse_mix_flag
from provkit.provenance import Dataset


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    return write_dataset(root / "in", human_texts(120), [bigram_model_texts(60, seed=1), bigram_model_texts(80, seed=2)])


def _mix(src, out, **params):
    cfg = parse_pipeline({"steps": [{"kind": "mix", **params}]}, "t")
    result = run_filter(src, out, cfg)
    return result, Dataset.open(out).read()


def _groups(table):
    ids = table.column("id").to_pylist()
    return (sum(i.startswith("h") for i in ids), sum(i.startswith("g1-") for i in ids),
            sum(i.startswith("g2-") for i in ids))


def test_replace_keeps_only_the_newest_generation(mixed, tmp_path):
    r, kept = _mix(mixed, tmp_path / "o", policy="replace")
    assert _groups(kept) == (0, 0, 80)
    assert r.report["dropped"] == {"mix_old_generation": 60, "mix_replace_human": 120}


def test_accumulate_keeps_everything(mixed, tmp_path):
    r, kept = _mix(mixed, tmp_path / "o", policy="accumulate")
    assert _groups(kept) == (120, 60, 80) and r.report["dropped"] == {}


def test_keep_human_fraction_is_exact_and_seeded(mixed, tmp_path):
    r1, k1 = _mix(mixed, tmp_path / "a", policy="keep-human", human_fraction=0.25, seed=3)
    _, k2 = _mix(mixed, tmp_path / "b", policy="keep-human", human_fraction=0.25, seed=3)
    _, k3 = _mix(mixed, tmp_path / "c", policy="keep-human", human_fraction=0.25, seed=4)
    assert _groups(k1) == (30, 0, 80)
    assert k1.column("id").to_pylist() == k2.column("id").to_pylist()
    assert k1.column("id").to_pylist() != k3.column("id").to_pylist()
    assert r1.report["dropped"] == {"mix_human_fraction": 90, "mix_old_generation": 60}


def test_record_budget_keeps_group_shares(mixed, tmp_path):
    r, kept = _mix(mixed, tmp_path / "o", policy="accumulate", records=130)
    assert kept.num_rows == 130
    assert _groups(kept)[0] == 60  # human share 120/260 of 130
    assert r.report["dropped"] == {"mix_budget": 130}


def test_token_budget_is_respected_per_group(mixed, tmp_path):
    total = int(count_tokens(Dataset.open(mixed).read(columns=["text"]).column(0).to_pylist()).sum())
    budget = total // 3
    _, kept = _mix(mixed, tmp_path / "o", policy="accumulate", tokens=budget)
    used = int(count_tokens(kept.column("text").to_pylist()).sum())
    assert budget * 0.9 <= used <= budget


def test_mixed_loss_weights_give_alpha_split(mixed, tmp_path):
    alpha = 0.3
    _, kept = _mix(mixed, tmp_path / "o", policy="keep-human", human_fraction=0.5, alpha=alpha)
    w = kept.column("sample_weight").to_numpy()
    human = np.array([i.startswith("h") for i in kept.column("id").to_pylist()])
    losses = np.random.default_rng(0).random(len(w)) * 5
    mixed_loss = (w * losses).mean()
    assert mixed_loss == pytest.approx(alpha * losses[human].mean() + (1 - alpha) * losses[~human].mean())
    assert w.mean() == pytest.approx(1.0)


def test_loss_weights_are_one_when_a_group_is_empty():
    keep = np.ones(4, bool)
    assert np.all(loss_weights(keep, np.ones(4, bool), 0.3) == 1.0)


def test_group_quotas_sum_to_the_budget():
    assert sum(group_quotas([7.0, 5.0, 1.0], 10)) == 10
    assert group_quotas([3.0, 2.0], 10) == [3.0, 2.0]


def test_mix_flag_parsing_and_errors():
    assert parse_mix_flag("keep-human=0.1") == {"policy": "keep-human", "human_fraction": 0.1}
    assert parse_mix_flag("replace") == {"policy": "replace"}
    with pytest.raises(ConfigError, match="keep-human=F"):
        parse_mix_flag("keep-human=lots")
    with pytest.raises(ConfigError, match="expected replace"):
        parse_mix_flag("blend")
    with pytest.raises(ConfigError, match="not both"):
        MixConfig(records=3, tokens=4)
