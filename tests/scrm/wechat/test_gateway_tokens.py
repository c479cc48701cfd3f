"""The gateway's token lifecycle and transport: caching, one refresh and one retry, single-flight, failures."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

import scrm
from scrm.wechat.apps import StaticAppDirectory
from scrm.wechat.errors import (
    AppMisconfigured,
    InvalidCredential,
    QuotaExceeded,
    RateLimited,
    WeChatTimeout,
    WeChatUnavailable,
)
from scrm.wechat.gateway import WeChatGateway
from scrm.wechat.sandbox import RunningSandbox
from scrm.wechat.sandbox.client import SandboxClient
from scrm.wechat.tokens import LocalTokenStore, RedisTokenStore

from .conftest import ALL_APPS, MINIPROGRAM, OA_SAFE, REDIS_URL, TOKEN_PREFIX


def token_fetches(control: SandboxClient, appid: str = OA_SAFE.appid) -> int:
    return control.stats()["token_fetches"].get(appid, 0)


def test_access_token_is_a_cached_stable_token(
    gateway: WeChatGateway, control: SandboxClient, redis_client: redis.Redis
) -> None:
    first = gateway.access_token(OA_SAFE.appid)
    assert gateway.access_token(OA_SAFE.appid) == first
    assert token_fetches(control) == 1
    assert control.stats()["calls"] == {"/cgi-bin/stable_token": 1}
    # Cached for expires_in - 300 seconds.
    ttl_ms = redis_client.pttl(f"{TOKEN_PREFIX}:{OA_SAFE.appid}")
    assert 6_890_000 < ttl_ms <= 6_900_000


def test_each_app_has_its_own_token(gateway: WeChatGateway) -> None:
    assert gateway.access_token(OA_SAFE.appid) != gateway.access_token(MINIPROGRAM.appid)


def test_token_expired_mid_flight_is_refreshed_once_and_the_call_succeeds(
    gateway: WeChatGateway, control: SandboxClient, follower: dict
) -> None:
    openid = follower["openids"][OA_SAFE.appid]
    stale = gateway.access_token(OA_SAFE.appid)
    assert control.expire_tokens(OA_SAFE.appid) == 1

    info = gateway.user_info(OA_SAFE.appid, openid)

    assert info.subscribed
    assert gateway.access_token(OA_SAFE.appid) != stale
    assert token_fetches(control) == 2
    assert control.stats()["calls"]["/cgi-bin/user/info"] == 2


@pytest.mark.parametrize("store_kind", ["redis", "local"])
def test_twenty_concurrent_calls_with_an_expired_token_cause_one_refresh(
    make_gateway: Callable[..., WeChatGateway],
    redis_client: redis.Redis,
    control: SandboxClient,
    follower: dict,
    store_kind: str,
) -> None:
    openid = follower["openids"][OA_SAFE.appid]
    if store_kind == "redis":
        # One gateway and one store object per thread: as separate processes would have, sharing only Redis.
        gateways = [make_gateway(tokens=RedisTokenStore(redis_client, prefix=TOKEN_PREFIX)) for _ in range(20)]
    else:
        shared = make_gateway(tokens=LocalTokenStore())
        gateways = [shared] * 20
    gateways[0].access_token(OA_SAFE.appid)
    control.expire_tokens(OA_SAFE.appid)
    start = threading.Barrier(20)
    outcomes: list[object] = []

    def call(each: WeChatGateway) -> None:
        start.wait()
        try:
            outcomes.append(each.user_info(OA_SAFE.appid, openid).subscribed)
        except Exception as error:  # collected and asserted below
            outcomes.append(error)

    threads = [threading.Thread(target=call, args=(each,)) for each in gateways]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes == [True] * 20
    assert token_fetches(control) == 2  # the first fetch, then exactly one refresh


def test_a_token_refused_twice_raises_after_one_retry_instead_of_recursing(
    gateway: WeChatGateway, control: SandboxClient, follower: dict
) -> None:
    openid = follower["openids"][OA_SAFE.appid]
    gateway.access_token(OA_SAFE.appid)
    control.inject_errcode("/cgi-bin/user/info", 40001, count=5)

    with pytest.raises(InvalidCredential) as raised:
        gateway.user_info(OA_SAFE.appid, openid)

    assert raised.value.errcode == 40001
    stats = control.stats()
    assert stats["calls"]["/cgi-bin/user/info"] == 2
    assert stats["token_fetches"][OA_SAFE.appid] == 2


def test_force_refresh_replaces_the_token_at_wechat(
    gateway: WeChatGateway, sandbox: RunningSandbox, follower: dict
) -> None:
    old = gateway.access_token(OA_SAFE.appid)
    new = gateway.force_refresh_token(OA_SAFE.appid)
    assert new != old
    assert gateway.access_token(OA_SAFE.appid) == new
    assert gateway.user_info(OA_SAFE.appid, follower["openids"][OA_SAFE.appid]).subscribed


def test_a_stalled_wechat_fails_with_a_timeout_within_the_read_timeout(
    make_gateway: Callable[..., WeChatGateway], control: SandboxClient, follower: dict
) -> None:
    gateway = make_gateway(read_timeout=0.5)
    gateway.access_token(OA_SAFE.appid)
    control.stall("/cgi-bin/user/info", 3)
    started = time.monotonic()

    with pytest.raises(WeChatTimeout) as raised:
        gateway.user_info(OA_SAFE.appid, follower["openids"][OA_SAFE.appid])

    assert time.monotonic() - started < 0.5 + 0.4
    assert raised.value.errcode is None
    assert "/cgi-bin/user/info" in str(raised.value)
    assert raised.value.__context__ is None
    assert raised.value.__cause__ is None


def test_a_stalled_token_fetch_times_out_too(
    make_gateway: Callable[..., WeChatGateway], control: SandboxClient
) -> None:
    gateway = make_gateway(read_timeout=0.3)
    control.stall("/cgi-bin/stable_token", 2)
    with pytest.raises(WeChatTimeout):
        gateway.access_token(OA_SAFE.appid)


@pytest.mark.parametrize(
    ("errcode", "error_class"), [(-1, WeChatUnavailable), (45009, QuotaExceeded), (45011, RateLimited)]
)
def test_injected_errcodes_surface_as_typed_errors(
    gateway: WeChatGateway, control: SandboxClient, follower: dict, errcode: int, error_class: type
) -> None:
    control.inject_errcode("/cgi-bin/user/info", errcode)
    with pytest.raises(error_class):
        gateway.user_info(OA_SAFE.appid, follower["openids"][OA_SAFE.appid])


def test_http_5xx_is_unavailable(gateway: WeChatGateway, control: SandboxClient, follower: dict) -> None:
    control.inject_http_status("/cgi-bin/user/info", 502)
    with pytest.raises(WeChatUnavailable) as raised:
        gateway.user_info(OA_SAFE.appid, follower["openids"][OA_SAFE.appid])
    assert "502" in str(raised.value)


def test_an_unreachable_wechat_is_unavailable_not_a_timeout() -> None:
    gateway = WeChatGateway(StaticAppDirectory(ALL_APPS), LocalTokenStore(), api_base="http://127.0.0.1:9")
    with pytest.raises(WeChatUnavailable) as raised:
        gateway.access_token(OA_SAFE.appid)
    assert not isinstance(raised.value, WeChatTimeout)
    assert OA_SAFE.secret not in str(raised.value)
    assert "127.0.0.1:9" not in str(raised.value)


def test_wrong_secret_and_unknown_app_are_misconfiguration(sandbox: RunningSandbox) -> None:
    wrong_secret = OA_SAFE.__class__(appid=OA_SAFE.appid, secret="wrong", kind="oa")
    unknown_app = OA_SAFE.__class__(appid="wx-not-registered", secret="s", kind="oa")
    gateway = WeChatGateway(
        StaticAppDirectory([wrong_secret, unknown_app]), LocalTokenStore(), api_base=sandbox.base_url
    )
    with pytest.raises(AppMisconfigured) as wrong:
        gateway.access_token(OA_SAFE.appid)
    assert wrong.value.errcode == 40125
    with pytest.raises(AppMisconfigured) as unknown:
        gateway.access_token("wx-not-registered")
    assert unknown.value.errcode == 40013


def test_an_appid_missing_from_the_directory_fails_before_any_request(
    gateway: WeChatGateway, control: SandboxClient
) -> None:
    with pytest.raises(AppMisconfigured):
        gateway.access_token("wx-nowhere")
    assert control.stats()["calls"] == {}


_CHILD_PROCESS = """
import json, sys, time
import redis
from scrm.wechat import AppCredentials, RedisTokenStore, StaticAppDirectory, WeChatGateway
base_url, redis_url, token_prefix, app_fields, openid, start_at = sys.argv[1:]
app = AppCredentials(**json.loads(app_fields))
tokens = RedisTokenStore(redis.Redis.from_url(redis_url), prefix=token_prefix)
gateway = WeChatGateway(StaticAppDirectory([app]), tokens, api_base=base_url)
time.sleep(max(0.0, float(start_at) - time.time()))
print(gateway.user_info(app.appid, openid).subscribed)
"""


def test_separate_processes_sharing_redis_refresh_once(
    gateway: WeChatGateway, sandbox: RunningSandbox, control: SandboxClient, follower: dict
) -> None:
    gateway.access_token(OA_SAFE.appid)
    control.expire_tokens(OA_SAFE.appid)
    app_fields = json.dumps(dataclasses.asdict(OA_SAFE))
    repo_root = Path(scrm.__file__).resolve().parents[1]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo_root), os.environ.get("PYTHONPATH", "")])}
    start_at = str(time.time() + 2.0)  # time for the children to import, then they call together
    arguments = [sandbox.base_url, REDIS_URL, TOKEN_PREFIX, app_fields, follower["openids"][OA_SAFE.appid], start_at]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD_PROCESS, *arguments], env=environment, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outputs = [child.communicate(timeout=30)[0].strip() for child in children]
    assert outputs == ["True"] * 4
    assert all(child.returncode == 0 for child in children)
    assert token_fetches(control) == 2
