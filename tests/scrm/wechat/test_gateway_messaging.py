"""Messages through the gateway: template (with client_msg_id), subscription (OA and mini-program), custom text."""

from __future__ import annotations

import pytest

from scrm.wechat.errors import (
    CustomerServiceWindowClosed,
    InvalidArgument,
    NotSubscribed,
    QuotaExceeded,
    UserRefused,
)
from scrm.wechat.gateway import WeChatGateway
from scrm.wechat.sandbox import RunningSandbox
from scrm.wechat.sandbox.client import SandboxClient

from .conftest import MINIPROGRAM, OA_SAFE

DATA = {"thing1": {"value": "积分到账"}, "amount2": {"value": "¥12.00"}}


def test_send_template_to_a_follower(gateway: WeChatGateway, control: SandboxClient, follower: dict) -> None:
    openid = follower["openids"][OA_SAFE.appid]
    msgid = gateway.send_template(
        OA_SAFE.appid,
        openid,
        "TPL_points_01",
        DATA,
        url="https://m.example.com/points",
        miniprogram={"appid": MINIPROGRAM.appid, "pagepath": "pages/points/index"},
    )
    [sent] = control.messages(kind="template")
    assert sent["msgid"] == msgid
    assert sent["openid"] == openid
    assert sent["body"]["data"] == {"thing1": "积分到账", "amount2": "¥12.00"}
    assert sent["body"]["miniprogram"]["pagepath"] == "pages/points/index"


def test_client_msg_id_makes_a_retried_send_idempotent(
    gateway: WeChatGateway, control: SandboxClient, sandbox: RunningSandbox, follower: dict
) -> None:
    openid = follower["openids"][OA_SAFE.appid]
    first = gateway.send_template(OA_SAFE.appid, openid, "TPL1", DATA, client_msg_id="referral:7:referrer")
    again = gateway.send_template(OA_SAFE.appid, openid, "TPL1", DATA, client_msg_id="referral:7:referrer")
    assert again == first
    assert len(control.messages(kind="template")) == 1

    real_clock = sandbox.state.clock
    sandbox.state.clock = lambda: real_clock() + 601  # the dedup window is 10 minutes
    later = gateway.send_template(OA_SAFE.appid, openid, "TPL1", DATA, client_msg_id="referral:7:referrer")
    assert later != first
    assert len(control.messages(kind="template")) == 2


def test_template_to_a_non_follower(gateway: WeChatGateway, control: SandboxClient, user: dict) -> None:
    with pytest.raises(NotSubscribed):
        gateway.send_template(OA_SAFE.appid, control.openid(user["user_id"], OA_SAFE.appid), "TPL1", DATA)


def test_template_with_a_bad_template_id(gateway: WeChatGateway, follower: dict) -> None:
    with pytest.raises(InvalidArgument) as raised:
        gateway.send_template(OA_SAFE.appid, follower["openids"][OA_SAFE.appid], "bad id!", DATA)
    assert raised.value.errcode == 40037


def test_template_daily_quota(gateway: WeChatGateway, control: SandboxClient, follower: dict) -> None:
    control.set_quota("/cgi-bin/message/template/send", 1, appid=OA_SAFE.appid)
    openid = follower["openids"][OA_SAFE.appid]
    gateway.send_template(OA_SAFE.appid, openid, "TPL1", DATA)
    with pytest.raises(QuotaExceeded) as raised:
        gateway.send_template(OA_SAFE.appid, openid, "TPL1", DATA)
    assert raised.value.errcode == 45009


def test_oa_subscribe_message_spends_one_acceptance(
    gateway: WeChatGateway, control: SandboxClient, follower: dict
) -> None:
    openid = follower["openids"][OA_SAFE.appid]
    with pytest.raises(UserRefused):
        gateway.send_subscribe_message(OA_SAFE.appid, openid, "SUB_1", {"thing1": {"value": "新活动"}})
    control.answer_subscribe_popup(follower["user_id"], OA_SAFE.appid, ["SUB_1"])

    gateway.send_subscribe_message(
        OA_SAFE.appid, openid, "SUB_1", {"thing1": {"value": "新活动"}}, page="https://m.example.com/a"
    )

    [sent] = control.messages(kind="subscribe")
    assert sent["appid"] == OA_SAFE.appid
    assert sent["body"]["page"] == "https://m.example.com/a"
    with pytest.raises(UserRefused):
        gateway.send_subscribe_message(OA_SAFE.appid, openid, "SUB_1", {"thing1": {"value": "新活动"}})


def test_miniprogram_subscribe_message(gateway: WeChatGateway, control: SandboxClient, user: dict) -> None:
    openid = control.openid(user["user_id"], MINIPROGRAM.appid)
    control.answer_subscribe_popup(user["user_id"], MINIPROGRAM.appid, ["MP_SUB"])
    gateway.send_subscribe_message(
        MINIPROGRAM.appid,
        openid,
        "MP_SUB",
        {"thing1": {"value": "奖励到账"}},
        page="pages/me/index",
        miniprogram_state="trial",
    )
    [sent] = control.messages(kind="subscribe", appid=MINIPROGRAM.appid)
    assert sent["body"]["miniprogram_state"] == "trial"
    with pytest.raises(ValueError):
        gateway.send_subscribe_message(MINIPROGRAM.appid, openid, "MP_SUB", {}, miniprogram={"appid": "x"})
    with pytest.raises(ValueError):
        gateway.send_subscribe_message(OA_SAFE.appid, openid, "MP_SUB", {}, miniprogram_state="trial")


def test_subscribe_message_keyword_rules(gateway: WeChatGateway, control: SandboxClient, follower: dict) -> None:
    control.answer_subscribe_popup(follower["user_id"], OA_SAFE.appid, ["SUB_1"])
    with pytest.raises(InvalidArgument) as raised:
        gateway.send_subscribe_message(
            OA_SAFE.appid, follower["openids"][OA_SAFE.appid], "SUB_1", {"thing1": {"value": "x" * 21}}
        )
    assert raised.value.errcode == 47003


def test_custom_text_inside_and_outside_the_window(
    gateway: WeChatGateway, control: SandboxClient, sandbox: RunningSandbox, follower: dict
) -> None:
    openid = follower["openids"][OA_SAFE.appid]
    for n in range(3):  # a follow allows three sends within a minute
        gateway.send_custom_text(OA_SAFE.appid, openid, f"welcome {n}")
    with pytest.raises(CustomerServiceWindowClosed) as spent:
        gateway.send_custom_text(OA_SAFE.appid, openid, "one too many")
    assert spent.value.errcode == 45047

    control.send_text(follower["user_id"], OA_SAFE.appid, "hi")  # a message opens 48 hours
    gateway.send_custom_text(OA_SAFE.appid, openid, "hello back")
    real_clock = sandbox.state.clock
    sandbox.state.clock = lambda: real_clock() + 48 * 3600 + 1
    with pytest.raises(CustomerServiceWindowClosed) as closed:
        gateway.send_custom_text(OA_SAFE.appid, openid, "too late")
    assert closed.value.errcode == 45015
    assert [m["body"]["text"]["content"] for m in control.messages(kind="custom")][-1] == "hello back"


def test_custom_text_after_unfollow(gateway: WeChatGateway, control: SandboxClient, follower: dict) -> None:
    control.unfollow(follower["user_id"], OA_SAFE.appid)
    with pytest.raises(CustomerServiceWindowClosed):
        gateway.send_custom_text(OA_SAFE.appid, follower["openids"][OA_SAFE.appid], "bye")
