"""The recursive-training loop: generations x conditions x seeds, one unit per (seed, condition, generation).

Protocol (Shumailov et al. 2024 and the released code of it and of Drayson et al. 2025)::

    G_0 = human training blocks
    model_0 = base fine-tuned on G_0 (best epoch on human validation blocks)
    for n = 1..N:  G_n = continuations written by model_{n-1}, prompted with every human training
                   block (prompts = human; prompts = chained: with each record of G_{n-1})
                   mix_n = condition(G_n, human, G_1..G_n)   [-> prov filter pipeline when curated]
                   model_n = the base (start_from = base; or model_0) fine-tuned on mix_n
                             (sample_weight honoured, best epoch on the validation blocks)

Run directory::

    RUN/config.json                      the validated config (a rerun must match it)
    RUN/setup/{human,human-val,human-test,base,tokenizer}   human datasets and the base model (once per run)
    RUN/seed{S}/gen00/{model,generated}  generation 0 (shared by every condition)
    RUN/seed{S}/{condition}/gen{NN}/{mix,curated,generated,model}
    RUN/.../metrics.json                 a unit's metrics: written last = the checkpoint
    RUN/metrics.parquet, RUN/seq_ppl.parquet   all units so far (rewritten after each unit)

Every unit reads its inputs back from committed datasets and seeds its RNGs from
(seed, generation) only -- common random numbers: every condition at the same seed and
generation draws the same shuffles and samples -- so a run killed at any point and started
again ends with the same metrics as an uninterrupted one, whatever the number of workers.
"""

from __future__ import annotations

import contextlib
import copy
import json
import multiprocessing as mp
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from provkit.core.atomic import write_bytes_atomic, write_json_atomic
from provkit.core.hashing import seeded_uniform
from provkit.core.lazy import lazy_import
from provkit.core.progress import Progress, quiet_progress
from provkit.engines import run_filter
from provkit.errors import ConfigError
from provkit.filters import load_pipeline
from provkit.filters.detector import load_detector
from provkit.filters.mix import MixConfig, policy_selection
from provkit.lm import (
    build_tiny_opt,
    clone_model,
    corpus_perplexity,
    encode_texts,
    generate_continuations,
    load_model,
    load_tokenizer,
    make_blocks,
    save_model,
    save_tokenizer,
    sequence_nll,
    sequence_perplexities,
    train_bpe_tokenizer,
    train_lm,
)
from provkit.provenance import Activity, Dataset, DatasetWriter, Evidence, Generator, Origin, iter_builtin, make_batch
from provkit.train.config import Condition, ExperimentConfig
from provkit.train.metrics import (
    embedding_diversity,
    local_sentence_encoder,
    perplexity_summary,
    tail_recall,
    tail_tokens,
    text_metrics,
)
from provkit.train.workers import default_workers, run_graph

torch = lazy_import("torch")

DONE = "metrics.json"


@dataclass
class RunSummary:
    out: Path
    units_done: int
    units_resumed: int
    seconds: float
    metrics: list[dict[str, Any]]
    workers: int = 1


class Corpus(NamedTuple):
    """Human text of a corpus: training texts and ids, and the official validation / test splits (None when absent)."""

    texts: list[str]
    ids: list[str]
    val: list[str] | None
    test: list[str] | None


class UnitKey(NamedTuple):
    """One unit of work: generation 0 of a seed (condition None) or generation n of a condition at a seed."""

    seed: int
    condition: str | None
    generation: int


# ---------------------------------------------------------------- corpus loading


def load_corpus(spec: str) -> Corpus:
    """The human text of ``builtin:NAME``, wikitext-2 (train / validation / test) or a local path."""
    if spec.startswith("builtin:"):
        try:
            docs = list(iter_builtin(spec.split(":", 1)[1]))
        except ValueError as exc:
            raise ConfigError(f"corpus: {exc}") from None
        return Corpus([d.text for d in docs], [d.id for d in docs], None, None)
    path = Path(spec)
    if path.exists():
        return _load_local_corpus(path)
    if spec.startswith("wikitext"):
        try:
            import datasets  # lazy: importing datasets costs seconds; only hub / on-disk corpora need it

            ds = datasets.load_dataset("wikitext", spec)
        except Exception as exc:  # offline: ConnectionError, DatasetNotFoundError, ...
            raise ConfigError(
                f"corpus: could not load {spec!r} with datasets.load_dataset ({type(exc).__name__}); download it where "
                f"there is network (ds.save_to_disk(PATH)) and pass --corpus PATH"
            ) from None
        return _wikitext_splits(ds, spec)
    raise ConfigError(f"corpus: {spec!r} is neither builtin:NAME, wikitext-2-raw-v1, nor an existing path")


def _wikitext_splits(ds: Any, name: str) -> Corpus:
    def texts(split: str) -> list[str] | None:
        return [t for t in ds[split]["text"] if t.strip()] if split in ds else None

    train = texts("train") or []
    return Corpus(train, [f"{name}:train:{i}" for i in range(len(train))], texts("validation"), texts("test"))


def _load_local_corpus(path: Path) -> Corpus:
    if (path / "manifest.json").exists():
        table = Dataset.open(path).read(columns=["id", "text"])
        return Corpus(table.column("text").to_pylist(), table.column("id").to_pylist(), None, None)
    try:
        import datasets  # lazy: importing datasets costs seconds; only hub / on-disk corpora need it

        if (path / "dataset_dict.json").exists():
            ds = datasets.load_from_disk(str(path))
        else:
            ds = datasets.load_dataset(str(path))
    except Exception as exc:
        raise ConfigError(f"--corpus {path}: not a provkit dataset nor a datasets directory ({type(exc).__name__}: {exc})") from None
    if "train" in ds and "test" in ds:
        return _wikitext_splits(ds, path.name)
    split = ds["train"] if "train" in ds else ds
    texts = [t for t in split["text"] if t.strip()]
    return Corpus(texts, [f"{path.name}:{i}" for i in range(len(texts))], None, None)


# ---------------------------------------------------------------- helpers


def unit_seed(seed: int, generation: int) -> int:
    """The RNG seed of every unit at (seed, generation): the same for every condition (common random numbers)."""
    return (seed * 1_000_003 + generation * 7_919 + 17) % (2**31 - 1)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(n if n > 0 else (os.cpu_count() or 1))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _read_texts(path: Path) -> pa.Table:
    return Dataset.open(path).read()


def _is_done(unit: Path) -> bool:
    return (unit / DONE).exists()


def _fresh(unit: Path) -> Path:
    """An empty unit directory (leftovers of a killed unit are ours to remove)."""
    if unit.exists():
        shutil.rmtree(unit)
    unit.mkdir(parents=True)
    return unit


@contextlib.contextmanager
def _hf_progress_bars_off() -> Iterator[None]:
    """transformers' own shard/weight bars would interleave with ours."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def _share(values: np.ndarray, mask: np.ndarray) -> float:
    return float(mask.sum() / values.size) if values.size else float("nan")


def _only_more_seeds(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """True when ``new`` only adds seeds to ``old`` (same first seed, which the setup uses)."""
    a, b = list(old.get("seeds", [])), list(new.get("seeds", []))
    rest_equal = {k: v for k, v in old.items() if k != "seeds"} == {k: v for k, v in new.items() if k != "seeds"}
    return rest_equal and a != b and bool(a) and b[: len(a)] == a


# ---------------------------------------------------------------- worker process state

_WORKER_RUN: "ExperimentRun | None" = None


def _worker_init(cfg: ExperimentConfig, out: str) -> None:
    """Worker k of the pool: its own ExperimentRun; with GPUs, device k mod the device count (--workers per device)."""
    global _WORKER_RUN
    if torch.cuda.is_available():
        identity = mp.current_process()._identity
        torch.cuda.set_device(((identity[0] - 1) if identity else 0) % torch.cuda.device_count())
    _WORKER_RUN = ExperimentRun(cfg, out)


def _worker_task(key: UnitKey) -> None:
    assert _WORKER_RUN is not None
    with _hf_progress_bars_off():
        _WORKER_RUN.run_key(key)


class ExperimentRun:
    """One run directory: setup, the generation-0 units, and every condition's generations."""

    def __init__(self, cfg: ExperimentConfig, out: str | Path, reporter: Progress = quiet_progress):
        self.cfg = cfg
        self.out = Path(out)
        self.report = reporter
        self.conditions = cfg.parsed_conditions
        self._by_name = {c.name: c for c in self.conditions}
        self._gen0: dict[int, Any] = {}
        self._encoder: Any = None
        self.device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
        self.resumed = 0
        self.done = 0

    # --- config ------------------------------------------------------------
    def check_config(self) -> None:
        path = self.out / "config.json"
        mine = self.cfg.to_json()
        if path.exists():
            theirs = json.loads(path.read_text())
            if _only_more_seeds(theirs, mine):  # units are keyed by seed: adding seeds reuses every unit done
                write_json_atomic(path, mine)
                return
            if theirs != mine:
                diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
                raise ConfigError(
                    f"{path}: this run directory was started with a different config (differs in {', '.join(diff)}); "
                    f"rerun with the same config to resume, or choose another --out"
                )
        else:
            self.out.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, mine)

    # --- setup -------------------------------------------------------------
    @property
    def setup_dir(self) -> Path:
        return self.out / "setup"

    def setup(self) -> None:
        """Tokenizer, human train/validation/test datasets and the base model (once per run directory: the cache)."""
        if _is_done(self.setup_dir):
            self.resumed += 1
            return
        cfg = self.cfg
        corpus = load_corpus(cfg.corpus)
        if cfg.model == "tiny":
            tok = train_bpe_tokenizer(corpus.texts, cfg.vocab_size)
            base = None
        else:
            base, tok = load_model(cfg.model)
        d = _fresh(self.setup_dir)
        save_tokenizer(tok, d / "tokenizer")
        blocks = make_blocks(corpus.texts, tok, cfg.block_size, corpus.ids, id_prefix="human")
        rng = np.random.default_rng(cfg.seeds[0] + 7919)
        order = rng.permutation(len(blocks))
        taken = 0

        def cut(n: int) -> list[Any]:
            nonlocal taken
            part = [blocks[i] for i in sorted(order[taken : taken + n])]
            taken += n
            return part

        if corpus.test is None:
            test = cut(min(cfg.test_blocks or len(blocks) // 10, len(blocks) // 4))
        else:
            test = make_blocks(corpus.test, tok, cfg.block_size, id_prefix="human-test")
            test = test[: cfg.test_blocks] if cfg.test_blocks else test
        if corpus.val is None:
            val = cut(min(cfg.val_blocks or len(blocks) // 10, len(blocks) // 4))
        else:
            val = make_blocks(corpus.val, tok, cfg.block_size, id_prefix="human-val")
            val = val[: cfg.val_blocks] if cfg.val_blocks else val
        if corpus.test is None and corpus.val is None:
            train = cut(cfg.train_blocks or len(blocks) - taken)
            pool = cut(len(blocks) - taken)
            pool = pool[: cfg.pretrain_blocks] if cfg.pretrain_blocks else pool
        else:  # official splits: the training blocks in corpus order (the paper's whole train split by default)
            train = blocks[: cfg.train_blocks] if cfg.train_blocks else blocks
            pool = []
        self._write_human(d / "human", train, tok, "train")
        self._write_human(d / "human-val", val, tok, "validation")
        self._write_human(d / "human-test", test, tok, "test")
        pre_s = 0.0
        if base is None:
            base = build_tiny_opt(tok, cfg.tiny_model, seed=cfg.seeds[0])
            base.to(self.device)
            if cfg.pretrain_epochs and pool:
                t0 = time.perf_counter()
                ids_, mask = encode_texts([tok.decode(b.token_ids) for b in pool], tok, cfg.block_size)
                tcfg = replace(cfg.train, epochs=cfg.pretrain_epochs, seed=cfg.seeds[0])
                tick = self.report("pre-train tiny base", len(pool) * cfg.pretrain_epochs)
                train_lm(base, ids_, mask, None, tcfg, tick)
                pre_s = time.perf_counter() - t0
        save_model(base, tok, d / "base")
        write_json_atomic(d / DONE, {"train_blocks": len(train), "val_blocks": len(val), "test_blocks": len(test),
                                     "pretrain_blocks": len(pool), "pretrain_seconds": pre_s})
        self.done += 1

    def _write_human(self, path: Path, blocks: Sequence[Any], tok: Any, split: str) -> None:
        texts = [tok.decode(b.token_ids) for b in blocks]
        activity = Activity("experiment-human-blocks", {"corpus": self.cfg.corpus, "block_size": self.cfg.block_size, "split": split},
                            used=[self.cfg.corpus])
        batch = make_batch(
            texts, ids=[b.id for b in blocks], origin=Origin.HUMAN.value, evidence=Evidence.DECLARED.value,
            parent_ids=[list(b.doc_ids) for b in blocks], activity_id=activity.id, source_uri=self.cfg.corpus,
            dataset=f"human-{split}",
        )
        with DatasetWriter(path, activity) as w:
            w.write(batch)

    @property
    def tokenizer(self) -> Any:
        if not hasattr(self, "_tok"):
            self._tok = load_tokenizer(self.setup_dir / "tokenizer")
        return self._tok

    @property
    def base(self) -> Any:
        if not hasattr(self, "_base"):
            self._base, _ = load_model(self.setup_dir / "base", with_tokenizer=False)
            self._base.to(self.device)
        return self._base

    @property
    def model_id(self) -> str:
        return "tiny-opt" if self.cfg.model == "tiny" else self.cfg.model

    def _encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return encode_texts(texts, self.tokenizer, self.cfg.block_size)

    def _split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        cache = self.__dict__.setdefault("_splits", {})
        if name not in cache:
            cache[name] = self._encode(_read_texts(self.setup_dir / name).column("text").to_pylist())
        return cache[name]

    def _tail(self) -> set[int]:
        if not hasattr(self, "_tail_set"):
            tok = self.tokenizer
            train = tok(_read_texts(self.setup_dir / "human").column("text").to_pylist(), add_special_tokens=False)["input_ids"]
            test = tok(_read_texts(self.setup_dir / "human-test").column("text").to_pylist(), add_special_tokens=False)["input_ids"]
            self._tail_set = tail_tokens(train, test)
        return self._tail_set

    # --- units -------------------------------------------------------------
    def seed_dir(self, seed: int) -> Path:
        return self.out / f"seed{seed}"

    def unit_dir(self, seed: int, cond: Condition | None, n: int) -> Path:
        if cond is None:
            return self.seed_dir(seed) / f"gen{n:02d}"
        return self.seed_dir(seed) / cond.slug / f"gen{n:02d}"

    def key_dir(self, key: UnitKey) -> Path:
        return self.unit_dir(key.seed, None if key.condition is None else self._by_name[key.condition], key.generation)

    def generated_of(self, seed: int, cond: Condition, n: int) -> Path:
        """The dataset G_n (written by model_{n-1}) as seen by ``cond``."""
        prev = self.unit_dir(seed, None if n == 1 else cond, n - 1)
        return prev / "generated"

    def gen0_model(self, seed: int) -> Any:
        if seed not in self._gen0:
            self._gen0[seed], _ = load_model(self.unit_dir(seed, None, 0) / "model", with_tokenizer=False)
            self._gen0[seed].to(self.device)
        return self._gen0[seed]

    def _gen0_row(self, seed: int) -> dict[str, Any]:
        return json.loads((self.unit_dir(seed, None, 0) / DONE).read_text())["row"]

    def _train(self, start: Any, texts: Sequence[str], weights: np.ndarray | None, epochs: int, seed: int,
               desc: str) -> tuple[Any, dict[str, Any]]:
        """Fine-tune a copy of ``start``; keep the epoch with the lowest validation loss when ``best_epoch``."""
        model = clone_model(start)
        ids, mask = self._encode(texts)
        val_ids, val_mask = self._split("human-val")
        best: dict[str, Any] = {"loss": float("inf"), "epoch": epochs - 1, "state": None}
        losses: list[float] = []

        def on_epoch(epoch: int, m: Any) -> None:
            s, c = sequence_nll(m, val_ids, val_mask, self.cfg.eval_batch_size)
            loss = float(s.sum() / max(1, c.sum()))
            losses.append(loss)
            if loss < best["loss"]:
                best.update(loss=loss, epoch=epoch, state=copy.deepcopy(m.state_dict()) if epoch < epochs - 1 else None)

        tick = self.report(desc, len(texts) * epochs)
        select = self.cfg.best_epoch and val_ids.size(0) > 0
        stats = train_lm(model, ids, mask, weights, replace(self.cfg.train, epochs=epochs, seed=seed), tick,
                         on_epoch=on_epoch if select else None)
        if select and best["state"] is not None:
            model.load_state_dict(best["state"])
        info = {"train_rows": len(texts), "train_tokens": stats.tokens, "train_steps": stats.steps, "train_epochs": epochs,
                "best_epoch": (best["epoch"] + 1) if select else epochs,
                "val_ppl": float(np.exp(best["loss"])) if select else float("nan"),
                "train_loss": stats.final_loss, "train_seconds": stats.seconds}
        return model, info

    def _generate(self, model: Any, prompts: pa.Table, out: Path, seed: int, generation: int, parents: Sequence[Path], desc: str) -> float:
        """G_{generation}: one continuation per prompt record, written as a provkit dataset."""
        tok = self.tokenizer
        prompt_ids = tok(prompts.column("text").to_pylist(), add_special_tokens=False)["input_ids"]
        prompt_ids = [p[-self.cfg.block_size :] for p in prompt_ids]
        tick = self.report(desc, len(prompt_ids))
        t0 = time.perf_counter()
        new = generate_continuations(model, prompt_ids, self.cfg.decoding, pad_id=tok.pad_token_id, eos_id=tok.eos_token_id,
                                     batch_size=self.cfg.generate_batch_size, seed=seed, progress=tick)
        seconds = time.perf_counter() - t0
        texts = [tok.decode(x) for x in new]
        decoding = self.cfg.decoding.to_dict(tok)  # a watermark as its fingerprint
        activity = Activity("experiment-generate", {"model": self.model_id, "generation": generation - 1, "decoding": decoding,
                                                     "seed": seed, "prompts": self.cfg.prompts},
                            used=[str(p.resolve()) for p in parents], agents=["provkit", f"model/{self.model_id}"])
        pids = prompts.column("id").to_pylist()
        gens = [Generator(model=self.model_id, generation=generation - 1, decoding=decoding, seed=seed, prompt_id=pid)
                for pid in pids]
        prefix = out.parent.relative_to(self.out).as_posix().replace("/", ":")
        batch = make_batch(texts, ids=[f"{prefix}:g{generation}:{i:06d}" for i in range(len(texts))], origin=Origin.MODEL.value,
                           evidence=Evidence.DECLARED.value, generators=gens, parent_ids=[[p] for p in pids],
                           activity_id=activity.id, source_uri=f"provkit-experiment://{self.out.name}/{prefix}",
                           dataset=f"generation-{generation}")
        with DatasetWriter(out, activity, parents=parents) as w:
            w.write(batch)
        return seconds

    def _prompts(self, seed: int, cond: Condition, n: int) -> tuple[pa.Table, list[Path]]:
        """The prompts of G_{n+1} and the datasets they come from."""
        if self.cfg.prompts == "human":
            return _read_texts(self.setup_dir / "human"), [self.setup_dir / "human"]
        g_n = self.generated_of(seed, cond, n)
        return _read_texts(g_n), [g_n]

    def _data_metrics(self, seed: int, texts: Sequence[str], unit_seed_: int,
                      human: tuple[float, float] | None) -> tuple[dict[str, Any], list[float]]:
        ids, mask = self._encode(texts)
        ppl = sequence_perplexities(self.gen0_model(seed), ids, mask, self.cfg.eval_batch_size)
        tok = self.tokenizer
        row: dict[str, Any] = {**perplexity_summary(ppl), **text_metrics(texts, self_bleu_samples=self.cfg.self_bleu_samples, seed=unit_seed_)}
        finite = ppl[np.isfinite(ppl)]
        if human is None:  # generation 0: the data is the human training blocks themselves
            human = (float(np.percentile(finite, 1)), float(np.percentile(finite, 99))) if finite.size else (np.nan, np.nan)
        row["human_ppl_p1"], row["human_ppl_p99"] = human
        row["data_below_human_p1"] = _share(finite, finite < human[0])
        row["data_above_human_p99"] = _share(finite, finite > human[1])
        row["tail_recall"] = tail_recall(self._tail(), tok(list(texts), add_special_tokens=False)["input_ids"])
        row["embedding_diversity"] = float("nan")
        if self.cfg.embedding_diversity:
            if self._encoder is None:
                self._encoder = local_sentence_encoder() or False
            row["embedding_diversity"] = embedding_diversity(texts, self._encoder or None, self.cfg.embedding_samples, unit_seed_)
        row["detector_score"] = float("nan")
        if self.cfg.detector:
            if not hasattr(self, "_detector"):
                self._detector = load_detector(self.cfg.detector)
            row["detector_score"] = float(np.mean(self._detector.predict_proba(list(texts))))
        return row, [float(x) for x in ppl]

    def run_key(self, key: UnitKey) -> None:
        if key.condition is None:
            self.run_gen0(key.seed)
        else:
            self.run_unit(key.seed, self._by_name[key.condition], key.generation)

    def run_gen0(self, seed: int) -> None:
        unit = self.unit_dir(seed, None, 0)
        if _is_done(unit):
            self.resumed += 1
            return
        _fresh(unit)
        us = unit_seed(seed, 0)
        human = _read_texts(self.setup_dir / "human")
        texts = human.column("text").to_pylist()
        model, info = self._train(self.base, texts, None, self.cfg.epochs, us, f"seed {seed} gen 0: train")
        save_model(model, None, unit / "model")
        self._gen0[seed] = model
        test_ppl = corpus_perplexity(model, *self._split("human-test"), self.cfg.eval_batch_size)
        data, seq = self._data_metrics(seed, texts, us, None)
        gen_s = self._generate(model, human, unit / "generated", us, 1, [self.setup_dir / "human"], f"seed {seed} gen 0: generate")
        self._finish(unit, seed, "*", 0, test_ppl, info, gen_s, float(len(texts)), 1.0, data, seq)

    def run_unit(self, seed: int, cond: Condition, n: int) -> None:
        unit = self.unit_dir(seed, cond, n)
        if _is_done(unit):
            self.resumed += 1
            return
        _fresh(unit)
        us = unit_seed(seed, n)
        g_n = self.generated_of(seed, cond, n)
        train_path = self._build_mix(seed, cond, n, unit, us)
        table = _read_texts(train_path)
        texts = table.column("text").to_pylist()
        weights = table.column("sample_weight").to_numpy(zero_copy_only=False).astype(np.float32) if "sample_weight" in table.column_names else None
        human_rows = sum(1 for o in table.column("origin").to_pylist() if o == Origin.HUMAN.value)
        epochs = self.cfg.epochs if cond.mix in ("replace", "accumulate-fixed") else self.cfg.epochs_with_human
        start = self.base if self.cfg.start_from == "base" else self.gen0_model(seed)
        model, info = self._train(start, texts, weights, epochs, us, f"seed {seed} {cond.name} gen {n}: train")
        test_ppl = corpus_perplexity(model, *self._split("human-test"), self.cfg.eval_batch_size)
        g0 = self._gen0_row(seed)
        data, seq = self._data_metrics(seed, _read_texts(g_n).column("text").to_pylist(), us,
                                       (g0["human_ppl_p1"], g0["human_ppl_p99"]))
        gen_s = 0.0
        if n < self.cfg.generations:
            prompts, parents = self._prompts(seed, cond, n)
            gen_s = self._generate(model, prompts, unit / "generated", us, n + 1, [*parents, train_path],
                                   f"seed {seed} {cond.name} gen {n}: generate")
        else:
            save_model(model, self.tokenizer, unit / "model")
        wsum = float(weights.sum()) if weights is not None else float(len(texts))
        self._finish(unit, seed, cond.name, n, test_ppl, info, gen_s, wsum, human_rows / max(1, len(texts)), data, seq)

    def _build_mix(self, seed: int, cond: Condition, n: int, unit: Path, us: int) -> Path:
        """Write the training mix of generation n (and its curated version); return what to train on.

        replace / keep-human select with :func:`provkit.filters.mix.policy_selection` (the one
        keep-human of ``prov filter --mix``); accumulate keeps the whole pool; accumulate-fixed
        draws replace's record count uniformly from accumulate's pool.
        """
        human_path = self.setup_dir / "human"
        pool = [human_path] + [self.generated_of(seed, cond, k) for k in range(1, n + 1)]
        tables = [Dataset.open(p).read() for p in pool]
        whole = pa.concat_tables(tables, promote_options="default")
        is_human = np.array([o == Origin.HUMAN.value for o in whole.column("origin").to_pylist()], dtype=bool)
        generation = np.concatenate([np.full(t.num_rows, k, dtype=np.int64) for k, t in enumerate(tables)])
        uniform = seeded_uniform(whole.column("id"), us, salt="mix")  # the draw MixStep makes with seed = us
        if cond.mix in ("replace", "keep-human"):
            policy = MixConfig(policy=cond.mix, human_fraction=cond.human_fraction, seed=us)
            keep = policy_selection(is_human, generation, uniform, policy)
        elif cond.mix == "accumulate-fixed":
            size = tables[-1].num_rows  # replace's record count: |G_n|
            keep = np.zeros(whole.num_rows, dtype=bool)
            keep[np.random.default_rng(us).choice(whole.num_rows, size=min(size, whole.num_rows), replace=False)] = True
        else:  # accumulate (and curated)
            keep = np.ones(whole.num_rows, dtype=bool)
        mix = whole.filter(pa.array(keep))
        used = [p for p, t, k in zip(pool, tables, np.split(keep, np.cumsum([t.num_rows for t in tables])[:-1])) if k.any()]
        activity = Activity("experiment-mix", {"condition": cond.name, "generation": n, "seed": us},
                            used=[str(p.resolve()) for p in used])
        with DatasetWriter(unit / "mix", activity, parents=used) as w:
            w.write(mix)
        if cond.pipeline is None:
            return unit / "mix"
        run_filter(unit / "mix", unit / "curated", load_pipeline(cond.pipeline))
        return unit / "curated"

    def _finish(self, unit: Path, seed: int, cond: str, n: int, test_ppl: float, info: dict[str, Any], gen_s: float,
                wsum: float, human_share: float, data: dict[str, Any], seq: list[float]) -> None:
        row = {
            "seed": seed, "condition": cond, "generation": n, "test_ppl": test_ppl, **info,
            "train_weight_sum": wsum, "human_share": human_share, "generate_seconds": gen_s, **data,
        }
        write_json_atomic(unit / DONE, {"row": row, "seq_ppl": seq})
        self.done += 1

    # --- tables --------------------------------------------------------------
    def collect(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(metrics rows, per-sequence perplexity rows); generation 0 is repeated under every condition."""
        rows, seqs = [], []
        for seed in self.cfg.seeds:
            units: list[tuple[str, Path]] = []
            for cond in self.conditions:
                units.append((cond.name, self.unit_dir(seed, None, 0)))
                units += [(cond.name, self.unit_dir(seed, cond, n)) for n in range(1, self.cfg.generations + 1)]
            for name, unit in units:
                if not _is_done(unit):
                    continue
                doc = json.loads((unit / DONE).read_text())
                row = {**doc["row"], "condition": name}
                rows.append(row)
                seqs += [{"seed": seed, "condition": name, "generation": row["generation"], "ppl": p} for p in doc["seq_ppl"]]
        return rows, seqs

    def write_tables(self) -> None:
        rows, seqs = self.collect()
        if not rows:
            return
        for name, data in (("metrics.parquet", rows), ("seq_ppl.parquet", seqs)):
            buf = pa.BufferOutputStream()
            pq.write_table(pa.Table.from_pylist(data), buf)
            write_bytes_atomic(self.out / name, buf.getvalue().to_pybytes())

    # --- driver --------------------------------------------------------------
    def graph(self) -> dict[UnitKey, list[UnitKey]]:
        """Every unit and the units it needs: gen 0 of a seed, then each condition's chain at that seed."""
        deps: dict[UnitKey, list[UnitKey]] = {}
        for seed in self.cfg.seeds:
            deps[UnitKey(seed, None, 0)] = []
            for cond in self.conditions:
                for n in range(1, self.cfg.generations + 1):
                    prev = UnitKey(seed, None, 0) if n == 1 else UnitKey(seed, cond.name, n - 1)
                    deps[UnitKey(seed, cond.name, n)] = [prev] + ([UnitKey(seed, None, 0)] if n > 1 else [])
        return deps

    def run(self, workers: int | None = None) -> RunSummary:
        t0 = time.perf_counter()
        workers = default_workers() if workers is None else max(1, workers)
        self.check_config()
        with _torch_threads(self.cfg.threads), _hf_progress_bars_off():
            self.setup()
            deps = self.graph()
            todo = {k: [d for d in v if not _is_done(self.key_dir(d))] for k, v in deps.items() if not _is_done(self.key_dir(k))}
            self.resumed += len(deps) - len(todo)
            tick = self.report("experiment units", len(deps))
            tick(len(deps) - len(todo))
            order = {c.name: i for i, c in enumerate(self.conditions)}

            def priority(k: UnitKey) -> tuple[int, int, int]:
                return (k.generation, k.seed, -1 if k.condition is None else order[k.condition])

            def done(key: UnitKey, _: Any) -> None:
                if workers > 1:
                    self.done += 1
                tick(1)
                self.write_tables()

            run_graph(todo, self.run_key, workers=workers if len(todo) > 1 else 1, task=_worker_task,
                      init=_worker_init, init_args=(self.cfg, str(self.out)), on_done=done, priority=priority,
                      threads_per_worker=max(1, self.cfg.threads))
        self.write_tables()
        rows, _ = self.collect()
        return RunSummary(self.out, self.done, self.resumed, time.perf_counter() - t0, rows, workers)


def run_experiment(cfg: ExperimentConfig, out: str | Path, reporter: Progress = quiet_progress,
                   workers: int | None = None) -> RunSummary:
    """Run (or resume) the experiment ``cfg`` in directory ``out`` with ``workers`` processes (default: the cores)."""
    return ExperimentRun(cfg, out, reporter).run(workers)


def read_metrics(run: str | Path) -> tuple[pa.Table, pa.Table | None, dict[str, Any]]:
    """(metrics, per-sequence perplexities or None, config) of a run directory."""
    run = Path(run)
    if not (run / "metrics.parquet").exists():
        raise ConfigError(f"{run}: no metrics.parquet (not an experiment run, or it has not finished a generation yet)")
    seq = pq.read_table(run / "seq_ppl.parquet") if (run / "seq_ppl.parquet").exists() else None
    cfg = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else {}
    return pq.read_table(run / "metrics.parquet"), seq, cfg
