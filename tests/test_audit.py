"""prov audit: a corpus with a known model share gets that share inside its interval (issue 17, item 5)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from provkit.cli import app
from provkit.filters.detector import DetectorConfig, save_detector, train_detector_on_dataset
from provkit.provenance import IngestConfig, builtin_texts, ingest
from provkit.train import AuditConfig, audit, write_audit

from conftest import write_jsonl


def bigram_model_texts(corpus: list[str], n: int, seed: int, length: int = 60, greedy: float = 0.7) -> list[str]:
    """A small generative model of the human text: a word-bigram Markov chain fitted to it, then sampled
    (with probability ``greedy`` the most frequent next word, as low-temperature decoding does)."""
    follow: dict[str, list[str]] = defaultdict(list)
    for text in corpus:
        toks = text.split()
        for a, b in zip(toks, toks[1:]):
            follow[a].append(b)
    rng = np.random.default_rng(seed)
    starts = [t.split()[0] for t in corpus]
    out = []
    for _ in range(n):
        word = starts[rng.integers(len(starts))]
        toks = [word]
        while len(toks) < length:
            nxt = follow.get(word)
            if not nxt:
                word = starts[rng.integers(len(starts))]
            elif rng.random() < greedy:
                word = max(set(nxt), key=lambda w: (nxt.count(w), w))
            else:
                word = nxt[rng.integers(len(nxt))]
            toks.append(word)
        out.append(" ".join(toks))
    return out


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("audit")
    human = [t for t in builtin_texts() if len(t.split()) >= 40]
    train_h, audit_h, ref_h = human[:150], human[150:290], human[290:430]
    model = bigram_model_texts(human[:150], 210, seed=1)
    train_m, audit_m = model[:150], model[150:]
    write_jsonl(tmp / "train.jsonl", [{"text": t, "origin": "human"} for t in train_h]
                + [{"text": t, "origin": "model"} for t in train_m])
    ingest([str(tmp / "train.jsonl")], tmp / "TRAIN", IngestConfig(origin_field="origin"))
    trained = train_detector_on_dataset([tmp / "TRAIN"], DetectorConfig(kind="ngram", seed=0))
    save_detector(trained.detector, tmp / "DET")
    # the audited corpus: 140 human + 60 model records, all untagged -> the true model share is 0.3
    write_jsonl(tmp / "corpus.jsonl", [{"text": t} for t in audit_h + audit_m])
    ingest([str(tmp / "corpus.jsonl")], tmp / "CORPUS", IngestConfig(origin="unknown"))
    write_jsonl(tmp / "ref.jsonl", [{"text": t} for t in ref_h])
    ingest([str(tmp / "ref.jsonl")], tmp / "REF")
    return tmp


def test_audit_reports_the_known_model_share_within_its_interval(setting, tmp_path):
    result = audit(setting / "CORPUS", AuditConfig(reference=str(setting / "REF"), detector=str(setting / "DET")))
    share = result.model_share
    lo, hi = share["interval"]
    assert lo <= 0.3 <= hi and hi - lo < 0.2, share
    assert share["reference_estimate"] < 0.1
    assert result.origin_by_evidence == {"unknown": {"none": 200}}
    assert result.duplicates["exact_rate"] == 0.0
    # the bigram model's text is a remix of its training text: lower distinct-n than the human reference
    assert result.diversity["corpus"]["distinct_3"] < result.diversity["reference"]["distinct_3"]
    assert 0 < result.tail_coverage["coverage"] < 1
    assert [f["figure"] for f in result.findings][0] == "model-share"
    assert "model-written" in result.findings[0]["finding"]
    js, page = write_audit(result, tmp_path / "out")
    data = json.loads(js.read_text())
    assert data["model_share"]["interval"] == [lo, hi]
    text = page.read_text()
    assert text.count("data:image/png;base64,") >= 4 and "id='model-share'" in text


def test_audit_command_json_and_declared_share(setting, tmp_path):
    res = CliRunner().invoke(app, ["audit", str(setting / "TRAIN"), "--out", str(tmp_path / "a"), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["model_share"]["declared"]["share"] == pytest.approx(0.5)
    assert (tmp_path / "a" / "audit.html").exists()
