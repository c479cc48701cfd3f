"""`make run`'s path: the `scrm` console script migrates, seeds and serves the embedded default with the sandbox."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from openapi_spec_validator import validate

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


def _wait_for(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"scrm serve exited early: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            _get(url)
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout_s}s")


def test_serve_on_embedded_defaults_answers_health_and_a_valid_openapi(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SCRM_ENV": "dev",
        "SCRM_DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}",
        "SCRM_LOG_JSON": "0",
    }
    env.pop("SCRM_REDIS_URL", None)
    scrm = [sys.executable, "-m", "scrm"]
    for command in (["db", "upgrade"], ["demo"]):
        subprocess.run(scrm + command, env=env, check=True, capture_output=True, timeout=60)
    port, sandbox_port = _free_port(), _free_port()
    process = subprocess.Popen(
        [*scrm, "serve", "--host", "127.0.0.1", "--port", str(port), "--sandbox", str(sandbox_port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(f"{base}/healthz", process)
        status, body = _get(f"{base}/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        status, body = _get(f"{base}/api/v1/openapi.json")
        assert status == 200
        validate(json.loads(body))
        # The sandbox beside it knows the demo apps registered by `scrm demo`.
        status, body = _get(
            f"http://127.0.0.1:{sandbox_port}/cgi-bin/token?grant_type=client_credential&appid=wxUNKNOWN&secret=x"
        )
        assert json.loads(body)["errcode"] == 40013
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()
