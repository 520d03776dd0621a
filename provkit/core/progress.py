"""The one progress protocol: library code counts, the command line draws.

A long-running function takes a :class:`Progress` and opens a counted task
with ``advance = progress(description, total)``; it then calls
``advance(n)`` after each ``n`` items (``advance(n, description)`` renames
the task, e.g. an engine's ``score`` and ``write`` passes).  Functions whose
caller already opened the task take the :class:`Advance` alone.  ``cli.py``
implements both with rich bars on stderr; library defaults are the quiet
ones below.  Nothing in the library prints.
"""

from __future__ import annotations

from typing import Protocol


class Advance(Protocol):
    """Count ``n`` more items done (optionally under a new ``description``)."""

    def __call__(self, n: int, description: str | None = None, /) -> None: ...


class Progress(Protocol):
    """Open a task of ``total`` items called ``description``; returns its :class:`Advance`."""

    def __call__(self, description: str, total: int, /) -> Advance: ...


def quiet_advance(n: int, description: str | None = None, /) -> None:
    """An :class:`Advance` that shows nothing."""


def quiet_progress(description: str, total: int, /) -> Advance:
    """A :class:`Progress` that shows nothing."""
    return quiet_advance
