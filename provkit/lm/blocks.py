"""Turning texts into fixed-size token blocks and padded tensors.

Blocking follows the paper's released code (the ``group_texts`` recipe of
Hugging Face examples): documents are tokenized, joined with ``</s>`` between
them, and cut into consecutive ``block_size``-token blocks; the remainder
shorter than a block is dropped.  Each block remembers the documents it
overlaps, so its provenance record can name them as parents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from provkit.core.lazy import lazy_import

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

torch = lazy_import("torch")


@dataclass(frozen=True)
class Block:
    """One ``block_size``-token training block cut from the joined corpus."""

    id: str
    token_ids: tuple[int, ...]
    doc_ids: tuple[str, ...]  # the source documents it overlaps


def make_blocks(
    texts: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    block_size: int = 64,
    doc_ids: Sequence[str] | None = None,
    id_prefix: str = "block",
) -> list[Block]:
    """Cut the ``</s>``-joined token stream of ``texts`` into ``block_size`` blocks (remainder dropped)."""
    doc_ids = list(doc_ids) if doc_ids is not None else [f"doc-{i}" for i in range(len(texts))]
    if len(doc_ids) != len(texts):
        raise ValueError(f"{len(doc_ids)} doc ids for {len(texts)} texts")
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    owner: list[int] = []
    for d, toks in enumerate(encoded):
        stream.extend(toks)
        stream.append(eos)
        owner.extend([d] * (len(toks) + 1))
    blocks = []
    for b, start in enumerate(range(0, len(stream) - block_size + 1, block_size)):
        docs = sorted(set(owner[start : start + block_size]))
        blocks.append(
            Block(f"{id_prefix}-{b:06d}", tuple(stream[start : start + block_size]), tuple(doc_ids[d] for d in docs))
        )
    return blocks


def split_blocks(blocks: Sequence[Block], test_fraction: float, seed: int) -> tuple[list[Block], list[Block]]:
    """A seeded random (train, test) split; test gets ``round(test_fraction * n)`` blocks."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(blocks))
    n_test = int(round(test_fraction * len(blocks)))
    test = sorted(order[:n_test])
    train = sorted(order[n_test:])
    return [blocks[i] for i in train], [blocks[i] for i in test]


def pad_right(sequences: Sequence[Sequence[int]], pad_id: int, max_length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``(ids, attention_mask)`` int64 tensors, each sequence truncated to ``max_length``."""
    seqs = [list(s)[:max_length] if max_length else list(s) for s in sequences]
    width = max((len(s) for s in seqs), default=0)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def pad_left(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ``(ids, attention_mask)``, the layout ``generate`` needs for a batch of prompts."""
    width = max((len(s) for s in sequences), default=0)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        if len(s):
            ids[i, width - len(s) :] = torch.tensor(list(s), dtype=torch.long)
            mask[i, width - len(s) :] = 1
    return ids, mask


def encode_texts(
    texts: Sequence[str], tokenizer: PreTrainedTokenizerBase, max_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenize records' texts (no special tokens) into right-padded tensors of at most ``max_length``."""
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return pad_right(encoded, tokenizer.pad_token_id, max_length)
