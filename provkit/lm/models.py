"""Causal language models: a tiny OPT built from ``OPTConfig``, or a pretrained one; loading, saving, cloning.

A model directory (:func:`save_model`) holds the Hugging Face weights and,
when given, the tokenizer; it is published atomically (staged, then renamed).
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from provkit.core.atomic import publish_dir
from provkit.core.lazy import lazy_import
from provkit.errors import ConfigError
from provkit.lm.tokenizer import load_tokenizer, save_tokenizer

if TYPE_CHECKING:
    from transformers import OPTForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

torch = lazy_import("torch")


@dataclass(frozen=True)
class TinyOPTConfig:
    """Shape of the small OPT-architecture model used offline."""

    layers: int = 2
    hidden: int = 128
    heads: int = 4
    ffn: int = 512
    max_positions: int = 256
    dropout: float = 0.0


def build_tiny_opt(tokenizer: PreTrainedTokenizerBase, shape: TinyOPTConfig = TinyOPTConfig(), seed: int = 0) -> OPTForCausalLM:
    """A freshly initialised OPT model sized by ``shape`` (deterministic for ``seed``)."""
    from transformers import OPTConfig, OPTForCausalLM  # lazy: transformers loads torch (seconds); see provkit.core.lazy

    config = OPTConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden,
        num_hidden_layers=shape.layers,
        ffn_dim=shape.ffn,
        num_attention_heads=shape.heads,
        max_position_embeddings=shape.max_positions,
        word_embed_proj_dim=shape.hidden,
        dropout=shape.dropout,
        attention_dropout=shape.dropout,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = OPTForCausalLM(config)
    model.eval()
    return model


def load_model(path_or_name: str | Path, *, with_tokenizer: bool = True) -> tuple[PreTrainedModel, PreTrainedTokenizerBase | None]:
    """Load a causal LM (and its tokenizer) from a directory or hub name, never running remote code.

    Raises :class:`ConfigError` with one line when it cannot be loaded (offline, missing files).
    """
    from transformers import AutoModelForCausalLM  # lazy: transformers loads torch (seconds); see provkit.core.lazy

    local = Path(path_or_name).is_dir()
    if local and not any(Path(path_or_name).glob("*.safetensors")):
        raise ConfigError(f"could not load model {str(path_or_name)!r}: it has no .safetensors weights (only "
                          "pickled ones, which provkit never loads); re-save it with save_pretrained("
                          "safe_serialization=True)")
    try:
        # a local directory: safetensors only - a pickled checkpoint from a user is never unpickled
        model = AutoModelForCausalLM.from_pretrained(str(path_or_name), trust_remote_code=False,
                                                     use_safetensors=True if local else None)
        tok = load_tokenizer(path_or_name) if with_tokenizer else None
    except (OSError, ValueError, RuntimeError, KeyError, EnvironmentError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"could not load model {str(path_or_name)!r} ({first[:160]}); download it where there is network "
            f"and pass the local directory with --model PATH"
        ) from None
    model.eval()
    return model, tok


def save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None, path: str | Path) -> Path:
    """Save model (safetensors) + tokenizer to ``path`` atomically (temp dir, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        if tokenizer is not None:
            save_tokenizer(tokenizer, tmp)
        publish_dir(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def clone_model(model: PreTrainedModel) -> PreTrainedModel:
    """An independent copy with the same weights (the 'same base' each generation starts from)."""
    copy = type(model)(model.config)
    copy.load_state_dict(model.state_dict())
    copy.to(model.device)  # a GPU model's copy stays on its device
    copy.eval()
    return copy


