"""Job running: rq queues and workers, or in-process after commit; the drain job and periodic jobs."""

from __future__ import annotations

import importlib
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Flask, current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from scrm import outbox
from scrm.db import Database
from scrm.outbox import QUEUES, DrainResult

log = logging.getLogger(__name__)

#: Set while a relay is queued but not started; one queued drain per queue is enough.
DRAIN_QUEUED_KEY = "scrm:outbox:drain-queued:{queue}"
DRAIN_GENERATION_KEY = "scrm:outbox:drain-generation:{queue}"
PERIODIC_SLOT_KEY = "scrm:periodic:{name}"
DRAIN_JOB = "scrm.jobs.drain_job"
#: After a process has seen a queue's drain marker in place, its commits skip Redis for this long; a drain job
#: drains once more this long after it starts, so it still sees the rows of every commit that skipped.
DRAIN_NOTIFY_COALESCE_S = 0.25


class JobRunner(Protocol):
    """Carries committed outbox rows to whatever runs them, and runs periodic jobs."""

    def notify(self, queues: Iterable[str], *, coalesce: bool = True) -> None: ...

    def run_function(self, func_path: str, kwargs: dict[str, Any], *, queue: str, job_id: str) -> None: ...


@dataclass(frozen=True)
class PeriodicJob:
    """A job run every `every_s` seconds, declared as data; `func` is a dotted path taking kwargs."""

    name: str
    func: str
    every_s: int
    queue: str = outbox.QUEUE_DEFAULT
    kwargs: tuple[tuple[str, Any], ...] = ()


_periodic: dict[str, PeriodicJob] = {}


def periodic(job: PeriodicJob) -> PeriodicJob:
    """Declare a periodic job (domains call this from their jobs module)."""
    _periodic[job.name] = job
    return job


def periodic_jobs() -> list[PeriodicJob]:
    return sorted(_periodic.values(), key=lambda job: job.name)


def job_id(*parts: object) -> str:
    """A deterministic rq job id `<domain>-<action>-<key>` (rq allows letters, digits, `_` and `-` only)."""
    return "-".join(re.sub(r"[^A-Za-z0-9_]", "_", str(part)) for part in parts)


def resolve(func_path: str) -> Callable[..., Any]:
    module, _, name = func_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


class InProcessRunner:
    """The embedded mode: drain right after commit, in the committing thread."""

    def __init__(self, db: Database, *, batch_size: int, max_attempts: int) -> None:
        self.db = db
        self.batch_size = batch_size
        self.max_attempts = max_attempts

    def notify(self, queues: Iterable[str], *, coalesce: bool = True) -> None:
        for queue in sorted(set(queues)):
            try:
                with outbox.embedded_drain_lock:
                    outbox.drain(self.db, queue, batch_size=self.batch_size, max_attempts=self.max_attempts)
            except Exception:
                # The rows stay pending; the sweeper drives them again.
                log.exception("in-process drain failed", extra={"queue": queue})

    def run_function(self, func_path: str, kwargs: dict[str, Any], *, queue: str, job_id: str) -> None:
        resolve(func_path)(**kwargs)


class RqRunner:
    """Redis mode: one relay ("drain") job per queue at a time, run by rq workers."""

    def __init__(self, redis: Any, *, job_timeout: int = 600) -> None:
        self.redis = redis
        self.job_timeout = job_timeout
        # queue -> monotonic time this process last saw the queue's drain marker set (by itself or another).
        self._marker_seen: dict[str, float] = {}

    def queue(self, name: str) -> Any:
        from rq import Queue
        from rq.serializers import JSONSerializer

        return Queue(name, connection=self.redis, serializer=JSONSerializer)

    def notify(self, queues: Iterable[str], *, coalesce: bool = True) -> None:
        """Make sure a drain is queued for each of `queues`; `coalesce=False` (the sweeper) always asks Redis."""
        for name in sorted(set(queues)):
            try:
                self._enqueue_drain(name, coalesce=coalesce)
            except Exception:
                # Redis down: nothing is lost, the rows wait in the outbox for the sweeper.
                log.warning("could not enqueue outbox drain; the sweeper will", extra={"queue": name}, exc_info=True)

    def _enqueue_drain(self, name: str, *, coalesce: bool) -> None:
        # The marker was in place a moment ago: either its drain has not started (it will see our rows) or it
        # started less than DRAIN_NOTIFY_COALESCE_S ago (its final pass will). Under load this saves a Redis
        # round trip on almost every commit.
        now = time.monotonic()
        seen = self._marker_seen.get(name)
        if coalesce and seen is not None and now - seen < DRAIN_NOTIFY_COALESCE_S:
            return
        # SET NX: if a drain is already queued (not yet started) it will see our rows too.
        marker = DRAIN_QUEUED_KEY.format(queue=name)
        # The marker expires on its own, so a relay job lost between dequeue and start blocks nothing for long.
        if not self.redis.set(marker, "1", nx=True, ex=60):
            self._marker_seen[name] = now
            return
        try:
            self._enqueue_drain_job(name)
        except Exception:
            self.redis.delete(marker)
            raise
        self._marker_seen[name] = now

    def _enqueue_drain_job(self, name: str) -> None:
        from rq import Retry

        generation = self.redis.incr(DRAIN_GENERATION_KEY.format(queue=name))
        self.queue(name).enqueue(
            DRAIN_JOB,
            name,
            job_id=job_id("outbox", "drain", name, generation),
            retry=Retry(max=3, interval=[1, 5, 15]),
            result_ttl=0,
            failure_ttl=24 * 3600,
            job_timeout=self.job_timeout,
            description=f"drain outbox {name}",
        )

    def run_function(self, func_path: str, kwargs: dict[str, Any], *, queue: str, job_id: str) -> None:
        from rq import Retry

        self.queue(queue).enqueue(
            func_path,
            kwargs=kwargs,
            job_id=job_id,
            retry=Retry(max=3, interval=[5, 30, 120]),
            result_ttl=3600,
            failure_ttl=7 * 24 * 3600,
            job_timeout=self.job_timeout,
        )


def install_after_commit(db: Database, runner_getter: Callable[[], JobRunner]) -> None:
    """Notify the runner of queues that received outbox rows, once their transaction has committed."""

    @event.listens_for(db.sessionmaker, "after_commit")
    def _after_commit(session: Session) -> None:
        if session.in_nested_transaction():
            # A savepoint was released (SQLAlchemy fires after_commit for those too): the transaction that
            # holds the outbox rows has not committed, so nobody may see them yet.
            return
        queues = session.info.pop(outbox.PENDING_QUEUES, None)
        if queues:
            runner_getter().notify(queues)

    @event.listens_for(db.sessionmaker, "after_rollback")
    def _after_rollback(session: Session) -> None:
        if session.in_nested_transaction():
            # Only a savepoint rolled back; rows emitted before it still commit with the transaction.
            return
        # A rolled-back transaction's rows never existed: nothing to notify.
        session.info.pop(outbox.PENDING_QUEUES, None)


# --- functions rq workers run (they find the app through the worker's pushed app context) ---


def drain_job(queue: str) -> dict[str, int]:
    """rq entry point: drain one queue's outbox until nothing is due."""
    app = current_app
    ext = app.extensions["scrm"]
    ext.runner.redis.delete(DRAIN_QUEUED_KEY.format(queue=queue))
    started = time.monotonic()
    config = ext.config
    result: DrainResult = outbox.drain(
        ext.db, queue, batch_size=config.outbox_batch_size, max_attempts=config.outbox_max_attempts
    )
    # Commits that saw our marker just before we deleted it skipped notifying (RqRunner._enqueue_drain); they
    # all committed within DRAIN_NOTIFY_COALESCE_S of our start, so one more pass after that sees their rows.
    time.sleep(max(0.0, started + DRAIN_NOTIFY_COALESCE_S - time.monotonic()))
    result.add(
        outbox.drain(ext.db, queue, batch_size=config.outbox_batch_size, max_attempts=config.outbox_max_attempts)
    )
    return {"done": result.done, "failed": result.failed, "dead": result.dead}


def sweep(app: Flask) -> dict[str, int]:
    """Re-drive outbox rows left pending too long (Redis lost, worker died, enqueue failed)."""
    ext = app.extensions["scrm"]
    with ext.db.transaction() as session:
        due = outbox.due_queues(session, stale_after_s=ext.config.outbox_stale_after_s)
    if due:
        log.info("sweeper re-driving outbox", extra={"due": due})
        # Not coalesced: the sweeper is the path that recovers from a Redis that lost its markers.
        ext.runner.notify(due.keys(), coalesce=False)
    return due


def run_due_periodic(app: Flask, *, now: float | None = None) -> list[str]:
    """Start every periodic job whose period has begun; a Redis slot key makes it once per period."""
    ext = app.extensions["scrm"]
    now = time.time() if now is None else now
    started: list[str] = []
    for job in periodic_jobs():
        slot = int(now // job.every_s)
        if ext.redis is not None:
            if not ext.redis.set(PERIODIC_SLOT_KEY.format(name=job.name), str(slot), nx=True, ex=job.every_s):
                continue
        elif ext.periodic_slots.get(job.name) == slot:
            continue
        ext.periodic_slots[job.name] = slot
        try:
            ext.runner.run_function(
                job.func, dict(job.kwargs), queue=job.queue, job_id=job_id("periodic", job.name, slot)
            )
            started.append(job.name)
        except Exception:
            log.exception("periodic job failed to start", extra={"job": job.name})
    return started


def sweeper_loop(app: Flask, *, interval_s: float, stop: Callable[[], bool] = lambda: False) -> None:
    """Sweep the outbox and start periodic jobs every `interval_s` until `stop()` is true."""
    while not stop():
        with app.app_context():
            try:
                sweep(app)
                run_due_periodic(app)
            except Exception:
                log.exception("sweeper pass failed")
        time.sleep(interval_s)


def run_worker(
    app: Flask, queues: list[str], *, worker_class: str = "simple", burst: bool = False, with_scheduler: bool = True
) -> bool:
    """Run an rq worker on `queues` inside `app`'s context.

    `simple` (rq's SimpleWorker, the default) runs jobs in the worker process: no fork per job,
    database connections are reused, and a relay job drains hundreds of rows in one go.
    `fork` (rq's Worker) forks a work horse per job: use it for the analytics queue, where a
    score run's memory should go back to the OS when the run ends.
    """
    from rq import SimpleWorker, Worker
    from rq.serializers import JSONSerializer

    ext = app.extensions["scrm"]
    if ext.redis is None:
        raise RuntimeError("SCRM_REDIS_URL is not set: there is no queue to work (jobs run in-process)")
    unknown = set(queues) - set(QUEUES)
    if unknown:
        raise ValueError(f"unknown queues: {', '.join(sorted(unknown))}")
    cls = SimpleWorker if worker_class == "simple" else Worker
    with app.app_context():
        worker = cls(queues, connection=ext.redis, serializer=JSONSerializer)
        return worker.work(burst=burst, with_scheduler=with_scheduler, logging_level="WARNING")
