"""The provenance-lost scenario: every generation meets a crawl with hidden model text.

Protocol (``prov experiment crawl``)::

    human blocks, split once:  test | train0 (B) | calibration | prompts | reservoir | pre-training
    model_0 = base fine-tuned on train0                                   (shared by every arm of a seed)
    detector = `prov detector train` (library path) on train0 (human) vs model_0's continuations of
               train0 (the text the user's own model wrote at generation 1); threshold = the
               (1 - fpr) quantile of P(model) on the calibration blocks; trained once per seed, frozen
    for n = 1..N, per arm:
        crawl_n  = M_n = round(m_n (1 + k) B) continuations by the arm's model_{n-1} of human prompts
                   + (1 + k) B - M_n fresh reservoir blocks (the same for every arm at a seed and n),
                   ingested with origin "unknown" except a share t keeping its declared tag;
                   opaque ids, shuffled, no generator / parents / source that differ by origin;
                   the truth goes to RUN/.../truth.parquet beside it, never into the arm's input
        selected = the arm's `prov filter` pipeline (presets/crawl/ARM.toml) over crawl_n,
                   ending in a draw of exactly B blocks (copies counted)
        model_n  = the base fine-tuned on those B blocks (unweighted: weights act through the draw)

The oracle is the one arm given the truth: its input is the crawl's truly human records.

Watermarks.  A share w (``watermark_share``) of the model-written crawl records comes from generators
that watermark (transformers' green-list ``WatermarkingConfig``): record i of the continuations for
crawl n is watermarked iff ``seeded_uniform("s{seed}:g{n}:{i}", unit seed) < w`` -- the same records in
every arm (common random numbers), whatever the arm's model.  The key is one run-local secret,
``RUN/secret/watermark.key`` (32 random bytes drawn at setup, mode 0600; or ``watermark_key_file``
to reuse one), read by the generators and by the ``watermark`` arms' filter step from that file; only
its one-way key id is recorded (``setup/metrics.json``).  The user's own generation-1 text (the
detector's training data) is never watermarked.  Per unit, every arm records the watermark's
TPR on the crawl's watermarked records, its recall of all model records and its FPR on the human
ones (z >= ``watermark_z``), and the precision / recall of the records its pipeline removed before
the budget draw against the hidden truth.

Common random numbers: training, generation and the budget draw at (seed, n) use the same seed in
every arm.  Every unit reads its inputs from committed files and is committed by its last atomic
write (``metrics.json``), so a killed run resumes with identical results, whatever ``--workers``.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import math
import os
import shutil
import string
import time
import tomllib
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from provkit.core.atomic import open_atomic, write_bytes_atomic, write_json_atomic
from provkit.core.config import build_dataclass, read_toml
from provkit.core.lazy import lazy_import
from provkit.engines import run_filter
from provkit.errors import ConfigError
from provkit.filters.config import parse_pipeline
from provkit.filters.detector import DetectorConfig, load_detector, save_detector, train_detector_on_dataset
from provkit.lm import (
    DecodingConfig,
    TinyOPTConfig,
    TrainConfig,
    WatermarkConfig,
    build_tiny_opt,
    clone_model,
    corpus_perplexity,
    encode_texts,
    generate_continuations,
    generate_with_share,
    load_model,
    load_scorer,
    load_tokenizer,
    make_blocks,
    read_key,
    save_model,
    save_tokenizer,
    train_bpe_tokenizer,
    train_lm,
)
from provkit.provenance import Activity, Dataset, DatasetWriter, Evidence, Origin, make_batch
from provkit.train.loop import load_corpus
from provkit.train.metrics import tail_recall, tail_tokens, text_metrics
from provkit.train.workers import run_graph

torch = lazy_import("torch")

ARM_DIR = Path(__file__).parent / "presets" / "crawl"
ARMS = ("naive", "oracle", "tags", "detector", "detector-weight-1", "detector-weight-10", "tail", "random-drop",
        "curated", "watermark", "watermark+detector")
ORACLE = "oracle"
KEY_FILE = Path("secret") / "watermark.key"
NOT_DRAWN = "resample_not_drawn"  # the budget draw's drop reason: not a removal
DONE = "metrics.json"
SAMPLE = DecodingConfig(num_beams=1, do_sample=True, repetition_penalty=1.0, temperature=1.0)


@dataclass(frozen=True)
class CrawlConfig:
    """Everything a crawl run depends on (stored as ``RUN/config.json``; resuming needs the same one)."""

    model: str = "tiny"
    corpus: str = "builtin:python-docs"
    block_size: int = 64
    vocab_size: int = 2048
    pretrain_blocks: int = 3000
    pretrain_epochs: int = 1
    test_blocks: int = 128
    budget: int = 32  # B: blocks trained on per generation, every arm
    oversample: float = 1.0  # k: the crawl holds (1 + k) B blocks
    schedule: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9)  # m_n, the model share of crawl n (n = 1..N)
    kept_tags: float = 0.0  # t: share of crawl records that keep their declared origin tag
    arms: tuple[str, ...] = ARMS
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    epochs: int = 3
    detector_kind: str = "ngram"
    detector_fpr: float = 0.05  # the threshold's false-positive rate on held-out human blocks
    calibration_blocks: int = 128
    max_copies: int = 3
    watermark_share: float = 0.5  # w: share of the model-written crawl records whose generator watermarks
    watermark_z: float = 4.0  # the watermark arms drop z >= this (and the per-unit TPR/FPR use it)
    watermark_bias: float = 2.0  # delta added to the green logits
    watermark_greenlist_ratio: float = 0.25  # gamma
    watermark_key_file: str | None = None  # None: a random key drawn at setup into RUN/secret/watermark.key
    generate_batch_size: int = 32
    eval_batch_size: int = 64
    threads: int = 1
    self_bleu_samples: int = 32
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=16, warmup_steps=2))
    decoding: DecodingConfig = SAMPLE
    tiny_model: TinyOPTConfig = field(default_factory=TinyOPTConfig)

    def __post_init__(self) -> None:
        for key in ("block_size", "budget", "epochs", "calibration_blocks", "max_copies", "test_blocks"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be >= 1, got {getattr(self, key)}")
        if self.oversample < 0:
            raise ConfigError(f"oversample: must be >= 0, got {self.oversample}")
        if not self.schedule or any(not 0.0 <= m <= 1.0 for m in self.schedule):
            raise ConfigError(f"schedule: give one model share in [0, 1] per generation, got {list(self.schedule)}")
        if not 0.0 <= self.kept_tags <= 1.0:
            raise ConfigError(f"kept_tags: must be in [0, 1], got {self.kept_tags}")
        if not 0.0 <= self.watermark_share <= 1.0:
            raise ConfigError(f"watermark_share: must be in [0, 1], got {self.watermark_share}")
        if not math.isfinite(self.watermark_z):
            raise ConfigError(f"watermark_z: must be a finite number, got {self.watermark_z}")
        if not 0.0 < self.watermark_greenlist_ratio < 1.0:
            raise ConfigError(f"watermark_greenlist_ratio: must be in (0, 1), got {self.watermark_greenlist_ratio}")
        if self.watermark_bias < 0:
            raise ConfigError(f"watermark_bias: must be >= 0, got {self.watermark_bias}")
        if not 0.0 < self.detector_fpr < 1.0:
            raise ConfigError(f"detector_fpr: must be in (0, 1), got {self.detector_fpr}")
        if not self.seeds:
            raise ConfigError("seeds: give at least one seed")
        if not self.arms or len(set(self.arms)) != len(self.arms):
            raise ConfigError("arms: give each arm once")
        for arm in self.arms:
            arm_pipeline(arm)
        if "naive" not in self.arms:
            raise ConfigError("arms: 'naive' is required (the gap is measured from it)")

    @property
    def generations(self) -> int:
        return len(self.schedule)

    @property
    def crawl_size(self) -> int:
        return int(round((1 + self.oversample) * self.budget))

    def model_blocks(self, n: int) -> int:
        """M_n: model-written records in crawl n (n >= 1)."""
        return int(round(self.schedule[n - 1] * self.crawl_size))

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


def arm_pipeline(spec: str) -> tuple[str, Path]:
    """``name`` (a shipped arm) or ``name=PATH.toml`` -> (name, pipeline file)."""
    name, _, path = spec.partition("=")
    p = Path(path) if path else ARM_DIR / f"{name}.toml"
    if not p.is_file():
        raise ConfigError(f"arms: {spec!r}: no pipeline {p} (shipped arms: {', '.join(ARMS)}; or name=PATH.toml)")
    return name, p


_NESTED = {"train": TrainConfig, "decoding": DecodingConfig, "tiny_model": TinyOPTConfig}


def load_crawl_config(path: str | Path | None = None, **flags: Any) -> CrawlConfig:
    """Defaults + TOML file + non-None flags (one-line errors naming the key)."""
    base = CrawlConfig()
    doc = read_toml(path, f"--config {path}: no such file") if path is not None else {}
    doc.update({k: v for k, v in flags.items() if v is not None})
    source = str(path) if path else "<flags>"

    def section(name: str) -> Callable[[Any, Any], Any]:
        def convert(value: Any, where: Any) -> Any:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: [{name}] must be a table")
            values = build_dataclass(_NESTED[name], value, lambda key: f"{source}: {name}.{key}")
            return dataclasses.replace(getattr(base, name), **values)
        return convert

    changes = build_dataclass(CrawlConfig, doc, lambda key: f"{source}: {key}", nested={k: section(k) for k in _NESTED})
    return dataclasses.replace(base, **changes)


# ---------------------------------------------------------------- small pure pieces


def unit_seed(seed: int, generation: int) -> int:
    """The seed of every arm's unit at (seed, generation): common random numbers across arms."""
    return (seed * 1_000_003 + zlib.crc32(b"crawl") * 101 + generation) % (2**31 - 1)


def threshold_at_fpr(p_human: np.ndarray, fpr: float) -> float:
    """The smallest threshold T with share(P(model) > T) <= fpr on human texts (the (1 - fpr) quantile)."""
    p = np.sort(np.asarray(p_human, dtype=np.float64))
    if p.size == 0:
        return 0.5
    k = int(math.floor(fpr * p.size))  # at most k human texts may lie above T
    return float(p[p.size - k - 1]) if k < p.size else 0.0


def detector_rates(p: np.ndarray, is_model: np.ndarray, threshold: float) -> tuple[float, float]:
    """(TPR, FPR) of the rule P(model) > threshold against the truth."""
    flagged = np.asarray(p) > threshold
    m = np.asarray(is_model, dtype=bool)
    tpr = float(flagged[m].mean()) if m.any() else float("nan")
    fpr = float(flagged[~m].mean()) if (~m).any() else float("nan")
    return tpr, fpr


def opaque_id(seed: int, n: int, key: str) -> str:
    return "crawl-" + hashlib.blake2b(f"{seed}|{n}|{key}".encode(), digest_size=8).hexdigest()


def removal_rates(removed: set[str], true: dict[str, str]) -> tuple[float, float]:
    """(precision, recall) of removing model text: model share of ``removed``; share of the model records removed.

    Precision is NaN when nothing was removed, recall NaN when the crawl holds no model text.
    """
    model = {i for i, o in true.items() if o == "model"}
    hit = len(removed & model)
    return (hit / len(removed) if removed else float("nan"), hit / len(model) if model else float("nan"))


def write_key(path: Path) -> None:
    """32 random bytes, base64, into ``path`` (mode 0600, directory 0700, atomic): the run's watermark secret."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open_atomic(path) as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(base64.b64encode(os.urandom(32)) + b"\n")


def expand_copies(texts: Sequence[str], copies: Sequence[int] | None) -> list[str]:
    if copies is None:
        return list(texts)
    return [t for t, c in zip(texts, copies) for _ in range(int(c))]


# ---------------------------------------------------------------- the run


def _fresh(unit: Path) -> Path:
    if unit.exists():
        shutil.rmtree(unit)
    unit.mkdir(parents=True)
    return unit


def _texts(path: Path) -> list[str]:
    return Dataset.open(path).read(columns=["text"]).column("text").to_pylist()


def _share(hit: np.ndarray, among: np.ndarray) -> float:
    """mean(hit[among]); NaN when ``among`` is empty."""
    return float(hit[among].mean()) if among.any() else float("nan")


class CrawlRun:
    """One crawl run directory: setup, generation 0 + detector per seed, each arm's generations."""

    def __init__(self, cfg: CrawlConfig, out: str | Path, *, stop_after: int | None = None):
        self.cfg = cfg
        self.out = Path(out)
        self.arms = dict(arm_pipeline(a) for a in cfg.arms)
        self.stop_after = stop_after  # tests: raise after this many units (a kill)
        self.done = 0
        self.resumed = 0
        self._cache: dict[str, Any] = {}

    # --- paths -------------------------------------------------------------
    @property
    def setup_dir(self) -> Path:
        return self.out / "setup"

    def gen0_dir(self, seed: int) -> Path:
        return self.out / f"seed{seed}" / "gen00"

    def unit_dir(self, seed: int, arm: str, n: int) -> Path:
        return self.gen0_dir(seed) if n == 0 else self.out / f"seed{seed}" / arm / f"gen{n:02d}"

    @property
    def key_path(self) -> Path:
        return Path(self.cfg.watermark_key_file) if self.cfg.watermark_key_file else self.out / KEY_FILE

    # --- config ------------------------------------------------------------
    def check_config(self) -> None:
        path = self.out / "config.json"
        mine = {"scenario": "crawl", **self.cfg.to_json()}
        if path.exists():
            theirs = json.loads(path.read_text())
            if theirs != mine:
                diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
                raise ConfigError(f"{path}: this run directory was started with a different config (differs in "
                                  f"{', '.join(diff)}); rerun with the same config to resume, or choose another --out")
        else:
            self.out.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, mine)

    # --- shared state (loaded lazily, once per process) -----------------------
    def _get(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def tokenizer(self) -> Any:
        return self._get("tok", lambda: load_tokenizer(self.setup_dir / "tokenizer"))

    @property
    def base(self) -> Any:
        return self._get("base", lambda: load_model(self.setup_dir / "base", with_tokenizer=False)[0])

    def _encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return encode_texts(texts, self.tokenizer, self.cfg.block_size)

    def test_ppl(self, model: Any) -> float:
        test = self._get("test", lambda: self._encode(_texts(self.setup_dir / "human-test")))
        return float(corpus_perplexity(model, *test, self.cfg.eval_batch_size))

    def tail_set(self) -> set[int]:
        def make() -> set[int]:
            tok = self.tokenizer
            train = tok(_texts(self.setup_dir / "human-train0"), add_special_tokens=False)["input_ids"]
            test = tok(_texts(self.setup_dir / "human-test"), add_special_tokens=False)["input_ids"]
            return tail_tokens(train, test)
        return self._get("tail", make)

    @property
    def watermark(self) -> WatermarkConfig:
        """The generators' watermark (key from :attr:`key_path`), checked against the key id setup recorded."""
        def make() -> WatermarkConfig:
            cfg = self.cfg
            wm = WatermarkConfig(key_file=str(self.key_path), bias=cfg.watermark_bias,
                                 greenlist_ratio=cfg.watermark_greenlist_ratio)
            recorded = json.loads((self.setup_dir / DONE).read_text()).get("watermark_key_id")
            if recorded != wm.key().key_id:
                raise ConfigError(f"{self.key_path}: key id {wm.key().key_id}, but this run was set up with key id "
                                  f"{recorded}; restore the run's key file or choose another --out")
            return wm
        return self._get("wm", make)

    @property
    def scorer(self) -> Any:
        return self._get("scorer", lambda: load_scorer(self.setup_dir / "base", self.watermark))

    def detector(self, seed: int) -> tuple[Any, float]:
        def make() -> tuple[Any, float]:
            d = self.gen0_dir(seed)
            return load_detector(d / "detector"), json.loads((d / DONE).read_text())["detector"]["threshold"]
        return self._get(f"det{seed}", make)

    # --- setup ---------------------------------------------------------------
    def setup(self) -> None:
        """Tokenizer, the once-only human split, and the base model."""
        cfg = self.cfg
        if (self.setup_dir / DONE).exists():
            self.resumed += 1
            return
        if cfg.watermark_key_file is None and not self.key_path.exists():
            write_key(self.key_path)
        key_id = read_key(self.key_path, file_flag="watermark_key_file").key_id
        corpus = load_corpus(cfg.corpus)
        texts, ids, test_texts = corpus.texts, corpus.ids, corpus.test
        if cfg.model == "tiny":
            tok, base = train_bpe_tokenizer(texts, cfg.vocab_size), None
        else:
            base, tok = load_model(cfg.model)
        d = _fresh(self.setup_dir)
        save_tokenizer(tok, d / "tokenizer")
        blocks = make_blocks(texts, tok, cfg.block_size, ids, id_prefix="human")
        order = list(np.random.default_rng(7919).permutation(len(blocks)))
        if test_texts is not None:
            test = make_blocks(test_texts, tok, cfg.block_size, id_prefix="human-test")[: cfg.test_blocks]
        else:
            test, order = [blocks[i] for i in order[: cfg.test_blocks]], order[cfg.test_blocks:]
        n_prompts = max(cfg.model_blocks(n) for n in range(1, cfg.generations + 1))
        n_reservoir = sum(cfg.crawl_size - cfg.model_blocks(n) for n in range(1, cfg.generations + 1))
        sizes = {"human-train0": cfg.budget, "human-calibration": cfg.calibration_blocks,
                 "human-prompts": max(1, n_prompts), "human-reservoir": n_reservoir}
        need = sum(sizes.values())
        if need > len(order):
            raise ConfigError(f"corpus: {cfg.corpus} has {len(order)} training blocks; the scenario needs {need} "
                              f"(train0 + calibration + prompts + reservoir); lower budget, oversample or generations")
        at = 0
        for name, size in sizes.items():
            self._write_human(d / name, [blocks[i] for i in order[at: at + size]], name)
            at += size
        self._write_human(d / "human-test", test, "human-test")
        pool = [blocks[i] for i in order[at: at + cfg.pretrain_blocks]]
        if base is None:
            base = build_tiny_opt(tok, cfg.tiny_model, seed=0)
            if cfg.pretrain_epochs and pool:
                ids_, mask = encode_texts([tok.decode(b.token_ids) for b in pool], tok, cfg.block_size)
                train_lm(base, ids_, mask, None, dataclasses.replace(cfg.train, epochs=cfg.pretrain_epochs, seed=0),
                         lambda k: None)
        save_model(base, tok, d / "base")
        write_json_atomic(d / DONE, {**sizes, "test": len(test), "pretrain": len(pool), "watermark_key_id": key_id})
        self.done += 1

    def _write_human(self, path: Path, blocks: Sequence[Any], split: str) -> None:
        tok = self._cache.get("tok") or load_tokenizer(self.setup_dir / "tokenizer")
        activity = Activity("crawl-human-blocks", {"corpus": self.cfg.corpus, "split": split}, used=[self.cfg.corpus])
        batch = make_batch([tok.decode(b.token_ids) for b in blocks], ids=[b.id for b in blocks],
                           origin=Origin.HUMAN.value, evidence=Evidence.DECLARED.value,
                           parent_ids=[list(b.doc_ids) for b in blocks], activity_id=activity.id,
                           source_uri=self.cfg.corpus, dataset=split)
        with DatasetWriter(path, activity) as w:
            w.write(batch)

    # --- training / generation --------------------------------------------------
    def _train(self, texts: Sequence[str], seed: int) -> Any:
        model = clone_model(self.base)
        ids, mask = self._encode(texts)
        train_lm(model, ids, mask, None, dataclasses.replace(self.cfg.train, epochs=self.cfg.epochs, seed=seed),
                 lambda k: None)
        return model

    def _prompt_ids(self, prompts: Sequence[str]) -> list[list[int]]:
        return [p[-self.cfg.block_size:] for p in self.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]

    def _write_generated(self, texts: Sequence[str], out: Path, what: str, params: dict[str, Any]) -> None:
        activity = Activity("crawl-generate", {"what": what, **params})
        batch = make_batch(list(texts), ids=[f"{what}:{i:06d}" for i in range(len(texts))], origin=Origin.MODEL.value,
                           evidence=Evidence.DECLARED.value, activity_id=activity.id, dataset=what)
        with DatasetWriter(out, activity) as w:
            w.write(batch)

    def _generate(self, model: Any, prompts: Sequence[str], out: Path, seed: int, what: str) -> None:
        """Continuations of ``prompts`` by ``model``, written as declared model text (the model's own output)."""
        tok = self.tokenizer
        new = generate_continuations(model, self._prompt_ids(prompts), self.cfg.decoding, pad_id=tok.pad_token_id,
                                     eos_id=tok.eos_token_id, batch_size=self.cfg.generate_batch_size, seed=seed)
        self._write_generated([tok.decode(x) for x in new], out, what,
                              {"seed": seed, "decoding": self.cfg.decoding.to_dict()})

    def _generate_crawl_text(self, model: Any, seed: int, n: int, unit: Path, us: int, what: str) -> None:
        """The model text of crawl ``n``: continuations of the first M_n prompts, a share w of them watermarked.

        Which prompts are watermarked depends on (seed, n, index) only: the same in every arm.
        Writes ``unit/generated`` and ``unit/generated-watermarked.json`` (the mask; hidden truth).
        """
        cfg, tok = self.cfg, self.tokenizer
        prompts = _texts(self.setup_dir / "human-prompts")[: cfg.model_blocks(n)]
        keys = [f"s{seed}:g{n}:{i}" for i in range(len(prompts))]
        new, mask = generate_with_share(model, self._prompt_ids(prompts), cfg.decoding, self.watermark,
                                        cfg.watermark_share, ids=keys, pad_id=tok.pad_token_id,
                                        eos_id=tok.eos_token_id, seed=us, batch_size=cfg.generate_batch_size,
                                        watermark_seed=us + 7919)
        params = {"seed": us, "decoding": cfg.decoding.to_dict(), "watermark_share": cfg.watermark_share,
                  "watermark": self.watermark.fingerprint(tok)}  # the fingerprint: key id, never the key
        self._write_generated([tok.decode(x) for x in new], unit / "generated", what, params)
        write_json_atomic(unit / "generated-watermarked.json", {"watermarked": [bool(x) for x in mask]})

    # --- units ---------------------------------------------------------------
    def run_gen0(self, seed: int) -> None:
        cfg, unit = self.cfg, self.gen0_dir(seed)
        if (unit / DONE).exists():
            self.resumed += 1
            return
        t0 = time.perf_counter()
        _fresh(unit)
        us = unit_seed(seed, 0)
        train0 = _texts(self.setup_dir / "human-train0")
        model = self._train(train0, us)
        ppl = self.test_ppl(model)
        # the user's own generation-1 text (continuations of its training blocks) -> the detector
        self._generate(model, train0, unit / "detector-text", us + 1, f"s{seed}:detector-text")
        dcfg = DetectorConfig(kind=self.cfg.detector_kind, seed=seed).validate()
        trained = train_detector_on_dataset([self.setup_dir / "human-train0", unit / "detector-text"], dcfg)
        p_cal = trained.detector.predict_proba(_texts(self.setup_dir / "human-calibration"))
        thr = threshold_at_fpr(p_cal, cfg.detector_fpr)
        save_detector(trained.detector, unit / "detector")
        self._generate_crawl_text(model, seed, 1, unit, us, f"s{seed}:g1")
        row = {"seed": seed, "generation": 0, "test_ppl": ppl, "model_share": 0.0, "train_rows": len(train0),
               **self._train_metrics(train0, us), "seconds": time.perf_counter() - t0}
        det = {"threshold": thr, "fpr_target": cfg.detector_fpr, "calibration_fpr": float(np.mean(p_cal > thr)),
               "heldout_auroc": float(trained.heldout.auroc), "n_train": trained.n_train, "kind": cfg.detector_kind,
               "retrained": "never: trained once at generation 1 on train0 vs model_0's continuations of train0"}
        self._commit(unit, {"row": row, "detector": det})

    def crawl(self, seed: int, arm: str, n: int, unit: Path) -> tuple[Path, pa.Table]:
        """Write crawl n of ``arm`` (what the arm sees) and return (its path, the hidden truth table)."""
        cfg = self.cfg
        m = cfg.model_blocks(n)
        source = self.unit_dir(seed, arm, n - 1)
        model_texts = _texts(source / "generated")[:m]
        marked = json.loads((source / "generated-watermarked.json").read_text())["watermarked"][:m]
        res = _texts(self.setup_dir / "human-reservoir")
        order = np.random.default_rng([seed, 104729]).permutation(len(res))
        start = sum(cfg.crawl_size - cfg.model_blocks(k) for k in range(1, n))
        human_texts = [res[i] for i in order[start: start + cfg.crawl_size - m]]
        keys = [f"m{i}" for i in range(len(model_texts))] + [f"h{i}" for i in range(len(human_texts))]
        truth = ["model"] * len(model_texts) + ["human"] * len(human_texts)
        watermarked = list(marked) + [False] * len(human_texts)
        ids = [opaque_id(seed, n, k) for k in keys]  # the same ids in every arm: common random numbers
        texts = model_texts + human_texts
        perm = np.argsort(ids)  # record order carries no truth
        ids, texts, truth = [ids[i] for i in perm], [texts[i] for i in perm], [truth[i] for i in perm]
        watermarked = [watermarked[i] for i in perm]
        kept = (np.random.default_rng([seed, n, 15485863]).random(len(ids)) < cfg.kept_tags).tolist()
        origin = [t if k else Origin.UNKNOWN.value for t, k in zip(truth, kept)]
        evidence = [Evidence.DECLARED.value if k else None for k in kept]
        confidence = [1.0 if k else None for k in kept]
        activity = Activity("crawl-ingest", {"generation": n})
        batch = make_batch(texts, ids=ids, origin=origin, evidence=evidence, confidence=confidence,
                           activity_id=activity.id, source_uri="crawl://web", dataset="crawl")
        with DatasetWriter(unit / "crawl", activity) as w:
            w.write(batch)
        table = pa.table({"id": ids, "true_origin": truth, "kept_tag": kept, "watermarked": watermarked})
        buf = pa.BufferOutputStream()
        pq.write_table(table, buf)
        write_bytes_atomic(unit / "truth.parquet", buf.getvalue().to_pybytes())
        return unit / "crawl", table

    def pipeline_text(self, arm: str, seed: int, n: int) -> str:
        det = self.gen0_dir(seed)
        thr = json.loads((det / DONE).read_text())["detector"]["threshold"]
        values = {"budget": self.cfg.budget, "seed": unit_seed(seed, n), "detector": str(det / "detector"),
                  "threshold": repr(float(thr)), "reference": str(self.setup_dir / "human-train0"),
                  "max_copies": self.cfg.max_copies, "watermark_model": str(self.setup_dir / "base"),
                  "watermark_key": str(self.key_path), "watermark_z": repr(float(self.cfg.watermark_z)),
                  "watermark_greenlist_ratio": repr(float(self.cfg.watermark_greenlist_ratio))}
        try:
            return string.Template(self.arms[arm].read_text()).substitute(values)
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"{self.arms[arm]}: unknown placeholder {exc}; known: {', '.join(values)}") from None

    def run_unit(self, seed: int, arm: str, n: int) -> None:
        cfg, unit = self.cfg, self.unit_dir(seed, arm, n)
        if (unit / DONE).exists():
            self.resumed += 1
            return
        t0 = time.perf_counter()
        _fresh(unit)
        us = unit_seed(seed, n)
        crawl_path, truth = self.crawl(seed, arm, n, unit)
        source = crawl_path
        if arm == ORACLE:  # the one arm given the hidden truth
            human_ids = set(truth.filter(pc.equal(truth["true_origin"], "human"))["id"].to_pylist())
            table = Dataset.open(crawl_path).read()
            keep = pa.array([i in human_ids for i in table.column("id").to_pylist()])
            with DatasetWriter(unit / "oracle-input", Activity("crawl-oracle-truth", {"generation": n})) as w:
                w.write(table.filter(keep))
            source = unit / "oracle-input"
        text = self.pipeline_text(arm, seed, n)
        pipeline = parse_pipeline(tomllib.loads(text), str(self.arms[arm]))
        run_filter(source, unit / "selected", pipeline)
        sel = Dataset.open(unit / "selected").read()
        copies = sel.column("resample_copies").to_pylist() if "resample_copies" in sel.column_names else None
        train_texts = expand_copies(sel.column("text").to_pylist(), copies)
        if len(train_texts) != cfg.budget:
            raise ConfigError(f"{self.arms[arm]}: the arm selected {len(train_texts)} blocks, not the budget "
                              f"{cfg.budget}; end the pipeline with a resample step of size ${{budget}}")
        true = dict(zip(truth["id"].to_pylist(), truth["true_origin"].to_pylist()))
        sel_ids = sel.column("id").to_pylist()
        model_copies = sum(c for i, c in zip(sel_ids, copies or [1] * len(sel_ids)) if true[i] == "model")
        detector, thr = self.detector(seed)
        crawl_texts = _texts(crawl_path)
        p = detector.predict_proba(crawl_texts)
        crawl_ids = Dataset.open(crawl_path).read(columns=["id"]).column("id").to_pylist()
        is_model = np.array([true[i] == "model" for i in crawl_ids])
        tpr, fpr = detector_rates(p, is_model, thr)
        marked = dict(zip(truth["id"].to_pylist(), truth["watermarked"].to_pylist()))
        wm_hit = self.scorer.score_texts(crawl_texts).above(cfg.watermark_z)
        wm_marked = np.array([marked[i] for i in crawl_ids], dtype=bool)
        removed = self.removed_ids(unit, crawl_ids, source)
        precision, recall = removal_rates(removed, true)
        model = self._train(train_texts, us)
        ppl = self.test_ppl(model)
        if n < cfg.generations:
            self._generate_crawl_text(model, seed, n + 1, unit, us, f"s{seed}:{arm}:g{n + 1}")
        row = {"seed": seed, "generation": n, "test_ppl": ppl, "model_share": model_copies / cfg.budget,
               "crawl_rows": len(crawl_ids), "crawl_model_share": cfg.model_blocks(n) / cfg.crawl_size,
               "selected_rows": len(sel_ids), "train_rows": len(train_texts), "detector_tpr": tpr,
               "detector_fpr": fpr, "watermark_tpr": _share(wm_hit, wm_marked),
               "watermark_model_recall": _share(wm_hit, is_model), "watermark_fpr": _share(wm_hit, ~is_model),
               "crawl_watermarked_share": float(wm_marked.mean()), "removed_rows": len(removed),
               "removal_precision": precision, "removal_recall": recall, **self._train_metrics(train_texts, us), "seconds": time.perf_counter() - t0}
        self._commit(unit, {"row": row})

    def removed_ids(self, unit: Path, crawl_ids: Sequence[str], source: Path) -> set[str]:
        """The crawl records the arm removed before its budget draw (the oracle: the ones it was not handed)."""
        rejects = Dataset.open(unit / "selected").read("rejects", columns=["id", "drop_reason"]).to_pylist()
        removed = {r["id"] for r in rejects if r["drop_reason"] != NOT_DRAWN}
        if source != unit / "crawl":
            given = set(Dataset.open(source).read(columns=["id"]).column("id").to_pylist())
            removed |= set(crawl_ids) - given
        return removed

    def _train_metrics(self, texts: Sequence[str], seed: int) -> dict[str, float]:
        tok = self.tokenizer
        out = text_metrics(texts, self_bleu_samples=self.cfg.self_bleu_samples, seed=seed)
        out["tail_recall"] = tail_recall(self.tail_set(), tok(list(texts), add_special_tokens=False)["input_ids"])
        return out

    def _commit(self, unit: Path, doc: dict[str, Any]) -> None:
        write_json_atomic(unit / DONE, doc)
        self.done += 1
        if self.stop_after is not None and self.done >= self.stop_after:
            raise KeyboardInterrupt(f"stopped after {self.done} units (test kill)")

    # --- graph ---------------------------------------------------------------
    def graph(self) -> dict[tuple, list[tuple]]:
        deps: dict[tuple, list[tuple]] = {("setup",): []}
        for s in self.cfg.seeds:
            deps[("gen0", s)] = [("setup",)]
            for arm in self.arms:
                for n in range(1, self.cfg.generations + 1):
                    deps[("unit", s, arm, n)] = [("gen0", s) if n == 1 else ("unit", s, arm, n - 1)]
        return deps

    def run_one(self, unit: tuple) -> None:
        if unit[0] == "setup":
            self.setup()
        elif unit[0] == "gen0":
            self.run_gen0(unit[1])
        else:
            self.run_unit(unit[1], unit[2], unit[3])

    def priority(self, unit: tuple) -> tuple:
        arms = list(self.arms)
        if unit[0] == "setup":
            return (-1, 0, 0, 0)
        if unit[0] == "gen0":
            return (0, unit[1], 0, 0)
        return (unit[3], self.cfg.seeds.index(unit[1]), arms.index(unit[2]), 0)

    def run(self, workers: int = 1, on_unit: Callable[[tuple], None] | None = None) -> "CrawlSummary":
        t0 = time.perf_counter()
        self.check_config()
        deps = self.graph()

        def done(unit: tuple, result: Any) -> None:
            self.write_tables()
            if on_unit:
                on_unit(unit)

        _quiet_hf()
        old = torch.get_num_threads()
        torch.set_num_threads(max(1, self.cfg.threads))
        try:
            run_graph(deps, self.run_one, workers=workers, task=_worker_task, init=_worker_init,
                      init_args=(self.cfg.to_json(), str(self.out)), on_done=done, priority=self.priority,
                      threads_per_worker=max(1, self.cfg.threads))
        finally:
            torch.set_num_threads(old)
        self.write_tables()
        return CrawlSummary(self.out, len(deps), time.perf_counter() - t0, self.collect())

    # --- tables ----------------------------------------------------------------
    def collect(self) -> list[dict[str, Any]]:
        """metrics rows; generation 0 (shared) is repeated under every arm as ``condition``."""
        rows = []
        for s in self.cfg.seeds:
            for arm in self.arms:
                for n in range(0, self.cfg.generations + 1):
                    f = self.unit_dir(s, arm, n) / DONE
                    if f.exists():
                        rows.append({**json.loads(f.read_text())["row"], "condition": arm})
        return rows

    def write_tables(self) -> None:
        rows = self.collect()
        if rows:
            keys = list(dict.fromkeys(k for r in rows for k in r))  # generation 0 lacks the crawl columns
            buf = pa.BufferOutputStream()
            pq.write_table(pa.table({k: [r.get(k) for r in rows] for k in keys}), buf)
            write_bytes_atomic(self.out / "metrics.parquet", buf.getvalue().to_pybytes())


@dataclass
class CrawlSummary:
    out: Path
    units: int
    seconds: float
    metrics: list[dict[str, Any]]


_WORKER: dict[str, CrawlRun] = {}


def _quiet_hf() -> None:
    from transformers.utils import logging as hf_logging  # lazy: transformers' own bars would interleave with ours

    hf_logging.disable_progress_bar()


def _worker_init(cfg_json: dict[str, Any], out: str) -> None:
    _quiet_hf()
    _WORKER["run"] = CrawlRun(config_from_json(cfg_json), out)


def _worker_task(unit: tuple) -> None:
    _WORKER["run"].run_one(unit)


def config_from_json(doc: dict[str, Any]) -> CrawlConfig:
    doc = {k: v for k, v in doc.items() if k != "scenario"}
    nested = {k: _NESTED[k](**{kk: (tuple(vv) if isinstance(vv, list) else vv) for kk, vv in doc.pop(k).items()})
              for k in list(_NESTED) if k in doc}
    flat = {k: tuple(v) if isinstance(v, list) else v for k, v in doc.items()}
    return CrawlConfig(**flat, **nested)


def run_crawl(cfg: CrawlConfig, out: str | Path, *, workers: int = 1,
              on_unit: Callable[[tuple], None] | None = None) -> CrawlSummary:
    """Run (or resume) the crawl scenario ``cfg`` in ``out`` with ``workers`` processes."""
    return CrawlRun(cfg, out).run(workers, on_unit)
