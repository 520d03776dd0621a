"""Text watermarks as origin evidence: the Kirchenbauer et al. green-list scheme as transformers ships it.

Generation adds ``bias`` to the logits of a pseudo-random "green" share
``gamma = greenlist_ratio`` of the vocabulary, re-drawn at every step from the
previous token(s) and a secret ``hashing_key`` (transformers'
``WatermarkingConfig`` -> ``WatermarkLogitsProcessor``).  Detection re-draws the
green list for each scored token and counts the green hits ``g`` among the
``T`` scored tokens; without the watermark ``g ~ Binomial(T, gamma)``, so

    z = (g - gamma T) / sqrt(T gamma (1 - gamma)),    p = P(N(0, 1) >= z)

(transformers' ``WatermarkDetector``, used here as it is).  A text has
``T = tokens - context_width`` scored tokens (``- context_width + 1`` for
``selfhash``); below ``min_tokens`` it gets the stated result ``"too short"``
and null scores.

Repeated n-grams.  The binomial null assumes independent draws, but a text that
repeats an n-gram (code, tables, boilerplate) repeats its green/red outcome, which
inflates ``|z|`` on human text.  ``ignore_repeated_ngrams=True`` (transformers'
``WatermarkDetector`` argument; Kirchenbauer et al. 2024, "On the reliability of
watermarks") scores each distinct (context, token) n-gram once: ``T`` = the number
of distinct n-grams, ``g`` = the green ones among them.  This is provkit's default
(:data:`IGNORE_REPEATED_NGRAMS`): on python-docs human text it brings the z
distribution back to the null's N(0, 1) (see ``benchmarks/watermark.py``).

Keys.  The secret is a file (``--key-file``) or an environment variable
(``--key-env NAME``), never a command-line value.  From it provkit derives

    hashing_key = HMAC-SHA256(secret, "provkit-kgw-hashing-key")[:8] mod (2^63 - 1) + 1
    key_id      = SHA256("provkit-watermark-key-id" | 0 | secret)[:16 hex]

The hashing key lives only in memory; outputs, reports and generator metadata
store the **fingerprint** ``{scheme, seeding_scheme, key_id, context_width,
greenlist_ratio, bias, tokenizer_hash}`` and nothing from which the key follows.

Cost: scoring a text is one ``randperm(vocab)`` per distinct scored n-gram
(about 0.02 ms for a 2k vocabulary, 0.5 ms for OPT's 50k), no model forward pass:
detection needs the generator's tokenizer and config, not its weights.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np
import pyarrow as pa

from provkit.core.config import build_dataclass
from provkit.core.lazy import lazy_import
from provkit.errors import ConfigError
from provkit.lm.tokenizer import load_tokenizer

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedTokenizerBase, WatermarkingConfig

torch = lazy_import("torch")

SCHEMES = ("kgw",)
"""``kgw``: Kirchenbauer et al. 2023 green list (transformers ``WatermarkingConfig``)."""
SEEDING_SCHEMES = ("lefthash", "selfhash")
OK = "ok"
TOO_SHORT = "too short"
MIN_KEY_BYTES = 16
DEFAULT_Z = 4.0
DEFAULT_MIN_TOKENS = 8
IGNORE_REPEATED_NGRAMS = True
"""Score each distinct n-gram once (benchmarks/watermark.py: human z has sd 0.95-1.01, as the null says, vs
1.14-1.17 counting every window at 64-128 tokens; README "Watermarks")."""

TOKENS, GREEN, Z, P, STATUS = (
    "watermark_tokens", "watermark_green_fraction", "watermark_z", "watermark_p", "watermark_status",
)
COLUMNS = (TOKENS, GREEN, Z, P, STATUS)
"""The annotation columns a watermark scoring writes (null scores where the text is too short)."""


# ---------------------------------------------------------------- keys
class WatermarkKey:
    """A secret watermark key read from a file or an environment variable.

    Only :attr:`key_id` (a one-way id) and :attr:`hashing_key` (the integer
    transformers seeds its green lists with; a secret too) are exposed; the
    repr shows the id alone.
    """

    def __init__(self, secret: bytes, where: str):
        self._secret = secret
        self.where = where  # "file K" / "environment variable NAME": for messages, never the value
        self.key_id = hashlib.sha256(b"provkit-watermark-key-id\0" + secret).hexdigest()[:16]
        digest = hmac.new(secret, b"provkit-kgw-hashing-key", hashlib.sha256).digest()
        self.hashing_key = int.from_bytes(digest[:8], "big") % (2**63 - 1) + 1

    def __repr__(self) -> str:
        return f"WatermarkKey(id={self.key_id})"

    def __reduce__(self) -> Any:  # never ship the secret to another process or a pickle file
        raise TypeError("a WatermarkKey is not picklable; ship the key file path or env var name instead")


def read_key(key_file: str | Path | None = None, key_env: str | None = None, *, file_flag: str = "--key-file",
             env_flag: str = "--key-env") -> WatermarkKey:
    """The key in ``key_file`` (surrounding whitespace stripped) or in the environment variable ``key_env``.

    Exactly one must be given; a missing, empty or short (< 16 bytes) key is one
    line naming the flag and the fix, never quoting the key.
    """
    if (key_file is None) == (key_env is None):
        raise ConfigError(f"watermark key: give exactly one of {file_flag} FILE or {env_flag} NAME "
                          f"(never the key itself on the command line)")
    if key_file is not None:
        where = f"{file_flag} {key_file}"
        try:
            secret = Path(key_file).read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read the key file ({exc.strerror or type(exc).__name__})") from None
    else:
        where = f"{env_flag} {key_env}"
        value = os.environ.get(str(key_env))
        if value is None:
            raise ConfigError(f"{where}: the environment variable is not set; export it with the key")
        secret = value.strip().encode("utf-8")
    if len(secret) < MIN_KEY_BYTES:
        raise ConfigError(f"{where}: the key is {'empty' if not secret else f'{len(secret)} bytes'}; use at least "
                          f"{MIN_KEY_BYTES} random bytes, e.g. `head -c 32 /dev/urandom | base64 > wm.key`")
    return WatermarkKey(secret, where)


def tokenizer_hash(tokenizer: PreTrainedTokenizerBase) -> str:
    """16 hex of SHA-256 over the tokenizer's (token, id) pairs: which ids the green lists were drawn over."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------- config
@dataclass(frozen=True)
class WatermarkConfig:
    """The watermark section of a decoding config (``[decoding.watermark]``) or of a detector/filter step.

    ``key_file`` / ``key_env`` say where the secret is; the config itself never holds it.
    """

    scheme: str = "kgw"
    seeding_scheme: str = "lefthash"
    greenlist_ratio: float = 0.25
    bias: float = 2.0
    context_width: int = 1
    key_file: str | None = None
    key_env: str | None = None

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ConfigError(f"watermark.scheme: expected one of {', '.join(SCHEMES)}, got {self.scheme!r}")
        if self.seeding_scheme not in SEEDING_SCHEMES:
            raise ConfigError(f"watermark.seeding_scheme: expected one of {', '.join(SEEDING_SCHEMES)}, "
                              f"got {self.seeding_scheme!r}")
        if not 0.0 < self.greenlist_ratio < 1.0:
            raise ConfigError(f"watermark.greenlist_ratio: must be in (0, 1), got {self.greenlist_ratio}")
        if self.bias < 0:
            raise ConfigError(f"watermark.bias: must be >= 0, got {self.bias}")
        if self.context_width < 1:
            raise ConfigError(f"watermark.context_width: must be >= 1, got {self.context_width}")
        if (self.key_file is None) == (self.key_env is None):
            raise ConfigError("watermark: give exactly one of key_file (a path) or key_env (an environment "
                              "variable name); the key itself is never written in a config")

    def key(self) -> WatermarkKey:
        return read_key(self.key_file, self.key_env, file_flag="watermark.key_file", env_flag="watermark.key_env")

    def transformers_config(self, key: WatermarkKey | None = None) -> WatermarkingConfig:
        """transformers' ``WatermarkingConfig`` for ``generate`` / ``WatermarkDetector`` (holds the hashing key)."""
        from transformers import WatermarkingConfig  # lazy: transformers loads torch (seconds); see provkit.core.lazy

        key = key or self.key()
        return WatermarkingConfig(greenlist_ratio=self.greenlist_ratio, bias=self.bias, hashing_key=key.hashing_key,
                                  seeding_scheme=self.seeding_scheme, context_width=self.context_width)

    def fingerprint(self, tokenizer: PreTrainedTokenizerBase | None = None, key: WatermarkKey | None = None) -> dict[str, Any]:
        """What generator metadata stores: the scheme and its parameters, the key id, the tokenizer hash; no key."""
        key = key or self.key()
        return {"scheme": self.scheme, "seeding_scheme": self.seeding_scheme, "key_id": key.key_id,
                "context_width": self.context_width, "greenlist_ratio": self.greenlist_ratio, "bias": self.bias,
                "tokenizer_hash": tokenizer_hash(tokenizer) if tokenizer is not None else None}


def watermark_config(value: Any) -> WatermarkConfig | None:
    """A :class:`WatermarkConfig` from itself, a TOML table (dict) or None (no watermark)."""
    if value is None or isinstance(value, WatermarkConfig):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"decoding.watermark: expected a table, got {json.dumps(value, default=str)}")
    return WatermarkConfig(**build_dataclass(WatermarkConfig, value, lambda key: f"decoding.watermark.{key}"))


# ---------------------------------------------------------------- scores
@dataclass
class WatermarkScores:
    """Per-text results: scored tokens, green fraction, z, one-sided p-value, status (``ok`` / ``too short``).

    Scores are NaN where the status is ``too short``.
    """

    tokens: np.ndarray
    green_fraction: np.ndarray
    z: np.ndarray
    p: np.ndarray
    status: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tokens)

    def above(self, z_threshold: float) -> np.ndarray:
        """True where z >= ``z_threshold`` (never for a too-short text)."""
        return np.nan_to_num(self.z, nan=-np.inf) >= z_threshold

    @property
    def too_short(self) -> np.ndarray:
        return np.array([s == TOO_SHORT for s in self.status], dtype=bool)

    def columns(self) -> dict[str, pa.Array]:
        """The :data:`COLUMNS` as Arrow arrays (null scores for too-short texts)."""
        short = self.too_short

        def scores(x: np.ndarray) -> pa.Array:
            return pa.array(x, pa.float64(), mask=short | np.isnan(x))

        return {TOKENS: pa.array(self.tokens, pa.int32()), GREEN: scores(self.green_fraction), Z: scores(self.z),
                P: scores(self.p), STATUS: pa.array(self.status, pa.string())}


class WatermarkScorer:
    """Scores texts for one key and watermark config with transformers' ``WatermarkDetector``.

    ``model_config`` gives the vocabulary size the green lists were drawn over
    (the generating model's ``config.vocab_size``) and its BOS id; ``tokenizer``
    turns text into the generator's token ids.  ``min_tokens``: fewer scored
    tokens is ``"too short"``.  ``ignore_repeated_ngrams``: score each distinct n-gram
    once (see the module docstring).
    """

    def __init__(self, config: WatermarkConfig, tokenizer: PreTrainedTokenizerBase, model_config: PretrainedConfig,
                 *, key: WatermarkKey | None = None, min_tokens: int = DEFAULT_MIN_TOKENS, model: str | None = None,
                 ignore_repeated_ngrams: bool = IGNORE_REPEATED_NGRAMS):
        from transformers import WatermarkDetector  # lazy: transformers loads torch (seconds); see provkit.core.lazy

        if min_tokens < 1:
            raise ConfigError(f"min_tokens: must be >= 1, got {min_tokens}")
        key = key or config.key()
        self.config = config
        self.tokenizer = tokenizer
        self.model = model
        self.min_tokens = min_tokens
        self.ignore_repeated_ngrams = ignore_repeated_ngrams
        self.key_id = key.key_id
        self.tokenizer_hash = tokenizer_hash(tokenizer)
        self.fingerprint = config.fingerprint(tokenizer, key)
        self._detector = WatermarkDetector(model_config=model_config, device="cpu",
                                           watermarking_config=config.transformers_config(key),
                                           ignore_repeated_ngrams=ignore_repeated_ngrams)
        self._bos = model_config.bos_token_id
        self._ngram = config.context_width + (0 if config.seeding_scheme == "selfhash" else 1)

    def __repr__(self) -> str:
        return f"WatermarkScorer(model={self.model!r}, key_id={self.key_id}, {asdict(self.config)})"

    def __reduce__(self) -> Any:
        raise TypeError("a WatermarkScorer holds a key; ship its config (key file / env name) and rebuild it")

    def scored_tokens(self, ids: Sequence[int]) -> int:
        """Tokens scored in ``ids``: one per n-gram window, or per distinct n-gram with ``ignore_repeated_ngrams``."""
        if not self.ignore_repeated_ngrams:
            return max(len(ids) - self._ngram + 1, 0)
        return len({tuple(ids[i: i + self._ngram]) for i in range(len(ids) - self._ngram + 1)})

    def score_ids(self, sequences: Sequence[Sequence[int]]) -> WatermarkScores:
        n = len(sequences)
        tokens = np.zeros(n, dtype=np.int64)
        green, z, p = (np.full(n, np.nan) for _ in range(3))
        status = [TOO_SHORT] * n
        for i, ids in enumerate(sequences):
            ids = list(ids)
            if ids and self._bos is not None and ids[0] == self._bos:
                ids = ids[1:]  # the detector drops a leading BOS too; count what it scores
            tokens[i] = self.scored_tokens(ids)
            if tokens[i] < self.min_tokens or len(ids) <= self.config.context_width:
                continue
            out = self._detector(torch.tensor([ids], dtype=torch.long), return_dict=True)
            green[i], z[i], p[i] = out.green_fraction[0], out.z_score[0], out.p_value[0]
            status[i] = OK
        return WatermarkScores(tokens, green, z, p, status)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]

    def score_texts(self, texts: Sequence[str]) -> WatermarkScores:
        """Scores of ``texts`` (tokenised with the generator's tokenizer, no special tokens)."""
        return self.score_ids(self.encode(texts)) if len(texts) else self.score_ids([])

    def check_fingerprints(self, fingerprints: Iterable[dict[str, Any]]) -> list[str]:
        """One line per stored fingerprint this scorer cannot detect (other key, tokenizer or green-list parameters)."""
        lines = []
        mine = self.fingerprint
        for fp in fingerprints:
            if fp.get("key_id") != mine["key_id"]:
                lines.append(f"records were watermarked with key id {fp.get('key_id')} but the given key has id "
                             f"{mine['key_id']}: detection with this key cannot find their watermark; "
                             f"pass that generator's key")
            elif fp.get("tokenizer_hash") not in (None, mine["tokenizer_hash"]):
                lines.append(f"records were watermarked over tokenizer {fp.get('tokenizer_hash')} but "
                             f"{self.model or 'the given model'} has tokenizer {mine['tokenizer_hash']}: pass the "
                             f"generating model with --model")
            else:
                diff = [k for k in ("scheme", "seeding_scheme", "context_width", "greenlist_ratio")
                        if k in fp and fp[k] != mine[k]]
                if diff:
                    lines.append("records were watermarked with " + ", ".join(f"{k}={fp[k]}" for k in diff)
                                 + " but detection uses " + ", ".join(f"{k}={mine[k]}" for k in diff)
                                 + ": set the same values")
        return lines


def load_scorer(model: str | Path, config: WatermarkConfig, *, key: WatermarkKey | None = None,
                min_tokens: int = DEFAULT_MIN_TOKENS,
                ignore_repeated_ngrams: bool = IGNORE_REPEATED_NGRAMS) -> WatermarkScorer:
    """A scorer for the generating model at ``model`` (its config and tokenizer; the weights are not read)."""
    from transformers import AutoConfig  # lazy: transformers loads torch (seconds); see provkit.core.lazy

    try:
        model_config = AutoConfig.from_pretrained(str(model), trust_remote_code=False)
        tok = load_tokenizer(model)
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"--model {model}: cannot load the generator's config and tokenizer ({first[:160]})") from None
    return WatermarkScorer(config, tok, model_config, key=key, min_tokens=min_tokens, model=str(model),
                           ignore_repeated_ngrams=ignore_repeated_ngrams)


def score_watermark(texts: Sequence[str], model: str | Path, *, key_file: str | Path | None = None,
                key_env: str | None = None, min_tokens: int = DEFAULT_MIN_TOKENS,
                ignore_repeated_ngrams: bool = IGNORE_REPEATED_NGRAMS, **config: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(z, p)`` arrays for ``texts`` (NaN where too short): the one-call API for experiments.

    ``config`` holds the other :class:`WatermarkConfig` fields (``greenlist_ratio``, ``seeding_scheme``, ...)::

        z, p = score_watermark(texts, "run/seed0/gen00/model", key_file="wm.key")
        watermarked = np.nan_to_num(z, nan=-np.inf) >= 4.0
    """
    cfg = WatermarkConfig(key_file=str(key_file) if key_file is not None else None, key_env=key_env, **config)
    scorer = load_scorer(model, cfg, min_tokens=min_tokens, ignore_repeated_ngrams=ignore_repeated_ngrams)
    scores = scorer.score_texts(texts)
    return scores.z, scores.p
