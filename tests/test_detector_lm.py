"""The ``lm`` detector kind: language-model statistics and the Fast-DetectGPT score.

Real small data and a real model: a byte-level BPE tokenizer and a one-layer OPT
(provkit.train) trained here on 300 builtin python-docs documents; model text is
decoded from it greedily with repetition penalty 1.3 (as the collapse paper's beam search
with penalty; cheaper) after 8-token prompts taken from other human documents; human text is those documents cut to the same token length.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from provkit.filters.detector import DetectorConfig, DetectorError, load_detector, save_detector, train_detector
from provkit.filters.detector.lm import FEATURES, LMFeaturizer, resolve_lm_model, token_statistics
from provkit.provenance import iter_builtin
from provkit.lm import (
    DecodingConfig,
    TinyOPTConfig,
    TrainConfig,
    build_tiny_opt,
    generate_continuations,
    make_blocks,
    pad_right,
    save_model,
    train_bpe_tokenizer,
    train_lm,
)

SHAPE = TinyOPTConfig(layers=1, hidden=48, heads=2, ffn=96, max_positions=128)
LENGTH = 48
N = 80


@pytest.fixture(scope="module")
def docs() -> list[str]:
    return [d.text for d in itertools.islice(iter_builtin("python-docs"), 300 + 2 * N)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, docs) -> Path:
    train = docs[:300]
    tok = train_bpe_tokenizer(train, vocab_size=512)
    model = build_tiny_opt(tok, SHAPE, seed=0)
    ids, mask = pad_right([b.token_ids for b in make_blocks(train, tok, block_size=64)], tok.pad_token_id)
    train_lm(model, ids, mask, None, TrainConfig(epochs=3, batch_size=16, lr=3e-3, seed=0))
    return save_model(model, tok, tmp_path_factory.mktemp("lm") / "tiny-opt")


@pytest.fixture(scope="module")
def corpus(model_dir, docs) -> tuple[list[str], list[str]]:
    """(human, model) texts of 8 + LENGTH tokens each: a human prompt and its human or model continuation."""
    from provkit.lm import load_model

    model, tok = load_model(model_dir)
    enc = [tok(t, add_special_tokens=False)["input_ids"] for t in docs[300:]]
    enc = [e for e in enc if len(e) >= LENGTH]
    human = [tok.decode(e[: 8 + LENGTH]) for e in enc[:N]]
    prompts = [e[:8] for e in enc[-N:]]
    decoding = DecodingConfig(max_new_tokens=LENGTH, num_beams=1, do_sample=False, repetition_penalty=1.3)
    new = generate_continuations(model, prompts, decoding, pad_id=tok.pad_token_id, eos_id=None, seed=0)
    return human, [tok.decode(p + n) for p, n in zip(prompts, new)]


def _brute_force(model, ids: list[int]) -> np.ndarray:
    """The four features by an explicit loop over positions (NumPy, float64)."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double().numpy()
    lp, rank, ent, mu, var = [], [], [], [], []
    for t in range(1, len(ids)):
        z = logits[t - 1]
        logp = z - (np.log(np.exp(z - z.max()).sum()) + z.max())
        p = np.exp(logp)
        lp.append(logp[ids[t]])
        rank.append(1 + int((logp > logp[ids[t]]).sum()))
        ent.append(-(p * logp).sum())
        mu.append((p * logp).sum())
        var.append((p * logp**2).sum() - mu[-1] ** 2)
    d = (sum(lp) - sum(mu)) / np.sqrt(sum(var))
    return np.array([np.mean(lp), np.mean(np.log(rank)), np.mean(ent), d])


def test_token_statistics_equal_a_per_position_loop(model_dir, corpus):
    feat = LMFeaturizer.for_model(str(model_dir), max_length=40, batch_size=4)
    model, _ = feat.load()
    texts = corpus[0][:2] + corpus[1][:2] + ["short text"]
    encoded = feat.encode(texts)
    got = feat.transform(texts)  # batched, right-padded, sorted by length
    assert got.shape == (5, len(FEATURES))
    for row, ids in zip(got, encoded):
        np.testing.assert_allclose(row, _brute_force(model, ids), rtol=2e-4, atol=2e-4)
    ids, mask = pad_right(encoded[:2], 0)
    np.testing.assert_allclose(token_statistics(model, ids, mask), got[:2], rtol=1e-5, atol=1e-5)


def test_model_text_scores_higher_fast_detectgpt_than_human(model_dir, corpus):
    human, model = corpus
    feat = LMFeaturizer.for_model(str(model_dir), max_length=64)
    d_human = feat.transform(human)[:, 3]
    d_model = feat.transform(model)[:, 3]
    # decoded text sits near its model's mode; human text does not: Welch's t of the difference of means
    t = (d_model.mean() - d_human.mean()) / np.sqrt(d_model.var(ddof=1) / len(d_model) + d_human.var(ddof=1) / len(d_human))
    assert t > 3.0


def test_lm_detector_trains_saves_and_reloads(model_dir, corpus, tmp_path):
    human, model = corpus
    texts, y = human + model, [0] * len(human) + [1] * len(model)
    trained = train_detector(texts, y, DetectorConfig(kind="lm", model=str(model_dir), max_length=64))
    assert trained.heldout.auroc > 0.8
    det = save_detector(trained.detector, tmp_path / "DET")
    loaded = load_detector(det)
    np.testing.assert_allclose(loaded.predict_proba(texts[:8]), trained.detector.predict_proba(texts[:8]), atol=1e-9)


def test_changed_model_weights_are_refused(model_dir, corpus, tmp_path):
    human, model = corpus
    copy = Path(shutil.copytree(model_dir, tmp_path / "m"))
    trained = train_detector(human[:20] + model[:20], [0] * 20 + [1] * 20,
                             DetectorConfig(kind="lm", model=str(copy), max_length=32))
    det = save_detector(trained.detector, tmp_path / "DET")
    weights = copy / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-5] ^= 0x10
    weights.write_bytes(bytes(raw))
    loaded = load_detector(det)  # settings are fine; the model is checked when first used
    with pytest.raises(DetectorError, match="differs from the one this detector was trained with"):
        loaded.predict_proba(["any text"])


def test_model_flag_resolution(model_dir, tmp_path):
    with pytest.raises(DetectorError, match="needs --model PATH"):
        resolve_lm_model(None)
    with pytest.raises(DetectorError, match="neither a model directory"):
        resolve_lm_model(tmp_path)
    run = tmp_path / "RUN"  # the experiment layout: gen-0 model without tokenizer, tokenizer in setup/
    run.mkdir()
    (run / "config.json").write_text('{"preset": "tiny"}')  # the run's own config, not a model's
    shutil.copytree(model_dir, run / "seed0" / "gen00" / "model")
    shutil.copytree(model_dir, run / "setup" / "tokenizer")
    (run / "seed0" / "gen00" / "model" / "tokenizer.json").unlink()
    (run / "seed0" / "gen00" / "model" / "tokenizer_config.json").unlink()
    assert resolve_lm_model(run) == (run / "seed0" / "gen00" / "model", run / "setup" / "tokenizer")
    with pytest.raises(DetectorError, match="has no tokenizer"):
        resolve_lm_model(run / "seed0" / "gen00" / "model")
