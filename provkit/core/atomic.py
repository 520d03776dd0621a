"""Atomic writes: a file or directory appears at its path complete, or not at all.

Files: write to a hidden temporary name in the same directory, fsync, rename
(:func:`open_atomic`).  Directories: stage beside the target, then rename, or
swap with ``renameat2(RENAME_EXCHANGE)`` where Linux offers it
(:func:`publish_dir`).  A crash leaves the old version or the new one.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import math
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """sha256 hex digest of a file, read in ``chunk``-byte blocks (bounded memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fsync_dir(path: Path) -> None:
    """fsync a directory, so a rename inside it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def exchange_paths(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux ``renameat2(RENAME_EXCHANGE)``.

    Returns False where the C library, kernel or file system cannot do it (the
    caller falls back); raises ``OSError`` for any other failure.
    """
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(a))


def publish_dir(staged: Path, path: Path) -> None:
    """Put the staged directory ``staged`` at ``path``, replacing what is there atomically.

    New path: one rename.  Existing path: :func:`exchange_paths` swaps the two
    and the previous version is deleted; without the exchange, the old one is
    moved aside first (a moment with nothing at ``path``, never a half one).
    """
    if not path.exists():
        os.replace(staged, path)
    elif exchange_paths(staged, path):
        shutil.rmtree(staged, ignore_errors=True)  # now holds the previous version
    else:
        old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(path, old)
        os.replace(staged, path)
        shutil.rmtree(old, ignore_errors=True)
    fsync_dir(path.parent)


@contextlib.contextmanager
def open_atomic(path: str | Path, mode: str = "wb") -> Iterator[Any]:
    """A file object for ``path`` that appears there only complete: temporary name, fsync, rename.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def write_bytes_atomic(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` via a temporary file in the same directory, fsync, rename."""
    with open_atomic(path) as f:
        f.write(payload)


def finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by ``None`` (strict JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def dumps_json(obj: Any, **kwargs: Any) -> str:
    """Strict JSON (no ``NaN``/``Infinity``: they become ``null``), ``default=str`` for other types."""
    return json.dumps(finite(json.loads(json.dumps(obj, default=str))), allow_nan=False, **kwargs)


def write_json_atomic(path: Path, obj: Any) -> None:
    """``obj`` as indented strict JSON (:func:`dumps_json`), written with :func:`write_bytes_atomic`."""
    write_bytes_atomic(path, (dumps_json(obj, indent=2, sort_keys=False) + "\n").encode())
