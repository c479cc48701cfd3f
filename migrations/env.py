"""Alembic environment: the metadata of the kernel and of every domain's models."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

import scrm.models  # noqa: F401 - registers the kernel tables
from scrm.db import Base, make_engine

# Each domain's models register their tables on Base.metadata when imported.
DOMAIN_MODELS: tuple[str, ...] = ("member.models", "wechat_handlers.models")
for _module in DOMAIN_MODELS:
    __import__(_module)

target_metadata = Base.metadata
config = context.config


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=False,
    )


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_online()
