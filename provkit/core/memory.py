"""Process memory: hand unused allocator memory back to the system, and how much the machine has free.

* :func:`release_unused_memory` — between the phases of a long run (a filter's
  score pass, each step's plan, the write pass), give back what the
  allocators hold but no longer use, so a later phase's peak does not sit on
  an earlier phase's freed pages.  Three allocators keep such memory:
  Arrow's default pool (mimalloc: ``release_unused`` = ``mi_collect``), Arrow's
  system pool, and glibc's own heap, where NumPy puts every array below
  glibc's mmap threshold (which grows, up to 32 MiB, each time a larger
  mmapped block is freed, so most arrays of a chunked pass land there).
  Arrow's ``release_unused`` does not trim glibc's main heap: freed space
  below the heap's top stays resident until ``malloc_trim(0)``, called here
  when the C library is glibc (measured on a 3M-record ``minhash_dedup``
  filter run: see :mod:`provkit.filters.dedup`).
* :func:`available_memory_bytes` — ``MemAvailable`` of ``/proc/meminfo``
  (the kernel's estimate of what can be allocated without swapping: free
  pages plus reclaimable page cache and slab), or None where that file is
  unreadable (not Linux, a restricted container): callers then skip any
  check that needs it, and say so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache
from pathlib import Path

import pyarrow as pa

MEMINFO = Path("/proc/meminfo")
MIB = 1 << 20


@lru_cache(maxsize=1)
def _glibc_malloc_trim():  # type: ignore[no-untyped-def]
    """``malloc_trim`` of the process's C library when it is glibc, else None."""
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim  # glibc only (musl and macOS have none)
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_unused_memory() -> None:
    """Hand memory the allocators hold but no longer use back to the system (module docstring)."""
    pa.default_memory_pool().release_unused()
    pa.system_memory_pool().release_unused()
    trim = _glibc_malloc_trim()
    if trim is not None:
        trim(0)


def parse_meminfo(text: str) -> dict[str, int]:
    """``/proc/meminfo`` as field -> bytes (values given in kB are multiplied by 1024)."""
    fields: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if not parts or not parts[0].isdigit():
            continue
        fields[name.strip()] = int(parts[0]) * (1024 if parts[1:2] == ["kB"] else 1)
    return fields


def available_memory_bytes(meminfo: Path = MEMINFO) -> int | None:
    """The machine's ``MemAvailable`` in bytes, or None when ``meminfo`` cannot be read or lacks it."""
    try:
        text = meminfo.read_text()
    except OSError:
        return None
    return parse_meminfo(text).get("MemAvailable")
