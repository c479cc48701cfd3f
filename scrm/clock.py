"""The one source of the current time, UTC and timezone-aware, so tests can pin it."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)


def epoch() -> float:
    """Now, as seconds since the epoch."""
    return time.time()
