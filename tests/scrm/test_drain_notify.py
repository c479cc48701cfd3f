"""Drain notifications: commits skip Redis right after a drain marker was seen, and still get drained."""

from __future__ import annotations

import threading
import time

from flask import Flask

from scrm import jobs, outbox
from scrm.app import create_app
from scrm.db import make_engine
from tests.conftest import make_config
from tests.scrm import outbox_kinds  # noqa: F401 - registers the test kinds
from tests.scrm.test_outbox import effects


def test_commits_right_after_a_drain_started_are_drained_by_its_final_pass(
    committed_app: Flask, redis_client, monkeypatch
):
    # A wider window than production's, so a slow machine cannot push the second commit out of it.
    monkeypatch.setattr(jobs, "DRAIN_NOTIFY_COALESCE_S", 2.0)
    db = committed_app.extensions["scrm"].db
    queue = committed_app.extensions["scrm"].runner.queue("default")
    with db.transaction() as session:
        outbox.emit(session, "test.effect", {"key": "before-drain"})
    assert queue.count == 1

    def commit_while_draining() -> None:
        # Lands after the drain deleted its marker, inside the window in which this process skips Redis.
        time.sleep(0.3)
        with db.transaction() as session:
            outbox.emit(session, "test.effect", {"key": "during-drain"})

    committer = threading.Thread(target=commit_while_draining)
    committer.start()
    with committed_app.app_context():
        result = jobs.drain_job("default")
    committer.join()

    assert result["done"] == 2
    assert (effects(db, "before-drain"), effects(db, "during-drain")) == (1, 1)
    # The second commit asked nothing of Redis: no second drain job was queued.
    assert queue.count == 1


def test_the_sweeper_asks_redis_even_inside_the_window(committed_app: Flask, redis_client):
    db = committed_app.extensions["scrm"].db
    with db.transaction() as session:
        outbox.emit(session, "test.effect", {"key": "marker-lost"})
    redis_client.flushdb()  # Redis lost the marker and the job, without any drain having started
    assert jobs.sweep(committed_app) == {"default": 1}
    assert committed_app.extensions["scrm"].runner.queue("default").count == 1


def test_pool_pre_ping_is_off_unless_configured(pg_url: str):
    assert make_engine(pg_url).pool._pre_ping is False
    app = create_app(make_config(database_url=pg_url, db_pool_pre_ping=True))
    assert app.extensions["scrm"].db.engine.pool._pre_ping is True
    app.extensions["scrm"].db.dispose()
