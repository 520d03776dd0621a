"""Shared fixtures: small real inputs written to a temporary directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DOCS = [
    "Model collapse is a degenerative process affecting generations of learned generative models.",
    "The tails of the original content distribution disappear first.",
    "Keeping a fraction of the original human data slows the collapse.",
    "Accumulating data across generations instead of replacing it avoids collapse.",
    "Provenance tags tell human text from model text.",
    "A detector trained on tagged data scores untagged text.",
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def docs() -> list[str]:
    return list(DOCS)


@pytest.fixture
def jsonl_file(tmp_path: Path) -> Path:
    """Six human records with integer ids and a source field."""
    return write_jsonl(tmp_path / "docs.jsonl", [{"id": i, "text": t, "meta": {"n": i}} for i, t in enumerate(DOCS)])
