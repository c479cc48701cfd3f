"""Running the sandbox: a threaded werkzeug server, in the foreground or in a background thread for tests."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from scrm.wechat.apps import AppCredentials
from scrm.wechat.sandbox.api_support import EXTENSION_KEY
from scrm.wechat.sandbox.app import create_sandbox_app
from scrm.wechat.sandbox.models import SandboxApp
from scrm.wechat.sandbox.state import AppLoader, SandboxState


class QuietRequestHandler(WSGIRequestHandler):
    """Logs the method, path and status of each request, never the query string.

    WeChat's APIs carry the access token, and some the app secret or a login code, in the query string.
    """

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = self.path.split("?", 1)[0]
        self.log("info", '"%s %s" %s %s', self.command, path, code, size)


class RunningSandbox(NamedTuple):
    """A sandbox serving in a background thread: ``base_url, state = sandbox`` works."""

    base_url: str
    state: SandboxState


def make_sandbox_server(app: Flask, host: str, port: int) -> BaseWSGIServer:
    """A threaded server (the service may call the sandbox while a callback to it is still open)."""
    return make_server(host, port, app, threaded=True, request_handler=QuietRequestHandler)


def register_apps(state: SandboxState, apps: Iterable[AppCredentials]) -> None:
    for credentials in apps:
        state.register_app(SandboxApp.from_credentials(credentials))


@contextmanager
def running_sandbox(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    target_url: str | None = None,
    callback_timeout_s: float = 5.0,
    callback_attempts: int = 3,
    app_loader: AppLoader | None = None,
    apps: Iterable[AppCredentials] = (),
) -> Iterator[RunningSandbox]:
    """Serve a sandbox in a background thread for the duration of the ``with`` block.

    Args:
        host: Interface to bind.
        port: Port to bind; 0 picks a free one.
        target_url: Base URL of the service receiving callbacks (changeable later through ``state.callbacks``).
        callback_timeout_s: Seconds a callback waits for the service before trying again.
        callback_attempts: Tries per callback in all.
        app_loader: Loads apps on an unknown appid (see :func:`create_sandbox_app`).
        apps: Apps to register before serving.

    Yields:
        ``RunningSandbox(base_url, state)``.
    """
    app = create_sandbox_app(
        target_url=target_url,
        callback_timeout_s=callback_timeout_s,
        callback_attempts=callback_attempts,
        app_loader=app_loader,
    )
    state: SandboxState = app.extensions[EXTENSION_KEY]
    register_apps(state, apps)
    server = make_sandbox_server(app, host, port)
    # A short poll interval keeps shutdown quick; tests start and stop many sandboxes.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="wechat-sandbox", daemon=True)
    thread.start()
    try:
        yield RunningSandbox(f"http://{host}:{server.port}", state)
    finally:
        state.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
