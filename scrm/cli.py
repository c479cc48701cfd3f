"""The `scrm` command line: serve, worker, sweeper, database, staff users, demo."""

from __future__ import annotations

import contextlib
import getpass
import os
import secrets
import signal
import sys
import threading
from typing import Any

import click
from flask import Flask

from scrm.config import Config, ConfigError


class AppContext:
    """Builds the app lazily, so `scrm --help` needs no database."""

    def __init__(self) -> None:
        self._app: Flask | None = None

    @property
    def app(self) -> Flask:
        if self._app is None:
            from scrm.app import create_app

            try:
                self._app = create_app(Config.from_env())
            except ConfigError as exc:
                raise click.ClickException(str(exc)) from None
        return self._app


pass_ctx = click.make_pass_decorator(AppContext, ensure=True)


@click.group()
@click.version_option(package_name="scrm")
@click.pass_context
def main(ctx: click.Context) -> None:
    """scrm: the WeChat-first social CRM. Every command reads the SCRM_* environment variables."""
    ctx.ensure_object(AppContext)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=lambda: int(os.environ.get("PORT", "5000")), show_default="$PORT or 5000", type=int)
@click.option("--sweeper/--no-sweeper", default=None, help="Run the outbox sweeper in a thread [embedded: on]")
@pass_ctx
def serve(ctx: AppContext, host: str, port: int, sweeper: bool | None) -> None:
    """Serve the API with the development server (use gunicorn 'scrm.wsgi:app' in production)."""
    from werkzeug.serving import run_simple

    from scrm.jobs import sweeper_loop

    app = ctx.app
    config = app.extensions["scrm"].config
    if sweeper if sweeper is not None else config.is_embedded:
        threading.Thread(
            target=sweeper_loop,
            args=(app,),
            kwargs={"interval_s": config.outbox_sweep_interval_s},
            daemon=True,
            name="scrm-sweeper",
        ).start()
    mode = "embedded (in-process jobs)" if config.is_embedded else "rq workers"
    click.echo(f"scrm serving on http://{host}:{port} — jobs: {mode}; API docs at /api/v1/docs", err=True)
    run_simple(host, port, app, threaded=True, use_reloader=False)


@main.command()
@click.option(
    "--queues",
    "-q",
    default="callbacks,default,analytics",
    show_default=True,
    help="Comma-separated queues, highest priority first",
)
@click.option(
    "--worker-class",
    type=click.Choice(["simple", "fork"]),
    default="simple",
    show_default=True,
    help="simple: jobs run in the worker process; fork: a work horse per job (analytics)",
)
@click.option("--burst", is_flag=True, help="Quit when the queues are empty")
@pass_ctx
def worker(ctx: AppContext, queues: str, worker_class: str, burst: bool) -> None:
    """Run an rq worker (with its scheduler, for retries) inside the app context."""
    from scrm.jobs import run_worker

    try:
        run_worker(ctx.app, [q.strip() for q in queues.split(",") if q.strip()], worker_class=worker_class, burst=burst)
    except (RuntimeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--interval", type=float, default=None, help="Seconds between passes [SCRM_OUTBOX_SWEEP_INTERVAL_S]")
@click.option("--once", is_flag=True, help="One pass, then exit")
@pass_ctx
def sweeper(ctx: AppContext, interval: float | None, once: bool) -> None:
    """Re-drive stale outbox rows and start due periodic jobs (run one or more per deployment)."""
    from scrm.jobs import run_due_periodic, sweep, sweeper_loop

    app = ctx.app
    if once:
        with app.app_context():
            due = sweep(app)
            started = run_due_periodic(app)
        click.echo(f"re-driven: {due or 'nothing'}; periodic started: {', '.join(started) or 'none'}")
        return
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    with contextlib.suppress(KeyboardInterrupt):
        sweeper_loop(
            app, interval_s=interval or app.extensions["scrm"].config.outbox_sweep_interval_s, stop=stopping.is_set
        )


@main.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION."""
    from scrm import migrate

    config = Config.from_env()
    migrate.upgrade(config.database_url, revision=revision)
    click.echo(f"database at {revision}", err=True)


@db.command("revision")
@click.option("-m", "--message", required=True)
def db_revision(message: str) -> None:
    """Autogenerate a migration from the models (developers)."""
    from scrm import migrate

    migrate.revision(Config.from_env().database_url, message)


@main.group()
def outbox() -> None:
    """Inspect and drive the outbox."""


@outbox.command("status")
@pass_ctx
def outbox_status(ctx: AppContext) -> None:
    """Pending rows per queue."""
    from scrm.outbox import backlog

    with ctx.app.extensions["scrm"].db.transaction() as session:
        counts = backlog(session)
    click.echo(", ".join(f"{q}: {n}" for q, n in sorted(counts.items())) or "outbox empty")


@outbox.command("drain")
@click.option("--queue", "-q", "queues", multiple=True, help="Queue(s) to drain (default: all)")
@pass_ctx
def outbox_drain(ctx: AppContext, queues: tuple[str, ...]) -> None:
    """Drain the outbox in this process, with a progress line per queue."""
    from scrm.outbox import QUEUES, drain

    scrm = ctx.app.extensions["scrm"]
    with ctx.app.app_context():
        for queue in queues or QUEUES:
            result = drain(
                scrm.db, queue, batch_size=scrm.config.outbox_batch_size, max_attempts=scrm.config.outbox_max_attempts
            )
            click.echo(f"{queue}: {result.done} done, {result.failed} failed, {result.dead} dead")


@main.group()
def staff() -> None:
    """Staff users."""


@staff.command("create")
@click.argument("username")
@click.option(
    "--role",
    type=click.Choice(["admin", "campaign_manager", "kol_manager", "analyst", "auditor"]),
    default="admin",
    show_default=True,
)
@click.option("--password", envvar="SCRM_STAFF_PASSWORD", help="Default: prompt (or $SCRM_STAFF_PASSWORD)")
@click.option("--display-name")
@pass_ctx
def staff_create(ctx: AppContext, username: str, role: str, password: str | None, display_name: str | None) -> None:
    """Create a staff user."""
    from scrm import auth
    from scrm.audit import Actor
    from scrm.errors import DomainError

    if not password:
        password = getpass.getpass("Password: ") if sys.stdin.isatty() else None
    if not password:
        raise click.ClickException("give --password, $SCRM_STAFF_PASSWORD or type it at the prompt")
    try:
        with ctx.app.extensions["scrm"].db.transaction() as session:
            user = auth.create_staff_user(
                session,
                username=username,
                password=password,
                role=role,
                display_name=display_name,
                actor=Actor.system(),
            )
            user_id = user.id
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"staff user {username} ({role}) created with id {user_id}")


@main.command()
@pass_ctx
def demo(ctx: AppContext) -> None:
    """Seed a demo admin so the API can be explored (idempotent); prints its credentials once."""
    from sqlalchemy import select

    from scrm import auth
    from scrm.audit import Actor
    from scrm.models import StaffUser

    with ctx.app.extensions["scrm"].db.transaction() as session:
        if session.scalar(select(StaffUser.id).where(StaffUser.username == "demo-admin")) is not None:
            click.echo("demo already seeded (staff user demo-admin exists)")
            return
        password = secrets.token_urlsafe(12)
        auth.create_staff_user(
            session,
            username="demo-admin",
            password=password,
            role="admin",
            display_name="Demo admin",
            actor=Actor.system(),
        )
    click.echo(f"demo admin: username demo-admin, password {password}")


def run(args: list[str] | None = None) -> Any:
    return main.main(args=args, prog_name="scrm")
