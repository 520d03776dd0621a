"""Continuations of prompts with a named decoding configuration.

The paper's setting: every 64-token training block is a prompt and the model
writes the next 64 tokens with 5-way beam search and repetition penalty 3.0
(the released code).  ``min_new_tokens = max_new_tokens`` makes every
continuation exactly one block long, as in the paper's fixed-size blocks.
A ``watermark`` section (:class:`provkit.lm.watermark.WatermarkConfig`) makes
``generate`` watermark the continuations (transformers' ``WatermarkingConfig``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from provkit.core.lazy import lazy_import
from provkit.errors import ConfigError
from provkit.lm.blocks import pad_left
from provkit.lm.watermark import WatermarkConfig, watermark_config

if TYPE_CHECKING:
    from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

torch = lazy_import("torch")


@dataclass(frozen=True)
class DecodingConfig:
    """How continuations are decoded; ``to_dict()`` is what the ``generator.decoding`` column stores."""

    max_new_tokens: int = 64
    num_beams: int = 5
    repetition_penalty: float = 3.0
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    exact_length: bool = True
    watermark: WatermarkConfig | None = None  # [decoding.watermark]: green-list watermark (key from a file / env var)

    def __post_init__(self) -> None:
        object.__setattr__(self, "watermark", watermark_config(self.watermark))
        if self.watermark is not None:
            self.watermark.key()  # a missing or short key is an error now, before any work
        if self.max_new_tokens < 1:
            raise ConfigError(f"decoding.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.num_beams < 1:
            raise ConfigError(f"decoding.num_beams must be >= 1, got {self.num_beams}")
        if self.repetition_penalty <= 0:
            raise ConfigError(f"decoding.repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.do_sample and self.temperature <= 0:
            raise ConfigError(f"decoding.temperature must be > 0 when sampling, got {self.temperature}")

    def to_dict(self, tokenizer: PreTrainedTokenizerBase | None = None) -> dict[str, Any]:
        """The parameters; a watermark appears as its fingerprint (key id, tokenizer hash), never its key."""
        out = asdict(self)
        del out["watermark"]
        if self.watermark is not None:
            out["watermark"] = self.watermark.fingerprint(tokenizer)
        return out

    def generation_config(self, pad_id: int, eos_id: int | None) -> GenerationConfig:
        from transformers import GenerationConfig  # lazy: transformers loads torch (seconds); see provkit.core.lazy

        kwargs: dict[str, Any] = dict(
            max_new_tokens=self.max_new_tokens,
            num_beams=self.num_beams,
            repetition_penalty=self.repetition_penalty,
            do_sample=self.do_sample,
            pad_token_id=pad_id,
            eos_token_id=eos_id,
        )
        if self.exact_length:
            kwargs["min_new_tokens"] = self.max_new_tokens
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_k=self.top_k or None, top_p=self.top_p)
        if self.watermark is not None:
            kwargs["watermarking_config"] = self.watermark.transformers_config()
        return GenerationConfig(**kwargs)


def generate_continuations(
    model: PreTrainedModel,
    prompts: Sequence[Sequence[int]],
    decoding: DecodingConfig,
    *,
    pad_id: int,
    eos_id: int | None,
    batch_size: int = 32,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> list[list[int]]:
    """The new tokens (prompt removed) for each prompt, in order.

    Prompts are left-padded per batch; sampling is seeded per batch from ``seed``
    so the output does not depend on what ran before.
    """
    with torch.inference_mode():
        model.eval()
        gen_cfg = decoding.generation_config(pad_id, eos_id)
        out: list[list[int]] = []
        for b, start in enumerate(range(0, len(prompts), batch_size)):
            chunk = prompts[start : start + batch_size]
            ids, mask = pad_left(chunk, pad_id)
            ids, mask = ids.to(model.device), mask.to(model.device)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed * 1_000_003 + b)  # CPU and (when there is one) the current GPU's generator
                seqs = model.generate(input_ids=ids, attention_mask=mask, generation_config=gen_cfg)
            new = seqs[:, ids.size(1) :]
            for row in new.tolist():
                while row and row[-1] == pad_id and not decoding.exact_length:
                    row.pop()
                out.append(row)
            if progress:
                progress(len(chunk))
        return out
