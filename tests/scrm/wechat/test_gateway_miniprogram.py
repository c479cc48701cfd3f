"""Mini-program APIs through the gateway: login code exchange, phone number, mini-program codes, risk rank."""

from __future__ import annotations

import struct

import pytest

from scrm.wechat.errors import (
    AppMisconfigured,
    CodeUsed,
    InvalidArgument,
    InvalidCode,
    UserNotActive,
    WatermarkMismatch,
)
from scrm.wechat.gateway import WeChatGateway
from scrm.wechat.sandbox import RunningSandbox
from scrm.wechat.sandbox.client import SandboxClient, SandboxControlError

from .conftest import MINIPROGRAM, OA_SAFE


def test_jscode2session_returns_openid_unionid_and_a_hidden_session_key(
    gateway: WeChatGateway, control: SandboxClient, user: dict
) -> None:
    session = gateway.jscode2session(MINIPROGRAM.appid, control.login_code(user["user_id"], MINIPROGRAM.appid))
    assert session.openid == control.openid(user["user_id"], MINIPROGRAM.appid)
    assert session.unionid == user["unionid"]
    assert session.session_key
    assert session.session_key not in repr(session)
    # No access token is fetched for a code exchange.
    assert control.stats()["token_fetches"] == {}


def test_a_used_login_code(gateway: WeChatGateway, control: SandboxClient, user: dict) -> None:
    code = control.login_code(user["user_id"], MINIPROGRAM.appid)
    gateway.jscode2session(MINIPROGRAM.appid, code)
    with pytest.raises(CodeUsed) as raised:
        gateway.jscode2session(MINIPROGRAM.appid, code)
    assert raised.value.errcode == 40163


def test_an_invalid_login_code(gateway: WeChatGateway) -> None:
    with pytest.raises(InvalidCode) as raised:
        gateway.jscode2session(MINIPROGRAM.appid, "0a1b2c-never-issued")
    assert raised.value.errcode == 40029


def test_an_expired_login_code(
    gateway: WeChatGateway, control: SandboxClient, sandbox: RunningSandbox, user: dict
) -> None:
    code = control.login_code(user["user_id"], MINIPROGRAM.appid)
    real_clock = sandbox.state.clock
    sandbox.state.clock = lambda: real_clock() + 301
    with pytest.raises(InvalidCode):
        gateway.jscode2session(MINIPROGRAM.appid, code)


def test_each_login_rotates_the_session_key(gateway: WeChatGateway, control: SandboxClient, user: dict) -> None:
    first = gateway.jscode2session(MINIPROGRAM.appid, control.login_code(user["user_id"], MINIPROGRAM.appid))
    second = gateway.jscode2session(MINIPROGRAM.appid, control.login_code(user["user_id"], MINIPROGRAM.appid))
    assert first.openid == second.openid
    assert first.session_key != second.session_key


def test_get_phone_number(gateway: WeChatGateway, control: SandboxClient, user: dict) -> None:
    code = control.phone_code(user["user_id"], MINIPROGRAM.appid)
    phone = gateway.get_phone_number(MINIPROGRAM.appid, code, openid=control.openid(user["user_id"], MINIPROGRAM.appid))
    assert (phone.phone_number, phone.pure_phone_number, phone.country_code) == ("13800138000", "13800138000", "86")
    with pytest.raises(CodeUsed):
        gateway.get_phone_number(MINIPROGRAM.appid, code)


def test_a_phone_number_watermarked_for_another_app_is_refused(
    gateway: WeChatGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = {
        "errcode": 0,
        "phone_info": {
            "phoneNumber": "13800138000",
            "purePhoneNumber": "13800138000",
            "countryCode": "86",
            "watermark": {"timestamp": 1637744274, "appid": "wx-someone-else"},
        },
    }
    monkeypatch.setattr(gateway._transport, "call", lambda *args, **kwargs: answer)
    with pytest.raises(WatermarkMismatch):
        gateway.get_phone_number(MINIPROGRAM.appid, "code")


def test_a_foreign_phone_number_carries_its_prefix(gateway: WeChatGateway, control: SandboxClient) -> None:
    control.create_user("bob", phone="2025550123", country_code="1")
    phone = gateway.get_phone_number(MINIPROGRAM.appid, control.phone_code("bob", MINIPROGRAM.appid))
    assert (phone.phone_number, phone.country_code) == ("+12025550123", "1")


def test_phone_code_needs_a_phone(control: SandboxClient) -> None:
    control.create_user("nophone")
    with pytest.raises(SandboxControlError) as raised:
        control.phone_code("nophone", MINIPROGRAM.appid)
    assert raised.value.status == 409


def test_get_wxacode_unlimited_returns_a_png(gateway: WeChatGateway) -> None:
    image = gateway.get_wxacode_unlimited(
        MINIPROGRAM.appid, "r=AbC123xyz", page="pages/index/index", env_version="trial", width=280
    )
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", image[16:24])
    assert width == height
    assert 260 <= width <= 280


@pytest.mark.parametrize("scene", ["", "x" * 33, "r=50%", "推荐人", "a b"])
def test_wxacode_scene_is_checked_locally(gateway: WeChatGateway, control: SandboxClient, scene: str) -> None:
    with pytest.raises(ValueError):
        gateway.get_wxacode_unlimited(MINIPROGRAM.appid, scene)
    assert control.stats()["calls"] == {}


def test_wxacode_unpublished_page(gateway: WeChatGateway, sandbox: RunningSandbox) -> None:
    sandbox.state.apps[MINIPROGRAM.appid].pages = {"pages/index/index"}
    with pytest.raises(InvalidArgument) as raised:
        gateway.get_wxacode_unlimited(MINIPROGRAM.appid, "r=1", page="pages/new/index")
    assert raised.value.errcode == 41030
    assert gateway.get_wxacode_unlimited(MINIPROGRAM.appid, "r=1", page="pages/new/index", check_path=False)
    with pytest.raises(ValueError):
        gateway.get_wxacode_unlimited(MINIPROGRAM.appid, "r=1", page="/pages/index/index")


def test_user_risk_rank(gateway: WeChatGateway, control: SandboxClient, user: dict) -> None:
    openid = control.openid(user["user_id"], MINIPROGRAM.appid)
    with pytest.raises(UserNotActive) as inactive:
        gateway.get_user_risk_rank(MINIPROGRAM.appid, openid, 1, "203.0.113.7")
    assert inactive.value.errcode == 61010
    control.login_code(user["user_id"], MINIPROGRAM.appid)
    control.update_user(user["user_id"], risk_rank=3)
    assert gateway.get_user_risk_rank(MINIPROGRAM.appid, openid, 1, "203.0.113.7", mobile_no="13800138000") == 3
    with pytest.raises(ValueError):
        gateway.get_user_risk_rank(MINIPROGRAM.appid, openid, 2, "203.0.113.7")


def test_miniprogram_apis_refuse_an_official_account(gateway: WeChatGateway) -> None:
    with pytest.raises(ValueError, match="official account"):
        gateway.jscode2session(OA_SAFE.appid, "code")


def test_wechat_refuses_an_oa_token_on_a_miniprogram_api(gateway: WeChatGateway, sandbox: RunningSandbox) -> None:
    # The gateway checks app kinds itself; call the transport directly to see the sandbox enforce it too.
    with pytest.raises(AppMisconfigured) as raised:
        gateway._transport.call(OA_SAFE.appid, "POST", f"{sandbox.base_url}/wxa/getwxacodeunlimit", json_body={})
    assert raised.value.errcode == 48001
