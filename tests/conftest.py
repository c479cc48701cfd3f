"""Test harness: one PostgreSQL database and one Redis database per xdist worker, a rolled-back transaction per test."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings
from redis import Redis
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from scrm import migrate
from scrm.app import create_app
from scrm.config import Config
from scrm.db import Base, Database, make_engine

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

TEST_DATABASE_URL = os.environ.get("SCRM_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/scrm_test")
TEST_REDIS_URL = os.environ.get("SCRM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TEST_SECRET_KEY = "test-secret-key-0123456789abcdef0123456789"


def _worker_index(worker_id: str) -> int:
    return 0 if worker_id == "master" else int(worker_id.removeprefix("gw"))


@pytest.fixture(scope="session")
def pg_url(worker_id: str) -> str:
    """A fresh PostgreSQL database for this xdist worker, built by running the migrations."""
    base = make_url(TEST_DATABASE_URL)
    name = f"{base.database}_{worker_id}"
    admin = base.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    url = base.set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def redis_url(worker_id: str) -> str:
    base, _, first = TEST_REDIS_URL.rpartition("/")
    return f"{base}/{int(first or 0) + 1 + _worker_index(worker_id)}"


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def make_config(**overrides: Any) -> Config:
    values: dict[str, Any] = {
        "env": "test",
        "secret_key": TEST_SECRET_KEY,
        "log_json": False,
        "database_url": TEST_DATABASE_URL,
        "redis_url": None,
    }
    values.update(overrides)
    return Config(**values)


@pytest.fixture
def connection(pg_engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that the test's end rolls back (every session joins it)."""
    with pg_engine.connect() as conn:
        outer = conn.begin()
        yield conn
        if outer.is_active:
            outer.rollback()


@pytest.fixture
def config() -> Config:
    return make_config()


@pytest.fixture
def app(connection: Connection, config: Config) -> Flask:
    """The app with every session bound to the test's rolled-back connection; jobs run in-process."""
    return create_app(config, db=Database(connection))


@pytest.fixture
def db(app: Flask) -> Database:
    return app.extensions["scrm"].db


@pytest.fixture
def session(db: Database) -> Iterator[Any]:
    session = db.session()
    yield session
    session.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def truncate_all(engine: Engine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def committed_app(pg_url: str, pg_engine: Engine, redis_client: Redis, redis_url: str) -> Iterator[Flask]:
    """The app on a real engine (commits are real) with Redis and rq; tables are truncated afterwards."""
    truncate_all(pg_engine)
    config = make_config(database_url=pg_url, redis_url=redis_url, outbox_stale_after_s=0.0)
    app = create_app(config)
    yield app
    app.extensions["scrm"].db.dispose()
    truncate_all(pg_engine)


@pytest.fixture
def sqlite_app(tmp_path: Any) -> Iterator[Flask]:
    """The embedded default: a SQLite file and in-process jobs, built by the migrations."""
    url = f"sqlite:///{tmp_path / 'scrm.db'}"
    migrate.upgrade(url)
    app = create_app(make_config(database_url=url))
    yield app
    app.extensions["scrm"].db.dispose()


class StaffAuth:
    """Creates staff users and returns Authorization headers for them."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._counter = 0

    def headers(self, role: str = "admin") -> dict[str, str]:
        from scrm import auth
        from scrm.audit import Actor

        self._counter += 1
        db: Database = self.app.extensions["scrm"].db
        with db.transaction() as session:
            user = auth.create_staff_user(
                session,
                username=f"{role}-{self._counter}",
                password="correct horse battery",
                role=role,
                actor=Actor.system(),
            )
            issued = auth.login_staff(session, username=user.username, password="correct horse battery", ttl_s=600)
        return {"Authorization": f"Bearer {issued.token}"}


@pytest.fixture
def staff(app: Flask) -> StaffAuth:
    return StaffAuth(app)


@pytest.fixture
def factories(session: Any) -> Any:
    """The factories module, bound to this test's session."""
    from tests import factories as module

    module.bind_factories(session)
    return module


@contextmanager
def live_server(app: Flask) -> Iterator[str]:
    """Serve `app` on a free 127.0.0.1 port in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def embedded_pg_app(pg_url: str, pg_engine: Engine) -> Iterator[Flask]:
    """The app on a real PostgreSQL engine with in-process jobs (no Redis); tables truncated afterwards."""
    truncate_all(pg_engine)
    app = create_app(make_config(database_url=pg_url))
    yield app
    app.extensions["scrm"].db.dispose()
    truncate_all(pg_engine)
