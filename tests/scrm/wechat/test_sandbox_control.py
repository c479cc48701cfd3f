"""The sandbox's control API, its app loader, its console page and the ``sandbox serve`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from scrm.wechat.apps import AppCredentials, StaticAppDirectory
from scrm.wechat.gateway import WeChatGateway
from scrm.wechat.sandbox import RunningSandbox, cli, running_sandbox
from scrm.wechat.sandbox.client import SandboxClient, SandboxControlError
from scrm.wechat.tokens import LocalTokenStore

from .conftest import MINIPROGRAM, OA_SAFE


def test_registering_an_oa_generates_callback_credentials_once(control: SandboxClient) -> None:
    registered = control.register_app("wxnew0000000000001", kind="oa", mode="compat", name="New")
    credentials = registered["credentials"]
    assert len(credentials["encoding_aes_key"]) == 43
    assert credentials["token"]
    assert credentials["secret"]
    assert credentials["original_id"].startswith("gh_")
    shown = json.dumps(control.apps())
    for value in (credentials["secret"], credentials["token"], credentials["encoding_aes_key"]):
        assert value not in shown


def test_registering_rejects_bad_apps(control: SandboxClient) -> None:
    with pytest.raises(SandboxControlError) as raised:
        control.register_app("wxbad", kind="website")
    assert raised.value.status == 400
    with pytest.raises(SandboxControlError):
        control.register_app("wxbad", kind="oa", encoding_aes_key="short")


def test_users_have_one_unionid_and_an_openid_per_app(control: SandboxClient) -> None:
    user = control.create_user("carol", phone="+8613900139000")
    assert user["phone"] == "13900139000"
    assert user["country_code"] == "86"
    assert user["openids"][OA_SAFE.appid] != user["openids"][MINIPROGRAM.appid]
    assert all(len(openid) == 28 and openid.startswith("o") for openid in user["openids"].values())
    assert control.user("carol") == user
    with pytest.raises(SandboxControlError) as duplicate:
        control.create_user("carol")
    assert duplicate.value.status == 409
    with pytest.raises(SandboxControlError) as missing:
        control.user("nobody")
    assert missing.value.status == 404


def test_user_actions_check_the_situation(control: SandboxClient, user: dict) -> None:
    user_id = user["user_id"]
    with pytest.raises(SandboxControlError, match="follow"):
        control.send_text(user_id, OA_SAFE.appid, "hi")
    with pytest.raises(SandboxControlError, match="not follow"):
        control.unfollow(user_id, OA_SAFE.appid)
    control.follow(user_id, OA_SAFE.appid)
    assert control.follow(user_id, OA_SAFE.appid)["already_following"] is True
    with pytest.raises(SandboxControlError, match="menu"):
        control.click(user_id, OA_SAFE.appid, "NOPE")
    with pytest.raises(SandboxControlError, match="not an official account"):
        control.follow(user_id, MINIPROGRAM.appid)
    with pytest.raises(SandboxControlError, match="not a mini-program"):
        control.login_code(user_id, OA_SAFE.appid)


def test_sms_outbox(control: SandboxClient) -> None:
    control.send_sms("+8613800138000", "验证码 123456")
    control.send_sms("+8613900139000", "验证码 654321")
    [message] = control.sms("+8613800138000")
    assert message["text"] == "验证码 123456"
    assert message["id"] == 1
    assert len(control.sms()) == 2
    with pytest.raises(SandboxControlError):
        control.send_sms("", "x")


def test_faults_are_listed_counted_down_and_cleared(control: SandboxClient, gateway: WeChatGateway) -> None:
    control.inject_errcode("/cgi-bin/tags/get", -1, count=2)
    control.stall("/cgi-bin/menu/get", 0.01)
    faults = {f["path"]: f for f in control.faults()}
    assert faults["/cgi-bin/tags/get"]["remaining"] == 2
    assert faults["/cgi-bin/menu/get"]["remaining"] is None
    control.clear_faults()
    assert control.faults() == []
    assert gateway.list_tags(OA_SAFE.appid)
    with pytest.raises(SandboxControlError):
        control.inject_errcode("/cgi-bin/tags/get", 0)
    with pytest.raises(SandboxControlError):
        control.stall("/cgi-bin/tags/get", -1)


def test_stats_count_calls_and_token_fetches(control: SandboxClient, gateway: WeChatGateway) -> None:
    gateway.list_tags(OA_SAFE.appid)
    assert control.stats() == {
        "token_fetches": {OA_SAFE.appid: 1},
        "calls": {"/cgi-bin/stable_token": 1, "/cgi-bin/tags/get": 1},
    }
    control.reset_stats()
    assert control.stats() == {"token_fetches": {}, "calls": {}}


def test_quotas_are_listed_and_unlimited_with_null(control: SandboxClient) -> None:
    quotas = control.set_quota("/cgi-bin/message/template/send", None)
    assert all(q["path"] != "/cgi-bin/message/template/send" for q in quotas["limits"])
    with pytest.raises(SandboxControlError):
        control.set_quota("/cgi-bin/token", -1)


def test_reset_forgets_everything(control: SandboxClient, user: dict) -> None:
    control.reset()
    assert control.users() == []
    assert control.apps() == []


def test_console_page(sandbox: RunningSandbox) -> None:
    page = requests.get(f"{sandbox.base_url}/", timeout=5)
    assert page.status_code == 200
    assert page.url.endswith("/sandbox/")
    assert "<title>WeChat sandbox</title>" in page.text
    assert "fetch('/sandbox'" in page.text


def test_the_app_loader_supplies_unknown_apps_on_demand() -> None:
    loaded_app = AppCredentials(appid="wxloaded0000000001", secret="loaded-secret", kind="miniprogram")
    calls: list[int] = []

    def load() -> list[AppCredentials]:
        calls.append(1)
        return [loaded_app]

    with running_sandbox(app_loader=load) as sandbox:
        gateway = WeChatGateway(StaticAppDirectory([loaded_app]), LocalTokenStore(), api_base=sandbox.base_url)
        assert gateway.access_token(loaded_app.appid)
        assert calls == [1]
        gateway.force_refresh_token(loaded_app.appid)
        assert calls == [1]  # known from now on


def test_a_failing_app_loader_reads_as_an_unknown_app() -> None:
    def broken() -> list[AppCredentials]:
        raise RuntimeError("database down")

    with running_sandbox(app_loader=broken) as sandbox:
        answer = requests.post(
            f"{sandbox.base_url}/cgi-bin/stable_token",
            json={"grant_type": "client_credential", "appid": "wxany", "secret": "s"},
            timeout=5,
        ).json()
    assert answer["errcode"] == 40013


def test_serve_command_registers_apps_and_serves(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    served: dict[str, object] = {}

    class FakeServer:
        port = 5055

        def serve_forever(self) -> None:
            raise KeyboardInterrupt

        def server_close(self) -> None:
            served["closed"] = True

    def fake_server(app: object, host: str, port: int) -> FakeServer:
        served["app"], served["address"] = app, (host, port)
        return FakeServer()

    monkeypatch.setattr(cli, "make_sandbox_server", fake_server)
    apps_file = tmp_path / "apps.json"
    apps_file.write_text(json.dumps([{"appid": "wxcli", "secret": "s", "kind": "oa", "mode": "plain", "token": "t"}]))

    result = CliRunner().invoke(
        cli.sandbox, ["serve", "--port", "5055", "--target", "http://127.0.0.1:5000", "--apps", str(apps_file)]
    )

    assert result.exit_code == 0, result.output
    assert "WeChat sandbox on http://127.0.0.1:5055" in result.output
    assert "http://127.0.0.1:5000/wechat/<appid>/callback" in result.output
    state = served["app"].extensions["scrm_wechat_sandbox"]
    assert "wxcli" in state.apps
    assert served["closed"]
    assert served["address"] == ("127.0.0.1", 5055)


def test_serve_command_rejects_a_bad_apps_file(tmp_path: Path) -> None:
    apps_file = tmp_path / "apps.json"
    apps_file.write_text(json.dumps([{"appid": "wxcli", "kind": "oa"}]))
    result = CliRunner().invoke(cli.sandbox, ["serve", "--apps", str(apps_file)])
    assert result.exit_code == 2
    assert "--apps" in result.output
