"""Fixed-window rate limits in Redis, with a per-process fallback when Redis is absent or down."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from scrm.errors import RateLimited

log = logging.getLogger(__name__)


class RateLimiter:
    """`hit(key, limit, window_s)` raises RateLimited past `limit` hits in the current window."""

    def __init__(self, redis: Any | None, *, prefix: str = "scrm:rl", clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.prefix = prefix
        self.clock = clock
        self._local: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, *, limit: int, window_s: int, now: float | None = None) -> int:
        now = self.clock() if now is None else now
        window = int(now // window_s)
        count = self._count_redis(key, window, window_s) if self.redis is not None else None
        if count is None:
            count = self._count_local(key, window)
        if count > limit:
            retry_after = int(window_s - (now % window_s)) + 1
            raise RateLimited("too many requests; try again later", details={"retry_after_s": retry_after})
        return count

    def _count_redis(self, key: str, window: int, window_s: int) -> int | None:
        name = f"{self.prefix}:{key}:{window}"
        try:
            pipe = self.redis.pipeline()
            pipe.incr(name)
            pipe.expire(name, window_s + 1)
            return int(pipe.execute()[0])
        except Exception:
            # Limits still apply, per process, while Redis is down.
            log.warning("rate limiter falling back to process memory", extra={"key": key})
            return None

    def _count_local(self, key: str, window: int) -> int:
        with self._lock:
            seen_window, count = self._local.get(key, (window, 0))
            count = count + 1 if seen_window == window else 1
            self._local[key] = (window, count)
            if len(self._local) > 100_000:
                self._local = {k: v for k, v in self._local.items() if v[0] == window}
            return count
