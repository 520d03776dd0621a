"""Real small language models and their text for the detector tests (built once per test session).

Two tiny OPTs share one byte-level BPE tokenizer trained on 300 builtin python-docs documents:
the *scorer* (1 layer x 64, 2 epochs) and a *reference* (1 layer x 32, other seed, 1 epoch), saved
with provkit's ``save_model``.  Model text is what the scorer writes after 8-token prompts taken from
other builtin documents, under a named decoding; human text is other builtin documents cut to the same
number of tokens (decoded with the same tokenizer, so both look alike).
"""

from __future__ import annotations

import atexit
import functools
import itertools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from provkit.filters.detector import DetectorConfig
from provkit.provenance import iter_builtin
from provkit.lm import (
    DecodingConfig,
    TinyOPTConfig,
    TrainConfig,
    build_tiny_opt,
    generate_continuations,
    load_model,
    make_blocks,
    pad_right,
    save_model,
    train_bpe_tokenizer,
    train_lm,
)

SCORER = TinyOPTConfig(layers=1, hidden=64, heads=2, ffn=128, max_positions=320)
REFERENCE = TinyOPTConfig(layers=1, hidden=32, heads=2, ffn=64, max_positions=320)
N_TRAIN = 300
PROMPT = 8
DECODINGS = {
    "greedy+rep1.3": DecodingConfig(max_new_tokens=48, num_beams=1, do_sample=False, repetition_penalty=1.3),
    "beam3+rep3.0": DecodingConfig(max_new_tokens=48, num_beams=3, do_sample=False, repetition_penalty=3.0),
    "temp0.7": DecodingConfig(max_new_tokens=48, num_beams=1, do_sample=True, temperature=0.7,
                              repetition_penalty=1.0),
}


@dataclass(frozen=True)
class TinyLMs:
    scorer: Path
    reference: Path


@functools.lru_cache(maxsize=1)
def docs() -> tuple[str, ...]:
    return tuple(d.text for d in itertools.islice(iter_builtin("python-docs"), 2000))


@functools.lru_cache(maxsize=1)
def tiny_lms() -> TinyLMs:
    root = Path(tempfile.mkdtemp(prefix="provkit-det-lms-"))
    atexit.register(shutil.rmtree, root, True)
    train = list(docs()[:N_TRAIN])
    tok = train_bpe_tokenizer(train, vocab_size=512)
    ids, mask = pad_right([b.token_ids for b in make_blocks(train, tok, block_size=64)], tok.pad_token_id)
    paths = []
    for name, shape, seed, epochs in (("scorer", SCORER, 0, 2), ("reference", REFERENCE, 1, 1)):
        model = build_tiny_opt(tok, shape, seed=seed)
        train_lm(model, ids, mask, None, TrainConfig(epochs=epochs, batch_size=16, lr=3e-3, seed=seed))
        paths.append(save_model(model, tok, root / name))
    return TinyLMs(*paths)


@functools.lru_cache(maxsize=None)
def _encoded(start: int) -> tuple[tuple[int, ...], ...]:
    _, tok = load_model(tiny_lms().scorer)
    return tuple(tuple(tok(t, add_special_tokens=False)["input_ids"]) for t in docs()[start:])


def human_texts(n: int, tokens: int, start: int = N_TRAIN) -> list[str]:
    """``n`` builtin documents after ``start`` with at least ``tokens`` tokens, cut to ``tokens`` tokens."""
    _, tok = load_model(tiny_lms().scorer)
    long = [e for e in _encoded(start) if len(e) >= tokens]
    if len(long) < n:
        raise ValueError(f"only {len(long)} documents of >= {tokens} tokens after {start}")
    return [tok.decode(list(e[:tokens])) for e in long[:n]]


@functools.lru_cache(maxsize=None)
def _generate(decoding: str, n: int, new_tokens: int, seed: int, prompt_start: int) -> tuple[list, list]:
    model, tok = load_model(tiny_lms().scorer)
    prompts = [list(e[:PROMPT]) for e in _encoded(prompt_start) if len(e) >= PROMPT][:n]
    cfg = DecodingConfig(**{**DECODINGS[decoding].to_dict(), "max_new_tokens": new_tokens})
    return prompts, generate_continuations(model, prompts, cfg, pad_id=tok.pad_token_id, eos_id=None, seed=seed)


def model_texts(decoding: str, n: int, new_tokens: int = 48, seed: int = 0, prompt_start: int = 1200,
                with_prompt: bool = True) -> tuple[str, ...]:
    """``n`` texts: an 8-token prompt from builtin documents (from ``prompt_start`` on) and the scorer's
    continuation under ``decoding`` (``with_prompt=False``: the continuation alone)."""
    _, tok = load_model(tiny_lms().scorer)
    prompts, new = _generate(decoding, n, new_tokens, seed, prompt_start)
    return tuple(tok.decode((p if with_prompt else []) + t) for p, t in zip(prompts, new))


def decoding_dict(decoding: str) -> dict:
    return DECODINGS[decoding].to_dict()


def zeroshot_config(**kw) -> DetectorConfig:
    """A zeroshot detector config on the two tiny models."""
    lms = tiny_lms()
    return DetectorConfig(**{"kind": "zeroshot", "model": str(lms.scorer), "reference_model": str(lms.reference),
                             **kw})
