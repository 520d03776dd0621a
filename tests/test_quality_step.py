"""The ``quality`` step on real text: builtin-corpus documents vs degenerate (greedy, looping) generations."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from filter_fixtures import human_texts, write_dataset
from provkit.cli import app
from provkit.errors import ConfigError
from provkit.filters import parse_pipeline
from provkit.filters.quality import quality_reasons, quality_scores
from provkit.filters.quality import SCORE_NAMES
from provkit.filters.steps import QualityStep, QualityStepConfig
from provkit.provenance import Dataset, make_batch, verify

runner = CliRunner()


def greedy_bigram_texts(n: int, words: int = 120, fit_on: int = 400) -> list[str]:
    """Greedy decoding of a word-bigram chain fitted on builtin text: it falls into loops, like a collapsed model."""
    follow: dict[str, Counter[str]] = defaultdict(Counter)
    for text in human_texts(fit_on):
        tokens = text.split()
        for a, b in zip(tokens, tokens[1:]):
            follow[a][b] += 1
    starts = sorted(w for w, c in follow.items() if sum(c.values()) >= 5)
    out = []
    for start in starts[:: max(1, len(starts) // n)][:n]:
        seq = [start]
        while len(seq) < words:
            nxt = follow.get(seq[-1])
            seq.append(nxt.most_common(1)[0][0] if nxt else start)
        out.append(" ".join(seq))
    return out


@pytest.fixture(scope="module")
def texts():
    human = [t for t in human_texts(1200) if len(t.split()) >= 50][:150]
    candidates = greedy_bigram_texts(60)
    degenerate = [t for t, w in zip(candidates, quality_scores(candidates)["words"]) if w >= 50][:40]
    assert len(human) == 150 and len(degenerate) == 40
    return human, degenerate


def _run(step: QualityStep, texts: list[str]) -> tuple[pa.RecordBatch, list]:
    scored = step.score(make_batch(texts, ids=[f"r{i}" for i in range(len(texts))]))
    return scored, step.decide(scored, step.plan(None)).column("drop_reason").to_pylist()


def test_step_drops_degenerate_generations_and_keeps_most_human_text(texts):
    human, degenerate = texts
    step = QualityStep(QualityStepConfig())
    scored, reasons = _run(step, human + degenerate)
    human_reasons, bad_reasons = reasons[:len(human)], reasons[len(human):]
    assert all(r is not None for r in bad_reasons), bad_reasons
    # the loops fail the repetition checks (whatever check is reported first): repeated 5-grams cover most words
    assert (scored.column("quality_dup_5gram_frac").to_numpy()[len(human):] > 0.5).all()
    assert sum(r is None for r in human_reasons) >= 0.75 * len(human), Counter(human_reasons)


def test_score_columns_are_the_quality_scores_and_decide_applies_the_thresholds(texts):
    human, degenerate = texts
    sample = human[:20] + degenerate[:10]
    step = QualityStep(QualityStepConfig())
    scored, reasons = _run(step, sample)
    expected = quality_scores(sample)
    for name in SCORE_NAMES:
        np.testing.assert_array_equal(scored.column(f"quality_{name}").to_numpy(), expected[name])
    assert reasons == quality_reasons(expected)
    # deciding again with other thresholds needs no rescoring: all-permissive limits keep every text
    permissive = {n: 1.0 for n in QualityStepConfig().__dataclass_fields__ if n.endswith("_frac")}
    loose = QualityStep(QualityStepConfig(min_words=0, min_mean_word_length=0.0, max_mean_word_length=1000.0, **permissive))
    assert loose.decide(scored, None).column("drop_reason").null_count == len(sample)
    assert sum(r is not None for r in reasons) >= 10


@pytest.mark.parametrize("params, message", [
    ({"max_dup_5gram_frac": 1.5}, "t.toml: steps[0].max_dup_5gram_frac: a fraction, must be in [0, 1], got 1.5"),
    ({"min_words": "many"}, 't.toml: steps[0].min_words: expected an integer, got "many"'),
    ({"min_words": 200, "max_words": 100}, "t.toml: steps[0].min_words: must be <= max_words (100), got 200"),
    ({"max_top_2gram": 0.2}, "t.toml: steps[0].max_top_2gram: unknown key for step 'quality'"),
])
def test_bad_thresholds_are_one_line_errors_naming_the_key(params, message):
    with pytest.raises(ConfigError) as info:
        parse_pipeline({"steps": [{"kind": "quality", **params}]}, "t.toml")
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_prov_filter_quality_flag_conserves_records_and_names_failed_checks(texts, tmp_path):
    human, degenerate = texts
    src = write_dataset(tmp_path / "in", human, [degenerate])
    res = runner.invoke(app, ["filter", str(src), "--out", str(tmp_path / "o"), "--quality", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["input"] == 190 == report["kept"] + sum(report["dropped"].values())
    assert [s["step"] for s in report["steps"]] == ["quality"]
    assert all(reason.startswith("quality:") for reason in report["dropped"])
    out = Dataset.open(tmp_path / "o")
    assert verify(tmp_path / "o") == []
    kept, rejects = out.read(), out.read("rejects")
    assert kept.num_rows + rejects.num_rows == 190
    assert set(rejects.column("drop_step").to_pylist()) == {"quality"}
    assert {f"g1-{i}" for i in range(40)} <= set(rejects.column("id").to_pylist())
    assert kept.num_rows >= 0.75 * len(human)
    assert "quality_dup_5gram_frac" in kept.column_names and "sample_weight" not in kept.column_names
    by_reason = Counter(rejects.column("drop_reason").to_pylist())
    assert dict(by_reason) == report["dropped"]


def test_quality_thresholds_from_a_pipeline_file(texts, tmp_path):
    human, degenerate = texts
    src = write_dataset(tmp_path / "in", human[:30], [degenerate[:10]])
    (tmp_path / "p.toml").write_text('[[steps]]\nkind = "quality"\nmin_words = 1000\n')
    res = runner.invoke(app, ["filter", str(src), "--out", str(tmp_path / "o"), "--config", str(tmp_path / "p.toml"),
                              "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["kept"] == 0 and report["dropped"]["quality:too_short"] >= 30
    (tmp_path / "bad.toml").write_text('[[steps]]\nkind = "quality"\nmax_dup_line_frac = -1\n')
    res = runner.invoke(app, ["filter", str(src), "--out", str(tmp_path / "o2"), "--config", str(tmp_path / "bad.toml")])
    assert res.exit_code == 2 and "steps[0].max_dup_line_frac: must be >= 0" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
