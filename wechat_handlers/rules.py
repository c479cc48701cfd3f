"""Auto-reply rules as plain values, cacheable across requests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ReplyRule:
    """A read-only copy of an AutoReplyRule row, safe to cache across requests."""

    id: int
    trigger: str
    pattern: str | None
    reply_type: str
    reply: dict[str, Any]
    priority: int
