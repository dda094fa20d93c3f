"""Cache: the in-process and the real-Redis back ends pass the same tests."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from bunko.errors import ConfigError, StoreUnavailable
from bunko.store.cache import MemoryCache, RedisCache, open_cache


@pytest.fixture(params=["memory", "redis"])
def cache(request, settings_factory):
    if request.param == "memory":
        return open_cache(settings_factory())
    url = request.getfixturevalue("redis_url")
    c = open_cache(settings_factory(cache_url=url))
    assert isinstance(c, RedisCache)
    # Each test gets its own key prefix: the session's Redis DB is shared by all tests.
    c.prefix = f"bunko-{request.node.name}:"
    return c


def test_open_cache_by_url(settings_factory):
    assert isinstance(open_cache(settings_factory()), MemoryCache)
    assert isinstance(open_cache(settings_factory(cache_url="redis://127.0.0.1:6379/0")), RedisCache)
    with pytest.raises(ConfigError):
        open_cache(settings_factory(cache_url="memcached://x"))


def test_set_get_delete_and_json(cache):
    assert cache.get("a") is None
    cache.set("a", b"\x00bytes", ttl_s=60)
    assert cache.get("a") == b"\x00bytes"
    cache.delete("a")
    assert cache.get("a") is None
    cache.set_json("j", {"answer": "東京", "pages": [1, 2]}, ttl_s=60)
    assert cache.get_json("j") == {"answer": "東京", "pages": [1, 2]}
    assert cache.get_json("missing") is None


def test_ttl_expiry(cache):
    cache.set("short", b"1", ttl_s=1)
    cache.set("long", b"2", ttl_s=60)
    assert cache.get("short") == b"1"
    time.sleep(1.3)
    assert cache.get("short") is None
    assert cache.get("long") == b"2"


def test_generation_bump_invalidates_namespace(cache):
    ns = "collection:c1"
    g0 = cache.generation(ns)
    key0 = f"q:{ns}:{g0}:hash"
    cache.set(key0, b"old answer", ttl_s=60)
    g1 = cache.bump(ns)
    assert g1 == g0 + 1 == cache.generation(ns)
    assert cache.get(f"q:{ns}:{cache.generation(ns)}:hash") is None
    assert cache.generation("collection:other") == 0


def test_rate_window_counts_and_retry_after(cache):
    window = 1
    # Start at the beginning of a window so all hits land in the same one.
    time.sleep(window - (time.time() % window) + 0.05)
    results = [cache.hit_window("user:u1", window) for _ in range(5)]
    assert [c for c, _ in results] == [1, 2, 3, 4, 5]
    assert all(1 <= r <= window for _, r in results)
    assert cache.hit_window("user:u2", window)[0] == 1  # per key
    time.sleep(window)
    assert cache.hit_window("user:u1", window)[0] == 1  # a new window starts from zero


def test_rate_window_concurrent_hits_are_all_counted(cache):
    window = 10**6  # ~11 days: the window cannot roll over during the test
    counts: list[int] = []
    lock = threading.Lock()

    def hit():
        for _ in range(25):
            c, _ = cache.hit_window("user:concurrent", window)
            with lock:
                counts.append(c)

    threads = [threading.Thread(target=hit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # INCR is atomic: every hit got a distinct count.
    assert sorted(counts) == list(range(1, 101))


def test_revoke(cache):
    assert not cache.is_revoked("jti-1")
    cache.revoke("jti-1", ttl_s=1)
    assert cache.is_revoked("jti-1")
    assert not cache.is_revoked("jti-2")
    time.sleep(1.3)
    assert not cache.is_revoked("jti-1")  # the token it revoked has expired by now anyway


def test_memory_cache_lru_bound_never_evicts_revocations():
    c = MemoryCache(max_entries=3)
    c.revoke("jti", ttl_s=60)
    for i in range(10):
        c.set(f"k{i}", b"v", ttl_s=60)
    assert c.get("k0") is None and c.get("k9") == b"v"
    assert c.is_revoked("jti")


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_redis_outage_degrades_reads_and_fails_revocation_closed():
    c = RedisCache(f"redis://:hunter2@127.0.0.1:{_dead_port()}/0", timeout_s=0.2)
    t0 = time.monotonic()
    assert c.get("x") is None
    c.set("x", b"1", ttl_s=10)
    assert c.generation("ns") == 0
    assert c.hit_window("u", 60) == (0, 0)  # fails open
    with pytest.raises(StoreUnavailable) as err:
        c.is_revoked("jti")
    assert "hunter2" not in str(err.value)
    with pytest.raises(StoreUnavailable):
        c.revoke("jti", 60)
    with pytest.raises(StoreUnavailable):
        c.ping()
    assert time.monotonic() - t0 < 5  # short timeouts: an outage costs little per call


def test_ping_answers_while_the_cache_is_up(cache):
    """The other half of the dead-port test above: a live cache's ping is quiet and the cache keeps
    serving (/ready builds on both halves)."""
    assert cache.ping() is None
    cache.set("after-ping", b"1", 60)
    assert cache.get("after-ping") == b"1"
