"""The whole-process memory estimate of a minhash_dedup filter run, its refusal, and /proc/meminfo parsing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from provkit.core.memory import MIB, available_memory, available_memory_bytes, cgroup_memory_headroom, parse_meminfo
from provkit.errors import ConfigError
from provkit.filters.dedup import (
    NearDupConfig,
    check_process_memory,
    clustering_bytes,
    fits_in_memory,
    process_bytes_estimate,
    read_file_rows,
)


def test_spilled_estimate_is_plan_base_plus_budget_plus_per_record():
    config = NearDupConfig(memory_mb=512)
    assert not fits_in_memory(1_000_000, config)  # 3.3 KB/record in memory: spilled
    assert clustering_bytes(1_000_000, config) == 512 * MIB
    # max(320 MiB + 512 MiB, 560 MiB) + 48 B * 1M
    assert process_bytes_estimate(1_000_000, config) == 832 * MIB + 48_000_000
    assert process_bytes_estimate(10_000_000, config) == 832 * MIB + 480_000_000


def test_small_in_memory_run_is_bounded_by_the_write_pass_base():
    config = NearDupConfig()  # default budget 1 GiB: 10k records (33 MB estimated) run in memory
    assert fits_in_memory(10_000, config) and clustering_bytes(10_000, config) == 26 * 128 * 10_000
    assert process_bytes_estimate(10_000, config) == 560 * MIB + 480_000


def test_default_budget_grows_with_the_input():
    # unset memory_mb: the budget is raised to 24 B/record + 64 MiB (100M records: 2,353 MiB)
    estimate = process_bytes_estimate(100_000_000, NearDupConfig())
    assert estimate == 320 * MIB + 24 * 100_000_000 + 64 * MIB + 48 * 100_000_000


def test_refusal_names_estimate_limit_records_and_remedies_in_one_line():
    config = NearDupConfig(memory_mb=512)
    with pytest.raises(ConfigError) as err:
        check_process_memory(3_000_000, config, 800 * MIB, "MemAvailable of /proc/meminfo")
    message = str(err.value)
    assert "\n" not in message
    assert "3,000,000 records need an estimated 969 MiB" in message  # 832 MiB + 144,000,000 B
    assert "the limit is 800 MiB (MemAvailable of /proc/meminfo)" in message
    assert "--memory-limit-mb" in message and "memory_mb" in message and "split the input" in message
    assert check_process_memory(3_000_000, config, 970 * MIB, "x") == 832 * MIB + 144_000_000
    assert check_process_memory(3_000_000, config, None, "unknown") == 832 * MIB + 144_000_000


def test_lowering_memory_mb_lowers_the_estimate_of_a_spilled_run():
    n = 10_000_000
    assert process_bytes_estimate(n, NearDupConfig(memory_mb=256)) < process_bytes_estimate(n, NearDupConfig(memory_mb=512))


def test_meminfo_parsed_in_bytes_and_unreadable_file_gives_none(tmp_path):
    text = "MemTotal:       24683520 kB\nMemFree:        20413440 kB\nMemAvailable:   23945216 kB\nHugePages_Total:       0\n"
    assert parse_meminfo(text) == {"MemTotal": 24683520 * 1024, "MemFree": 20413440 * 1024,
                                   "MemAvailable": 23945216 * 1024, "HugePages_Total": 0}
    (tmp_path / "meminfo").write_text(text)
    assert available_memory_bytes(tmp_path / "meminfo") == 23945216 * 1024
    assert available_memory_bytes(tmp_path / "missing") is None
    (tmp_path / "old").write_text("MemTotal: 1024 kB\n")  # kernels before 3.14 have no MemAvailable
    assert available_memory_bytes(tmp_path / "old") is None


def test_read_file_rows_equals_fancy_indexing_across_windows_in_any_order(tmp_path):
    rng = np.random.default_rng(0)
    sigs = rng.integers(0, 2**32, size=(20_000, 128), dtype=np.uint32)  # 10 MB: three 4 MiB windows
    path = tmp_path / "sigs.bin"
    sigs.tofile(path)
    dtype = np.dtype(np.uint32)
    for at in (np.arange(20_000), np.sort(rng.choice(20_000, 300, replace=False)),
               rng.integers(0, 20_000, 5_000),  # unsorted, with repeats
               np.array([19_999, 0, 8_191, 8_192]), np.zeros(0, dtype=np.int64)):
        at = np.asarray(at, dtype=np.int64)
        np.testing.assert_array_equal(read_file_rows(path, dtype, 128, at), sigs[at])


def _cgroup(tmp_path: Path, proc: str, files: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (tmp_path / "proc-cgroup").write_text(proc)
    return root, tmp_path / "proc-cgroup"


def test_cgroup_headroom_v2_v1_and_no_limit(tmp_path):
    """Limit minus usage of the process's memory cgroup: v2 (memory.max / memory.current), v1
    (memory.limit_in_bytes / usage), the hierarchy root of a container; none where unlimited or absent."""
    root, proc = _cgroup(tmp_path / "v2", "0::/job/a\n", {"job/a/memory.max": "1073741824\n",
                                                          "job/a/memory.current": "268435456\n"})
    assert cgroup_memory_headroom(root, proc) == 768 * MIB
    root, proc = _cgroup(tmp_path / "v2max", "0::/job\n", {"job/memory.max": "max\n", "job/memory.current": "5\n"})
    assert cgroup_memory_headroom(root, proc) is None
    root, proc = _cgroup(tmp_path / "v1", "5:cpu:/\n4:memory:/ctr\n",
                         {"memory/ctr/memory.limit_in_bytes": str(512 * MIB),
                          "memory/ctr/memory.usage_in_bytes": str(600 * MIB)})
    assert cgroup_memory_headroom(root, proc) == 0  # already above its limit: nothing left
    root, proc = _cgroup(tmp_path / "v1inside", "4:memory:/docker/abc\n",  # a container sees its cgroup as root
                         {"memory/memory.limit_in_bytes": str(2048 * MIB), "memory/memory.usage_in_bytes": "0"})
    assert cgroup_memory_headroom(root, proc) == 2048 * MIB
    root, proc = _cgroup(tmp_path / "v1none", "4:memory:/\n",
                         {"memory/memory.limit_in_bytes": "9223372036854771712"})
    assert cgroup_memory_headroom(root, proc) is None
    assert cgroup_memory_headroom(tmp_path / "absent", tmp_path / "absent-proc") is None


def test_available_memory_takes_the_smaller_of_meminfo_and_the_cgroup(tmp_path):
    (tmp_path / "meminfo").write_text("MemTotal: 24683520 kB\nMemAvailable: 4194304 kB\n")  # 4 GiB
    root, proc = _cgroup(tmp_path, "0::/\n", {"memory.max": str(1024 * MIB), "memory.current": str(24 * MIB)})
    assert available_memory(tmp_path / "meminfo", root, proc) == (1000 * MIB, "the memory cgroup's limit minus "
                                                                              "its usage")
    assert available_memory(tmp_path / "meminfo", tmp_path / "none", proc) == (4096 * MIB,
                                                                              "MemAvailable of /proc/meminfo")
    limit, why = available_memory(tmp_path / "no-meminfo", tmp_path / "none", proc)
    assert limit is None and "no /proc/meminfo" in why
