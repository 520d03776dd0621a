"""The recursive-training loop: generations x conditions x seeds, checkpointed per generation.

Protocol (Shumailov et al. 2024 and its released code)::

    G_0 = human training blocks
    model_0 = base fine-tuned on G_0
    for n = 1..N:  G_n = continuations written by model_{n-1}, prompted with each record of G_{n-1}
                   mix_n = condition(G_n, human, G_1..G_n)   [-> prov filter pipeline when curated]
                   model_n = the SAME base fine-tuned on mix_n (sample_weight honoured)

Run directory::

    RUN/config.json                      the validated config (a rerun must match it)
    RUN/setup/{human,human-test,base,tokenizer}   human datasets and the base model
    RUN/seed{S}/gen00/{model,generated}  generation 0 (shared by every condition)
    RUN/seed{S}/{condition}/gen{NN}/{mix,curated,generated,model}
    RUN/.../metrics.json                 a unit's metrics: written last = the checkpoint
    RUN/metrics.parquet, RUN/seq_ppl.parquet   all units so far (rewritten after each unit)

Every unit reads its inputs back from committed datasets and seeds its own
RNGs from (seed, condition, generation), so a run killed at any point and
started again ends with the same metrics as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from provkit.core.atomic import write_bytes_atomic, write_json_atomic
from provkit.core.progress import Progress, quiet_progress
from provkit.engines import run_filter
from provkit.errors import ConfigError
from provkit.filters import load_pipeline
from provkit.filters.detector import load_detector
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

DONE = "metrics.json"


@dataclass
class RunSummary:
    out: Path
    units_done: int
    units_resumed: int
    seconds: float
    metrics: list[dict[str, Any]]


# ---------------------------------------------------------------- corpus loading


def load_corpus(spec: str) -> tuple[list[str], list[str], list[str] | None]:
    """(train texts, their ids, official test texts or None) for ``builtin:NAME``, wikitext-2 or a local path."""
    if spec.startswith("builtin:"):
        try:
            docs = list(iter_builtin(spec.split(":", 1)[1]))
        except ValueError as exc:
            raise ConfigError(f"corpus: {exc}") from None
        return [d.text for d in docs], [d.id for d in docs], None
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


def _wikitext_splits(ds: Any, name: str) -> tuple[list[str], list[str], list[str]]:
    train = [t for t in ds["train"]["text"] if t.strip()]
    test = [t for t in ds["test"]["text"] if t.strip()]
    return train, [f"{name}:train:{i}" for i in range(len(train))], test


def _load_local_corpus(path: Path) -> tuple[list[str], list[str], list[str] | None]:
    if (path / "manifest.json").exists():
        table = Dataset.open(path).read(columns=["id", "text"])
        return table.column("text").to_pylist(), table.column("id").to_pylist(), None
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
    return texts, [f"{path.name}:{i}" for i in range(len(texts))], None


# ---------------------------------------------------------------- helpers


def _unit_seed(seed: int, slug: str, generation: int) -> int:
    return (seed * 1_000_003 + zlib.crc32(slug.encode()) * 101 + generation) % (2**31 - 1)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(n if n > 0 else (os.cpu_count() or 1))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _read_texts(path: Path) -> pa.Table:
    table = Dataset.open(path).read()
    return table


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


class ExperimentRun:
    """One run directory: setup, the generation-0 units, and every condition's generations."""

    def __init__(self, cfg: ExperimentConfig, out: str | Path, reporter: Progress = quiet_progress):
        self.cfg = cfg
        self.out = Path(out)
        self.report = reporter
        self.conditions = cfg.parsed_conditions
        self._gen0: dict[int, Any] = {}
        self._encoder: Any = None
        self.resumed = 0
        self.done = 0

    # --- config ------------------------------------------------------------
    def check_config(self) -> None:
        path = self.out / "config.json"
        mine = self.cfg.to_json()
        if path.exists():
            theirs = json.loads(path.read_text())
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
        """Tokenizer, human train/test datasets and the base model (once per run directory)."""
        if _is_done(self.setup_dir):
            self.resumed += 1
            return
        cfg = self.cfg
        texts, ids, test_texts = load_corpus(cfg.corpus)
        if cfg.model == "tiny":
            tok = train_bpe_tokenizer(texts, cfg.vocab_size)
            base = None
        else:
            base, tok = load_model(cfg.model)
        d = _fresh(self.setup_dir)
        save_tokenizer(tok, d / "tokenizer")
        blocks = make_blocks(texts, tok, cfg.block_size, ids, id_prefix="human")
        rng = np.random.default_rng(cfg.seeds[0] + 7919)
        if test_texts is None:
            order = rng.permutation(len(blocks))
            n_test = min(cfg.test_blocks or len(blocks) // 10, len(blocks) // 4)
            test = [blocks[i] for i in sorted(order[:n_test])]
            rest = order[n_test:]
            n_train = cfg.train_blocks or len(rest)
            train = [blocks[i] for i in sorted(rest[:n_train])]
            pool = [blocks[i] for i in sorted(rest[n_train:])][: cfg.pretrain_blocks]
        else:
            test = make_blocks(test_texts, tok, cfg.block_size, id_prefix="human-test")
            if cfg.test_blocks:
                test = test[: cfg.test_blocks]
            train = blocks[: cfg.train_blocks] if cfg.train_blocks else blocks
            pool = []
        self._write_human(d / "human", train, tok, "train")
        self._write_human(d / "human-test", test, tok, "test")
        if base is None:
            base = build_tiny_opt(tok, cfg.tiny_model, seed=cfg.seeds[0])
            if cfg.pretrain_epochs and pool:
                ids_, mask = encode_texts([tok.decode(b.token_ids) for b in pool], tok, cfg.block_size)
                tcfg = replace(cfg.train, epochs=cfg.pretrain_epochs, seed=cfg.seeds[0])
                tick = self.report("pre-train tiny base", len(pool) * cfg.pretrain_epochs)
                train_lm(base, ids_, mask, None, tcfg, tick)
        save_model(base, tok, d / "base")
        write_json_atomic(d / DONE, {"train_blocks": len(train), "test_blocks": len(test), "pretrain_blocks": len(pool)})
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
        return self._base

    @property
    def model_id(self) -> str:
        return "tiny-opt" if self.cfg.model == "tiny" else self.cfg.model

    def _encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return encode_texts(texts, self.tokenizer, self.cfg.block_size)

    def _test_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not hasattr(self, "_test"):
            self._test = self._encode(_read_texts(self.setup_dir / "human-test").column("text").to_pylist())
        return self._test

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

    def generated_of(self, seed: int, cond: Condition, n: int) -> Path:
        """The dataset G_n (written by model_{n-1}) as seen by ``cond``."""
        prev = self.unit_dir(seed, None if n == 1 else cond, n - 1)
        return prev / "generated"

    def gen0_model(self, seed: int) -> Any:
        if seed not in self._gen0:
            self._gen0[seed], _ = load_model(self.unit_dir(seed, None, 0) / "model", with_tokenizer=False)
        return self._gen0[seed]

    def _train(self, texts: Sequence[str], weights: np.ndarray | None, epochs: int, seed: int, desc: str) -> tuple[Any, Any]:
        model = clone_model(self.base)
        ids, mask = self._encode(texts)
        tick = self.report(desc, len(texts) * epochs)
        stats = train_lm(model, ids, mask, weights, replace(self.cfg.train, epochs=epochs, seed=seed), tick)
        return model, stats

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
        decoding = self.cfg.decoding.to_dict()
        activity = Activity("experiment-generate", {"model": self.model_id, "generation": generation - 1, "decoding": decoding,
                                                     "seed": seed}, used=[str(p.resolve()) for p in parents],
                            agents=["provkit", f"model/{self.model_id}"])
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

    def _data_metrics(self, seed: int, texts: Sequence[str], unit_seed: int) -> tuple[dict[str, Any], list[float]]:
        ids, mask = self._encode(texts)
        ppl = sequence_perplexities(self.gen0_model(seed), ids, mask, self.cfg.eval_batch_size)
        tok = self.tokenizer
        row: dict[str, Any] = {**perplexity_summary(ppl), **text_metrics(texts, self_bleu_samples=self.cfg.self_bleu_samples, seed=unit_seed)}
        row["tail_recall"] = tail_recall(self._tail(), tok(list(texts), add_special_tokens=False)["input_ids"])
        row["embedding_diversity"] = float("nan")
        if self.cfg.embedding_diversity:
            if self._encoder is None:
                self._encoder = local_sentence_encoder() or False
            row["embedding_diversity"] = embedding_diversity(texts, self._encoder or None, self.cfg.embedding_samples, unit_seed)
        row["detector_score"] = float("nan")
        if self.cfg.detector:
            if not hasattr(self, "_detector"):
                self._detector = load_detector(self.cfg.detector)
            row["detector_score"] = float(np.mean(self._detector.predict_proba(list(texts))))
        return row, [float(x) for x in ppl]

    def run_gen0(self, seed: int) -> None:
        unit = self.unit_dir(seed, None, 0)
        if _is_done(unit):
            self.resumed += 1
            return
        _fresh(unit)
        us = _unit_seed(seed, "gen0", 0)
        human = _read_texts(self.setup_dir / "human")
        texts = human.column("text").to_pylist()
        model, stats = self._train(texts, None, self.cfg.epochs, us, f"seed {seed} gen 0: train")
        save_model(model, None, unit / "model")
        self._gen0[seed] = model
        test_ppl = corpus_perplexity(model, *self._test_set(), self.cfg.eval_batch_size)
        data, seq = self._data_metrics(seed, texts, us)
        gen_s = self._generate(model, human, unit / "generated", us, 1, [self.setup_dir / "human"], f"seed {seed} gen 0: generate")
        self._finish(unit, seed, "*", 0, test_ppl, stats, gen_s, len(texts), float(len(texts)), 1.0, data, seq)

    def run_unit(self, seed: int, cond: Condition, n: int) -> None:
        unit = self.unit_dir(seed, cond, n)
        if _is_done(unit):
            self.resumed += 1
            return
        _fresh(unit)
        us = _unit_seed(seed, cond.slug, n)
        g_n = self.generated_of(seed, cond, n)
        train_path = self._build_mix(seed, cond, n, unit, us)
        table = _read_texts(train_path)
        texts = table.column("text").to_pylist()
        weights = table.column("sample_weight").to_numpy(zero_copy_only=False).astype(np.float32) if "sample_weight" in table.column_names else None
        human_rows = sum(1 for o in table.column("origin").to_pylist() if o == Origin.HUMAN.value)
        epochs = self.cfg.epochs_with_human if human_rows else self.cfg.epochs
        model, stats = self._train(texts, weights, epochs, us, f"seed {seed} {cond.name} gen {n}: train")
        test_ppl = corpus_perplexity(model, *self._test_set(), self.cfg.eval_batch_size)
        g_texts = _read_texts(g_n).column("text").to_pylist()
        data, seq = self._data_metrics(seed, g_texts, us)
        gen_s = 0.0
        if n < self.cfg.generations:
            gen_s = self._generate(model, _read_texts(g_n), unit / "generated", us, n + 1, [g_n], f"seed {seed} {cond.name} gen {n}: generate")
        else:
            save_model(model, self.tokenizer, unit / "model")
        wsum = float(weights.sum()) if weights is not None else float(len(texts))
        self._finish(unit, seed, cond.name, n, test_ppl, stats, gen_s, len(texts), wsum, human_rows / max(1, len(texts)), data, seq)

    def _build_mix(self, seed: int, cond: Condition, n: int, unit: Path, us: int) -> Path:
        """Write the training mix of generation n (and its curated version); return what to train on."""
        human_path = self.setup_dir / "human"
        g_n = self.generated_of(seed, cond, n)
        rng = np.random.default_rng(us)
        if cond.mix == "replace":
            sources = [(g_n, None)]
        elif cond.mix == "keep-human":
            size = Dataset.open(g_n).num_rows()
            k = int(round(cond.human_fraction * size))
            n_h = Dataset.open(human_path).num_rows()
            sources = [(human_path, np.sort(rng.choice(n_h, size=min(k, n_h), replace=False))),
                       (g_n, np.sort(rng.choice(size, size=size - min(k, n_h), replace=False)))]
        else:  # accumulate (and curated)
            sources = [(human_path, None)] + [(self.generated_of(seed, cond, k), None) for k in range(1, n + 1)]
        tables = []
        for path, rows in sources:
            t = Dataset.open(path).read()
            tables.append(t if rows is None else t.take(pa.array(rows)))
        mix = pa.concat_tables(tables, promote_options="default")
        activity = Activity("experiment-mix", {"condition": cond.name, "generation": n}, used=[str(p.resolve()) for p, _ in sources])
        with DatasetWriter(unit / "mix", activity, parents=[p for p, _ in sources]) as w:
            w.write(mix)
        if cond.pipeline is None:
            return unit / "mix"
        run_filter(unit / "mix", unit / "curated", load_pipeline(cond.pipeline))
        return unit / "curated"

    def _finish(self, unit: Path, seed: int, cond: str, n: int, test_ppl: float, stats: Any, gen_s: float,
                rows: int, wsum: float, human_share: float, data: dict[str, Any], seq: list[float]) -> None:
        row = {
            "seed": seed, "condition": cond, "generation": n, "test_ppl": test_ppl, "train_rows": rows,
            "train_weight_sum": wsum, "human_share": human_share, "train_loss": stats.final_loss,
            "train_tokens": stats.tokens, "train_seconds": stats.seconds, "generate_seconds": gen_s, **data,
        }
        write_json_atomic(unit / DONE, {"row": row, "seq_ppl": seq})
        self.done += 1
        self.write_tables()

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
    def run(self) -> RunSummary:
        t0 = time.perf_counter()
        self.check_config()
        with _torch_threads(self.cfg.threads), _hf_progress_bars_off():
            self.setup()
            total = len(self.cfg.seeds) * (1 + len(self.conditions) * self.cfg.generations)
            tick = self.report("experiment units", total)
            for seed in self.cfg.seeds:
                self.run_gen0(seed)
                tick(1)
                for n in range(1, self.cfg.generations + 1):
                    for cond in self.conditions:
                        self.run_unit(seed, cond, n)
                        tick(1)
        self.write_tables()
        rows, _ = self.collect()
        return RunSummary(self.out, self.done, self.resumed, time.perf_counter() - t0, rows)


def run_experiment(cfg: ExperimentConfig, out: str | Path, reporter: Progress = quiet_progress) -> RunSummary:
    """Run (or resume) the experiment ``cfg`` in directory ``out``."""
    return ExperimentRun(cfg, out, reporter).run()


def read_metrics(run: str | Path) -> tuple[pa.Table, pa.Table | None, dict[str, Any]]:
    """(metrics, per-sequence perplexities or None, config) of a run directory."""
    run = Path(run)
    if not (run / "metrics.parquet").exists():
        raise ConfigError(f"{run}: no metrics.parquet (not an experiment run, or it has not finished a generation yet)")
    seq = pq.read_table(run / "seq_ppl.parquet") if (run / "seq_ppl.parquet").exists() else None
    cfg = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else {}
    return pq.read_table(run / "metrics.parquet"), seq, cfg
