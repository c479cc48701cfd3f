"""Safe-mode callback throughput of scrm (C) against a bare Flask app (A) and the floor of a durable ack (B).

Usage: python benchmarks/callbacks.py [--duration 10] [--connections 16]
Needs PostgreSQL and Redis on 127.0.0.1 (SCRM_BENCH_DATABASE_URL, SCRM_BENCH_REDIS_URL to override), gunicorn,
and wrk (Debian: apt-get install wrk). The script creates and drops its own database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from redis import Redis
from sqlalchemy.engine import make_url

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.callback_anchors import (  # noqa: E402
    APPID,
    CALLBACK_PATH,
    ENCODING_AES_KEY,
    FLOOR_DDL,
    ORIGINAL_ID,
    TOKEN,
)

DATABASE_URL = os.environ.get(
    "SCRM_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/scrm_bench_callbacks"
)
REDIS_URL = os.environ.get("SCRM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
SECRET_KEY = "bench-secret-key-0123456789abcdef01234"

#: wrk reads the pre-built requests (one distinct, signed, encrypted message each) from files, one per thread.
WRK_SCRIPT = r"""
local counter = 0
local threads = {}
function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end
function init(args)
  requests = {}
  local headers = {["Content-Type"] = "text/xml"}
  for line in io.lines(args[1] .. id) do
    local path, body = line:match("^(.-)\t(.*)$")
    requests[#requests + 1] = wrk.format("POST", path, headers, body)
  end
  issued = 0
  wrapped = 0
end
function request()
  issued = issued + 1
  if issued > #requests then wrapped = 1 end
  return requests[((issued - 1) % #requests) + 1]
end
function done(summary, latency, requests)
  local issued, wrapped_any = {}, 0
  for _, thread in ipairs(threads) do
    issued[#issued + 1] = tostring(thread:get("issued"))
    wrapped_any = math.max(wrapped_any, thread:get("wrapped"))
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "issued": [%s], "wrapped": %d, "connect": %d, "read": %d, '
    .. '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, table.concat(issued, ", "), wrapped_any, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class SignedMessage:
    msg_id: str
    path: str
    body: bytes


@dataclass
class WrkResult:
    rps: float
    requests: int
    #: Requests each wrk thread sent, in the order of its own file.
    issued: list[int]
    wrapped: bool
    errors: int
    p50_ms: float
    p99_ms: float


@dataclass
class RateResult:
    target_rps: float
    achieved_rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    acknowledged: list[str] = field(default_factory=list)
    failed: int = 0


class MessageFactory:
    """Builds callbacks the way WeChat's servers sign and encrypt them, each with a MsgId never used before."""

    def __init__(self) -> None:
        from wechat_handlers.crypto import MessageCrypto

        self.crypto = MessageCrypto(token=TOKEN, encoding_aes_key=ENCODING_AES_KEY, appid=APPID)
        self.next_id = 7_000_000_000_000_000_000

    def build(self, count: int) -> list[SignedMessage]:
        from wechat_handlers.security import sha1_signature

        messages = []
        timestamp = str(int(time.time()))
        for _ in range(count):
            self.next_id += 1
            msg_id = str(self.next_id)
            openid = f"oBENCH{self.next_id % 100_000:022d}"
            xml = (
                f"<xml><ToUserName><![CDATA[{ORIGINAL_ID}]]></ToUserName>"
                f"<FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>{timestamp}</CreateTime>"
                f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[bench {msg_id}]]></Content>"
                f"<MsgId>{msg_id}</MsgId></xml>"
            )
            encrypt = self.crypto.encrypt(xml)
            nonce = secrets.token_hex(8)
            query = (
                f"signature={sha1_signature(TOKEN, timestamp, nonce)}&timestamp={timestamp}&nonce={nonce}"
                f"&openid={openid}&encrypt_type=aes&msg_signature={sha1_signature(TOKEN, timestamp, nonce, encrypt)}"
            )
            body = (
                f"<xml><ToUserName><![CDATA[{ORIGINAL_ID}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
            )
            messages.append(SignedMessage(msg_id, f"{CALLBACK_PATH}?{query}", body.encode()))
        return messages


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fresh_database() -> str:
    from scrm import migrate

    url = make_url(DATABASE_URL)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{url.database}"')
    rendered = url.render_as_string(hide_password=False)
    migrate.upgrade(rendered)
    with psycopg.connect(floor_dsn(rendered), autocommit=True) as connection:
        connection.execute(FLOOR_DDL)
    return rendered


def drop_database() -> None:
    url = make_url(DATABASE_URL)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


def floor_dsn(sqlalchemy_url: str) -> str:
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


def register_official_account(env: dict[str, str]) -> None:
    """Register the benchmark's safe-mode official account the way staff would, through scrm's service."""
    from scrm.app import create_app
    from scrm.audit import Actor
    from scrm.config import Config
    from scrm.secretbox import SecretBox
    from scrm.wechat_apps import register_app

    app = create_app(Config.from_env(env))
    ext = app.extensions["scrm"]
    with ext.db.transaction() as session:
        register_app(
            session,
            SecretBox(SECRET_KEY),
            appid=APPID,
            kind="oa",
            secret="benchsecret",
            actor=Actor.system(),
            token=TOKEN,
            aes_key=ENCODING_AES_KEY,
            mode="safe",
            original_id=ORIGINAL_ID,
            name="callback benchmark",
        )
    ext.db.dispose()


@contextlib.contextmanager
def gunicorn(target: str, env: dict[str, str], args: argparse.Namespace) -> Iterator[int]:
    """Serve `target` with the benchmark's gunicorn settings on a free port; stopped on exit, even on error."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        target,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(args.workers),
        "--worker-class",
        args.worker_class,
        "--threads",
        str(args.threads),
        "--backlog",
        "2048",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, env=env, cwd=REPO_ROOT, start_new_session=True)
    try:
        wait_ready(port, process)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            if sock.recv(64).startswith(b"HTTP/1.1 200"):
                return
        time.sleep(0.2)
    raise RuntimeError("gunicorn did not become ready in 30 s")


def write_wrk_files(messages: list[SignedMessage], directory: Path, threads: int, stem: str) -> str:
    prefix = directory / f"{stem}-"
    for thread in range(threads):
        with open(f"{prefix}{thread}", "w", encoding="ascii") as out:
            for message in messages[thread::threads]:
                out.write(f"{message.path}\t{message.body.decode('ascii')}\n")
    return str(prefix)


def run_wrk(port: int, data_prefix: str, script: Path, duration: float, args: argparse.Namespace) -> WrkResult:
    command = [
        "wrk",
        "-t",
        str(args.wrk_threads),
        "-c",
        str(args.connections),
        "-d",
        f"{duration:g}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}",
        "--",
        data_prefix,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("WRKJSON "))
    data = json.loads(line.removeprefix("WRKJSON "))
    errors = data["connect"] + data["read"] + data["write"] + data["status"] + data["timeout"]
    return WrkResult(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        requests=data["requests"],
        issued=data["issued"],
        wrapped=bool(data["wrapped"]),
        errors=errors,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
    )


def measure(
    name: str, port: int, factory: MessageFactory, pool: int, workdir: Path, script: Path, args: argparse.Namespace
) -> tuple[WrkResult, list[SignedMessage]]:
    """Warm up, then one closed-loop wrk run; every request a distinct message unless the pool ran out."""
    warm = factory.build(max(200, int(pool * args.warmup / (args.duration + args.warmup))))
    run_wrk(port, write_wrk_files(warm, workdir, args.wrk_threads, f"{name}-warm"), script, args.warmup, args)
    messages = factory.build(pool)
    result = run_wrk(port, write_wrk_files(messages, workdir, args.wrk_threads, name), script, args.duration, args)
    print(
        f"{name}: {result.rps:8,.0f} req/s  ({result.requests} requests, {result.errors} errors, "
        f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms{', pool wrapped' if result.wrapped else ''})",
        flush=True,
    )
    return result, messages


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    return status, body


async def constant_rate(port: int, messages: list[SignedMessage], rate: float, connections: int) -> RateResult:
    """Open-loop load: message i is due at start + i/rate; latency counts from when it was due (no coordinated
    omission), as wrk2 does. Each connection takes every n-th message, so a slow answer delays its own queue."""
    latencies: list[float] = []
    acknowledged: list[str] = []
    failed = 0
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2

    async def connection(index: int) -> None:
        nonlocal failed
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in range(index, len(messages), connections):
                due = start + i / rate
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                message = messages[i]
                writer.write(
                    b"POST %s HTTP/1.1\r\nHost: bench\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n%s"
                    % (message.path.encode(), len(message.body), message.body)
                )
                status, body = await _read_response(reader)
                latencies.append(loop.time() - due)
                if status == 200 and body == b"success":
                    acknowledged.append(message.msg_id)
                else:
                    failed += 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection(index) for index in range(connections)))
    elapsed = time.perf_counter() - began - 0.2
    ordered = sorted(latencies)
    return RateResult(
        target_rps=rate,
        achieved_rps=len(latencies) / elapsed,
        p50_ms=statistics.median(ordered) * 1000,
        p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        max_ms=ordered[-1] * 1000,
        acknowledged=acknowledged,
        failed=failed,
    )


async def redeliver(port: int, messages: list[SignedMessage]) -> int:
    """WeChat's retries of messages already acknowledged; returns how many were not answered `success`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    refused = 0
    try:
        for message in messages:
            writer.write(
                b"POST %s HTTP/1.1\r\nHost: bench\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n%s"
                % (message.path.encode(), len(message.body), message.body)
            )
            status, body = await _read_response(reader)
            refused += int(status != 200 or body != b"success")
    finally:
        writer.close()
    return refused


def inbox_counts(dsn: str, msg_ids: list[str]) -> tuple[int, int, int, int]:
    """(messages among `msg_ids` with no inbox row, extra rows beyond one per MsgId, inbox rows, outbox rows)."""
    with psycopg.connect(dsn) as connection:
        rows = dict(
            connection.execute(
                "SELECT split_part(dedup_key, ':msgid:', 2), count(*) FROM inbox WHERE appid = %s GROUP BY dedup_key",
                (APPID,),
            ).fetchall()
        )
        inbox_total = connection.execute("SELECT count(*) FROM inbox").fetchone()[0]
        outbox_total = connection.execute("SELECT count(*) FROM outbox WHERE kind = 'wechat.process_inbox'").fetchone()[
            0
        ]
    missing = sum(1 for msg_id in msg_ids if msg_id not in rows)
    extra = sum(count - 1 for count in rows.values() if count > 1)
    return missing, extra, inbox_total, outbox_total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds of each closed-loop measurement")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up before each measurement")
    parser.add_argument("--rate-duration", type=float, default=10, help="seconds of the constant-rate run of C")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections")
    parser.add_argument(
        "--rate-connections",
        type=int,
        default=64,
        help="connections of the constant-rate run (WeChat pushes over many; each carries every n-th message)",
    )
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (same for A, B and C)")
    parser.add_argument("--worker-class", default="gthread")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--only-c", action="store_true", help="measure C alone (for profiling)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")

    url = fresh_database()
    dsn = floor_dsn(url)
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "SCRM_ENV": "prod",
        "SCRM_DATABASE_URL": url,
        "SCRM_REDIS_URL": REDIS_URL,
        "SCRM_SECRET_KEY": SECRET_KEY,
        "SCRM_LOG_LEVEL": "WARNING",
        "SCRM_BENCH_FLOOR_DSN": dsn,
    }
    try:
        register_official_account(env)
    except BaseException:
        drop_database()
        raise
    factory = MessageFactory()
    print(
        f"gunicorn: {args.workers} workers, {args.worker_class} x {args.threads} threads; "
        f"load: wrk -t{args.wrk_threads} -c{args.connections}, {args.duration:g} s after {args.warmup:g} s warm-up; "
        f"PostgreSQL + Redis on 127.0.0.1",
        flush=True,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="scrm-bench-") as tmp:
            workdir = Path(tmp)
            script = workdir / "callbacks.lua"
            script.write_text(WRK_SCRIPT)
            results: dict[str, WrkResult] = {}
            ceiling = 12_000.0
            if not args.only_c:
                with gunicorn("benchmarks.callback_anchors:create_bare_app()", env, args) as port:
                    results["A"], _ = measure(
                        "A bare", port, factory, int(ceiling * args.duration), workdir, script, args
                    )
                ceiling = results["A"].rps * 1.5
                with gunicorn("benchmarks.callback_anchors:create_floor_app()", env, args) as port:
                    results["B"], _ = measure(
                        "B floor", port, factory, int(ceiling * args.duration), workdir, script, args
                    )
                    # The same constant-rate run on B, as a reference for what this machine adds to the tail.
                    rate = results["B"].rps / 2
                    time.sleep(1)
                    floor_timed = asyncio.run(
                        constant_rate(port, factory.build(int(rate * args.rate_duration)), rate, args.rate_connections)
                    )
                    print(
                        f"B at a constant {rate:,.0f} req/s (reference): p50 {floor_timed.p50_ms:.1f} ms, "
                        f"p99 {floor_timed.p99_ms:.1f} ms, max {floor_timed.max_ms:.1f} ms",
                        flush=True,
                    )
            with gunicorn("scrm.wsgi:app", env, args) as port:
                results["C"], wrk_messages = measure(
                    "C scrm", port, factory, int(ceiling * args.duration), workdir, script, args
                )
                rate = (results["B"].rps if "B" in results else results["C"].rps) / 2
                rate_messages = factory.build(int(rate * args.rate_duration))
                time.sleep(1)  # let the closed-loop run's last requests drain
                timed = asyncio.run(constant_rate(port, rate_messages, rate, args.rate_connections))
                print(
                    f"C at a constant {timed.target_rps:,.0f} req/s (half of B) over {args.rate_connections} "
                    f"connections for {args.rate_duration:g} s: achieved "
                    f"{timed.achieved_rps:,.0f} req/s, p50 {timed.p50_ms:.1f} ms, p99 {timed.p99_ms:.1f} ms, "
                    f"max {timed.max_ms:.1f} ms, {timed.failed} not acknowledged",
                    flush=True,
                )
                acked = set(timed.acknowledged)
                retries = [message for message in rate_messages if message.msg_id in acked][:500]
                refused_retries = asyncio.run(redeliver(port, retries))
            missing, extra, inbox_total, outbox_total = inbox_counts(dsn, timed.acknowledged)
            # wrk cannot tell which of its requests were answered, only how many: every answered one is stored.
            threads = args.wrk_threads
            wrk_ids = [
                message.msg_id
                for thread, sent in enumerate(results["C"].issued)
                for message in wrk_messages[thread::threads][:sent]
            ]
            wrk_missing, _, _, _ = inbox_counts(dsn, wrk_ids)
            wrk_lost = max(0, results["C"].requests - (len(wrk_ids) - wrk_missing))
    finally:
        redis.flushdb()
        drop_database()

    lost = missing + wrk_lost
    print(
        f"check: {len(timed.acknowledged)} acknowledged at constant rate, {missing} without an inbox row; "
        f"{results['C'].requests} acknowledged under wrk, {wrk_lost} unaccounted; "
        f"{len(retries)} re-deliveries, {refused_retries} not answered success; "
        f"{extra} duplicate inbox rows; inbox {inbox_total} rows, outbox {outbox_total} process rows",
        flush=True,
    )
    summary: dict[str, object] = {
        "benchmark": "callbacks",
        "c_rps": round(results["C"].rps, 1),
        "p50_ms": round(timed.p50_ms, 2),
        "p99_ms": round(timed.p99_ms, 2),
        "rate_rps": round(timed.target_rps, 1),
        "lost": lost,
        "duplicated": extra + max(0, outbox_total - inbox_total),
        "errors": sum(result.errors for result in results.values()) + timed.failed + refused_retries,
        "wrapped": any(result.wrapped for result in results.values()),
        "gunicorn": f"{args.workers}x{args.worker_class}x{args.threads}",
        "load": f"wrk -t{args.wrk_threads} -c{args.connections} -d{args.duration:g}s",
        "rate_connections": args.rate_connections,
    }
    if "B" in results:
        a, b, c = results["A"].rps, results["B"].rps, results["C"].rps
        print(f"C/B = {c / b:.2f}   C/A = {c / a:.2f}")
        summary = {
            **summary,
            "b_p99_ms_at_same_rate": round(floor_timed.p99_ms, 2),
            "a_rps": round(a, 1),
            "b_rps": round(b, 1),
            "c_over_b": round(c / b, 3),
            "c_over_a": round(c / a, 3),
        }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
