"""Member-centre fixtures: a running WeChat sandbox with one official account and one mini-program registered on
both sides, the app pointed at it, and helpers that log sandbox users in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask.testing import FlaskClient

from scrm.audit import Actor
from scrm.config import Config
from scrm.secretbox import SecretBox
from scrm.wechat.apps import AppCredentials
from scrm.wechat.sandbox import RunningSandbox, SandboxClient, running_sandbox
from scrm.wechat_apps import register_app
from tests.conftest import TEST_SECRET_KEY, make_config

OA = AppCredentials(
    appid="wxCENTREOA00000001",
    secret="centre-oa-secret",
    kind="oa",
    token="centreToken",
    encoding_aes_key="CentreKeyAbCdEfGhIjKlMnOpQrStUvWxYz01234567",
    mode="safe",
    original_id="gh_centre00001",
)
MP = AppCredentials(appid="wxCENTREMP00000001", secret="centre-mp-secret", kind="miniprogram")
FRONT_END = "https://h5.example.com/member/"


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox(apps=[OA, MP], callback_timeout_s=2.0) as running:
        yield running


@pytest.fixture
def wechat(sandbox: RunningSandbox) -> SandboxClient:
    return SandboxClient(sandbox.base_url)


@pytest.fixture
def config(sandbox: RunningSandbox) -> Config:
    return make_config(
        wechat_api_base=sandbox.base_url,
        wechat_open_base=sandbox.base_url,
        sms_backend="sandbox",
        member_oauth_redirect_allowlist=FRONT_END,
    )


@pytest.fixture
def apps(session: Any) -> None:
    """The two apps in `wechat_apps`, as staff would register them."""
    box = SecretBox(TEST_SECRET_KEY)
    for app in (OA, MP):
        register_app(
            session,
            box,
            appid=app.appid,
            kind=app.kind,
            secret=app.secret,
            token=app.token,
            aes_key=app.encoding_aes_key,
            original_id=app.original_id,
            actor=Actor.system(),
        )
    session.commit()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def mp_login(client: FlaskClient, wechat: SandboxClient, user_id: str) -> str:
    """Log `user_id` in through the mini-program; returns the member token."""
    code = wechat.login_code(user_id, MP.appid)
    response = client.post("/api/v1/member/session/miniprogram", json={"appid": MP.appid, "code": code})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["token"]


def oauth_login(
    client: FlaskClient, user_id: str, *, scope: str = "snsapi_userinfo", redirect: str | None = None
) -> Any:
    """Walk the OA OAuth dance as `user_id` (following the sandbox's authorize redirect); returns the callback's
    response."""
    query = {"appid": OA.appid, "scope": scope, **({"redirect": redirect} if redirect else {})}
    start = client.get("/api/v1/member/session/oauth/start", query_string=query)
    assert start.status_code == 302, start.get_json()
    authorize = requests.get(
        start.headers["Location"].split("#", 1)[0], params={"sandbox_user": user_id}, allow_redirects=False, timeout=10
    )
    assert authorize.status_code == 302, authorize.text
    back = urlsplit(authorize.headers["Location"])
    return client.get(back.path, query_string=parse_qs(back.query))
