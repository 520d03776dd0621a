"""Embedded human corpora that ship with every Python install (no download).

``python-docs``: the CPython reference topics (``pydoc_data.topics``, the text
``help()`` shows) split into paragraphs, plus the longer docstrings of the
standard library's modules, classes and functions, read with ``ast`` from the
installed sources (nothing is imported or executed).  Deterministic for a given
Python version: documents come out in a fixed order with stable ids.

Parsing the standard library takes several seconds, so the corpus is cached
as JSON lines under ``$PROVKIT_CACHE_DIR`` (default ``~/.cache/provkit``),
keyed by the Python version and stdlib path, written atomically; a cache
file that does not parse is rebuilt.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from provkit.core.atomic import open_atomic

BUILTIN_SOURCES = ("python-docs",)

_MIN_CHARS = 200
_SKIP_DIRS = {"test", "tests", "idlelib", "lib2to3", "site-packages", "turtledemo", "__pycache__", "ensurepip"}


@dataclass(frozen=True)
class BuiltinDoc:
    """One document of an embedded corpus."""

    id: str
    text: str
    source_uri: str


def _clean(text: str) -> str:
    lines = [ln.rstrip() for ln in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _topic_docs() -> Iterator[BuiltinDoc]:
    from pydoc_data.topics import topics

    for name in sorted(topics):
        paragraphs = [p for p in re.split(r"\n\s*\n", topics[name]) if len(p.strip()) >= _MIN_CHARS]
        for i, para in enumerate(paragraphs):
            yield BuiltinDoc(f"pydoc:{name}:{i}", _clean(para), f"python-docs://pydoc_data.topics/{name}")


def _stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part in _SKIP_DIRS or part.startswith("_") and part != "__init__.py" for part in rel.parts):
            continue
        files.append(path)
    return files


def _docstring_docs() -> Iterator[BuiltinDoc]:
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in _stdlib_files():
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        nodes = [tree] + [
            n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        ]
        for node in nodes:
            doc = ast.get_docstring(node)
            if not doc or len(doc) < _MIN_CHARS:
                continue
            name = getattr(node, "name", "")
            qual = f"{module}.{name}" if name else module
            yield BuiltinDoc(f"stdlib:{qual}:{getattr(node, 'lineno', 0)}", _clean(doc), f"python-docs://stdlib/{module}")


def _build(name: str) -> Iterator[BuiltinDoc]:
    seen: set[str] = set()
    for doc in (*_topic_docs(), *_docstring_docs()):
        if doc.text in seen:  # the same docstring is inherited or copied in places
            continue
        seen.add(doc.text)
        yield doc


def _cache_path(name: str) -> Path:
    root = Path(os.environ.get("PROVKIT_CACHE_DIR") or Path.home() / ".cache" / "provkit")
    key = hashlib.sha256(f"{sys.version}|{sysconfig.get_paths()['stdlib']}|{_MIN_CHARS}".encode()).hexdigest()[:16]
    return root / f"builtin-{name}-{key}.jsonl"


def _read_cache(path: Path) -> list[BuiltinDoc] | None:
    try:
        with open(path, encoding="utf-8") as f:
            return [BuiltinDoc(**json.loads(line)) for line in f]
    except (OSError, ValueError, TypeError):
        return None


def _write_cache(path: Path, docs: list[BuiltinDoc]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open_atomic(path, "wb") as f:
            for d in docs:
                f.write((json.dumps({"id": d.id, "text": d.text, "source_uri": d.source_uri}) + "\n").encode())
    except OSError:
        pass  # a read-only home: the corpus is rebuilt next time, nothing else changes


def iter_builtin(name: str = "python-docs") -> Iterator[BuiltinDoc]:
    """Yield the documents of the embedded corpus ``name`` in a fixed order."""
    if name not in BUILTIN_SOURCES:
        raise ValueError(f"unknown builtin corpus {name!r}; available: {', '.join(BUILTIN_SOURCES)}")
    path = _cache_path(name)
    docs = _read_cache(path)
    if docs is None:
        docs = list(_build(name))
        _write_cache(path, docs)
    yield from docs


def builtin_texts(name: str = "python-docs") -> list[str]:
    """All texts of an embedded corpus, in order (a few MB)."""
    return [d.text for d in iter_builtin(name)]
