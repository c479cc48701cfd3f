"""``scrm sandbox serve``: run the WeChat sandbox for development, demos and end-to-end tests."""

from __future__ import annotations

import json
from typing import IO

import click

from scrm.wechat.apps import AppCredentials
from scrm.wechat.sandbox.api_support import EXTENSION_KEY
from scrm.wechat.sandbox.app import create_sandbox_app
from scrm.wechat.sandbox.server import make_sandbox_server, register_apps
from scrm.wechat.sandbox.state import AppLoader


def build_sandbox_cli(app_loader: AppLoader | None = None) -> click.Group:
    """Build the ``sandbox`` command group; the composition root passes an app loader reading ``wechat_apps``."""

    @click.group("sandbox")
    def sandbox() -> None:
        """The WeChat sandbox: WeChat's server APIs and users, on your machine."""

    @sandbox.command("serve")
    @click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
    @click.option("--port", default=5055, show_default=True, type=int, help="Port to bind.")
    @click.option(
        "--target",
        "target_url",
        default=None,
        metavar="URL",
        help="Base URL of the scrm service; callbacks go to URL/wechat/<appid>/callback.",
    )
    @click.option("--callback-timeout", default=5.0, show_default=True, type=float, help="Seconds per callback try.")
    @click.option("--callback-attempts", default=3, show_default=True, type=int, help="Tries per callback in all.")
    @click.option(
        "--apps",
        "apps_file",
        type=click.File("r"),
        default=None,
        help="JSON list of apps to register at start: [{appid, secret, kind, token, encoding_aes_key, mode, ...}].",
    )
    def serve(
        host: str,
        port: int,
        target_url: str | None,
        callback_timeout: float,
        callback_attempts: int,
        apps_file: IO[str] | None,
    ) -> None:
        """Serve the sandbox until interrupted (point SCRM_WECHAT_API_BASE at it)."""
        app = create_sandbox_app(
            target_url=target_url,
            callback_timeout_s=callback_timeout,
            callback_attempts=callback_attempts,
            app_loader=app_loader,
        )
        if apps_file is not None:
            try:
                register_apps(
                    app.extensions[EXTENSION_KEY], [AppCredentials(**entry) for entry in json.load(apps_file)]
                )
            except (TypeError, ValueError) as error:
                raise click.BadParameter(str(error), param_hint="--apps") from None
        server = make_sandbox_server(app, host, port)
        base_url = f"http://{host}:{server.port}"
        click.echo(f"WeChat sandbox on {base_url} (console: {base_url}/sandbox/)")
        click.echo(
            f"Callbacks go to {target_url.rstrip('/') + '/wechat/<appid>/callback' if target_url else 'nowhere yet'}"
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()

    return sandbox


#: The group the ``scrm`` CLI attaches when it has no app loader to pass.
sandbox = build_sandbox_cli()
