"""Pipeline configuration: a TOML file or command-line flags -> a validated list of step configs.

A pipeline file lists steps in order::

    [[steps]]
    kind = "exact_dedup"

    [[steps]]
    kind = "tail"
    alpha = 0.5

Every key of a step but ``kind`` is a field of that step's config dataclass;
an unknown step, an unknown key or a value of the wrong type is one error line
naming the key (``pipeline.toml: steps[2].threshold: expected a number, got "high"``;
steps are counted from 0).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from provkit.core.config import build_dataclass, read_toml
from provkit.errors import ConfigError
from provkit.filters.mix import parse_mix_flag
from provkit.filters.steps import STEP_CONFIGS

TOP_LEVEL_KEYS = ("steps", "name", "description")
PIPELINES = Path(__file__).parent / "pipelines"
"""Pipelines shipped in the package: ``--config NAME`` reads ``PIPELINES/NAME.toml`` (``default``)."""


def packaged_pipelines() -> list[str]:
    return sorted(p.stem for p in PIPELINES.glob("*.toml"))


@dataclass
class StepSpec:
    """One step of a pipeline: its kind (registry name) and its validated config dataclass."""

    kind: str
    config: Any

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self.config)}


@dataclass
class PipelineConfig:
    """An ordered list of steps, and where it came from (a file or ``<flags>``)."""

    steps: list[StepSpec] = field(default_factory=list)
    source: str = "<flags>"
    name: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "steps": [s.to_json() for s in self.steps]}

    def sha256(self) -> str:
        """sha256 of the canonical JSON of the steps (what the output's activity records)."""
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_toml(self) -> str:
        """The pipeline as a TOML file that :func:`load_pipeline` reads back to an equal config."""
        lines = [f"name = {json.dumps(self.name)}", ""] if self.name else []
        for spec in self.steps:
            lines.append("[[steps]]")
            lines.append(f'kind = "{spec.kind}"')
            for key, value in asdict(spec.config).items():
                if value is not None:
                    lines.append(f"{key} = {_toml_value(value)}")
            lines.append("")
        return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)


def step_configs() -> dict[str, type]:
    """Registry: step kind -> config dataclass (derived from :data:`provkit.filters.steps.STEPS`)."""
    return STEP_CONFIGS


def build_step_spec(index: int, entry: Any, source: str) -> StepSpec:
    """Validate one ``[[steps]]`` table into a :class:`StepSpec` (errors name ``steps[index].key``)."""
    where = f"{source}: steps[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a table with a 'kind' key, got {json.dumps(entry, default=str)}")
    registry = step_configs()
    kind = entry.get("kind")
    if kind is None:
        raise ConfigError(f"{where}.kind: missing; one of {', '.join(registry)}")
    if kind not in registry:
        raise ConfigError(f"{where}.kind: unknown step {json.dumps(kind)}; expected one of {', '.join(registry)}")
    config_cls = registry[kind]
    values = {k: v for k, v in entry.items() if k != "kind"}
    values = build_dataclass(config_cls, values, lambda key: f"{where}.{key}", context=f" for step {kind!r}")
    try:
        return StepSpec(kind, config_cls(**values))
    except ConfigError as exc:
        raise ConfigError(f"{where}.{exc}") from None


def parse_pipeline(obj: dict[str, Any], source: str = "<config>") -> PipelineConfig:
    """Validate a decoded pipeline document (the TOML tables) into a :class:`PipelineConfig`."""
    for key in obj:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"{source}: {key}: unknown key; expected {', '.join(TOP_LEVEL_KEYS)}")
    steps = obj.get("steps", [])
    if not isinstance(steps, list):
        raise ConfigError(f"{source}: steps: expected an array of tables ([[steps]]), got {type(steps).__name__}")
    specs = [build_step_spec(i, entry, source) for i, entry in enumerate(steps)]
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs):
        if spec.kind in seen:
            raise ConfigError(f"{source}: steps[{i}].kind: step {spec.kind!r} already given at steps[{seen[spec.kind]}]")
        seen[spec.kind] = i
    name = obj.get("name", "")
    if not isinstance(name, str):
        raise ConfigError(f"{source}: name: expected a string, got {json.dumps(name, default=str)}")
    return PipelineConfig(specs, source, name)


def load_pipeline(path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline TOML file, or a pipeline shipped in the package by name (``default``)."""
    name = str(path)
    if not Path(path).exists() and (PIPELINES / f"{name}.toml").is_file():
        return parse_pipeline(read_toml(PIPELINES / f"{name}.toml", name), name)
    obj = read_toml(path, f"{path}: no such pipeline file (the packaged ones: {', '.join(packaged_pipelines())})")
    return parse_pipeline(obj, str(path))


def default_step(kind: str) -> dict[str, Any]:
    """The settings of step ``kind`` in the packaged default pipeline (``{"kind": kind}`` when it has none):
    the step flags of ``prov filter`` start from them, so ``--quality`` and ``--config default`` agree."""
    doc = read_toml(PIPELINES / "default.toml", "default")
    return dict(next((s for s in doc.get("steps", []) if s.get("kind") == kind), {"kind": kind}))


@dataclass
class FilterFlags:
    """The command-line flags that build a pipeline without a file (canonical step order)."""

    dedup: tuple[str, ...] = ()
    minhash_threshold: float | None = None
    quality: bool = False
    detector: str | None = None
    detector_fpr: float | None = None
    max_model_prob: float | None = None
    detector_beta: float | None = None
    tail_alpha: float | None = None
    tail_target: int | None = None
    mix: str | None = None
    mix_records: int | None = None
    mix_tokens: int | None = None
    mix_alpha: float | None = None
    seed: int | None = None

    def any_step(self) -> bool:
        return bool(self.dedup or self.quality or self.detector or self.tail_alpha is not None
                    or self.tail_target is not None or self.mix)


DEDUP_FLAGS = {"exact": "exact_dedup", "minhash": "minhash_dedup"}


def flags_to_document(flags: FilterFlags) -> dict[str, Any]:
    """The pipeline document (same shape as the TOML) the flags stand for."""
    steps: list[dict[str, Any]] = []
    seeded = {} if flags.seed is None else {"seed": flags.seed}
    for name in flags.dedup:
        if name not in DEDUP_FLAGS:
            raise ConfigError(f"--dedup: unknown method {name!r}; expected exact, minhash or exact,minhash")
        step: dict[str, Any] = default_step(DEDUP_FLAGS[name])
        if name == "minhash":
            step.update(seeded)
            if flags.minhash_threshold is not None:
                step["threshold"] = flags.minhash_threshold
        steps.append(step)
    if flags.minhash_threshold is not None and "minhash" not in flags.dedup:
        raise ConfigError("--minhash-threshold: needs --dedup minhash")
    if flags.quality:
        steps.append(default_step("quality"))
    if flags.detector:
        step = {"kind": "detector", "path": flags.detector}
        if flags.detector_beta is not None:
            step.update({"policy": "weight", "beta": flags.detector_beta})
        if flags.detector_fpr is not None:
            step["fpr"] = flags.detector_fpr
        if flags.max_model_prob is not None:
            step["max_model_prob"] = flags.max_model_prob
        steps.append(step)
    elif flags.max_model_prob is not None or flags.detector_beta is not None or flags.detector_fpr is not None:
        raise ConfigError("--detector-fpr/--max-model-prob/--detector-beta: need --detector DET")
    if flags.tail_alpha is not None or flags.tail_target is not None:
        step = {**default_step("tail"), **seeded}
        if flags.tail_alpha is not None:
            step["alpha"] = flags.tail_alpha
        if flags.tail_target is not None:
            step["target"] = flags.tail_target
        steps.append(step)
    if flags.mix:
        step = {"kind": "mix", **parse_mix_flag(flags.mix), **seeded}
        for key, value in (("records", flags.mix_records), ("tokens", flags.mix_tokens), ("alpha", flags.mix_alpha)):
            if value is not None:
                step[key] = value
        steps.append(step)
    elif flags.mix_records is not None or flags.mix_tokens is not None or flags.mix_alpha is not None:
        raise ConfigError("--mix-records/--mix-tokens/--mix-alpha: need --mix POLICY")
    return {"steps": steps}


def pipeline_from_flags(flags: FilterFlags) -> PipelineConfig:
    """The same :class:`PipelineConfig` a TOML file would give, from flags."""
    return parse_pipeline(flags_to_document(flags), "<flags>")


def resolve_pipeline(path: str | Path | None, flags: FilterFlags) -> PipelineConfig:
    """The pipeline of ``prov filter``: from ``--config FILE`` or from step flags (not both, not neither)."""
    if path is not None and flags.any_step():
        raise ConfigError(f"--config {path}: give a pipeline file or step flags (--dedup, --tail-alpha, ...), not both")
    if path is not None:
        return load_pipeline(path)
    if not flags.any_step():
        raise ConfigError("no steps: give --config pipeline.toml or step flags (e.g. --dedup exact,minhash --quality)")
    return pipeline_from_flags(flags)
