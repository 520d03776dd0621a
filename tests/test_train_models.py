"""The model API: tokenizer, tiny OPT, weighted training, generation, perplexity."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from provkit.errors import ConfigError
from provkit.provenance import iter_builtin
from provkit.lm import (
    DecodingConfig,
    TinyOPTConfig,
    TrainConfig,
    build_tiny_opt,
    clone_model,
    corpus_perplexity,
    encode_texts,
    generate_continuations,
    load_model,
    make_blocks,
    pad_right,
    per_sequence_loss,
    save_model,
    sequence_perplexities,
    train_bpe_tokenizer,
    train_lm,
    weighted_loss,
)

SHAPE = TinyOPTConfig(layers=1, hidden=32, heads=2, ffn=64, max_positions=160)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [d.text for d in itertools.islice(iter_builtin("python-docs"), 300)]


@pytest.fixture(scope="module")
def tok(texts):
    return train_bpe_tokenizer(texts, vocab_size=512)


@pytest.fixture(scope="module")
def blocks(texts, tok):
    return make_blocks(texts, tok, block_size=32)


def test_tokenizer_roundtrips_and_reloads(tok, texts, tmp_path):
    sample = texts[3] + " ünïcode ✓"
    ids = tok(sample, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == sample
    model = build_tiny_opt(tok, SHAPE)
    save_model(model, tok, tmp_path / "m")
    model2, tok2 = load_model(tmp_path / "m")
    assert tok2(sample, add_special_tokens=False)["input_ids"] == ids
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)


def test_load_model_missing_is_one_line_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_model(tmp_path / "nope")
    assert "--model PATH" in str(info.value) and "\n" not in str(info.value)


def test_blocks_are_full_and_name_their_documents(blocks, tok, texts):
    assert all(len(b.token_ids) == 32 for b in blocks)
    joined = []
    for t in texts:
        joined += tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert list(blocks[1].token_ids) == joined[32:64]
    assert blocks[0].doc_ids[0] == "doc-0"


def test_weighted_loss_is_weighted_mean_and_weight_two_equals_duplicate(tok, blocks):
    model = build_tiny_opt(tok, SHAPE, seed=1)
    ids, mask = pad_right([b.token_ids for b in blocks[:3]], tok.pad_token_id)
    s, c = per_sequence_loss(model, ids, mask)
    w = torch.tensor([2.0, 1.0, 0.0])
    per = s / c
    assert torch.allclose(weighted_loss(s, c, w), (2 * per[0] + per[1]) / 3)
    # the gradient of weights (2, 1, 0) equals the gradient of the mean over (a, a, b)
    def grads(loss):
        model.zero_grad()
        loss.backward()
        return [p.grad.clone() for p in model.parameters()]

    g_w = grads(weighted_loss(*per_sequence_loss(model, ids, mask), w))
    ids2, mask2 = ids[[0, 0, 1]], mask[[0, 0, 1]]
    g_d = grads(weighted_loss(*per_sequence_loss(model, ids2, mask2), torch.ones(3)))
    for a, b in zip(g_w, g_d):
        assert torch.allclose(a, b, atol=1e-6)


def test_train_lm_honours_sample_weight(tok, blocks):
    """Up-weighting half of the data lowers its loss relative to an unweighted run from the same base."""
    ids, mask = pad_right([b.token_ids for b in blocks[:64]], tok.pad_token_id)
    base = build_tiny_opt(tok, SHAPE, seed=2)
    cfg = TrainConfig(epochs=3, batch_size=16, lr=5e-3, seed=0)
    flat, tilted = clone_model(base), clone_model(base)
    train_lm(flat, ids, mask, None, cfg)
    w = np.r_[np.full(32, 10.0), np.full(32, 0.1)]
    train_lm(tilted, ids, mask, w, cfg)
    first = slice(0, 32)
    assert corpus_perplexity(tilted, ids[first], mask[first]) < corpus_perplexity(flat, ids[first], mask[first])
    assert corpus_perplexity(tilted, ids[32:], mask[32:]) > corpus_perplexity(flat, ids[32:], mask[32:])


def test_training_lowers_perplexity_and_is_deterministic(tok, blocks):
    ids, mask = pad_right([b.token_ids for b in blocks[:128]], tok.pad_token_id)
    base = build_tiny_opt(tok, SHAPE, seed=0)
    before = corpus_perplexity(base, ids, mask)
    runs = []
    for _ in range(2):
        m = clone_model(base)
        train_lm(m, ids, mask, None, TrainConfig(epochs=4, batch_size=16, lr=1e-2, seed=5))
        runs.append(sequence_perplexities(m, ids, mask))
    assert np.array_equal(runs[0], runs[1])
    assert np.exp(np.mean(np.log(runs[0]))) < 0.5 * before


def test_generation_exact_length_and_deterministic(tok, blocks):
    model = build_tiny_opt(tok, SHAPE, seed=0)
    prompts = [b.token_ids for b in blocks[:5]] + [blocks[5].token_ids[:20]]  # one shorter prompt: left padding
    for dec in (DecodingConfig(max_new_tokens=12, num_beams=3), DecodingConfig(max_new_tokens=12, num_beams=1, do_sample=True, repetition_penalty=1.0)):
        a = generate_continuations(model, prompts, dec, pad_id=tok.pad_token_id, eos_id=tok.eos_token_id, batch_size=4, seed=3)
        b = generate_continuations(model, prompts, dec, pad_id=tok.pad_token_id, eos_id=tok.eos_token_id, batch_size=4, seed=3)
        assert a == b
        assert all(len(x) == 12 for x in a)
        # the short prompt alone gives the same continuation as inside a left-padded batch (greedy/beam only)
        if not dec.do_sample:
            alone = generate_continuations(model, prompts[-1:], dec, pad_id=tok.pad_token_id, eos_id=tok.eos_token_id)
            assert alone[0] == a[-1]


def test_repetition_penalty_reduces_repeats(tok, blocks):
    model = build_tiny_opt(tok, SHAPE, seed=0)
    prompts = [b.token_ids for b in blocks[:8]]
    kw = dict(pad_id=tok.pad_token_id, eos_id=tok.eos_token_id)
    plain = generate_continuations(model, prompts, DecodingConfig(max_new_tokens=24, num_beams=1, repetition_penalty=1.0), **kw)
    pen = generate_continuations(model, prompts, DecodingConfig(max_new_tokens=24, num_beams=1, repetition_penalty=3.0), **kw)
    assert np.mean([len(set(x)) for x in pen]) > np.mean([len(set(x)) for x in plain])


def test_bad_decoding_config_is_a_config_error():
    with pytest.raises(ConfigError, match="num_beams"):
        DecodingConfig(num_beams=0)


def test_encode_texts_truncates_and_masks(tok):
    ids, mask = encode_texts(["a b c", "x" * 400], tok, max_length=16)
    assert ids.shape[1] <= 16 and mask[0].sum() < mask[1].sum() == 16
