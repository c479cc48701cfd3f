"""The outbox: rows commit with the business change, run once after commit, survive Redis and worker loss."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from scrm import jobs, outbox
from scrm.app import create_app
from scrm.db import Database
from scrm.models import OUTBOX_DEAD, OUTBOX_DONE, OUTBOX_PENDING, AuditEntry, OutboxMessage
from tests.conftest import TEST_SECRET_KEY
from tests.scrm import outbox_kinds  # noqa: F401 - registers the test kinds

REPO_ROOT = Path(__file__).resolve().parents[2]


def effects(db: Database, key: str) -> int:
    with db.transaction() as session:
        return session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "test.effect", AuditEntry.target_id == key)
        )


def status_of(db: Database, row_id: int) -> str:
    with db.transaction() as session:
        return session.get(OutboxMessage, row_id).status


def test_emit_unknown_kind_is_refused(session):
    with pytest.raises(ValueError, match="no outbox handler"):
        outbox.emit(session, "nope.unknown", {})


def test_in_process_mode_runs_the_effect_after_commit_once(app: Flask, db: Database):
    with db.transaction() as session:
        row_id = outbox.emit(session, "test.effect", {"key": "a"})
        # Inside the transaction nothing has run yet.
        assert (
            session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "test.effect")) == 0
        )
    assert effects(db, "a") == 1
    assert status_of(db, row_id) == OUTBOX_DONE
    # Draining again finds nothing due: the same row never runs twice.
    assert outbox.drain(db, outbox.QUEUE_DEFAULT).done == 0
    assert effects(db, "a") == 1


def test_savepoints_inside_the_transaction_neither_run_nor_drop_its_rows(app: Flask, db: Database):
    with db.transaction() as session:
        outbox.emit(session, "test.effect", {"key": "savepoints"})
        with session.begin_nested():
            session.execute(select(1))
        assert effects(db, "savepoints") == 0  # a released savepoint is not the commit
        with pytest.raises(RuntimeError), session.begin_nested():
            raise RuntimeError("rolled back alone")
    assert effects(db, "savepoints") == 1  # a rolled-back savepoint did not forget the queue


def test_rolled_back_transaction_never_runs(app: Flask, db: Database):
    session = db.session()
    outbox.emit(session, "test.effect", {"key": "rolled-back"})
    session.rollback()
    session.close()
    assert outbox.drain(db, outbox.QUEUE_DEFAULT).done == 0
    assert effects(db, "rolled-back") == 0
    with db.transaction() as check:
        assert check.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_idempotency_key_records_the_effect_once(app: Flask, db: Database):
    with db.transaction() as session:
        first = outbox.emit(session, "test.effect", {"key": "k"}, key="test:k")
        second = outbox.emit(session, "test.effect", {"key": "k"}, key="test:k")
    assert first is not None
    assert second is None
    assert effects(db, "k") == 1


def test_failing_handler_backs_off_then_dies_without_blocking_others(app: Flask, db: Database):
    app.extensions["scrm"].runner = jobs.InProcessRunner(db, batch_size=50, max_attempts=2)
    with db.transaction() as session:
        bad = outbox.emit(session, "test.fail", {})
        good = outbox.emit(session, "test.effect", {"key": "next-to-bad"})
    assert status_of(db, good) == OUTBOX_DONE
    assert effects(db, "next-to-bad") == 1
    with db.transaction() as session:
        row = session.get(OutboxMessage, bad)
        assert (row.status, row.attempts) == (OUTBOX_PENDING, 1)
        assert "always fails" in row.last_error
        row.available_at = row.created_at  # due again now
    outbox.drain(db, outbox.QUEUE_DEFAULT, max_attempts=2)
    assert status_of(db, bad) == OUTBOX_DEAD


# --- Redis mode: real rq workers, real commits ---


def worker_env(app: Flask) -> dict[str, str]:
    config = app.extensions["scrm"].config
    return {
        **os.environ,
        "SCRM_DATABASE_URL": config.database_url,
        "SCRM_REDIS_URL": config.redis_url,
        "SCRM_ENV": "test",
        "SCRM_SECRET_KEY": TEST_SECRET_KEY,
        "SCRM_PLUGINS": "tests.scrm.outbox_kinds",
        "SCRM_LOG_JSON": "0",
        "PYTHONPATH": str(REPO_ROOT),
    }


def run_burst_worker(app: Flask, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scrm", "worker", "--burst", "-q", "default"],
        env=worker_env(app),
        cwd=REPO_ROOT,
        timeout=timeout,
        capture_output=True,
        text=True,
        check=False,
    )


def test_rq_mode_enqueues_one_drain_for_many_rows(committed_app: Flask, redis_client):
    db = committed_app.extensions["scrm"].db
    for i in range(5):
        with db.transaction() as session:
            outbox.emit(session, "test.effect", {"key": f"r{i}"})
    # Five commits, one queued relay job: the SET NX marker deduplicates the drain requests.
    runner = committed_app.extensions["scrm"].runner
    assert runner.queue("default").count == 1
    with committed_app.app_context():
        result = jobs.drain_job("default")
        assert result["done"] == 5
        # The same job run twice has one effect: the second run finds nothing due.
        assert jobs.drain_job("default")["done"] == 0
    assert [effects(db, f"r{i}") for i in range(5)] == [1] * 5


def test_redis_down_at_commit_then_sweeper_runs_it_once(committed_app: Flask, redis_url: str):
    config = committed_app.extensions["scrm"].config
    # Same database, but a Redis that refuses connections: the commit must still succeed.
    broken = create_app(config.replace(redis_url="redis://127.0.0.1:1/0"))
    broken_db = broken.extensions["scrm"].db
    with broken_db.transaction() as session:
        row_id = outbox.emit(session, "test.effect", {"key": "redis-was-down"})
    broken_db.dispose()
    db = committed_app.extensions["scrm"].db
    assert status_of(db, row_id) == OUTBOX_PENDING
    assert committed_app.extensions["scrm"].runner.queue("default").count == 0

    assert jobs.sweep(committed_app) == {"default": 1}
    jobs.run_worker(committed_app, ["default"], burst=True, with_scheduler=False)
    assert status_of(db, row_id) == OUTBOX_DONE
    assert effects(db, "redis-was-down") == 1
    # A second sweep finds nothing stale and the effect stays single.
    assert jobs.sweep(committed_app) == {}
    assert effects(db, "redis-was-down") == 1


def test_redis_flushed_before_workers_start_loses_nothing(committed_app: Flask, redis_client):
    db = committed_app.extensions["scrm"].db
    with db.transaction() as session:
        ids = [outbox.emit(session, "test.effect", {"key": f"f{i}"}) for i in range(20)]
    redis_client.flushall()
    assert jobs.sweep(committed_app) == {"default": 20}
    jobs.run_worker(committed_app, ["default"], burst=True, with_scheduler=False)
    assert {status_of(db, i) for i in ids} == {OUTBOX_DONE}
    assert sum(effects(db, f"f{i}") for i in range(20)) == 20


@pytest.mark.slow
def test_worker_killed_mid_job_reruns_and_the_effect_happens_once(committed_app: Flask, redis_client):
    db = committed_app.extensions["scrm"].db
    with db.transaction() as session:
        row_id = outbox.emit(session, "test.block", {"key": "killed"})
    worker = subprocess.Popen(
        [sys.executable, "-m", "scrm", "worker", "-q", "default"],
        env=worker_env(committed_app),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not redis_client.exists("test:inside:killed"):
            assert time.monotonic() < deadline, "the worker never reached the handler"
            assert worker.poll() is None, "the worker exited early"
            time.sleep(0.05)
        # The effect row is written (flushed) but not committed when the process dies.
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)

    assert effects(db, "killed") == 0
    assert status_of(db, row_id) == OUTBOX_PENDING
    redis_client.set("test:release:killed", "1")
    assert jobs.sweep(committed_app) == {"default": 1}
    finished = run_burst_worker(committed_app)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert status_of(db, row_id) == OUTBOX_DONE
    assert effects(db, "killed") == 1
