"""The cache: query answers, embeddings, rate-limit windows and revoked token ids.

Two back ends behind one ``Cache`` interface, chosen by ``Settings.cache_url``:
``memory://`` (in-process; open it once per process and share it, e.g. through ``Runtime``) or
``redis://host:port/db`` / ``rediss://...`` (shared by every API replica and worker).

Outage policy (Redis down or slow), decided once here so callers need no try/except:

- cache reads (``get``, ``get_json``, ``generation``) degrade to a miss, logged; a query then runs
  uncached instead of failing;
- cache writes (``set``, ``set_json``, ``delete``, ``bump``) degrade to a logged no-op;
- rate limiting (``hit_window``) fails open (the request is allowed, logged): availability of the
  API matters more than exact limits during a Redis outage;
- token revocation fails closed: ``revoke`` and ``is_revoked`` raise ``StoreUnavailable`` (the API
  answers 503), because silently forgetting a revocation would let a logged-out token back in;
- ``ping`` raises ``StoreUnavailable`` (readiness probes).

Every key is prefixed in one place (``_key``), ``bunko:`` by default. Collection-scoped entries embed
a generation number (``generation(ns)``); ``bump(ns)`` makes every older entry unreachable at once.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import OrderedDict
from typing import Any, Protocol, runtime_checkable

from bunko.errors import ConfigError, StoreUnavailable
from bunko.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "bunko:"


@runtime_checkable
class Cache(Protocol):
    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes, ttl_s: int) -> None: ...
    def delete(self, key: str) -> None: ...
    def get_json(self, key: str) -> Any | None: ...
    def set_json(self, key: str, value: Any, ttl_s: int) -> None: ...
    def generation(self, namespace: str) -> int: ...
    def bump(self, namespace: str) -> int: ...
    def hit_window(self, key: str, window_s: int) -> tuple[int, int]: ...
    def revoke(self, jti: str, ttl_s: int) -> None: ...
    def is_revoked(self, jti: str) -> bool: ...
    def ping(self) -> None: ...


def _window(window_s: int, now: float) -> tuple[int, int]:
    """(index of the fixed window containing ``now``, whole seconds until it ends, at least 1)."""
    if window_s <= 0:
        raise ValueError("window_s must be positive")
    index = int(now // window_s)
    retry_after = max(1, math.ceil((index + 1) * window_s - now))
    return index, retry_after


def _loads(raw: bytes | None) -> Any | None:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        log.warning("cache entry is not valid JSON; treated as a miss")
        return None


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


# --- in-process ---------------------------------------------------------------------------------


class MemoryCache:
    """Thread-safe, TTL-aware, LRU-bounded. Revocations and generations live apart from the LRU
    entries so that filling the cache with answers can never evict a revocation."""

    def __init__(self, max_entries: int = 50_000, prefix: str = DEFAULT_PREFIX) -> None:
        self.max_entries = max_entries
        self.prefix = prefix
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._generations: dict[str, int] = {}
        self._windows: dict[str, tuple[int, float]] = {}
        self._revoked: dict[str, float] = {}
        self._ops = 0

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _sweep(self, now: float) -> None:
        # Amortised cleanup of expired counters and revocations (entries expire lazily on read).
        self._ops += 1
        if self._ops % 1024:
            return
        for table in (self._windows, self._revoked):
            dead = [k for k, v in table.items() if (v[1] if isinstance(v, tuple) else v) <= now]
            for k in dead:
                del table[k]

    def get(self, key: str) -> bytes | None:
        k, now = self._key(key), time.monotonic()
        with self._lock:
            item = self._entries.get(k)
            if item is None:
                return None
            if item[1] <= now:
                del self._entries[k]
                return None
            self._entries.move_to_end(k)
            return item[0]

    def set(self, key: str, value: bytes, ttl_s: int) -> None:
        if ttl_s <= 0:
            return
        k, now = self._key(key), time.monotonic()
        with self._lock:
            self._entries[k] = (bytes(value), now + ttl_s)
            self._entries.move_to_end(k)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            self._sweep(now)

    def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(self._key(key), None)

    def get_json(self, key: str) -> Any | None:
        return _loads(self.get(key))

    def set_json(self, key: str, value: Any, ttl_s: int) -> None:
        self.set(key, _dumps(value), ttl_s)

    def generation(self, namespace: str) -> int:
        with self._lock:
            return self._generations.get(self._key("gen:" + namespace), 0)

    def bump(self, namespace: str) -> int:
        k = self._key("gen:" + namespace)
        with self._lock:
            self._generations[k] = self._generations.get(k, 0) + 1
            return self._generations[k]

    def hit_window(self, key: str, window_s: int) -> tuple[int, int]:
        index, retry_after = _window(window_s, time.time())
        k = self._key(f"rate:{key}:{index}")
        now = time.monotonic()
        with self._lock:
            count = self._windows.get(k, (0, 0.0))[0] + 1
            self._windows[k] = (count, now + window_s + 1)
            self._sweep(now)
        return count, retry_after

    def revoke(self, jti: str, ttl_s: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._revoked[self._key("revoked:" + jti)] = now + max(ttl_s, 1)
            self._sweep(now)

    def is_revoked(self, jti: str) -> bool:
        with self._lock:
            until = self._revoked.get(self._key("revoked:" + jti))
        return until is not None and until > time.monotonic()

    def ping(self) -> None:
        return None


# --- Redis --------------------------------------------------------------------------------------


class RedisCache:
    """Redis through redis-py, with short timeouts so an outage costs a request milliseconds, not
    seconds. See the module docstring for what each operation does when Redis is down."""

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX, timeout_s: float = 0.5) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.prefix = prefix
        # The URL may carry a password: log and report only host, port and DB.
        pool_kwargs = redis.connection.parse_url(url)
        self._where = (f"redis://{pool_kwargs.get('host', '?')}:{pool_kwargs.get('port', 6379)}"
                       f"/{pool_kwargs.get('db', 0)}")
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1), health_check_interval=30,
        )
        self._last_warning = 0.0

    def __repr__(self) -> str:
        return f"RedisCache({self._where!r})"

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _degraded(self, op: str, e: Exception) -> None:
        # At most one warning every 30 s: an outage must not flood the logs with one line per request.
        now = time.monotonic()
        if now - self._last_warning > 30:
            self._last_warning = now
            log.warning("cache %s at %s failed (%s: %s); degrading to a cache miss / no-op",
                        op, self._where, type(e).__name__, e)

    def _unavailable(self, op: str, e: Exception) -> StoreUnavailable:
        return StoreUnavailable(f"Redis at {self._where} is unavailable ({op}): {type(e).__name__}")

    def get(self, key: str) -> bytes | None:
        from redis.exceptions import RedisError

        try:
            value = self._client.get(self._key(key))
        except RedisError as e:
            self._degraded("get", e)
            return None
        if value is None:
            return None
        return value.encode() if isinstance(value, str) else bytes(value)

    def set(self, key: str, value: bytes, ttl_s: int) -> None:
        from redis.exceptions import RedisError

        if ttl_s <= 0:
            return
        try:
            self._client.set(self._key(key), value, ex=ttl_s)
        except RedisError as e:
            self._degraded("set", e)

    def delete(self, key: str) -> None:
        from redis.exceptions import RedisError

        try:
            self._client.delete(self._key(key))
        except RedisError as e:
            self._degraded("delete", e)

    def get_json(self, key: str) -> Any | None:
        return _loads(self.get(key))

    def set_json(self, key: str, value: Any, ttl_s: int) -> None:
        self.set(key, _dumps(value), ttl_s)

    def generation(self, namespace: str) -> int:
        from redis.exceptions import RedisError

        try:
            value = self._client.get(self._key("gen:" + namespace))
        except RedisError as e:
            self._degraded("generation", e)
            return 0
        return int(value) if value is not None else 0

    def bump(self, namespace: str) -> int:
        from redis.exceptions import RedisError

        try:
            return int(self._client.incr(self._key("gen:" + namespace)))
        except RedisError as e:
            self._degraded("bump", e)
            return 0

    def hit_window(self, key: str, window_s: int) -> tuple[int, int]:
        from redis.exceptions import RedisError

        index, retry_after = _window(window_s, time.time())
        k = self._key(f"rate:{key}:{index}")
        try:
            # One MULTI/EXEC: the counter can never be left without its expiry.
            pipe = self._client.pipeline(transaction=True)
            pipe.incr(k)
            pipe.expire(k, window_s + 1)
            count, _ = pipe.execute()
        except RedisError as e:
            self._degraded("rate limit", e)
            return 0, 0
        return int(count), retry_after

    def revoke(self, jti: str, ttl_s: int) -> None:
        from redis.exceptions import RedisError

        try:
            self._client.set(self._key("revoked:" + jti), b"1", ex=max(ttl_s, 1))
        except RedisError as e:
            raise self._unavailable("revoke", e) from e

    def is_revoked(self, jti: str) -> bool:
        from redis.exceptions import RedisError

        try:
            return bool(self._client.exists(self._key("revoked:" + jti)))
        except RedisError as e:
            raise self._unavailable("revocation check", e) from e

    def ping(self) -> None:
        from redis.exceptions import RedisError

        try:
            self._client.ping()
        except RedisError as e:
            raise self._unavailable("ping", e) from e

    def close(self) -> None:
        self._client.close()


def open_cache(settings: Settings) -> Cache:
    """A new cache for ``settings.cache_url``. ``memory://`` is per instance: build one per process."""
    url = settings.cache_url.strip()
    if url in ("memory://", "memory", ""):
        return MemoryCache()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisCache(url)
    raise ConfigError(f"BUNKO_CACHE_URL {url!r}: use memory:// or redis://host:6379/0")
