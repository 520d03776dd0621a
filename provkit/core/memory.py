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
* :func:`available_memory` — the smaller of ``MemAvailable`` and the headroom
  of the process's memory cgroup (:func:`cgroup_memory_headroom`: limit minus
  usage, cgroup v2 ``memory.max`` / ``memory.current`` or v1
  ``memory.limit_in_bytes`` / ``memory.usage_in_bytes``), with where it came
  from: in a container ``MemAvailable`` is the host's, and a run above the
  container's limit is killed by the kernel instead of refused.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache
from pathlib import Path

import pyarrow as pa

MEMINFO = Path("/proc/meminfo")
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
NO_LIMIT = 1 << 60  # cgroup v1 writes "no limit" as a page-rounded 2^63 - 1
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


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # v2 writes "max" for no limit


def _cgroup_dirs(root: Path, proc_cgroup: Path) -> list[tuple[Path, str, str]]:
    """Candidate memory-cgroup directories of this process, innermost first, with their limit and usage files."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return []
    found: list[tuple[Path, str, str]] = []
    for line in lines:
        _, controllers, rel = (line.split(":", 2) + ["", ""])[:3]
        rel = rel.lstrip("/")
        if controllers == "":  # v2 unified hierarchy
            found += [(root / rel, "memory.max", "memory.current"), (root, "memory.max", "memory.current")]
        elif "memory" in controllers.split(","):  # v1
            found += [(root / "memory" / rel, "memory.limit_in_bytes", "memory.usage_in_bytes"),
                      (root / "memory", "memory.limit_in_bytes", "memory.usage_in_bytes")]
    return found


def cgroup_memory_headroom(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int | None:
    """Bytes this process's memory cgroup may still grow (limit minus usage) where a limit is set; None where
    there is none or it cannot be read.  The innermost readable limit counts (a container sees its own cgroup
    as the root of the hierarchy, so the root directory is tried too)."""
    for directory, limit_file, usage_file in _cgroup_dirs(root, proc_cgroup):
        limit = _read_int(directory / limit_file)
        if limit is None or limit >= NO_LIMIT:
            continue
        usage = _read_int(directory / usage_file) or 0
        return max(limit - usage, 0)
    return None


def available_memory(meminfo: Path = MEMINFO, cgroup_root: Path = CGROUP_ROOT,
                     proc_cgroup: Path = PROC_CGROUP) -> tuple[int | None, str]:
    """What this process may still allocate, and where the figure comes from: the smaller of ``MemAvailable``
    and the memory cgroup's headroom; ``(None, reason)`` when neither can be read."""
    machine = available_memory_bytes(meminfo)
    cgroup = cgroup_memory_headroom(cgroup_root, proc_cgroup)
    if cgroup is not None and (machine is None or cgroup < machine):
        return cgroup, "the memory cgroup's limit minus its usage"
    if machine is not None:
        return machine, "MemAvailable of /proc/meminfo"
    return None, "no /proc/meminfo or memory cgroup to read"
