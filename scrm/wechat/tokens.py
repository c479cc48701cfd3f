"""Access-token caches shared by every process that calls WeChat, each with a single-flight refresh lock."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

#: How long a refresher may hold the lock before others may take over (it crashed, or WeChat hung).
DEFAULT_LOCK_TTL_S = 30.0
#: How long a waiter waits for the lock before giving up; longer than the TTL, so a dead holder is outlived.
DEFAULT_LOCK_WAIT_S = 35.0
_POLL_INTERVAL_S = 0.02


class TokenLockTimeout(TimeoutError):
    """The refresh lock could not be taken in time."""


@dataclass(frozen=True)
class CachedToken:
    """An access token and the moment (epoch seconds) after which it must not be used."""

    token: str = field(repr=False)
    expires_at: float

    def is_fresh(self, now: float | None = None) -> bool:
        return self.expires_at > (time.time() if now is None else now)


class TokenStore(Protocol):
    """Where access tokens live between calls; the kernel adds a database-row implementation."""

    def get(self, appid: str) -> CachedToken | None:
        """Return the cached token of ``appid``, or None if there is none or it has expired."""
        ...

    def set(self, appid: str, token: str, expires_at: float) -> None:
        """Cache ``token`` for ``appid`` until ``expires_at`` (epoch seconds)."""
        ...

    def invalidate(self, appid: str, token: str) -> None:
        """Drop the cached token of ``appid``, but only if it is still ``token``.

        Comparing first matters: after a refresh by another worker, a late caller holding the stale token must not
        throw the fresh one away.
        """
        ...

    def refresh_lock(self, appid: str) -> AbstractContextManager[None]:
        """Hold the refresh lock of ``appid``: one refresher at a time; the others wait, then re-read the cache.

        Raises:
            TokenLockTimeout: the lock could not be taken in time.
        """
        ...


class LocalTokenStore:
    """Tokens in this process's memory; right for a single process, tests and the embedded default."""

    def __init__(self, *, lock_wait_s: float = DEFAULT_LOCK_WAIT_S) -> None:
        self._tokens: dict[str, CachedToken] = {}
        self._guard = threading.Lock()
        self._refresh_locks: dict[str, threading.Lock] = {}
        self._lock_wait_s = lock_wait_s

    def get(self, appid: str) -> CachedToken | None:
        """Return the cached token of ``appid``, or None if there is none or it has expired."""
        with self._guard:
            cached = self._tokens.get(appid)
        return cached if cached is not None and cached.is_fresh() else None

    def set(self, appid: str, token: str, expires_at: float) -> None:
        """Cache ``token`` for ``appid`` until ``expires_at``."""
        with self._guard:
            self._tokens[appid] = CachedToken(token, expires_at)

    def invalidate(self, appid: str, token: str) -> None:
        """Drop the cached token of ``appid`` if it is still ``token``."""
        with self._guard:
            cached = self._tokens.get(appid)
            if cached is not None and cached.token == token:
                del self._tokens[appid]

    @contextmanager
    def refresh_lock(self, appid: str) -> Iterator[None]:
        """Hold the refresh lock of ``appid`` (a thread lock, so single-flight within this process only)."""
        with self._guard:
            lock = self._refresh_locks.setdefault(appid, threading.Lock())
        if not lock.acquire(timeout=self._lock_wait_s):
            raise TokenLockTimeout(f"token refresh lock for {appid} is busy")
        try:
            yield
        finally:
            lock.release()

    def __repr__(self) -> str:
        return f"LocalTokenStore(appids={sorted(self._tokens)!r})"


# Both scripts compare before deleting, so a stale caller (or a lock holder whose lease expired) cannot remove a
# value someone else wrote since.
_INVALIDATE_IF_TOKEN = """
local raw = redis.call('GET', KEYS[1])
if raw and cjson.decode(raw)['token'] == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""  # noqa: S105 - a Lua script, not a password
_RELEASE_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisTokenStore:
    """Tokens in Redis, shared by every web and worker process.

    Keys: ``<prefix>:<appid>`` holds ``{"token", "expires_at"}`` as JSON with a matching expiry, and
    ``<prefix>:<appid>:lock`` is the refresh lock (``SET NX PX`` with a random owner value, released only by its
    owner).
    """

    def __init__(
        self,
        redis_client: Any,
        prefix: str = "scrm:wechat:token",
        *,
        lock_ttl_s: float = DEFAULT_LOCK_TTL_S,
        lock_wait_s: float = DEFAULT_LOCK_WAIT_S,
    ) -> None:
        self._redis = redis_client
        self._prefix = prefix
        self._lock_ttl_ms = int(lock_ttl_s * 1000)
        self._lock_wait_s = lock_wait_s
        self._invalidate_script = redis_client.register_script(_INVALIDATE_IF_TOKEN)
        self._release_script = redis_client.register_script(_RELEASE_IF_OWNER)

    def _key(self, appid: str) -> str:
        return f"{self._prefix}:{appid}"

    def get(self, appid: str) -> CachedToken | None:
        """Return the cached token of ``appid``, or None if there is none or it has expired."""
        raw = self._redis.get(self._key(appid))
        if raw is None:
            return None
        try:
            stored = json.loads(raw)
            cached = CachedToken(str(stored["token"]), float(stored["expires_at"]))
        except (ValueError, KeyError, TypeError):
            # Unreadable entry (written by something else): treat it as missing; the refresh overwrites it.
            return None
        return cached if cached.is_fresh() else None

    def set(self, appid: str, token: str, expires_at: float) -> None:
        """Cache ``token`` for ``appid`` until ``expires_at``; Redis drops the key at the same moment."""
        ttl_ms = int((expires_at - time.time()) * 1000)
        if ttl_ms <= 0:
            self._redis.delete(self._key(appid))
            return
        payload = json.dumps({"token": token, "expires_at": expires_at})
        self._redis.set(self._key(appid), payload, px=ttl_ms)

    def invalidate(self, appid: str, token: str) -> None:
        """Drop the cached token of ``appid`` if it is still ``token`` (atomically, in a Lua script)."""
        self._invalidate_script(keys=[self._key(appid)], args=[token])

    @contextmanager
    def refresh_lock(self, appid: str) -> Iterator[None]:
        """Hold the cross-process refresh lock of ``appid``.

        Waiters poll every 20 ms; refreshes are rare, so polling is cheaper to reason about than pub/sub.

        Raises:
            TokenLockTimeout: the lock was not free within ``lock_wait_s``.
        """
        lock_key = f"{self._key(appid)}:lock"
        owner = secrets.token_hex(16)
        deadline = time.monotonic() + self._lock_wait_s
        while not self._redis.set(lock_key, owner, nx=True, px=self._lock_ttl_ms):
            if time.monotonic() >= deadline:
                raise TokenLockTimeout(f"token refresh lock for {appid} is busy")
            time.sleep(_POLL_INTERVAL_S)
        try:
            yield
        finally:
            self._release_script(keys=[lock_key], args=[owner])

    def __repr__(self) -> str:
        return f"RedisTokenStore(prefix={self._prefix!r})"
