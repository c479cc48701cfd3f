"""The per-app extension object and the request-scoped database session."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app, g, has_request_context
from sqlalchemy.orm import Session

from scrm.config import Config
from scrm.db import Database
from scrm.jobs import JobRunner


@dataclass
class ScrmExtension:
    """Everything the app built at start-up; reach it through `ext()`, never through globals."""

    config: Config
    db: Database
    runner: JobRunner
    redis: Any | None = None
    periodic_slots: dict[str, int] = field(default_factory=dict)
    services: dict[str, Any] = field(default_factory=dict)


def ext(app: Flask | None = None) -> ScrmExtension:
    return (app or current_app).extensions["scrm"]


def gateway(app: Flask | None = None) -> Any:
    """The WeChat gateway of this app (built on first use)."""
    scrm = ext(app)
    if "gateway" not in scrm.services:
        from scrm.wechat.wiring import build_gateway

        scrm.services["gateway"] = build_gateway(scrm.config, scrm.db, scrm.redis)
    return scrm.services["gateway"]


def db_session() -> Session:
    """The request's session, created on first use and closed at teardown; the view commits it."""
    if not has_request_context():
        raise RuntimeError("db_session() is for requests; jobs and commands use Database.transaction()")
    session = g.get("_scrm_session")
    if session is None:
        session = g._scrm_session = ext().db.session()
    return session


def close_request_session(_exc: BaseException | None = None) -> None:
    session = g.pop("_scrm_session", None)
    if session is not None:
        # Anything the view did not commit is rolled back here.
        session.close()
