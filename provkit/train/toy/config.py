"""What a toy run depends on: the kind, the mixing condition, sizes, seeds (and the VAE's settings).

Conditions are the language experiment's, applied to a toy's training set of
generation n >= 2 (generation 1 always fits the originals):

* ``replace`` -- the M samples drawn from fit n-1;
* ``keep-human=F`` -- ``k = round(F*M)`` originals plus the first ``M - k`` of
  those samples (they are i.i.d., so the first ones are a uniform subset);
* ``accumulate`` -- the originals plus every generation's samples so far (n*M);
* ``accumulate-fixed`` -- accumulate's pool, but only M of it, drawn uniformly
  without replacement each generation (replace's budget).

"Originals" are fresh draws from the true distribution for ``gaussian`` and
``gmm`` (the theory's source of human data), and a fresh random subset of the
real digits for ``vae`` (a finite human set, as in the language experiment).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from provkit.errors import ConfigError
from provkit.train.config import Condition, parse_condition

TOY_KINDS = ("gaussian", "gmm", "vae")
TOY_CONDITIONS = ("replace", "keep-human=0.1", "accumulate", "accumulate-fixed")

# samples (M), generations, repeats (parallel chains; seeds for the vae) when not given
KIND_DEFAULTS = {"gaussian": (100, 200, 1000), "gmm": (100, 100, 100), "vae": (0, 10, 1)}


def parse_toy_condition(spec: str, where: str = "--condition") -> Condition:
    """``replace`` | ``keep-human=F`` | ``accumulate`` | ``accumulate-fixed`` -> :class:`Condition`.

    The experiment's own conditions (:func:`provkit.train.config.parse_condition`) but ``curated``: the toys have no
    text to filter.
    """
    if not isinstance(spec, str) or spec.partition("=")[0] not in ("replace", "keep-human", "accumulate", "accumulate-fixed"):
        raise ConfigError(f"{where} = {spec!r}: unknown toy condition; expected replace, keep-human=F, accumulate "
                          "or accumulate-fixed" + (" (the toys have no text to curate)" if str(spec).startswith("curated") else ""))
    return parse_condition(spec, where)


def kept_originals(condition: Condition, samples: int) -> int:
    """How many originals a keep-human training set of ``samples`` holds (``round(F*M)``, at least 1)."""
    if condition.mix != "keep-human":
        return 0
    return max(1, min(samples, round(condition.human_fraction * samples)))


@dataclass(frozen=True)
class VaeSettings:
    """The digits VAE: MLP encoder/decoder, Gaussian pixel likelihood with fixed ``pixel_sigma`` on [0, 1]."""

    hidden: int = 128
    latent: int = 8
    pixel_sigma: float = 0.1
    steps: int = 600  # Adam steps per generation, whatever the training set's size (compute-matched)
    batch_size: int = 256
    lr: float = 2e-3
    threads: int = 1  # torch threads while the loop runs (restored afterwards)
    classifier_hidden: int = 64  # the judge: an MLP trained once on 80% of the real digits

    def __post_init__(self) -> None:
        for key in ("hidden", "latent", "steps", "batch_size", "threads", "classifier_hidden"):
            if getattr(self, key) < 1:
                raise ConfigError(f"vae {key}: must be >= 1, got {getattr(self, key)}")
        if self.pixel_sigma <= 0 or self.lr <= 0:
            raise ConfigError("vae pixel_sigma and lr must be > 0")


@dataclass(frozen=True)
class ToyConfig:
    """One toy run under one condition. ``None`` sizes take the kind's default (``KIND_DEFAULTS``);
    for ``vae``, ``samples`` = 0 means all 1,797 digits and ``repeats`` counts seeds ``seed, seed+1, ...``."""

    kind: str = "gaussian"
    samples: int | None = None  # M
    generations: int | None = None
    repeats: int | None = None
    seed: int = 0
    condition: str = "replace"
    mu: float = 0.0
    sigma: float = 1.0
    gmm_means: tuple[float, float] = (-2.0, 2.0)
    gmm_sigmas: tuple[float, float] = (1.0, 1.0)
    gmm_weights: tuple[float, float] = (0.5, 0.5)
    em_iterations: int = 8
    vae: VaeSettings = field(default_factory=VaeSettings)

    def __post_init__(self) -> None:
        if self.kind not in TOY_KINDS:
            raise ConfigError(f"toy kind: unknown {self.kind!r}; expected one of {', '.join(TOY_KINDS)}")
        for key, default in zip(("samples", "generations", "repeats"), KIND_DEFAULTS[self.kind]):
            if getattr(self, key) is None:
                object.__setattr__(self, key, default)
        bad_samples = (self.samples != 0 and self.samples < 10) if self.kind == "vae" else self.samples < 2
        if bad_samples or self.generations < 1 or self.repeats < 1:
            raise ConfigError("--samples must be >= 2 (vae: 0 = all 1,797 digits, or >= 10), --generations and "
                              f"--repeats >= 1; got {self.samples}, {self.generations}, {self.repeats}")
        parse_toy_condition(self.condition)

    @property
    def parsed_condition(self) -> Condition:
        return parse_toy_condition(self.condition)

    def with_condition(self, condition: str) -> ToyConfig:
        return replace(self, condition=condition)

    def to_json(self) -> dict:
        doc = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "vae"}
        if self.kind == "vae":
            doc["vae"] = {k: getattr(self.vae, k) for k in self.vae.__dataclass_fields__}
        return doc
