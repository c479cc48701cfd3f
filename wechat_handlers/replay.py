"""The replay cache: a (timestamp, nonce, signature) seen before is answered, not processed again."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

REPLAY_TTL_S = 600


class ReplayCache:
    """Remembers the body digest of each signed query for 10 minutes, in Redis or (embedded) in memory.

    A repeat with the same body is WeChat retrying a message we already stored: answer `success`.
    A repeat with another body is someone replaying a leaked query string: refuse it.
    Entries are written only after the inbox row commits, so a retry after our own failure is processed.
    """

    def __init__(self, redis: Any | None, *, prefix: str = "scrm:wechat:replay") -> None:
        self.redis = redis
        self.prefix = prefix
        self._local: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def seen(self, key: str) -> str | None:
        """The body digest stored for `key`, or None."""
        if self.redis is not None:
            try:
                value = self.redis.get(f"{self.prefix}:{key}")
                return value.decode() if value is not None else None
            except Exception:
                # Without Redis the inbox's unique key still stops duplicates; only the
                # different-body check is lost, and only while Redis is down.
                log.warning("replay cache unavailable; relying on the inbox dedup key")
                return None
        entry = self._local.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def remember(self, key: str, digest: str) -> None:
        if self.redis is not None:
            try:
                self.redis.set(f"{self.prefix}:{key}", digest, nx=True, ex=REPLAY_TTL_S)
            except Exception:
                log.warning("replay cache unavailable; entry not stored")
            return
        with self._lock:
            now = time.monotonic()
            if len(self._local) > 50_000:
                self._local = {k: v for k, v in self._local.items() if v[0] > now}
            self._local.setdefault(key, (now + REPLAY_TTL_S, digest))
