"""Watermarks as origin evidence (issue 13): generate with transformers' green-list watermark, detect, tag, filter.

Real small data and a real model: a byte-level BPE tokenizer and a one-layer OPT trained
here on 300 builtin python-docs documents.  From 8-token prompts taken from other
documents it samples 64-token continuations with and without the watermark (same
prompts, same seeds); human text is those documents' own next 64 tokens.  Keys are
random files; the wrong key is another random file.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from provkit.cli import app
from provkit.errors import ConfigError
from provkit.lm import (
    DecodingConfig,
    TinyOPTConfig,
    TrainConfig,
    WatermarkConfig,
    build_tiny_opt,
    generate_continuations,
    generate_with_share,
    load_scorer,
    make_blocks,
    pad_right,
    read_key,
    save_model,
    score_watermark,
    train_bpe_tokenizer,
    train_lm,
)
from provkit.lm.watermark import TOO_SHORT
from provkit.lm.watermark_data import record_fingerprints
from provkit.provenance import Activity, Dataset, DatasetWriter, Generator, iter_builtin, make_batch
from provkit.train import load_experiment_config, run_experiment

SHAPE = TinyOPTConfig(layers=1, hidden=48, heads=2, ffn=96, max_positions=128)
LENGTH = 64
N = 40
SAMPLING = dict(max_new_tokens=LENGTH, num_beams=1, do_sample=True, repetition_penalty=1.0)
runner = CliRunner()


def _key(path: Path, seed: int) -> Path:
    path.write_text(bytes(np.random.default_rng(seed).integers(33, 126, 40, dtype=np.uint8)).decode() + "\n")
    return path


@pytest.fixture(scope="module")
def wm(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("wm")
    docs = [d.text for d in itertools.islice(iter_builtin("python-docs"), 460)]
    tok = train_bpe_tokenizer(docs[:300], vocab_size=512)
    model = build_tiny_opt(tok, SHAPE, seed=0)
    ids, mask = pad_right([b.token_ids for b in make_blocks(docs[:300], tok, block_size=64)], tok.pad_token_id)
    train_lm(model, ids, mask, None, TrainConfig(epochs=3, batch_size=16, lr=3e-3, seed=0))
    model_dir = save_model(model, tok, root / "tiny-opt")
    key, wrong = _key(root / "wm.key", 1), _key(root / "other.key", 2)
    enc = [e for e in (tok(t, add_special_tokens=False)["input_ids"] for t in docs[300:]) if len(e) >= 8 + LENGTH][:N]
    prompts = [e[:8] for e in enc]
    human = [tok.decode(e[8 : 8 + LENGTH]) for e in enc]
    config = WatermarkConfig(key_file=str(key))
    plain = generate_continuations(model, prompts, DecodingConfig(**SAMPLING), pad_id=tok.pad_token_id, eos_id=None)
    marked = generate_continuations(model, prompts, DecodingConfig(**SAMPLING, watermark=config),
                                    pad_id=tok.pad_token_id, eos_id=None)
    return dict(root=root, tok=tok, model=model, model_dir=model_dir, key=key, wrong=wrong, config=config,
                prompts=prompts, human=human, plain=[tok.decode(x) for x in plain],
                marked=[tok.decode(x) for x in marked], secret=key.read_text().strip())


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _mixed_rows(wm) -> list[dict]:
    rows = [{"id": f"wm{i}", "text": t, "origin": "unknown"} for i, t in enumerate(wm["marked"][:12])]
    rows += [{"id": f"plain{i}", "text": t, "origin": "unknown"} for i, t in enumerate(wm["plain"][:12])]
    rows += [{"id": f"human{i}", "text": t, "origin": "human"} for i, t in enumerate(wm["human"][:12])]
    rows += [{"id": "short", "text": "def f", "origin": "unknown"}]
    return rows


def _assert_no_secret(wm, root: Path) -> None:
    """Neither the key nor the integer it seeds transformers with is in any file under ``root``."""
    hashing_key = str(read_key(wm["key"]).hashing_key).encode()
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert wm["secret"].encode() not in data, path
            assert hashing_key not in data, path


def test_watermarked_text_is_detected_plain_and_human_text_is_not(wm):
    scorer = load_scorer(wm["model_dir"], wm["config"])
    marked, plain, human = (scorer.score_texts(wm[k]) for k in ("marked", "plain", "human"))
    assert (marked.tokens >= 50).all()
    assert marked.above(4.0).mean() >= 0.9  # TPR at z >= 4 on 64-token texts
    # FPR at z >= 4: the one-sided normal tail is 3e-5; none of 80 unwatermarked texts reach it
    assert not plain.above(4.0).any() and not human.above(4.0).any()
    assert abs(np.nanmedian(plain.z)) < 1.5 and abs(np.nanmedian(human.z)) < 1.5
    assert np.nanmedian(marked.z) > 5.0
    assert np.allclose(marked.p[~np.isnan(marked.z)], 0.5 * np.array(
        [float(torch.special.erfc(torch.tensor(z / np.sqrt(2)))) for z in marked.z[~np.isnan(marked.z)]]))
    z, p = score_watermark(wm["marked"][:4], wm["model_dir"], key_file=wm["key"])
    assert np.allclose(z, marked.z[:4]) and np.allclose(p, marked.p[:4])


def test_repeated_ngrams_are_scored_once_so_repeating_a_text_does_not_inflate_z(wm):
    """Human text pasted 4 times: counting every window scales z by about 2 (sqrt 4); the default does not."""
    distinct = load_scorer(wm["model_dir"], wm["config"])
    counted = load_scorer(wm["model_dir"], wm["config"], ignore_repeated_ngrams=False)
    assert distinct.ignore_repeated_ngrams and not counted.ignore_repeated_ngrams
    once, four = wm["human"], ["\n".join([h] * 4) for h in wm["human"]]
    ids = distinct.encode(four)
    d4 = distinct.score_texts(four)
    assert list(d4.tokens) == [len({tuple(x[i: i + 2]) for i in range(len(x) - 1)}) for x in ids]
    assert list(counted.score_texts(four).tokens) == [len(x) - 1 for x in ids]
    d1, c1, c4 = distinct.score_texts(once).z, counted.score_texts(once).z, counted.score_texts(four).z
    assert np.nanmax(np.abs(d4.z - d1)) < 0.6  # the junctions add a few distinct n-grams at most
    assert np.nanstd(c4) > 1.6 * np.nanstd(c1)  # the counted z of a repeated text is inflated


def test_a_wrong_key_does_not_detect(wm):
    z, _ = score_watermark(wm["marked"], wm["model_dir"], key_file=wm["wrong"])
    assert not (z >= 4.0).any() and abs(np.nanmedian(z)) < 1.5


def test_too_short_texts_get_a_stated_result_not_an_exception(wm):
    scores = load_scorer(wm["model_dir"], wm["config"], min_tokens=8).score_texts(["", "a", "def f"])
    assert scores.status == [TOO_SHORT] * 3 and np.isnan(scores.z).all() and not scores.above(4.0).any()
    cols = scores.columns()
    assert cols["watermark_z"].null_count == 3 and cols["watermark_status"].to_pylist() == [TOO_SHORT] * 3


def test_keys_come_from_a_file_or_the_environment_and_never_show(wm, tmp_path, monkeypatch):
    key = read_key(wm["key"])
    assert wm["secret"] not in repr(key) and key.key_id in repr(key)
    monkeypatch.setenv("PROV_TEST_WM_KEY", wm["secret"])
    env_key = read_key(key_env="PROV_TEST_WM_KEY")
    assert (env_key.key_id, env_key.hashing_key) == (key.key_id, key.hashing_key)
    assert read_key(wm["wrong"]).key_id != key.key_id
    with pytest.raises(ConfigError, match="exactly one of --key-file FILE or --key-env NAME"):
        read_key()
    with pytest.raises(ConfigError, match="--key-file .*nope.key: cannot read"):
        read_key(tmp_path / "nope.key")
    (tmp_path / "short.key").write_text("abc\n")
    with pytest.raises(ConfigError, match="3 bytes; use at least 16 random bytes") as exc:
        read_key(tmp_path / "short.key")
    assert "abc" not in str(exc.value)
    with pytest.raises(ConfigError, match="PROV_UNSET_WM_KEY: the environment variable is not set"):
        read_key(key_env="PROV_UNSET_WM_KEY")
    with pytest.raises(TypeError, match="not picklable"):
        import pickle
        pickle.dumps(key)


def test_decoding_config_takes_a_watermark_table_and_stores_only_its_fingerprint(wm):
    dec = DecodingConfig(watermark={"key_file": str(wm["key"]), "bias": 2.5, "context_width": 1})
    assert isinstance(dec.watermark, WatermarkConfig) and dec.watermark.bias == 2.5
    meta = dec.to_dict(wm["tok"])["watermark"]
    assert meta == {"scheme": "kgw", "seeding_scheme": "lefthash", "key_id": read_key(wm["key"]).key_id,
                    "context_width": 1, "greenlist_ratio": 0.25, "bias": 2.5,
                    "tokenizer_hash": load_scorer(wm["model_dir"], wm["config"]).tokenizer_hash}
    assert "watermark" not in DecodingConfig().to_dict()  # unwatermarked metadata unchanged
    with pytest.raises(ConfigError, match="decoding.watermark.hashing_key: unknown key"):
        DecodingConfig(watermark={"key_file": str(wm["key"]), "hashing_key": 12345})
    with pytest.raises(ConfigError, match="give exactly one of key_file"):
        DecodingConfig(watermark={"bias": 2.0})


def _write_generated(wm, path: Path, texts: list[str], decoding: DecodingConfig) -> Path:
    gens = [Generator("tiny-opt", 0, decoding=decoding.to_dict(wm["tok"]), seed=0, prompt_id=f"p{i}")
            for i in range(len(texts))]
    with DatasetWriter(path, Activity("generate", {"decoding": decoding.to_dict(wm["tok"])})) as w:
        w.write(make_batch(texts, ids=[f"g{i}" for i in range(len(texts))], origin="model", generators=gens))
    return path


def test_fingerprint_round_trips_and_a_wrong_key_or_tokenizer_is_one_clear_line(wm, tmp_path):
    ds = _write_generated(wm, tmp_path / "gen", wm["marked"][:10], DecodingConfig(**SAMPLING, watermark=wm["config"]))
    fps = record_fingerprints(Dataset.open(ds).read(columns=["generator"]))
    assert fps == [wm["config"].fingerprint(wm["tok"])]
    ok = runner.invoke(app, ["detector", "watermark", str(ds), "--model", str(wm["model_dir"]), "--key-file",
                             str(wm["key"]), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["above"] >= 9 and json.loads(ok.stdout)["warnings"] == []
    bad = runner.invoke(app, ["detector", "watermark", str(ds), "--model", str(wm["model_dir"]), "--key-file",
                              str(wm["wrong"])])
    assert bad.exit_code == 0
    warnings = [line for line in bad.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"key id {read_key(wm['key']).key_id}" in warnings[0], bad.stderr
    assert "0 at z >= 4" in bad.stdout
    other_tok = train_bpe_tokenizer(wm["human"], vocab_size=300)
    other = save_model(build_tiny_opt(other_tok, SHAPE), other_tok, tmp_path / "other-model")
    mismatch = runner.invoke(app, ["detector", "watermark", str(ds), "--model", str(other), "--key-file", str(wm["key"])])
    assert mismatch.exit_code == 0 and "watermarked over tokenizer" in mismatch.stderr, mismatch.output
    _assert_no_secret(wm, tmp_path)


def test_prov_detector_watermark_writes_annotation_columns_and_never_the_key(wm, tmp_path):
    src = _jsonl(tmp_path / "mixed.jsonl", _mixed_rows(wm))
    ds, out = tmp_path / "ds", tmp_path / "scored"
    assert runner.invoke(app, ["ingest", str(src), "--out", str(ds), "--id-field", "id", "--origin-field", "origin"]).exit_code == 0
    args = ["detector", "watermark", str(ds), "--model", str(wm["model_dir"]), "--key-file", str(wm["key"]),
            "--z", "4", "--out", str(out), "--json"]
    assert not any(wm["secret"] in a for a in args)  # the command line (what `ps` shows) holds a path, not the key
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 37 and summary["too_short"] == 1 and summary["scored"] == 36
    assert summary["above"] >= 11 and summary["warnings"] == []
    table = Dataset.open(out).read()
    rows = {r["id"]: r for r in table.to_pylist()}
    assert {"watermark_tokens", "watermark_green_fraction", "watermark_z", "watermark_p", "watermark_status"} <= set(table.column_names)
    assert rows["short"]["watermark_status"] == "too short" and rows["short"]["watermark_z"] is None
    assert sum(rows[f"wm{i}"]["watermark_z"] >= 4 for i in range(12)) >= 11
    assert not any(rows[f"{k}{i}"]["watermark_z"] >= 4 for k in ("plain", "human") for i in range(12))
    before = {r["id"]: r for r in Dataset.open(ds).read().to_pylist()}
    for rid, r in rows.items():  # origin columns untouched
        assert (r["origin"], r["origin_evidence"], r["origin_confidence"]) == (
            before[rid]["origin"], before[rid]["origin_evidence"], before[rid]["origin_confidence"])
    text = runner.invoke(app, args[:-3])  # no --out, no --json
    assert text.exit_code == 0 and "at z >= 4" in text.stdout and "(1 too short)" in text.stdout
    _assert_no_secret(wm, tmp_path)


def test_prov_ingest_tags_watermarked_records_from_a_key_file_or_env(wm, tmp_path, monkeypatch):
    src = _jsonl(tmp_path / "mixed.jsonl", _mixed_rows(wm))
    ds = tmp_path / "ds"
    result = runner.invoke(app, ["ingest", str(src), "--out", str(ds), "--id-field", "id", "--origin-field", "origin",
                                 "--watermark-model", str(wm["model_dir"]), "--watermark-key-file", str(wm["key"]), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["annotations"]["watermark"]
    rows = {r["id"]: r for r in Dataset.open(ds).read().to_pylist()}
    tagged = [rid for rid, r in rows.items() if r["origin_evidence"] == "watermark"]
    assert summary["tagged"] == len(tagged) >= 11 and all(t.startswith("wm") for t in tagged)
    for rid in tagged:
        r = rows[rid]
        assert r["origin"] == "model" and 0.9999 < r["origin_confidence"] <= 1.0
    for rid, r in rows.items():
        if rid not in tagged:  # the rest keep what they had
            assert r["origin"] == ("human" if rid.startswith("human") else "unknown")
            assert r["origin_evidence"] == ("declared" if rid.startswith("human") else None)
    assert summary["too_short"] == 1 and rows["short"]["origin"] == "unknown"
    _assert_no_secret(wm, tmp_path)

    monkeypatch.setenv("PROV_TEST_WM_KEY", wm["secret"])
    env = runner.invoke(app, ["ingest", str(src), "--out", str(tmp_path / "ds-env"), "--id-field", "id",
                              "--origin-field", "origin", "--watermark-model", str(wm["model_dir"]),
                              "--watermark-key-env", "PROV_TEST_WM_KEY"])
    assert env.exit_code == 0 and f"watermark: tagged {len(tagged)} of 37" in env.stdout, env.output
    alone = runner.invoke(app, ["ingest", str(src), "--out", str(tmp_path / "x"), "--watermark-key-file", str(wm["key"])])
    assert alone.exit_code == 2 and "also give --watermark-model" in alone.stderr


def _pipeline(tmp_path: Path, wm, policy: str) -> Path:
    path = tmp_path / f"{policy}.toml"
    path.write_text(f'[[steps]]\nkind = "watermark"\nmodel = "{wm["model_dir"]}"\nkey_file = "{wm["key"]}"\n'
                    f'policy = "{policy}"\nz_threshold = 4.0\n')
    return path


def test_watermark_filter_step_drops_or_weights_by_z(wm, tmp_path):
    src = _jsonl(tmp_path / "mixed.jsonl", _mixed_rows(wm))
    ds = tmp_path / "ds"
    assert runner.invoke(app, ["ingest", str(src), "--out", str(ds), "--id-field", "id"]).exit_code == 0
    drop = runner.invoke(app, ["filter", str(ds), "--out", str(tmp_path / "drop"), "--config", str(_pipeline(tmp_path, wm, "drop")), "--json"])
    assert drop.exit_code == 0, drop.output
    report = json.loads(drop.stdout)
    rejects = Dataset.open(tmp_path / "drop").read("rejects").to_pylist()
    assert report["dropped"] == {"watermark_z": len(rejects)} and len(rejects) >= 11
    assert all(r["id"].startswith("wm") and r["watermark_z"] >= 4 for r in rejects)
    weight = runner.invoke(app, ["filter", str(ds), "--out", str(tmp_path / "weight"), "--config", str(_pipeline(tmp_path, wm, "weight"))])
    assert weight.exit_code == 0, weight.output
    kept = Dataset.open(tmp_path / "weight").read().to_pylist()
    assert len(kept) == 37
    w = {r["id"]: r["sample_weight"] for r in kept}
    assert np.isclose(np.mean(list(w.values())), 1.0)
    assert max(w[f"wm{i}"] for i in range(12) if rows_z(kept, f"wm{i}") >= 6) < 0.05  # (1 - Phi(2)) * s
    assert min(w[f"human{i}"] for i in range(12)) > 1.0 and w["short"] > 1.0
    _assert_no_secret(wm, tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[[steps]]\nkind = "watermark"\nmodel = "{wm["model_dir"]}"\n')
    result = runner.invoke(app, ["filter", str(ds), "--out", str(tmp_path / "bad"), "--config", str(bad)])
    assert result.exit_code == 2 and "key_file: give exactly one of key_file" in result.stderr


def rows_z(rows: list[dict], rid: str) -> float:
    return next(r["watermark_z"] for r in rows if r["id"] == rid)


def test_generate_with_share_watermarks_that_share_of_the_generators(wm):
    tok = wm["tok"]
    ids = [f"p{i}" for i in range(len(wm["prompts"]))]
    none, mask = generate_with_share(wm["model"], wm["prompts"][:8], DecodingConfig(**SAMPLING), wm["config"], 0.0,
                                     ids=ids[:8], pad_id=tok.pad_token_id, eos_id=None, seed=3)
    assert not mask.any() and none == generate_continuations(wm["model"], wm["prompts"][:8], DecodingConfig(**SAMPLING),
                                                             pad_id=tok.pad_token_id, eos_id=None, seed=3)
    new, mask = generate_with_share(wm["model"], wm["prompts"], DecodingConfig(**SAMPLING), wm["config"], 0.5,
                                    ids=ids, pad_id=tok.pad_token_id, eos_id=None, seed=3)
    assert 0.25 < mask.mean() < 0.75
    z, _ = score_watermark([tok.decode(x) for x in new], wm["model_dir"], key_file=wm["key"])
    assert (z[mask] >= 4).mean() >= 0.9 and not (z[~mask] >= 4).any()


EXPERIMENT = """
corpus = "{corpus}"
train_blocks = 16
test_blocks = 16
pretrain_blocks = 32
vocab_size = 400
generations = 1
conditions = ["replace"]
generate_batch_size = 16
self_bleu_samples = 8
threads = 1
[tiny_model]
layers = 1
hidden = 32
heads = 2
ffn = 64
[decoding]
max_new_tokens = 32
num_beams = 2
[decoding.watermark]
key_file = "{key}"
[train]
batch_size = 8
"""


def test_experiment_generates_watermarked_data_with_its_fingerprint_and_no_key(wm, tmp_path):
    docs = list(itertools.islice(iter_builtin("python-docs"), 80))
    corpus = tmp_path / "corpus"
    with DatasetWriter(corpus, Activity("ingest")) as w:
        w.write(make_batch([d.text for d in docs], ids=[d.id for d in docs]))
    cfg_path = tmp_path / "exp.toml"
    cfg_path.write_text(EXPERIMENT.format(corpus=corpus, key=wm["key"]))
    run = tmp_path / "run"
    run_experiment(load_experiment_config(cfg_path), run)
    generated = run / "seed0" / "gen00" / "generated"
    table = Dataset.open(generated).read()
    fps = record_fingerprints(table)
    assert len(fps) == 1 and fps[0]["key_id"] == read_key(wm["key"]).key_id and fps[0]["tokenizer_hash"]
    base = run / "setup" / "base"  # the generators' tokenizer and config (same vocabulary)
    result = runner.invoke(app, ["detector", "watermark", str(generated), "--model", str(base), "--key-file",
                                 str(wm["key"]), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["warnings"] == [] and summary["above"] >= 0.8 * summary["scored"] > 0
    _assert_no_secret(wm, run)
