"""Property-based tests (Hypothesis): every reader and every filter step on arbitrary Unicode batches.

Batches mix the hostile cases on purpose: empty, whitespace-only and punctuation-only texts, lone
surrogates, control characters (NUL, lone CR, U+2028), very long texts.  Properties: nothing
crashes, ``read = written + quarantined`` for every reader, ``input = kept + dropped`` for every
step, and every weight is finite.  Kept fast: modest ``max_examples``, no deadline.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from filter_fixtures import bigram_model_texts, human_texts
from provkit.engines import run_filter
from provkit.filters import parse_pipeline
from provkit.filters.detector import DetectorConfig, save_detector, train_detector
from provkit.filters.quality import quality_scores
from provkit.provenance import Activity, Dataset, DatasetWriter, IngestConfig, ingest, make_batch, verify

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
STEP_SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))  # a pipeline each

_SPECIAL = st.sampled_from(["", " ", "\t\n ", "...", "!?!?", "\x00", "\r", "a\rb", "\u2028", "\ud800", "\udfff x",
                            "\x1b[31m", "word " * 3000, "😀" * 50, "\n\n\n", "\ufeff", "a\x85b"])
TEXT = st.one_of(st.text(max_size=60), _SPECIAL, st.text(alphabet=st.characters(categories=["P", "Zs", "Cc"]),
                                                         max_size=20))
BATCH = st.lists(TEXT, min_size=0, max_size=12)


def _clean(texts: list[str]) -> list[str]:
    """What a provkit dataset can hold: valid UTF-8 (a lone surrogate cannot be stored)."""
    return [t.encode("utf-8", "replace").decode("utf-8") for t in texts]


# ------------------------------------------------------------------ readers
def _write_source(d: Path, fmt: str, texts: list[str]) -> Path:
    path = d / f"in.{fmt}"
    if fmt == "jsonl":  # json.dumps escapes a lone surrogate as \udXXX: a bad record, not a crash
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["text"])
        w.writerows([[t] for t in texts])
        path.write_bytes(buf.getvalue().encode("utf-8", "surrogatepass"))
    elif fmt == "txt":
        path.write_bytes("\n".join(texts).encode("utf-8", "surrogatepass"))
    elif fmt == "parquet":
        raw = [t.encode("utf-8", "surrogatepass") for t in texts]  # invalid UTF-8 where a surrogate was
        pq.write_table(pa.table({"text": pa.array(raw, pa.binary()).view(pa.string())}), path)
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "txt", "parquet"])
@SETTINGS
@given(texts=BATCH)
def test_every_reader_conserves_records_on_arbitrary_unicode(fmt, texts):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        src = _write_source(d, fmt, texts)
        summary = ingest([str(src)], d / "ds", IngestConfig(on_error="skip", split="line"))
        assert summary.read == summary.written + summary.quarantined
        ds = Dataset.open(d / "ds")
        assert ds.num_rows() == summary.written and ds.num_rows("quarantine") == summary.quarantined
        if fmt in ("jsonl", "parquet"):  # one record per text: every text is accounted for
            assert summary.read == len(texts)
        assert verify(d / "ds") == []


# ------------------------------------------------------------------ filter steps
@pytest.fixture(scope="module")
def detector_dir(tmp_path_factory):
    human, model = human_texts(60, start=600), bigram_model_texts(60, seed=1)
    trained = train_detector(human + model, [0] * 60 + [1] * 60, DetectorConfig(kind="ngram", seed=0, cv_folds=3))
    return save_detector(trained.detector, tmp_path_factory.mktemp("det") / "DET")


STEP_TOML = {
    "exact_dedup": 'kind = "exact_dedup"',
    "minhash_dedup": 'kind = "minhash_dedup"\nthreshold = 0.5\nnum_perm = 32\nngram = 2',
    "quality": 'kind = "quality"\nmin_words = 2',
    "detector": 'kind = "detector"\npath = "{det}"\nmax_model_prob = 0.5',
    "detector_weight": 'kind = "detector"\npath = "{det}"\nbeta = 2.0',
    "tail": 'kind = "tail"\nrarity = "unigram"\nalpha = 1.0\nreference = "input"',
    "tail_resample": 'kind = "tail"\nrarity = "unigram"\nalpha = 1.0\nreference = "input"\ntarget = 5\nseed = 3',
    "mix": 'kind = "mix"\npolicy = "keep-human"\nhuman_fraction = 0.5\nalpha = 0.3\nseed = 0',
}


def _run_steps(d: Path, texts: list[str], origins: list[str], steps: list[str], det: Path) -> dict:
    src = d / "in"
    with DatasetWriter(src, Activity("test")) as w:
        if texts:
            w.write(make_batch(texts, ids=[f"r{i}" for i in range(len(texts))], origin=origins))
    toml = "\n".join(f"[[steps]]\n{STEP_TOML[s].format(det=det)}\n" for s in steps)
    config = parse_pipeline(tomllib.loads(toml), "props.toml")
    result = run_filter(src, d / "out", config)
    report = result.report
    assert report["input"] == len(texts) == report["kept"] + sum(report["dropped"].values())
    for step in report["steps"]:
        assert step["in"] == step["kept"] + sum(step["dropped"].values())
    json.loads(json.dumps(report, allow_nan=False))  # strict JSON: no NaN anywhere
    stored = json.loads((d / "out" / "report.json").read_text())
    assert stored["input"] == len(texts)
    out = Dataset.open(d / "out")
    assert out.num_rows() == report["kept"] and out.num_rows("rejects") == report["input"] - report["kept"]
    table = out.read()
    for name in table.column_names:
        if name.endswith("weight") or name in ("tail_score", "detector_score"):
            values = [v for v in table.column(name).to_pylist() if v is not None]
            assert all(math.isfinite(v) for v in values), name
    assert verify(d / "out") == []
    return report


@pytest.mark.parametrize("step", list(STEP_TOML))
@STEP_SETTINGS
@given(texts=BATCH, model_mask=st.lists(st.booleans(), min_size=12, max_size=12))
def test_every_step_conserves_records_and_keeps_weights_finite(step, texts, model_mask, detector_dir):
    texts = _clean(texts)
    origins = ["model" if m else "human" for m in model_mask[: len(texts)]]
    with tempfile.TemporaryDirectory() as tmp:
        _run_steps(Path(tmp), texts, origins, [step], detector_dir)


@STEP_SETTINGS
@given(texts=BATCH)
def test_a_pipeline_of_every_step_after_one_that_may_drop_everything(texts, detector_dir):
    texts = _clean(texts)
    with tempfile.TemporaryDirectory() as tmp:
        _run_steps(Path(tmp), texts, ["human"] * len(texts),
                   ["quality", "exact_dedup", "minhash_dedup", "detector_weight", "tail", "mix"], detector_dir)


@SETTINGS
@given(texts=BATCH)
def test_quality_scores_are_finite_for_any_batch(texts):
    scores = quality_scores(_clean(texts))
    for name, values in scores.items():
        assert len(values) == len(texts)
        assert np.all(np.isfinite(np.asarray(values, dtype=np.float64))), name


def test_quality_scores_when_the_last_texts_have_no_words():
    """Regression: np.add.reduceat raised IndexError when the batch ended with word-less texts."""
    scores = quality_scores(["some real words here", "\n\n", "\n", "   "])
    assert list(scores["words"]) == [4, 0, 0, 0]
