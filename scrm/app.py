"""The application factory and composition root: the one place that wires the domains into the kernel."""

from __future__ import annotations

import importlib
from typing import Any

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from scrm.config import Config, ConfigError
from scrm.context import ScrmExtension, close_request_session
from scrm.db import Database, make_engine
from scrm.http import API_PREFIX, Api, init_http
from scrm.jobs import InProcessRunner, JobRunner, RqRunner, install_after_commit
from scrm.logs import configure_logging
from scrm.wechat_apps import plain_mode_official_accounts

#: Modules imported at start-up so their outbox handlers, periodic jobs and signal receivers exist
#: in every process (web, worker, CLI). Listed here, the composition root, not discovered.
DOMAIN_MODULES: tuple[str, ...] = (
    "member.models",
    "member.jobs.centre",
    "member.jobs.loyalty",
    "wechat_handlers.models",
    "wechat_handlers.jobs",
    "member.legacy.jobs",
)

#: Blueprints of the JSON API, as "module:attribute".
API_BLUEPRINTS: tuple[str, ...] = (
    "scrm.views:staff_bp",
    "scrm.views:wechat_apps_bp",
    "wechat_handlers.views:staff_bp",
    "member.legacy.views:legacy_bp",
    "member.views.centre:member_bp",
    "member.views.staff:staff_members_bp",
    "member.views.loyalty:member_loyalty_bp",
    "member.views.loyalty:staff_loyalty_bp",
)

#: Plain Flask blueprints outside the JSON API (health probes, WeChat callbacks).
PLAIN_BLUEPRINTS: tuple[str, ...] = ("scrm.views:health_bp", "wechat_handlers.views:callback_bp")

#: Click commands or groups the domains add to the `scrm` CLI, as "module:attribute".
CLI_COMMANDS: tuple[str, ...] = ("member.legacy.cli:legacy",)


def create_app(config: Config | None = None, *, db: Database | None = None) -> Flask:
    """Build the scrm Flask app.

    Args:
        config: settings; default `Config.from_env()`.
        db: an already-built Database (tests bind one to a connection); default from the config.
    """
    config = config or Config.from_env()
    app = Flask("scrm", instance_relative_config=False)
    configure_logging(config.log_level, json_lines=config.log_json)
    configure_flask(app, config)
    scrm = register_extension(app, config, db)
    register_http(app)
    import_domains(config)
    register_blueprints(app)
    check_wechat_apps(scrm)
    app.teardown_appcontext(close_request_session)
    app.extensions["scrm"] = scrm
    return app


def configure_flask(app: Flask, config: Config) -> None:
    app.config.update(
        SECRET_KEY=config.secret_key,
        MAX_CONTENT_LENGTH=config.max_request_bytes,
        TESTING=config.env == "test",
        JSON_SORT_KEYS=False,
        API_TITLE="scrm",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=API_PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
        API_SPEC_OPTIONS={
            "info": {"description": "WeChat-first social CRM: member centre, staff and KOL-manager API."},
            "components": {
                "securitySchemes": {
                    "staffToken": {"type": "http", "scheme": "bearer", "description": "POST /api/v1/staff/session"},
                    "memberToken": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "Issued after a WeChat code exchange",
                    },
                }
            },
        },
    )


def register_extension(app: Flask, config: Config, db: Database | None) -> ScrmExtension:
    db = db or Database(make_engine(config.database_url, pool_pre_ping=config.db_pool_pre_ping))
    redis = None
    runner: JobRunner
    if config.redis_url:
        from redis import Redis

        redis = Redis.from_url(config.redis_url, socket_timeout=5, socket_connect_timeout=2)
        runner = RqRunner(redis)
    else:
        runner = InProcessRunner(db, batch_size=config.outbox_batch_size, max_attempts=config.outbox_max_attempts)
    scrm = ScrmExtension(config=config, db=db, runner=runner, redis=redis)
    install_after_commit(db, lambda: scrm.runner)
    app.extensions["scrm"] = scrm
    return scrm


def register_http(app: Flask) -> Api:
    init_http(app)
    api = Api(app)
    app.extensions["scrm.api"] = api
    return api


def check_wechat_apps(scrm: ScrmExtension) -> None:
    """In prod, refuse to start while an official account is in plain mode (its body is unsigned)."""
    if scrm.config.env != "prod" or scrm.config.wechat_allow_plain_mode:
        return
    try:
        with scrm.db.transaction() as session:
            plain = plain_mode_official_accounts(session)
    except SQLAlchemyError:
        # Not migrated yet (`scrm db upgrade` runs with this app too): nothing registered to check.
        return
    if plain:
        raise ConfigError(
            f"official accounts {', '.join(plain)} use plain mode, which does not sign the message body; "
            "switch them to safe mode or set SCRM_WECHAT_ALLOW_PLAIN_MODE=1"
        )


def import_domains(config: Config) -> None:
    plugins = tuple(name.strip() for name in config.plugins.split(",") if name.strip())
    for module in DOMAIN_MODULES + plugins:
        importlib.import_module(module)


def _load(ref: str) -> Any:
    module, _, attribute = ref.partition(":")
    return getattr(importlib.import_module(module), attribute)


def register_blueprints(app: Flask) -> None:
    api: Api = app.extensions["scrm.api"]
    for ref in API_BLUEPRINTS:
        api.register_blueprint(_load(ref))
    for ref in PLAIN_BLUEPRINTS:
        app.register_blueprint(_load(ref))
