"""No secret, token, AES key, session key or one-time code in a log line, an exception's text, or a repr."""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from scrm.wechat.apps import StaticAppDirectory
from scrm.wechat.errors import WeChatError
from scrm.wechat.gateway import WeChatGateway
from scrm.wechat.sandbox import RunningSandbox
from scrm.wechat.sandbox.client import SandboxClient
from scrm.wechat.tokens import LocalTokenStore

from .conftest import ALL_APPS, MINIPROGRAM, OA_SAFE, CallbackReceiver


def exercise_everything(
    gateway: WeChatGateway, slow_gateway: WeChatGateway, control: SandboxClient, user_id: str
) -> tuple[list[object], list[WeChatError], list[str]]:
    """Make every kind of gateway call, failures included; return results, errors and the codes spent."""
    results: list[object] = []
    errors: list[WeChatError] = []
    codes: list[str] = []

    def expect_error(call: Callable[[], object]) -> None:
        with pytest.raises(WeChatError) as raised:
            call()
        errors.append(raised.value)

    oa, mp = OA_SAFE.appid, MINIPROGRAM.appid
    qr = gateway.create_qrcode(oa, "r:leaks")
    control.scan(user_id, qr.ticket)  # an encrypted callback to the receiver
    openid = control.openid(user_id, oa)
    control.expire_tokens(oa)  # forces a refresh and a retry
    results += [qr, gateway.user_info(oa, openid), gateway.batch_user_info(oa, [openid])]
    tag = gateway.create_tag(oa, "leak-check")
    gateway.tag_users(oa, tag.id, [openid])
    gateway.create_menu(oa, {"button": [{"type": "click", "name": "A", "key": "A"}]})
    results += [tag, gateway.get_menu(oa), gateway.send_template(oa, openid, "TPL", {"k": {"value": "v"}})]
    gateway.send_custom_text(oa, openid, "hello")
    control.answer_subscribe_popup(user_id, oa, ["SUB"])
    gateway.send_subscribe_message(oa, openid, "SUB", {"thing1": {"value": "x"}})

    authorize_url = gateway.oauth_authorize_url(oa, "https://m.example.com/cb", "Nonce1", "snsapi_userinfo")
    redirect = requests.get(authorize_url, params={"sandbox_user": user_id}, allow_redirects=False, timeout=5)
    oauth_code = parse_qs(urlsplit(redirect.headers["Location"]).query)["code"][0]
    grant = gateway.oauth_exchange(oa, oauth_code)
    results += [grant, gateway.oauth_userinfo(oa, grant)]
    expect_error(lambda: gateway.oauth_exchange(oa, oauth_code))

    login_code = control.login_code(user_id, mp)
    results.append(gateway.jscode2session(mp, login_code))
    expect_error(lambda: gateway.jscode2session(mp, login_code))
    expect_error(lambda: gateway.jscode2session(mp, "never-issued"))
    phone_code = control.phone_code(user_id, mp)
    results += [gateway.get_phone_number(mp, phone_code), gateway.get_wxacode_unlimited(mp, "r=leaks")[:8]]
    results.append(gateway.get_user_risk_rank(mp, control.openid(user_id, mp), 1, "203.0.113.9"))
    codes += [oauth_code, login_code, phone_code]

    control.set_quota("/cgi-bin/message/template/send", 0, appid=oa)
    expect_error(lambda: gateway.send_template(oa, openid, "TPL", {"k": {"value": "v"}}))
    control.inject_errcode("/cgi-bin/user/info", 40001, count=2)
    expect_error(lambda: gateway.user_info(oa, openid))
    control.inject_http_status("/cgi-bin/user/info", 503)
    expect_error(lambda: gateway.user_info(oa, openid))
    control.stall("/cgi-bin/tags/get", 2, count=1)
    expect_error(lambda: slow_gateway.list_tags(oa))
    unreachable = WeChatGateway(StaticAppDirectory(ALL_APPS), LocalTokenStore(), api_base="http://127.0.0.1:9")
    expect_error(lambda: unreachable.jscode2session(mp, "code-to-nowhere"))
    expect_error(lambda: unreachable.access_token(oa))
    return results, errors, codes


def sensitive_values(sandbox: RunningSandbox, codes: list[str]) -> set[str]:
    state = sandbox.state
    values = {app.secret for app in ALL_APPS}
    values |= {app.token for app in ALL_APPS if app.token}
    values |= {app.encoding_aes_key for app in ALL_APPS if app.encoding_aes_key}
    values |= set(state.tokens) | set(state.oauth_tokens)  # every access token handed out
    values |= {key for user in state.users.values() for key in user.session_keys.values()}
    values |= set(codes) | {"code-to-nowhere"}
    assert len(values) > 15
    return values


def test_no_sensitive_value_reaches_logs_errors_or_reprs(
    caplog: pytest.LogCaptureFixture,
    sandbox: RunningSandbox,
    control: SandboxClient,
    make_gateway: Callable[..., WeChatGateway],
    receiver: CallbackReceiver,
    user: dict,
) -> None:
    caplog.set_level(logging.DEBUG)
    # create_app quiets urllib3 for the service; this test wants its request lines to prove the masking.
    caplog.set_level(logging.DEBUG, logger="urllib3")
    gateway, slow_gateway = make_gateway(), make_gateway(read_timeout=0.3)

    results, errors, codes = exercise_everything(gateway, slow_gateway, control, user["user_id"])

    secrets = sensitive_values(sandbox, codes)
    log_lines = [record.getMessage() for record in caplog.records] + [caplog.text]
    # The gateway's own filter writes `***`; when an app's root handler saw the record first, scrm.logs wrote
    # `[redacted]` into it. Either way the query's secret must arrive masked.
    masked = ("secret=***", "secret=[redacted]")
    assert any("jscode2session" in line and any(m in line for m in masked) for line in log_lines), (
        "urllib3 request lines were not captured with the secret masked"
    )
    texts = log_lines + [str(e) for e in errors] + [repr(e) for e in errors] + [repr(r) for r in results]
    texts += [repr(gateway), repr(OA_SAFE), repr(MINIPROGRAM), repr(gateway._transport.tokens)]
    texts += [repr(gateway._transport.tokens.get(OA_SAFE.appid))]
    # Show where a value leaked, with the value itself masked: a failing run must not leak it further.
    leaked_in = [text.replace(secret, "<LEAKED>")[:300] for secret in secrets for text in texts if secret in text]
    assert len(leaked_in) == 0, "\n".join(leaked_in)
    assert len(errors) == 9
    assert all(e.__context__ is None for e in errors)
