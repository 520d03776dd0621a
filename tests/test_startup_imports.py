"""Start-up cost: commands that need no model import no torch, transformers or scikit-learn.

``provkit.cli`` imports every layer at module level, so the heavy libraries are
deferred inside the modules that use them (:mod:`provkit.core.lazy`).  Each test
runs the CLI in a fresh interpreter (``sys.modules`` of this test process is
full of them already) and reads that interpreter's ``sys.modules`` after each
real command on a small dataset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from filter_fixtures import bigram_model_texts, human_texts

from provkit.core.lazy import LazyModule, lazy_import

from conftest import write_jsonl

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "sklearn", "scipy.stats", "tokenizers", "ray", "datasets", "mlcroissant",
         "matplotlib")

# Runs each command of argv[1] (a JSON list of argument lists) through the Typer app in this one
# interpreter and writes [command, exit code, heavy modules loaded so far] for each to argv[2].
RUN_COMMANDS = r"""
import json, sys
from provkit.cli import app
heavy, commands, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
def loaded():
    return sorted(m for m in heavy if m in sys.modules)
rows = [["import provkit.cli", 0, loaded()]]
for args in commands:
    try:
        code = app(args, standalone_mode=False)
    except SystemExit as exc:
        code = exc.code
    rows.append([" ".join(args[:2]), code or 0, loaded()])
open(out, "w").write(json.dumps(rows))
"""


def _python(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _run_commands(commands: list[list[str]], tmp_path: Path) -> list[list]:
    out = tmp_path / "loaded.json"
    res = _python("-c", RUN_COMMANDS, json.dumps(HEAVY), json.dumps(commands), str(out), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(out.read_text())


def test_importing_the_cli_loads_no_heavy_library(tmp_path):
    res = _python("-c", "import provkit.cli, sys; print(sorted(m for m in ('torch','transformers','sklearn') "
                        "if m in sys.modules))", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip() == "[]"


@pytest.fixture
def sources(tmp_path) -> tuple[Path, Path]:
    human, model = human_texts(60, start=600), bigram_model_texts(60, seed=1)
    a = write_jsonl(tmp_path / "a.jsonl", [{"id": f"h{i}", "text": t, "origin": "human"} for i, t in enumerate(human)]
                    + [{"id": f"m{i}", "text": t, "origin": "model"} for i, t in enumerate(model)])
    b = write_jsonl(tmp_path / "b.jsonl", [{"id": f"b{i}", "text": t} for i, t in enumerate(human_texts(5, start=900))])
    return a, b


def test_data_commands_load_no_heavy_library(sources, tmp_path):
    a, b = sources
    commands = [
        ["--help"],
        ["ingest", str(a), "-o", "A", "--id-field", "id", "--origin-field", "origin"],
        ["ingest", str(b), "-o", "B", "--id-field", "id"],
        ["stats", "A"],
        ["verify", "A"],
        ["export", "A", "--to", "jsonl", "-o", "a-out.jsonl"],
        ["export", "A", "--to", "prov-json", "-o", "a-prov.json"],
        ["merge", "A", "B", "-o", "M"],
        ["filter", "M", "-o", "F", "--dedup", "exact,minhash", "--quality"],
    ]
    rows = _run_commands(commands, tmp_path)
    assert [r[1] for r in rows] == [0] * len(rows), rows
    assert {r[0]: r[2] for r in rows} == {r[0]: [] for r in rows}, rows
    assert len((tmp_path / "a-out.jsonl").read_text().splitlines()) == 120
    assert json.loads((tmp_path / "F" / "report.json").read_text())["steps"]


def test_code_that_needs_a_heavy_library_loads_it_when_it_runs(tmp_path):
    # the detector commands themselves: tests/test_detector*.py (prov detector train / eval / score)
    code = (
        "import sys\n"
        "from provkit.filters.detector import detector_metrics\n"
        "from provkit.lm import pad_right\n"
        "print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))\n"
        "print(detector_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]).auroc, 'sklearn' in sys.modules)\n"
        "ids, mask = pad_right([[5, 6, 7], [8]], pad_id=0)\n"
        "print(ids.tolist(), mask.tolist(), type(ids).__module__)\n"
    )
    res = _python("-c", code, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.splitlines() == ["[]", "0.75 True", "[[5, 6, 7], [8, 0, 0]] [[1, 1, 1], [1, 0, 0]] torch"]


def test_lazy_import_loads_on_first_attribute_read(tmp_path, monkeypatch):
    (tmp_path / "lazy_probe_mod.py").write_text("VALUE = 41\ndef plus_one(x):\n    return x + 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_probe_mod", raising=False)
    mod = lazy_import("lazy_probe_mod")
    assert isinstance(mod, LazyModule) and "lazy_probe_mod" not in sys.modules
    assert mod.plus_one(mod.VALUE) == 42
    assert "lazy_probe_mod" in sys.modules and lazy_import("lazy_probe_mod") is sys.modules["lazy_probe_mod"]
    with pytest.raises(AttributeError):
        mod.missing  # noqa: B018 - forwarded to the real module
    missing = lazy_import("lazy_probe_no_such_module")
    with pytest.raises(ModuleNotFoundError):
        missing.anything  # noqa: B018 - the import error surfaces at first use
