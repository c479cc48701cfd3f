"""Outbox relay throughput against rq's own one-job-per-row throughput, same worker class, same machine.

Usage: python benchmarks/outbox.py [--rows 10000]
Needs PostgreSQL and Redis on 127.0.0.1 (SCRM_BENCH_DATABASE_URL, SCRM_BENCH_REDIS_URL to override).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from redis import Redis
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scrm import outbox

REPO_ROOT = Path(__file__).resolve().parents[1]
DATABASE_URL = os.environ.get("SCRM_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/scrm_bench")
REDIS_URL = os.environ.get("SCRM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


def fresh_database() -> str:
    from scrm import migrate

    url = make_url(DATABASE_URL)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{url.database}"')
    rendered = url.render_as_string(hide_password=False)
    migrate.upgrade(rendered)
    return rendered


def worker_seconds(env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "scrm", "worker", "--burst", "-q", "default"],
        env=env,
        cwd=REPO_ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    rows = args.rows

    from scrm.app import create_app
    from scrm.config import Config
    from scrm.models import OUTBOX_DONE, OutboxMessage

    url = fresh_database()
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    env = {
        **os.environ,
        "SCRM_DATABASE_URL": url,
        "SCRM_REDIS_URL": REDIS_URL,
        "SCRM_ENV": "test",
        "SCRM_SECRET_KEY": "bench-secret-key-0123456789abcdef01234",
        "SCRM_PLUGINS": "benchmarks.kinds",
        "SCRM_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO_ROOT),
    }
    config = Config.from_env(env)
    app = create_app(config)
    db = app.extensions["scrm"].db
    print(f"rows: {rows}; worker: one `scrm worker --burst` process, rq SimpleWorker, PostgreSQL + Redis on 127.0.0.1")

    # Start-up cost of one worker process (imports, app, Redis and DB connections), subtracted from both runs.
    startup = min(worker_seconds(env) for _ in range(2))
    print(f"worker start-up (empty queue): {startup:.2f} s")

    # Ours: rows committed through the outbox; the commit enqueues one relay job.
    with db.transaction() as session:
        for n in range(rows):
            outbox.emit(session, "bench.noop", {"n": n})
    ours_s = max(worker_seconds(env) - startup, 1e-6)
    with db.transaction() as session:
        done = session.scalar(select(func.count()).where(OutboxMessage.status == OUTBOX_DONE))
        done_twice = session.scalar(select(func.count()).where(OutboxMessage.attempts > 1))
    rows_per_s = done / ours_s
    print(f"outbox relay: {done} rows done in {ours_s:.2f} s -> {rows_per_s:,.0f} rows/s")

    # Anchor: the same rows as one rq job each, same worker entry point and class.
    queue = app.extensions["scrm"].runner.queue("default")
    with redis.pipeline() as pipe:
        for n in range(rows):
            queue.enqueue("benchmarks.kinds.noop_job", n, result_ttl=0, pipeline=pipe)
        pipe.execute()
    rq_s = max(worker_seconds(env) - startup, 1e-6)
    left = queue.count
    rq_per_s = (rows - left) / rq_s
    print(f"rq one job per row: {rows - left} jobs in {rq_s:.2f} s -> {rq_per_s:,.0f} jobs/s")
    ratio = rows_per_s / rq_per_s
    print(f"ratio outbox/rq: {ratio:.1f}x; rows done twice: {done_twice}; rows not done: {rows - done}")
    db.dispose()
    print(
        json.dumps(
            {
                "benchmark": "outbox",
                "rows": rows,
                "rows_per_s": round(rows_per_s, 1),
                "rq_jobs_per_s": round(rq_per_s, 1),
                "ratio": round(ratio, 2),
                "done_twice": done_twice,
                "not_done": rows - done,
                "worker_class": "SimpleWorker",
            }
        )
    )


if __name__ == "__main__":
    main()
