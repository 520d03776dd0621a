"""Experiment configuration: presets (``tiny``, ``paper``) overridden by a TOML file and flags.

A TOML file may set any field of :class:`ExperimentConfig`; the nested tables
``[train]``, ``[decoding]`` and ``[tiny_model]`` set those dataclasses.  Every
value is checked before any work starts; a bad one is one line naming the key.

Conditions (``conditions = [...]``) and their epoch rules:

* ``replace`` -- generation n trains on G_n, the data generation n-1 wrote
  (``epochs``);
* ``keep-human=F`` -- a training set of replace's size of which a fraction F
  (0 < F <= 1) is original human blocks (``provkit.filters.mix``, the one meaning
  ``prov filter --mix`` has too) (``epochs_with_human``);
* ``accumulate`` -- human data plus every generation's data so far, a pool that
  grows every generation (``epochs_with_human``: more data *and* more steps);
* ``accumulate-fixed`` -- accumulate's pool, but each generation draws replace's
  record count uniformly from it and trains replace's ``epochs``: the same
  optimizer steps and (to within the records' lengths) tokens as replace, so it
  separates "older data" from "more data and compute";
* ``curated`` / ``curated=PIPELINE.toml`` -- the accumulate mix passed through a
  ``prov filter`` pipeline (default: ``presets/curated.toml``); training honours
  its ``sample_weight`` (``epochs_with_human``).

Every metrics row records the records, tokens, optimizer steps and epochs it trained on.

Protocol options (defaults follow the released code of Shumailov et al. and Drayson et al.):

* ``prompts = "human"`` -- every generation continues the original human training
  blocks (both released codes); ``"chained"`` prompts generation n with G_n (ablation);
* ``start_from = "base"`` -- each generation fine-tunes the pre-trained base model
  (both released codes load the pre-trained model for every generation); ``"gen0"``
  fine-tunes generation 0's model instead (ablation);
* ``best_epoch = true`` -- keep the epoch with the lowest loss on held-out human
  validation blocks (the paper: wikitext-2's validation split); false keeps the last;
* ``decoding = "beam"`` (5 beams, repetition penalty 3.0, the paper) or ``"sample"``
  (temperature 1, no penalty), or a ``[decoding]`` table.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provkit.core.config import build_dataclass, read_toml
from provkit.errors import ConfigError
from provkit.lm import DecodingConfig, TinyOPTConfig, TrainConfig

PRESET_DIR = Path(__file__).parent / "presets"
PRESETS = ("tiny", "paper")
DEFAULT_PIPELINE = PRESET_DIR / "curated.toml"


@dataclass(frozen=True)
class Condition:
    """One experimental arm: how each generation's training mix is built."""

    name: str
    mix: str  # replace | keep-human | accumulate | accumulate-fixed
    human_fraction: float = 0.0
    pipeline: str | None = None

    @property
    def slug(self) -> str:
        return self.name.replace("=", "-").replace("/", "_").replace(".toml", "")


def parse_condition(spec: str, where: str = "conditions") -> Condition:
    """``replace`` | ``keep-human=F`` | ``accumulate`` | ``curated[=pipeline.toml]`` -> :class:`Condition`."""
    if not isinstance(spec, str):
        raise ConfigError(f"{where}: expected a string like 'keep-human=0.1', got {spec!r}")
    name, _, arg = spec.partition("=")
    if name == "replace" and not arg:
        return Condition(spec, "replace")
    if name == "accumulate" and not arg:
        return Condition(spec, "accumulate")
    if name == "accumulate-fixed" and not arg:
        return Condition(spec, "accumulate-fixed")
    if name == "keep-human":
        try:
            frac = float(arg)
        except ValueError:
            raise ConfigError(f"{where} = {spec!r}: keep-human needs a fraction, e.g. keep-human=0.1") from None
        if not 0.0 < frac <= 1.0:
            raise ConfigError(f"{where} = {spec!r}: the human fraction must be in (0, 1], got {frac}")
        return Condition(spec, "keep-human", frac)
    if name == "curated":
        pipeline = arg or str(DEFAULT_PIPELINE)
        if not Path(pipeline).is_file():
            raise ConfigError(f"{where} = {spec!r}: pipeline file {pipeline} not found")
        return Condition(spec, "accumulate", 0.0, pipeline)
    raise ConfigError(
        f"{where} = {spec!r}: unknown condition; expected replace, keep-human=F, accumulate, accumulate-fixed or "
        f"curated[=pipeline.toml]"
    )


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything a run depends on (stored as ``RUN/config.json``; resuming requires the same one)."""

    preset: str = "tiny"
    model: str = "tiny"  # "tiny" (OPTConfig, trained locally) or a path / hub name
    corpus: str = "builtin:python-docs"  # builtin:NAME, "wikitext-2-raw-v1", or a local path
    block_size: int = 32
    train_blocks: int = 64  # human blocks in generation 0's training set (0 = all)
    val_blocks: int = 64  # held-out human blocks for best-epoch selection (0 = the whole validation split)
    test_blocks: int = 128  # 0 = the corpus's whole test split (or a tenth of the blocks when it has none)
    pretrain_epochs: int = 2  # tiny only: the base model is pre-trained on the remaining human blocks
    pretrain_blocks: int = 0  # 0 = all remaining blocks
    vocab_size: int = 2048
    generations: int = 5
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    conditions: tuple[str, ...] = ("replace", "keep-human=0.1", "accumulate", "accumulate-fixed", "curated")
    prompts: str = "human"  # human | chained
    start_from: str = "base"  # base | gen0
    best_epoch: bool = True
    epochs: int = 2  # when the mix holds no original data (replace, accumulate-fixed)
    epochs_with_human: int = 2  # when it does (keep-human, accumulate, curated)
    generate_batch_size: int = 32
    eval_batch_size: int = 64
    threads: int = 1  # torch threads per process; 0 = all cores (a 2-layer model is fastest on one thread)
    embedding_diversity: bool = False
    embedding_samples: int = 64
    self_bleu_samples: int = 64
    detector: str | None = None
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=16, warmup_steps=5))
    decoding: DecodingConfig = field(default_factory=lambda: DecodingConfig(max_new_tokens=32))
    tiny_model: TinyOPTConfig = field(default_factory=TinyOPTConfig)

    def __post_init__(self) -> None:
        validate(self)

    @property
    def parsed_conditions(self) -> list[Condition]:
        return [parse_condition(c, f"conditions[{i}]") for i, c in enumerate(self.conditions)]

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


_NESTED = {"train": TrainConfig, "decoding": DecodingConfig, "tiny_model": TinyOPTConfig}
_POSITIVE = ("block_size", "generations", "epochs", "epochs_with_human", "generate_batch_size", "eval_batch_size",
             "vocab_size")
PROMPTS = ("human", "chained")
START_FROM = ("base", "gen0")
DECODING_PRESETS: dict[str, dict[str, Any]] = {
    "beam": {"num_beams": 5, "repetition_penalty": 3.0, "do_sample": False},  # the paper's released code
    "sample": {"num_beams": 1, "repetition_penalty": 1.0, "do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0},
}
_NON_NEGATIVE = ("train_blocks", "val_blocks", "test_blocks", "pretrain_epochs", "pretrain_blocks", "threads", "embedding_samples",
                 "self_bleu_samples")


def validate(cfg: ExperimentConfig) -> None:
    """Raise one :class:`ConfigError` line for the first bad value."""
    if cfg.preset not in PRESETS:
        raise ConfigError(f"preset: unknown {cfg.preset!r}; expected one of {', '.join(PRESETS)}")
    for key in _POSITIVE:
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key}: must be >= 1, got {getattr(cfg, key)}")
    for key in _NON_NEGATIVE:
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{key}: must be >= 0, got {getattr(cfg, key)}")
    if not cfg.seeds:
        raise ConfigError("seeds: give at least one seed")
    if len(set(cfg.seeds)) != len(cfg.seeds):
        raise ConfigError("seeds: a seed is listed twice")
    if cfg.prompts not in PROMPTS:
        raise ConfigError(f"prompts: expected one of {', '.join(PROMPTS)}, got {cfg.prompts!r}")
    if cfg.start_from not in START_FROM:
        raise ConfigError(f"start_from: expected one of {', '.join(START_FROM)}, got {cfg.start_from!r}")
    if not cfg.conditions:
        raise ConfigError("conditions: give at least one condition")
    if len(set(cfg.conditions)) != len(cfg.conditions):
        raise ConfigError("conditions: a condition is listed twice")
    for i, c in enumerate(cfg.conditions):
        parse_condition(c, f"conditions[{i}]")
    t = cfg.train
    if t.epochs < 1 or t.batch_size < 1 or t.lr <= 0 or t.warmup_steps < 0:
        raise ConfigError(f"train: epochs/batch_size must be >= 1 and lr > 0 (got {t})")
    if cfg.block_size + cfg.decoding.max_new_tokens > cfg.tiny_model.max_positions and cfg.model == "tiny":
        raise ConfigError("tiny_model.max_positions: must be >= block_size + decoding.max_new_tokens")


def preset(name: str) -> ExperimentConfig:
    """The named preset: ``tiny`` (offline, minutes on a CPU) or ``paper`` (OPT-125m on wikitext-2)."""
    if name == "tiny":
        return ExperimentConfig()
    if name == "paper":
        return ExperimentConfig(
            preset="paper", model="facebook/opt-125m", corpus="wikitext-2-raw-v1", block_size=64, train_blocks=0,
            val_blocks=0, test_blocks=0, pretrain_epochs=0, generations=9, seeds=(0, 1, 2, 3, 4),
            conditions=("replace", "keep-human=0.1", "accumulate", "accumulate-fixed"),
            epochs=5, epochs_with_human=10, generate_batch_size=32, eval_batch_size=32, threads=0, embedding_diversity=True,
            embedding_samples=512, self_bleu_samples=256, decoding=DecodingConfig(max_new_tokens=64),
            train=TrainConfig(epochs=5, batch_size=16, lr=5e-5, warmup_steps=100, weight_decay=0.0),
        )
    raise ConfigError(f"--preset: unknown {name!r}; expected one of {', '.join(PRESETS)}")


def apply_overrides(base: ExperimentConfig, overrides: dict[str, Any], source: str = "<flags>") -> ExperimentConfig:
    """``base`` with the given keys replaced; unknown keys and wrong types are one-line errors."""

    def section(name: str) -> Any:
        def convert(value: Any, where: Any) -> Any:
            if name == "decoding" and isinstance(value, str):
                if value not in DECODING_PRESETS:
                    raise ConfigError(f"{source}: decoding: expected {' or '.join(DECODING_PRESETS)} or a table, got {value!r}")
                return dataclasses.replace(base.decoding, **DECODING_PRESETS[value])
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: [{name}] must be a table")
            values = build_dataclass(_NESTED[name], value, lambda key: f"{source}: {name}.{key}")
            try:
                return dataclasses.replace(getattr(base, name), **values)
            except TypeError as exc:
                raise ConfigError(f"{source}: [{name}]: {exc}") from None
        return convert

    changes = build_dataclass(ExperimentConfig, overrides, lambda key: f"{source}: {key}",
                              nested={name: section(name) for name in _NESTED})
    try:
        return dataclasses.replace(base, **changes)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_config(path: str | Path | None = None, preset_name: str | None = None, **flags: Any) -> ExperimentConfig:
    """Preset (from the file's ``preset`` key, ``preset_name``, or ``tiny``) + file + non-None flags."""
    doc: dict[str, Any] = {}
    source = "<flags>"
    if path is not None:
        source = str(path)
        doc = read_toml(path, f"--config {path}: no such file")
    name = preset_name or doc.pop("preset", None) or "tiny"
    doc.pop("preset", None)
    cfg = apply_overrides(preset(name), doc, source)
    return apply_overrides(cfg, {k: v for k, v in flags.items() if v is not None}, "<flags>")
