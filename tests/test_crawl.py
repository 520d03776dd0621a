"""The crawl scenario: hidden truth, exact budgets, shares, resume, and the gap statistics."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest

from provkit.errors import ConfigError
from provkit.lm import DecodingConfig, TinyOPTConfig, read_key
from provkit.provenance import Dataset
from provkit.train.crawl import KEY_FILE, CrawlConfig, CrawlRun, removal_rates, run_crawl, threshold_at_fpr
from provkit.train.crawl_report import collapse_delay, crawl_statistics, gap_recovered, write_crawl_report

TINY = CrawlConfig(
    budget=8, oversample=1.0, schedule=(0.5, 0.75), kept_tags=0.3, seeds=(0,), test_blocks=16, pretrain_blocks=32,
    calibration_blocks=16, epochs=1, self_bleu_samples=8, vocab_size=256,
    arms=("naive", "oracle", "tags", "detector", "detector-weight-10", "random-drop"),
    decoding=DecodingConfig(num_beams=1, do_sample=True, repetition_penalty=1.0, max_new_tokens=12),
    tiny_model=TinyOPTConfig(layers=1, hidden=32, heads=2, ffn=64, max_positions=96),
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("crawl") / "run"
    summary = run_crawl(TINY, out)
    return out, summary


def _units(out, cfg=TINY):
    for arm in cfg.arms:
        for n in range(1, cfg.generations + 1):
            yield arm, n, out / "seed0" / arm / f"gen{n:02d}"


def test_hidden_truth_never_reaches_an_arm(tiny_run):
    out, _ = tiny_run
    for arm, n, unit in _units(out):
        crawl = Dataset.open(unit / "crawl").read()
        truth = pq.read_table(unit / "truth.parquet")
        true = dict(zip(truth["id"].to_pylist(), truth["true_origin"].to_pylist()))
        kept = dict(zip(truth["id"].to_pylist(), truth["kept_tag"].to_pylist()))
        assert set(true.values()) == {"human", "model"}
        origins = crawl.column("origin").cast("string").to_pylist()
        ids = crawl.column("id").to_pylist()
        # an arm reading `origin` sees unknown, and the declared tag only where the tag was kept
        for i, o in zip(ids, origins):
            assert o == (true[i] if kept[i] else "unknown")
        unknown = [k for k, o in enumerate(origins) if o == "unknown"]
        # nothing else in the record differs by origin among the unknown ones
        for col in ("origin_evidence", "generator", "source_uri", "dataset", "activity_id"):
            values = crawl.column(col).to_pylist()
            assert len({json.dumps(values[k], default=str) for k in unknown}) <= 1, col
        assert all(not crawl.column("parent_ids").to_pylist()[k] for k in unknown)
        assert all(i.startswith("crawl-") for i in ids) and ids == sorted(ids)
        # the truth file lives beside the arm's input, not in it
        assert "true_origin" not in crawl.column_names
        sel = Dataset.open(unit / "selected").read()
        assert "true_origin" not in sel.column_names
        if arm == "tags":  # the tags arm drops exactly the kept model tags
            assert "model" not in sel.column("origin").cast("string").to_pylist()


def test_every_arm_trains_on_exactly_b_blocks(tiny_run):
    _, summary = tiny_run
    rows = [r for r in summary.metrics if r["generation"] >= 1]
    assert len(rows) == len(TINY.arms) * TINY.generations
    assert all(r["train_rows"] == TINY.budget for r in rows)


def test_shares_oracle_zero_naive_follows_schedule_detector_measured(tiny_run):
    out, summary = tiny_run
    rows = [r for r in summary.metrics if r["generation"] >= 1]
    for r in rows:
        if r["condition"] == "oracle":
            assert r["model_share"] == 0.0
        if r["condition"] == "naive":
            m, n_crawl, b = TINY.schedule[r["generation"] - 1], TINY.crawl_size, TINY.budget
            sd = math.sqrt(m * (1 - m) / b * (n_crawl - b) / (n_crawl - 1))
            assert abs(r["model_share"] - m) <= 3 * sd + 1e-9
    # the detector arm's share is measured from the hidden truth of what it selected, not assumed
    for arm, n, unit in _units(out):
        if arm != "detector":
            continue
        truth = pq.read_table(unit / "truth.parquet")
        true = dict(zip(truth["id"].to_pylist(), truth["true_origin"].to_pylist()))
        sel = Dataset.open(unit / "selected").read()
        copies = sel.column("resample_copies").to_pylist()
        share = sum(c for i, c in zip(sel.column("id").to_pylist(), copies) if true[i] == "model") / TINY.budget
        row = next(r for r in rows if r["condition"] == "detector" and r["generation"] == n)
        assert row["model_share"] == pytest.approx(share)
        assert 0.0 <= row["detector_tpr"] <= 1.0 and 0.0 <= row["detector_fpr"] <= 1.0


@pytest.mark.slow
def test_t0_tags_equals_naive_with_common_random_numbers(tmp_path):
    cfg = dataclasses.replace(TINY, kept_tags=0.0, arms=("naive", "tags"), schedule=(0.5,))
    summary = run_crawl(cfg, tmp_path / "r")
    by = {r["condition"]: r for r in summary.metrics if r["generation"] == 1}
    assert by["naive"]["test_ppl"] == by["tags"]["test_ppl"]
    assert by["naive"]["model_share"] == by["tags"]["model_share"]


@pytest.mark.slow
def test_resume_after_kill_gives_identical_metrics(tmp_path):
    key = tmp_path / "wm.key"  # both runs watermark with one key (a fresh run would draw its own)
    key.write_text("k" * 40)
    cfg = dataclasses.replace(TINY, arms=("naive", "detector"), watermark_key_file=str(key))
    full = run_crawl(cfg, tmp_path / "full").metrics
    with pytest.raises(KeyboardInterrupt):
        CrawlRun(cfg, tmp_path / "killed", stop_after=3).run()
    resumed = run_crawl(cfg, tmp_path / "killed").metrics
    strip = lambda rows: sorted((json.dumps({k: v for k, v in r.items() if k != "seconds"}, sort_keys=True) for r in rows))
    assert strip(full) == strip(resumed)


def test_report_from_run(tiny_run):
    out, _ = tiny_run
    md, figs = write_crawl_report(out)
    text = md.read_text()
    assert "gap recovered" in text and all(p.exists() for p in figs)
    assert "removed: precision" in text and "### watermark_tpr" in text


@pytest.mark.parametrize("key,value", [("watermark_share", 1.5), ("watermark_share", -0.1), ("watermark_z", math.inf),
                                       ("watermark_greenlist_ratio", 0.0), ("watermark_bias", -1.0)])
def test_watermark_settings_are_checked(key, value):
    with pytest.raises(ConfigError, match=key):
        dataclasses.replace(TINY, **{key: value})


# ---------------------------------------------------------------- the watermark arms

# 48-token continuations of a base pretrained on 400 blocks: long enough for z >= 4 at bias 2 (the 12 tokens of
# TINY are not), and text that decodes to valid UTF-8 (the barely trained TINY base writes stray bytes that do
# not survive decode -> re-tokenise, and the watermark with them)
WM = dataclasses.replace(TINY, budget=16, schedule=(0.5, 0.75), kept_tags=0.0, watermark_share=0.5, vocab_size=512,
                         pretrain_blocks=400, tiny_model=dataclasses.replace(TINY.tiny_model, max_positions=128),
                         arms=("naive", "watermark", "watermark+detector"),
                         decoding=dataclasses.replace(TINY.decoding, max_new_tokens=48))


@pytest.fixture(scope="module")
def wm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("crawl-wm") / "run"
    return out, run_crawl(WM, out)


def _truth(unit):
    t = pq.read_table(unit / "truth.parquet").to_pylist()
    return {r["id"]: r for r in t}


@pytest.mark.slow  # the wm_run fixture: ~20 s CPU (gen 0's detector fit dominates), 40 s wall under load
def test_watermark_arm_removes_the_watermarked_model_records_and_few_human_ones(wm_run):
    out, summary = wm_run
    marked = plain = human = 0
    removed = {"marked": 0, "plain": 0, "human": 0}
    for arm, n, unit in _units(out, WM):
        if arm != "watermark":
            continue
        truth = _truth(unit)
        rejects = Dataset.open(unit / "selected").read("rejects").to_pylist()
        gone = {r["id"] for r in rejects if r["drop_reason"] == "watermark_z"}
        assert all(r["watermark_z"] >= WM.watermark_z for r in rejects if r["id"] in gone)
        for i, r in truth.items():
            kind = "human" if r["true_origin"] == "human" else "marked" if r["watermarked"] else "plain"
            removed[kind] += i in gone
            marked, plain, human = marked + (kind == "marked"), plain + (kind == "plain"), human + (kind == "human")
        row = next(r for r in summary.metrics if r["condition"] == "watermark" and r["generation"] == n)
        precision, recall = removal_rates(gone, {i: r["true_origin"] for i, r in truth.items()})
        assert row["removal_precision"] == pytest.approx(precision) and row["removal_recall"] == pytest.approx(recall)
    # real generations: about half of 8 + 12 model records per seed watermarked, 16 + 8 human records
    assert marked >= 5 and plain >= 5 and human == 24
    assert removed["marked"] >= 0.8 * marked, removed
    assert removed["human"] <= 1 and removed["plain"] <= 1, removed


@pytest.mark.slow
def test_watermark_share_is_the_same_records_in_every_arm_and_the_key_stays_secret(wm_run):
    out, summary = wm_run
    for n in (1, 2):
        masks = [{i: r["watermarked"] for i, r in _truth(out / "seed0" / arm / f"gen{n:02d}").items()} for arm in WM.arms]
        assert all(m == masks[0] for m in masks)  # common random numbers: the same records watermarked
    # on the same crawl (generation 1) watermark+detector removes what the watermark arm removes, and more
    w, wd = ({r["id"] for r in Dataset.open(out / "seed0" / arm / "gen01" / "selected").read("rejects").to_pylist()
              if r["drop_reason"] != "resample_not_drawn"} for arm in ("watermark", "watermark+detector"))
    assert w and w <= wd
    rows = {r["condition"]: r for r in summary.metrics if r["generation"] == 1}
    assert rows["naive"]["removed_rows"] == 0 and rows["naive"]["removal_precision"] is None  # nothing removed
    assert rows["naive"]["watermark_tpr"] == rows["watermark"]["watermark_tpr"] >= 0.8
    key = out / KEY_FILE
    assert key.stat().st_mode & 0o077 == 0
    secret, hashing_key = key.read_bytes().strip(), str(read_key(key).hashing_key).encode()
    for path in out.rglob("*"):
        if path.is_file() and path != key:
            data = path.read_bytes()
            assert secret not in data and hashing_key not in data, path
    other = out.parent / "other.key"
    other.write_text("x" * 40)
    with pytest.raises(ConfigError, match="key id"):  # resuming with another key is one clear line
        CrawlRun(dataclasses.replace(WM, watermark_key_file=str(other)), out).watermark  # noqa: B018


# ---------------------------------------------------------------- statistics, hand-computed


def test_gap_recovered_hand_computed():
    naive = [0.30, 0.40, 0.50, 0.35, 0.45]
    oracle = [0.10, 0.10, 0.20, 0.05, 0.15]
    arm = [0.20, 0.25, 0.35, 0.20, 0.30]
    g = gap_recovered(naive, arm, oracle)
    num = np.mean(np.subtract(naive, arm))  # 0.15
    den = np.mean(np.subtract(naive, oracle))  # 0.30
    assert g["gap"] == pytest.approx(num / den) == pytest.approx(0.5)
    assert g["estimable"] and g["low"] <= 0.5 <= g["high"]
    # the denominator's interval includes 0: not estimable
    g = gap_recovered([0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.2, 0.1, 0.3])
    assert not g["estimable"] and math.isnan(g["low"])


def test_collapse_delay_and_threshold():
    assert collapse_delay({0: 100, 1: 105, 2: 111, 3: 130}) == 2
    assert collapse_delay({0: 100, 1: 105}) is None
    p = np.linspace(0, 1, 101)
    t = threshold_at_fpr(p, 0.05)
    assert np.mean(p > t) <= 0.05 and np.mean(p >= t) > 0.05


def test_statistics_rows_fixture():
    rows = []
    for s, (cn, co, ca) in enumerate([(2.0, 1.0, 1.5), (2.2, 1.1, 1.6), (1.9, 1.0, 1.4)]):
        for arm, ppl1 in (("naive", cn), ("oracle", co), ("detector", ca)):
            rows += [{"seed": s, "condition": arm, "generation": 0, "test_ppl": 1.0, "model_share": 0.0},
                     {"seed": s, "condition": arm, "generation": 1, "test_ppl": math.exp(ppl1) ,
                      "model_share": 0.5 if arm != "oracle" else 0.0}]
    st = crawl_statistics(rows)
    det = next(r for r in st["headline"] if r["arm"] == "detector")
    assert det["gap"] == pytest.approx((6.1 - 4.5) / (6.1 - 3.1))
