"""The sandbox's WeChat endpoints over raw HTTP: credentials, token rotation, codes, quotas, shapes."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from scrm.wechat.sandbox import RunningSandbox
from scrm.wechat.sandbox.client import SandboxClient, SandboxControlError

from .conftest import MINIPROGRAM, OA_PLAIN, OA_SAFE


class WeChatHttp:
    """Calls the sandbox the way any WeChat client would."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        response = requests.get(self.base_url + path, params=params, timeout=5)
        assert response.status_code == 200
        return response.json()

    def post(self, path: str, body: Any, **params: Any) -> dict[str, Any]:
        response = requests.post(self.base_url + path, json=body, params=params, timeout=5)
        assert response.status_code == 200
        return response.json()

    def token(self, appid: str = OA_SAFE.appid, secret: str = OA_SAFE.secret) -> dict[str, Any]:
        return self.get("/cgi-bin/token", grant_type="client_credential", appid=appid, secret=secret)

    def stable_token(self, appid: str = OA_SAFE.appid, secret: str = OA_SAFE.secret, force: bool = False) -> dict:
        body = {"grant_type": "client_credential", "appid": appid, "secret": secret, "force_refresh": force}
        return self.post("/cgi-bin/stable_token", body)

    def errcode_of_user_info(self, token: str, openid: str = "o-none", **extra: str) -> int:
        return self.get("/cgi-bin/user/info", access_token=token, openid=openid, **extra).get("errcode", 0)


@pytest.fixture
def wechat(sandbox: RunningSandbox) -> WeChatHttp:
    return WeChatHttp(sandbox.base_url)


@pytest.fixture
def clock(sandbox: RunningSandbox) -> list[float]:
    """The sandbox's clock as a mutable offset: ``clock[0] += 301`` moves time."""
    offset = [0.0]
    real_clock = sandbox.state.clock
    sandbox.state.clock = lambda: real_clock() + offset[0]
    return offset


def test_unknown_appid_and_wrong_secret(wechat: WeChatHttp) -> None:
    assert wechat.token(appid="wx-unknown")["errcode"] == 40013
    assert wechat.token(secret="wrong")["errcode"] == 40125
    assert wechat.stable_token(appid="wx-unknown")["errcode"] == 40013
    assert wechat.stable_token(secret="wrong")["errcode"] == 40125
    assert wechat.get("/cgi-bin/token", grant_type="password", appid=OA_SAFE.appid)["errcode"] == 40002
    assert wechat.get("/cgi-bin/token", grant_type="client_credential")["errcode"] == 41002


def test_errors_are_http_200_with_errcode_and_a_rid(wechat: WeChatHttp) -> None:
    answer = wechat.token(secret="wrong")
    assert answer["errmsg"].startswith("invalid appsecret rid: ")


def test_cgi_bin_token_overlaps_the_previous_token_for_five_minutes(
    wechat: WeChatHttp, clock: list[float], follower: dict
) -> None:
    openid = follower["openids"][OA_SAFE.appid]
    old = wechat.token()["access_token"]
    new = wechat.token()["access_token"]
    assert old != new
    assert len(new) >= 100
    assert wechat.errcode_of_user_info(old, openid) == 0
    clock[0] += 301
    assert wechat.errcode_of_user_info(old, openid) == 40001  # replaced, past the overlap
    assert wechat.errcode_of_user_info(new, openid) == 0
    clock[0] += 7200
    assert wechat.errcode_of_user_info(new, openid) == 42001  # expired


def test_stable_token_is_the_same_until_renewal_or_force(
    wechat: WeChatHttp, clock: list[float], follower: dict
) -> None:
    openid = follower["openids"][OA_SAFE.appid]
    first = wechat.stable_token()
    assert first["expires_in"] == 7200
    clock[0] += 100
    second = wechat.stable_token()
    assert second["access_token"] == first["access_token"]
    assert second["expires_in"] == 7100
    clock[0] += 6850  # under 5 minutes left: WeChat renews, the old token stays valid to its end
    renewed = wechat.stable_token()
    assert renewed["access_token"] != first["access_token"]
    assert wechat.errcode_of_user_info(first["access_token"], openid) == 0
    forced = wechat.stable_token(force=True)
    assert forced["access_token"] != renewed["access_token"]
    assert wechat.errcode_of_user_info(renewed["access_token"], openid) == 40001


def test_stable_and_plain_tokens_are_separate(wechat: WeChatHttp, follower: dict) -> None:
    stable = wechat.stable_token()["access_token"]
    wechat.token()
    wechat.token()
    assert wechat.errcode_of_user_info(stable, follower["openids"][OA_SAFE.appid]) == 0


def test_force_refresh_is_limited_to_twenty_a_day(wechat: WeChatHttp) -> None:
    for _ in range(20):
        assert "access_token" in wechat.stable_token(force=True)
    assert wechat.stable_token(force=True)["errcode"] == 45009


def test_token_problems(wechat: WeChatHttp, control: SandboxClient) -> None:
    assert wechat.get("/cgi-bin/user/info", openid="x")["errcode"] == 41001
    assert wechat.errcode_of_user_info("not-a-token") == 40001
    token = wechat.stable_token()["access_token"]
    control.expire_tokens(OA_SAFE.appid)
    assert wechat.errcode_of_user_info(token) == 42001


def test_a_token_of_another_app(wechat: WeChatHttp, control: SandboxClient, user: dict) -> None:
    oa_token = wechat.stable_token()["access_token"]
    assert wechat.errcode_of_user_info(oa_token, appid=OA_PLAIN.appid) == 40001
    mp_token = wechat.stable_token(MINIPROGRAM.appid, MINIPROGRAM.secret)["access_token"]
    control.login_code(user["user_id"], MINIPROGRAM.appid)
    body = {"appid": OA_SAFE.appid, "openid": user["openids"][MINIPROGRAM.appid], "scene": 1, "client_ip": "1.2.3.4"}
    assert wechat.post("/wxa/getuserriskrank", body, access_token=mp_token)["errcode"] == 40001
    assert wechat.errcode_of_user_info(mp_token) == 48001  # an OA-only API


def test_qrcode_create_shapes(wechat: WeChatHttp) -> None:
    token = wechat.stable_token()["access_token"]
    temporary = wechat.post(
        "/cgi-bin/qrcode/create",
        {"expire_seconds": 9_999_999, "action_name": "QR_SCENE", "action_info": {"scene": {"scene_id": 123}}},
        access_token=token,
    )
    assert set(temporary) == {"ticket", "expire_seconds", "url"}
    assert temporary["expire_seconds"] == 2_592_000
    permanent = wechat.post(
        "/cgi-bin/qrcode/create",
        {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": "desk"}}},
        access_token=token,
    )
    assert set(permanent) == {"ticket", "url"}
    unwrapped = wechat.post(  # a known pitfall: no "scene" wrapper means scene 0
        "/cgi-bin/qrcode/create",
        {"expire_seconds": 60, "action_name": "QR_SCENE", "action_info": {"scene_id": 7}},
        access_token=token,
    )
    assert "ticket" in unwrapped
    too_long = {"action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "x" * 65}}}
    assert wechat.post("/cgi-bin/qrcode/create", too_long, access_token=token)["errcode"] == 40097


def test_expired_qr_ticket(
    wechat: WeChatHttp, control: SandboxClient, clock: list[float], user: dict, sandbox: RunningSandbox
) -> None:
    token = wechat.stable_token()["access_token"]
    body = {"expire_seconds": 60, "action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "short"}}}
    ticket = wechat.post("/cgi-bin/qrcode/create", body, access_token=token)["ticket"]
    clock[0] += 61
    assert (
        requests.get(f"{sandbox.base_url}/cgi-bin/showqrcode", params={"ticket": ticket}, timeout=5).status_code == 404
    )
    with pytest.raises(SandboxControlError) as raised:
        control.scan(user["user_id"], ticket)
    assert raised.value.status == 410


def test_the_qr_url_leads_to_the_console(wechat: WeChatHttp, sandbox: RunningSandbox) -> None:
    token = wechat.stable_token()["access_token"]
    body = {"expire_seconds": 60, "action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "s"}}}
    created = wechat.post("/cgi-bin/qrcode/create", body, access_token=token)
    landing = requests.get(created["url"], timeout=5)
    assert landing.status_code == 200
    assert "WeChat sandbox" in landing.text
    assert "ticket=" in landing.url


def test_codes_are_single_use_and_app_bound(wechat: WeChatHttp, control: SandboxClient, user: dict) -> None:
    code = control.login_code(user["user_id"], MINIPROGRAM.appid)
    params = {"appid": MINIPROGRAM.appid, "secret": MINIPROGRAM.secret, "grant_type": "authorization_code"}
    assert "session_key" in wechat.get("/sns/jscode2session", js_code=code, **params)
    assert wechat.get("/sns/jscode2session", js_code=code, **params)["errcode"] == 40163
    other = control.login_code(user["user_id"], MINIPROGRAM.appid)
    wrong_app = {**params, "appid": OA_SAFE.appid, "secret": OA_SAFE.secret}
    assert wechat.get("/sns/jscode2session", js_code=other, **wrong_app)["errcode"] == 40013
    assert wechat.get("/sns/jscode2session", js_code="", **params)["errcode"] == 41008


def test_bad_json_is_47001(wechat: WeChatHttp, sandbox: RunningSandbox) -> None:
    token = wechat.stable_token()["access_token"]
    response = requests.post(
        f"{sandbox.base_url}/cgi-bin/menu/create", params={"access_token": token}, data=b"{not json", timeout=5
    )
    assert response.json()["errcode"] == 47001


def test_menu_shapes(wechat: WeChatHttp) -> None:
    token = wechat.stable_token()["access_token"]
    assert wechat.get("/cgi-bin/menu/get", access_token=token)["errcode"] == 46003
    assert wechat.get("/cgi-bin/get_current_selfmenu_info", access_token=token)["is_menu_open"] == 0
    button = {"type": "click", "name": "A", "key": "A"}
    assert wechat.post("/cgi-bin/menu/create", {"button": [button] * 4}, access_token=token)["errcode"] == 40016
    assert wechat.post("/cgi-bin/menu/create", {"button": [button]}, access_token=token)["errcode"] == 0
    info = wechat.get("/cgi-bin/get_current_selfmenu_info", access_token=token)
    assert info == {"is_menu_open": 1, "selfmenu_info": {"button": [button]}}


def test_user_tags_limits(wechat: WeChatHttp, follower: dict) -> None:
    token = wechat.stable_token()["access_token"]
    openid = follower["openids"][OA_SAFE.appid]
    tagids = [
        wechat.post("/cgi-bin/tags/create", {"tag": {"name": f"t{n}"}}, access_token=token)["tag"]["id"]
        for n in range(21)
    ]
    for tagid in tagids[:20]:
        assert (
            wechat.post(
                "/cgi-bin/tags/members/batchtagging", {"openid_list": [openid], "tagid": tagid}, access_token=token
            )["errcode"]
            == 0
        )
    over = {"openid_list": [openid], "tagid": tagids[20]}
    assert wechat.post("/cgi-bin/tags/members/batchtagging", over, access_token=token)["errcode"] == 45059
    too_many = {"openid_list": [openid] * 51, "tagid": tagids[0]}
    assert wechat.post("/cgi-bin/tags/members/batchtagging", too_many, access_token=token)["errcode"] == 40032
    long_name = {"tag": {"name": "x" * 31}}
    assert wechat.post("/cgi-bin/tags/create", long_name, access_token=token)["errcode"] == 45158
