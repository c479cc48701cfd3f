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
@click.option(
    "--sandbox",
    "sandbox_port",
    type=int,
    default=None,
    metavar="PORT",
    help="Also run the WeChat sandbox on PORT and point the service at it",
)
@pass_ctx
def serve(ctx: AppContext, host: str, port: int, sweeper: bool | None, sandbox_port: int | None) -> None:
    """Serve the API with the development server (use gunicorn 'scrm.wsgi:app' in production)."""
    from werkzeug.serving import run_simple

    from scrm.jobs import sweeper_loop

    if sandbox_port is not None:
        # Before the app is built, so its gateway talks to the sandbox.
        os.environ["SCRM_WECHAT_API_BASE"] = f"http://{host}:{sandbox_port}"
        os.environ["SCRM_WECHAT_OPEN_BASE"] = f"http://{host}:{sandbox_port}"
    app = ctx.app
    if sandbox_port is not None:
        start_sandbox(app, host=host, port=sandbox_port, target_url=f"http://{host}:{port}")
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


def start_sandbox(app: Flask, *, host: str, port: int, target_url: str) -> str:
    """Run the WeChat sandbox in a thread, knowing the apps registered in this deployment."""
    from scrm.secretbox import SecretBox
    from scrm.wechat.sandbox.app import create_sandbox_app
    from scrm.wechat.sandbox.server import make_sandbox_server
    from scrm.wechat.wiring import DatabaseAppDirectory

    scrm = app.extensions["scrm"]
    directory = DatabaseAppDirectory(scrm.db, SecretBox(scrm.config.secret_key))
    sandbox = create_sandbox_app(target_url=target_url, app_loader=directory.all)
    server = make_sandbox_server(sandbox, host, port)
    threading.Thread(target=server.serve_forever, daemon=True, name="wechat-sandbox").start()
    base_url = f"http://{host}:{server.port}"
    click.echo(
        f"WeChat sandbox on {base_url} (console {base_url}/sandbox/), posting callbacks to {target_url}", err=True
    )
    return base_url


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


@main.group()
def wechat() -> None:
    """The brand's WeChat apps."""


@wechat.command("add-app")
@click.option("--appid", required=True)
@click.option("--kind", type=click.Choice(["oa", "miniprogram"]), required=True)
@click.option("--secret", required=True, envvar="SCRM_WECHAT_APP_SECRET", help="AppSecret (or $SCRM_WECHAT_APP_SECRET)")
@click.option("--token", help="Callback token (official accounts)")
@click.option("--aes-key", help="EncodingAESKey, 43 characters (safe and compat mode)")
@click.option("--mode", type=click.Choice(["safe", "compat", "plain"]), default="safe", show_default=True)
@click.option("--original-id", help="The official account's gh_ id")
@click.option("--name")
@pass_ctx
def wechat_add_app(
    ctx: AppContext,
    appid: str,
    kind: str,
    secret: str,
    token: str | None,
    aes_key: str | None,
    mode: str,
    original_id: str | None,
    name: str | None,
) -> None:
    """Register an app, or update a registered one (credentials are stored encrypted, never printed)."""
    from scrm import wechat_apps
    from scrm.audit import Actor
    from scrm.errors import DomainError
    from scrm.secretbox import SecretBox

    config = ctx.app.extensions["scrm"].config
    try:
        with ctx.app.extensions["scrm"].db.transaction() as session:
            wechat_apps.register_app(
                session,
                SecretBox(config.secret_key),
                appid=appid,
                kind=kind,
                secret=secret,
                token=token,
                aes_key=aes_key,
                mode=mode,
                original_id=original_id,
                name=name,
                allow_plain=config.env != "prod" or config.wechat_allow_plain_mode,
                actor=Actor.system(),
            )
    except DomainError as exc:
        details = "; ".join(f"{k}: {', '.join(v)}" for k, v in exc.details.get("fields", {}).items())
        raise click.ClickException(f"{exc.message}: {details}" if details else exc.message) from None
    where = f"; callback URL path /wechat/{appid}/callback" if kind == "oa" else ""
    click.echo(f"{kind} {appid} registered in {mode} mode{where}")


@wechat.command("list-apps")
@pass_ctx
def wechat_list_apps(ctx: AppContext) -> None:
    """List registered apps (without credentials)."""
    from scrm import wechat_apps

    with ctx.app.extensions["scrm"].db.transaction() as session:
        for app in wechat_apps.list_apps(session):
            state = "active" if app.is_active else "inactive"
            click.echo(f"{app.appid}\t{app.kind}\t{app.mode}\t{state}\t{app.name or ''}")


def _sandbox_group() -> click.Group:
    from scrm.wechat.sandbox.cli import build_sandbox_cli

    def load_apps() -> list[Any]:
        from scrm.secretbox import SecretBox
        from scrm.wechat.wiring import DatabaseAppDirectory

        app = AppContext().app
        scrm = app.extensions["scrm"]
        return DatabaseAppDirectory(scrm.db, SecretBox(scrm.config.secret_key)).all()

    return build_sandbox_cli(app_loader=load_apps)


main.add_command(_sandbox_group())


DEMO_OA = "wxDEMOOA000000001"
DEMO_MINIPROGRAM = "wxDEMOMP000000001"


@main.command()
@pass_ctx
def demo(ctx: AppContext) -> None:
    """Seed a demo admin and demo WeChat apps (idempotent); prints the admin's password once."""
    from sqlalchemy import select

    from scrm import auth, wechat_apps
    from scrm.audit import Actor
    from scrm.models import StaffUser
    from scrm.secretbox import SecretBox

    scrm = ctx.app.extensions["scrm"]
    with scrm.db.transaction() as session:
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
        box = SecretBox(scrm.config.secret_key)
        # Random credentials: the sandbox reads them back from this deployment's wechat_apps table.
        wechat_apps.register_app(
            session,
            box,
            appid=DEMO_OA,
            kind="oa",
            secret=secrets.token_hex(16),
            token=secrets.token_hex(8),
            aes_key=_aes_key(),
            mode="safe",
            original_id="gh_demo00000001",
            name="Demo official account",
            actor=Actor.system(),
        )
        wechat_apps.register_app(
            session,
            box,
            appid=DEMO_MINIPROGRAM,
            kind="miniprogram",
            secret=secrets.token_hex(16),
            name="Demo mini-program",
            actor=Actor.system(),
        )
    click.echo(f"demo admin: username demo-admin, password {password}")
    click.echo(f"demo apps: official account {DEMO_OA} (safe mode), mini-program {DEMO_MINIPROGRAM}")


def _aes_key() -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(43))


def _add_domain_commands() -> None:
    """Add the commands the composition root lists (the kernel names no domain itself)."""
    import importlib

    from scrm.app import CLI_COMMANDS

    for ref in CLI_COMMANDS:
        module, _, attribute = ref.partition(":")
        main.add_command(getattr(importlib.import_module(module), attribute))


_add_domain_commands()


def run(args: list[str] | None = None) -> Any:
    return main.main(args=args, prog_name="scrm")
