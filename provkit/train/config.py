"""Experiment configuration: presets (``tiny``, ``paper``) overridden by a TOML file and flags.

A TOML file may set any field of :class:`ExperimentConfig`; the nested tables
``[train]``, ``[decoding]`` and ``[tiny_model]`` set those dataclasses.  Every
value is checked before any work starts; a bad one is one line naming the key.

Conditions (``conditions = [...]``):

* ``replace`` -- generation n trains on the data generation n-1 wrote;
* ``keep-human=F`` -- a fraction F (0 < F <= 1) of the mix is original human blocks;
* ``accumulate`` -- human data plus every generation's data so far;
* ``curated`` / ``curated=PIPELINE.toml`` -- the accumulate mix passed through a
  ``prov filter`` pipeline (default: ``presets/curated.toml``); training honours
  its ``sample_weight``.
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
    mix: str  # replace | keep-human | accumulate
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
        f"{where} = {spec!r}: unknown condition; expected replace, keep-human=F, accumulate or curated[=pipeline.toml]"
    )


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything a run depends on (stored as ``RUN/config.json``; resuming requires the same one)."""

    preset: str = "tiny"
    model: str = "tiny"  # "tiny" (OPTConfig, trained locally) or a path / hub name
    corpus: str = "builtin:python-docs"  # builtin:NAME, "wikitext-2-raw-v1", or a local path
    block_size: int = 64
    train_blocks: int = 96  # human blocks in generation 0's training set (0 = all)
    test_blocks: int = 192  # 0 = the corpus's whole test split (or a tenth of the blocks when it has none)
    pretrain_epochs: int = 1  # tiny only: the base model is pre-trained on the remaining human blocks
    pretrain_blocks: int = 3000
    vocab_size: int = 2048
    generations: int = 5
    seeds: tuple[int, ...] = (0,)
    conditions: tuple[str, ...] = ("replace", "keep-human=0.1", "accumulate", "curated")
    epochs: int = 2  # when the mix holds no original data
    epochs_with_human: int = 2  # when it does (keep-human, accumulate, curated)
    generate_batch_size: int = 32
    eval_batch_size: int = 64
    threads: int = 1  # torch threads; 0 = all cores (a 2-layer model is fastest on one thread, 4x under load)
    embedding_diversity: bool = False
    embedding_samples: int = 64
    self_bleu_samples: int = 64
    detector: str | None = None
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=16, warmup_steps=5))
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
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
_NON_NEGATIVE = ("train_blocks", "test_blocks", "pretrain_epochs", "pretrain_blocks", "threads", "embedding_samples",
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
            preset="paper", model="facebook/opt-125m", corpus="wikitext-2-raw-v1", train_blocks=0, test_blocks=0,
            pretrain_epochs=0, generations=9, seeds=(0, 1, 2), conditions=("replace", "keep-human=0.1"),
            epochs=5, epochs_with_human=10, generate_batch_size=32, eval_batch_size=32, threads=0, embedding_diversity=True,
            embedding_samples=512, self_bleu_samples=256,
            train=TrainConfig(epochs=5, batch_size=16, lr=5e-5, warmup_steps=100, weight_decay=0.0),
        )
    raise ConfigError(f"--preset: unknown {name!r}; expected one of {', '.join(PRESETS)}")


def apply_overrides(base: ExperimentConfig, overrides: dict[str, Any], source: str = "<flags>") -> ExperimentConfig:
    """``base`` with the given keys replaced; unknown keys and wrong types are one-line errors."""

    def section(name: str) -> Any:
        def convert(value: Any, where: Any) -> Any:
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
