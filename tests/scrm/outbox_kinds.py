"""Outbox kinds used by the kernel tests; loaded into worker subprocesses through SCRM_PLUGINS."""

from __future__ import annotations

import os
import time
from typing import Any

from redis import Redis
from sqlalchemy.orm import Session

from scrm import audit, outbox


@outbox.handler("test.effect", queue=outbox.QUEUE_DEFAULT)
def record_effect(session: Session, payload: dict[str, Any]) -> None:
    """The observable effect: one audit row per run."""
    audit.record(session, audit.Actor.system(), "test.effect", target_type="test", target_id=payload["key"])


@outbox.handler("test.noop", queue=outbox.QUEUE_DEFAULT)
def noop(session: Session, payload: dict[str, Any]) -> None:
    """Does nothing: the benchmark measures the relay itself."""


@outbox.handler("test.fail", queue=outbox.QUEUE_DEFAULT)
def always_fail(session: Session, payload: dict[str, Any]) -> None:
    raise RuntimeError("this handler always fails")


@outbox.handler("test.block", queue=outbox.QUEUE_DEFAULT)
def effect_then_block(session: Session, payload: dict[str, Any]) -> None:
    """Write the effect, announce it in Redis, then wait for a release key (the test kills us here)."""
    record_effect(session, payload)
    session.flush()
    redis = Redis.from_url(os.environ["SCRM_REDIS_URL"])
    redis.set(f"test:inside:{payload['key']}", str(os.getpid()))
    deadline = time.monotonic() + 30
    while not redis.exists(f"test:release:{payload['key']}") and time.monotonic() < deadline:
        time.sleep(0.05)
