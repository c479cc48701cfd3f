"""The kernel side of WeChat: apps stored encrypted, the admin API and CLI, the DB token store."""

from __future__ import annotations

import time

from click.testing import CliRunner
from sqlalchemy import select

from scrm.cli import main
from scrm.models import WeChatApp
from scrm.secretbox import SecretBox
from scrm.wechat.wiring import DatabaseAppDirectory, DatabaseTokenStore
from tests.conftest import TEST_SECRET_KEY

AES_KEY = "WiringKeyAbCdEfGhIjKlMnOpQrStUvWxYz01234567"
APP = {
    "appid": "wxWIRINGOA0000001",
    "kind": "oa",
    "secret": "super-secret-value-1",
    "token": "wiringToken",
    "aes_key": AES_KEY,
    "mode": "safe",
    "original_id": "gh_wiring00001",
    "name": "Wiring OA",
}
SECRETS = ("super-secret-value-1", "wiringToken", AES_KEY)


def test_admin_registers_an_app_and_never_sees_its_credentials(client, staff, session, caplog):
    admin = staff.headers("admin")
    created = client.post("/api/v1/staff/wechat-apps", json=APP, headers=admin)
    assert created.status_code == 201, created.get_data(as_text=True)
    listed = client.get("/api/v1/staff/wechat-apps", headers=admin)
    audit = client.get("/api/v1/staff/audit?target_type=wechat_app", headers=admin)
    for response in (created, listed, audit):
        body = response.get_data(as_text=True)
        assert not any(secret in body for secret in SECRETS)
    assert listed.get_json()[0]["callback_path"] == "/wechat/wxWIRINGOA0000001/callback"
    assert listed.get_json()[0]["has_aes_key"] is True
    stored = session.scalars(select(WeChatApp)).one()
    assert "super-secret-value-1" not in stored.secret_encrypted
    assert SecretBox(TEST_SECRET_KEY).open(stored.secret_encrypted) == "super-secret-value-1"
    assert not any(secret in caplog.text for secret in SECRETS)


def test_only_admins_manage_apps_and_bad_settings_are_422(client, staff):
    assert client.get("/api/v1/staff/wechat-apps", headers=staff.headers("campaign_manager")).status_code == 403
    bad = client.post(
        "/api/v1/staff/wechat-apps", headers=staff.headers("admin"), json={**APP, "mode": "safe", "aes_key": "short"}
    )
    assert bad.status_code == 422
    missing = client.post(
        "/api/v1/staff/wechat-apps",
        headers=staff.headers("admin"),
        json={k: v for k, v in APP.items() if k != "aes_key"},
    )
    assert missing.status_code == 422
    assert "aes_key" in missing.get_json()["error"]["details"]["fields"]


def test_deactivated_official_account_gets_404_on_callbacks(client, staff):
    admin = staff.headers("admin")
    client.post("/api/v1/staff/wechat-apps", json=APP, headers=admin)
    assert (
        client.patch(
            "/api/v1/staff/wechat-apps/wxWIRINGOA0000001", json={"is_active": False}, headers=admin
        ).get_json()["is_active"]
        is False
    )
    assert client.get("/wechat/wxWIRINGOA0000001/callback?signature=x&timestamp=1&nonce=1&echostr=1").status_code == 404


def test_directory_and_token_store_read_the_database(app, db, client, staff):
    client.post("/api/v1/staff/wechat-apps", json=APP, headers=staff.headers("admin"))
    directory = DatabaseAppDirectory(db, SecretBox(TEST_SECRET_KEY))
    credentials = directory.get("wxWIRINGOA0000001")
    assert (credentials.secret, credentials.token, credentials.mode) == ("super-secret-value-1", "wiringToken", "safe")
    assert "super-secret" not in repr(credentials)
    assert directory.get("wxNOSUCHAPP000000") is None
    tokens = DatabaseTokenStore(db)
    tokens.set("wxWIRINGOA0000001", "ACCESS-1", time.time() + 600)
    assert tokens.get("wxWIRINGOA0000001").token == "ACCESS-1"
    tokens.invalidate("wxWIRINGOA0000001", "ACCESS-OTHER")
    assert tokens.get("wxWIRINGOA0000001").token == "ACCESS-1"
    tokens.invalidate("wxWIRINGOA0000001", "ACCESS-1")
    assert tokens.get("wxWIRINGOA0000001") is None
    tokens.set("wxWIRINGOA0000001", "ACCESS-2", time.time() - 1)
    assert tokens.get("wxWIRINGOA0000001") is None


def test_cli_add_app_and_list(tmp_path, monkeypatch):
    monkeypatch.setenv("SCRM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("SCRM_LOG_JSON", "0")
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    added = runner.invoke(
        main,
        [
            "wechat",
            "add-app",
            "--appid",
            APP["appid"],
            "--kind",
            "oa",
            "--secret",
            APP["secret"],
            "--token",
            APP["token"],
            "--aes-key",
            AES_KEY,
        ],
    )
    assert added.exit_code == 0, added.output
    assert "/wechat/wxWIRINGOA0000001/callback" in added.output
    listing = runner.invoke(main, ["wechat", "list-apps"]).output
    assert "wxWIRINGOA0000001" in listing
    assert not any(secret in added.output + listing for secret in SECRETS)
    refused = runner.invoke(main, ["wechat", "add-app", "--appid", "bad", "--kind", "oa", "--secret", "s"])
    assert refused.exit_code != 0
    assert "appid" in refused.output
