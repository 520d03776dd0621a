"""Byte-level BPE tokenizers trained locally with `tokenizers`.

A byte-level BPE starts from the 256 byte symbols and greedily merges the most
frequent adjacent pair until ``vocab_size`` symbols exist, so every string
round-trips through ``encode``/``decode`` with no unknown token.  The result is
saved and loaded as a ``transformers.PreTrainedTokenizerFast`` directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"
SPECIAL_TOKENS = (PAD, EOS, UNK)  # ids 0, 1, 2


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 2048, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``texts``; ``<pad>``=0, ``</s>``=1 (bos and eos), ``<unk>``=2.

    Deterministic for the same texts and parameters.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast  # lazy: transformers loads torch (seconds); see provkit.core.lazy

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, bos_token=EOS, unk_token=UNK
    )


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, path: str | Path) -> Path:
    """Save as a ``PreTrainedTokenizerFast`` directory (``tokenizer.json`` + configs)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(path))
    return path


def load_tokenizer(path_or_name: str | Path) -> PreTrainedTokenizerBase:
    """Load a tokenizer directory or hub name (never with remote code)."""
    from transformers import AutoTokenizer  # lazy: transformers loads torch (seconds); see provkit.core.lazy

    tok = AutoTokenizer.from_pretrained(str(path_or_name), trust_remote_code=False)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok
