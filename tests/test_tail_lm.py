"""Tail rarity under a language model (``rarity = "lm"``): a tiny OPT trained on builtin text in the fixture."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from filter_fixtures import human_texts, write_dataset
from provkit.cli import app
from provkit.errors import ConfigError
from provkit.engines import run_filter
from provkit.filters import parse_pipeline
from provkit.filters.tail import TailConfig, TailStep
from provkit.filters.tail import LMSurprisal
from provkit.provenance import Dataset, make_batch
from provkit.lm import (
    TinyOPTConfig,
    TrainConfig,
    build_tiny_opt,
    encode_texts,
    load_model,
    save_model,
    train_bpe_tokenizer,
    train_lm,
)

runner = CliRunner()


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    """A 1-layer OPT (hidden 64) trained for 2 epochs on 150 builtin documents (~2 s)."""
    texts = human_texts(150)
    tok = train_bpe_tokenizer(texts, vocab_size=512)
    model = build_tiny_opt(tok, TinyOPTConfig(layers=1, hidden=64, heads=2, ffn=128, max_positions=128), seed=0)
    ids, mask = encode_texts(texts, tok, 64)
    train_lm(model, ids, mask, None, TrainConfig(epochs=2, batch_size=16, lr=3e-3, warmup_steps=2))
    return save_model(model, tok, tmp_path_factory.mktemp("lm") / "model")


def _by_hand(path, text: str, max_tokens: int = 128) -> float:
    """Mean -log2 p(x_t | x_<t), t >= 2, with an explicit loop over positions."""
    model, tok = load_model(path)
    token_ids = tok(text, add_special_tokens=False)["input_ids"][:max_tokens]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([token_ids])).logits[0]
    logp = torch.log_softmax(logits.double(), dim=-1)
    bits = [-float(logp[t - 1, token_ids[t]]) / math.log(2) for t in range(1, len(token_ids))]
    return sum(bits) / len(bits) if bits else 0.0


def test_lm_rarity_is_the_mean_token_surprisal_and_ignores_padding(lm):
    texts = human_texts(4, start=900) + ["short", "word " * 7]
    got = LMSurprisal(str(lm), max_tokens=128).mean_surprisal(texts)
    expected = [_by_hand(lm, t) for t in texts]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert LMSurprisal(str(lm)).mean_surprisal([]).shape == (0,)


def test_lm_rarity_ranks_looping_text_below_human_text(lm):
    human = [t for t in human_texts(400, start=1000) if len(t.split()) >= 30][:20]
    loops = ["the value of the value of the value of the " * 6, "is a class or a class or a class or a " * 6]
    score = LMSurprisal(str(lm)).mean_surprisal(human + loops)
    assert score[-2:].max() < np.median(score[:-2])


def test_tail_step_with_lm_rarity_through_prov_filter(lm, tmp_path):
    src = write_dataset(tmp_path / "in", human_texts(60, start=1200))
    (tmp_path / "p.toml").write_text(f'[[steps]]\nkind = "tail"\nrarity = "lm"\nmodel = "{lm}"\nalpha = 1.0\n')
    res = runner.invoke(app, ["filter", str(src), "--out", str(tmp_path / "o"), "--config", str(tmp_path / "p.toml"),
                              "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["input"] == 60 == report["kept"] + sum(report["dropped"].values())
    kept = Dataset.open(tmp_path / "o").read()
    score, w = kept.column("tail_score").to_numpy(), kept.column("sample_weight").to_numpy()
    np.testing.assert_allclose(score, LMSurprisal(str(lm)).mean_surprisal(kept.column("text").to_pylist()), rtol=1e-6)
    assert w.mean() == pytest.approx(1.0)
    order = np.argsort(score)
    assert np.all(np.diff(w[order]) >= -1e-12) and w.max() > w.min()  # monotone in LM rarity


def test_lm_tail_step_pickles_as_its_path(lm):
    step = TailStep(TailConfig(rarity="lm", model=str(lm)), LMSurprisal(str(lm)).load())
    batch = make_batch(human_texts(3, start=1500), ids=["a", "b", "c"])
    clone = pickle.loads(pickle.dumps(step))  # what a Ray worker receives
    assert clone.reference._loaded is None
    assert clone.score(batch).column("tail_score").equals(step.score(batch).column("tail_score"))


@pytest.mark.parametrize("params, message", [
    ({"rarity": "lm"}, 't: steps[0].model: required with rarity = "lm"'),
    ({"rarity": "bigram"}, "t: steps[0].rarity: expected unigram or lm, got 'bigram'"),
    ({"model": "m"}, 't: steps[0].model: only used with rarity = "lm"'),
])
def test_lm_rarity_config_errors(params, message):
    with pytest.raises(ConfigError) as info:
        parse_pipeline({"steps": [{"kind": "tail", **params}]}, "t")
    assert str(info.value).startswith(message)


def test_missing_model_is_one_line_naming_the_key(tmp_path):
    src = write_dataset(tmp_path / "in", human_texts(5))
    cfg = parse_pipeline({"steps": [{"kind": "tail", "rarity": "lm", "model": str(tmp_path / "nope")}]}, "t")
    with pytest.raises(ConfigError) as info:
        run_filter(src, tmp_path / "o", cfg)
    assert str(info.value).startswith("t: steps[0].model: could not load model") and "\n" not in str(info.value)
    assert not (tmp_path / "o").exists()
