"""The embedded python-docs corpus: deterministic, cached faithfully, rebuilt when the cache is damaged."""

from provkit.provenance import builtin, iter_builtin


def test_cache_round_trip_and_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("PROVKIT_CACHE_DIR", str(tmp_path))
    built = list(builtin._build("python-docs"))
    assert len(built) > 1000
    assert len({d.id for d in built}) == len(built)
    assert all(len(d.text) >= 200 for d in built)
    first = list(iter_builtin())  # builds and writes the cache
    assert first == built
    cache = builtin._cache_path("python-docs")
    assert cache.exists()
    assert list(iter_builtin()) == built  # served from the cache
    cache.write_text('{"id": "x", "te', encoding="utf-8")  # a torn write
    assert list(iter_builtin()) == built
