"""No-op outbox kinds and rq jobs the benchmarks load into worker processes (SCRM_PLUGINS=benchmarks.kinds)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from scrm import outbox


@outbox.handler("bench.noop", queue=outbox.QUEUE_DEFAULT)
def noop_row(session: Session, payload: dict[str, Any]) -> None:
    """The relay's own cost is what is measured: the handler does nothing."""


def noop_job(n: int) -> None:
    """The anchor: one rq job per row, doing nothing."""
