"""The paper preset offline: no OPT-125m weights, no wikitext -> one clear line naming what and the fix."""

from __future__ import annotations

import os
import subprocess
import sys

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _run_paper(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **OFFLINE, "OMP_NUM_THREADS": "1", "HF_HOME": str(tmp_path / "hf-home")}  # an empty cache
    cmd = [sys.executable, "-m", "provkit.cli", "experiment", "run", "--preset", "paper", "--out", str(tmp_path / "run"), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def _error_lines(res: subprocess.CompletedProcess) -> list[str]:
    return [line for line in res.stderr.splitlines() if line.strip()]


def test_paper_preset_without_wikitext_names_the_corpus_and_the_fix(tmp_path):
    res = _run_paper(tmp_path)
    assert res.returncode == 2, res.stderr
    lines = _error_lines(res)
    assert len(lines) == 1, lines
    assert "wikitext-2-raw-v1" in lines[0] and "--corpus PATH" in lines[0]
    assert not (tmp_path / "run" / "setup").exists()  # failed before any work


def test_paper_preset_without_opt125m_names_the_model_and_the_fix(tmp_path):
    res = _run_paper(tmp_path, "--corpus", "builtin:python-docs")
    assert res.returncode == 2, res.stderr
    lines = _error_lines(res)
    assert len(lines) == 1, lines
    assert "facebook/opt-125m" in lines[0] and "--model PATH" in lines[0]
    assert not (tmp_path / "run" / "setup").exists()
