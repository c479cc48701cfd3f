"""Fixtures for the WeChat gateway and sandbox tests: real Redis, a sandbox on 127.0.0.1, a callback receiver."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import pytest
import redis
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from scrm.wechat.apps import AppCredentials, StaticAppDirectory
from scrm.wechat.gateway import WeChatGateway
from scrm.wechat.sandbox import RunningSandbox, running_sandbox
from scrm.wechat.sandbox.client import SandboxClient
from scrm.wechat.sandbox.server import QuietRequestHandler
from scrm.wechat.tokens import RedisTokenStore

REDIS_URL = os.environ.get("SCRM_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
#: Keys of this test process; pytest-xdist workers share the database, so each keeps to its own namespace.
REDIS_NAMESPACE = f"scrm-test:{_XDIST_WORKER or 'main'}"
TOKEN_PREFIX = f"{REDIS_NAMESPACE}:wechat:token"

# Test credentials: made up, but shaped like the real thing so the sandbox and wechatpy accept them.
OA_SAFE = AppCredentials(
    appid="wx5afe000000000001",
    secret="5afe5ecret0000000000000000000001",
    kind="oa",
    token="safeCallbackToken01",
    encoding_aes_key="SafeAesKey0123456789abcdefghijklmnopqrstuvw",
    mode="safe",
    original_id="gh_5afe00000001",
    name="Safe OA",
)
OA_COMPAT = AppCredentials(
    appid="wxc0a7000000000002",
    secret="c0a75ecret0000000000000000000002",
    kind="oa",
    token="compatCallbackToken2",
    encoding_aes_key="CompatAesKey0123456789abcdefghijklmnopqrstu",
    mode="compat",
    original_id="gh_c0a700000002",
)
OA_PLAIN = AppCredentials(
    appid="wxb1a1000000000003",
    secret="b1a15ecret0000000000000000000003",
    kind="oa",
    token="plainCallbackToken03",
    mode="plain",
    original_id="gh_b1a100000003",
)
MINIPROGRAM = AppCredentials(
    appid="wx3141000000000004",
    secret="31415ecret0000000000000000000004",
    kind="miniprogram",
    name="Mini",
)
ALL_APPS = (OA_SAFE, OA_COMPAT, OA_PLAIN, MINIPROGRAM)


def _clear_redis(client: redis.Redis) -> None:
    if _XDIST_WORKER is None:
        client.flushdb()
    else:  # flushing would wipe the keys of tests running in the other workers
        for key in client.scan_iter(f"{REDIS_NAMESPACE}:*"):
            client.delete(key)


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    _clear_redis(client)
    yield client
    _clear_redis(client)
    client.close()


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox(apps=ALL_APPS, callback_timeout_s=2.0) as running:
        yield running


@pytest.fixture
def control(sandbox: RunningSandbox) -> SandboxClient:
    return SandboxClient(sandbox.base_url)


@pytest.fixture
def make_gateway(sandbox: RunningSandbox, redis_client: redis.Redis) -> Callable[..., WeChatGateway]:
    """Build gateways on the sandbox; each gets its own token store object, like a separate process would."""

    def build(*, tokens: object | None = None, **options: float) -> WeChatGateway:
        store = tokens if tokens is not None else RedisTokenStore(redis_client, prefix=TOKEN_PREFIX)
        options.setdefault("connect_timeout", 2.0)
        options.setdefault("read_timeout", 3.0)
        return WeChatGateway(
            StaticAppDirectory(ALL_APPS), store, api_base=sandbox.base_url, open_base=sandbox.base_url, **options
        )

    return build


@pytest.fixture
def gateway(make_gateway: Callable[..., WeChatGateway]) -> WeChatGateway:
    return make_gateway()


@pytest.fixture
def user(control: SandboxClient) -> dict:
    return control.create_user("alice", phone="13800138000", nickname="Alice")


@pytest.fixture
def follower(control: SandboxClient, user: dict) -> dict:
    """Alice, following the safe-mode official account."""
    control.follow(user["user_id"], OA_SAFE.appid)
    return control.user(user["user_id"])


@dataclass
class ReceivedCallback:
    path: str
    query: dict[str, str]
    body: str
    content_type: str
    received_at: float


@dataclass
class CallbackReceiver:
    """A stand-in for the service's callback endpoint: records every request, can stall, replies as told."""

    base_url: str = ""
    received: list[ReceivedCallback] = field(default_factory=list)
    #: Seconds to stall each of the next requests, in order (a stall longer than the sandbox's timeout → retry).
    stalls: list[float] = field(default_factory=list)
    reply: Callable[[ReceivedCallback], str] = lambda callback: "success"
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict, start_response: Callable) -> object:
        request = Request(environ)
        callback = ReceivedCallback(
            path=request.path,
            query=dict(parse_qsl(request.query_string.decode())),
            body=request.get_data(as_text=True),
            content_type=request.content_type or "",
            received_at=time.monotonic(),
        )
        with self._lock:
            self.received.append(callback)
            stall = self.stalls.pop(0) if self.stalls else 0.0
        if stall:
            time.sleep(stall)
        return Response(self.reply(callback), mimetype="text/xml")(environ, start_response)


@pytest.fixture
def receiver(sandbox: RunningSandbox, control: SandboxClient) -> Iterator[CallbackReceiver]:
    """A receiver on its own port, set as the sandbox's callback target."""
    callback_receiver = CallbackReceiver()
    server = make_server("127.0.0.1", 0, callback_receiver, threaded=True, request_handler=QuietRequestHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="callback-receiver", daemon=True)
    thread.start()
    callback_receiver.base_url = f"http://127.0.0.1:{server.port}"
    control.configure(target_url=callback_receiver.base_url)
    try:
        yield callback_receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
