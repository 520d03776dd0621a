"""Embedded human corpora that ship with every Python install (no download).

``python-docs``: the CPython reference topics (``pydoc_data.topics``, the text
``help()`` shows) split into paragraphs, plus the longer docstrings of the
standard library's modules, classes and functions, read with ``ast`` from the
installed sources (nothing is imported or executed).  Deterministic for a given
Python version: documents come out in a fixed order with stable ids.
"""

from __future__ import annotations

import ast
import re
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

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


def iter_builtin(name: str = "python-docs") -> Iterator[BuiltinDoc]:
    """Yield the documents of the embedded corpus ``name`` in a fixed order."""
    if name not in BUILTIN_SOURCES:
        raise ValueError(f"unknown builtin corpus {name!r}; available: {', '.join(BUILTIN_SOURCES)}")
    seen: set[str] = set()
    for doc in (*_topic_docs(), *_docstring_docs()):
        if doc.text in seen:  # the same docstring is inherited or copied in places
            continue
        seen.add(doc.text)
        yield doc


def builtin_texts(name: str = "python-docs") -> list[str]:
    """All texts of an embedded corpus, in order (a few MB)."""
    return [d.text for d in iter_builtin(name)]
