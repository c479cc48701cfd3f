"""End to end over HTTP on PostgreSQL with the WeChat sandbox: a user follows the OA, logs in through the
mini-program and through OA OAuth and is one member, shares a phone, fills a custom field, exports, and erases;
afterwards no text or JSON column of any table holds their phone, name, openids, unionid or custom text."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import String, Text, cast, func, select
from sqlalchemy.types import JSON

from member.models import Member, WeChatIdentity
from scrm.app import create_app
from scrm.audit import Actor
from scrm.db import Base
from scrm.secretbox import SecretBox
from scrm.wechat.sandbox import SandboxClient, running_sandbox
from scrm.wechat.wiring import DatabaseAppDirectory
from scrm.wechat_apps import register_app
from tests.conftest import TEST_SECRET_KEY, StaffAuth, live_server, make_config
from tests.member.centre.conftest import FRONT_END, MP, OA
from wechat_handlers.models import InboxMessage

pytestmark = pytest.mark.slow

PHONE = "13912345678"
NAME = "Zoe Zhang-Journey"
CUSTOM_TEXT = "tea-lover-zoe-journey"


def text_columns() -> list[tuple[str, object]]:
    """Every (table, column) whose values are text or JSON."""
    found = []
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, String | Text | JSON) or isinstance(
                getattr(column.type, "impl", None), String | Text | JSON
            ):
                found.append((table.name, column))
    return found


def occurrences(session, needles: list[str]) -> dict[str, int]:
    hits: dict[str, int] = {}
    for table_name, column in text_columns():
        for needle in needles:
            count = session.scalar(
                select(func.count()).select_from(column.table).where(cast(column, Text).contains(needle))
            )
            if count:
                hits[f"{table_name}.{column.name}:{needle}"] = count
    return hits


def register_apps(db) -> None:
    with db.transaction() as session:
        for app in (OA, MP):
            register_app(
                session,
                SecretBox(TEST_SECRET_KEY),
                appid=app.appid,
                kind=app.kind,
                secret=app.secret,
                token=app.token,
                aes_key=app.encoding_aes_key,
                original_id=app.original_id,
                actor=Actor.system(),
            )


def test_member_centre_journey_over_http(embedded_pg_app, pg_url):
    db = embedded_pg_app.extensions["scrm"].db
    register_apps(db)
    directory = DatabaseAppDirectory(db, SecretBox(TEST_SECRET_KEY))
    with running_sandbox(app_loader=directory.all) as (sandbox_url, _state):
        app = create_app(
            make_config(
                database_url=pg_url,
                wechat_api_base=sandbox_url,
                wechat_open_base=sandbox_url,
                sms_backend="sandbox",
                member_oauth_redirect_allowlist=FRONT_END,
            )
        )
        with live_server(app) as service:
            wechat = SandboxClient(sandbox_url)
            wechat.configure(target_url=service)
            http = requests.Session()
            wechat.create_user("zoe", phone=PHONE, nickname="Zoe")

            # She follows the OA (a callback stores her OA identity, without a unionid yet) and writes her number.
            assert wechat.follow("zoe", OA.appid)["callback"]["reply"]["status"] == 200
            wechat.send_text("zoe", OA.appid, f"my number is {PHONE}")

            # Mini-program login.
            login = http.post(
                f"{service}/api/v1/member/session/miniprogram",
                json={"appid": MP.appid, "code": wechat.login_code("zoe", MP.appid)},
                timeout=10,
            )
            assert login.status_code == 201, login.text
            token = login.json()["token"]
            me = http.get(f"{service}/api/v1/member/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
            member_id = me.json()["id"]

            # OA H5 OAuth: follow the sandbox's authorize redirect back to us, then to the front end.
            start = http.get(
                f"{service}/api/v1/member/session/oauth/start",
                params={"appid": OA.appid, "scope": "snsapi_userinfo", "redirect": FRONT_END + "home"},
                allow_redirects=False,
                timeout=10,
            )
            assert start.status_code == 302
            authorize = http.get(
                start.headers["Location"].split("#", 1)[0],
                params={"sandbox_user": "zoe"},
                allow_redirects=False,
                timeout=10,
            )
            assert authorize.status_code == 302
            callback = http.get(authorize.headers["Location"], allow_redirects=False, timeout=10)
            assert callback.status_code == 302, callback.text
            landing = urlsplit(callback.headers["Location"])
            assert f"{landing.scheme}://{landing.netloc}{landing.path}" == FRONT_END + "home"
            oa_token = parse_qs(landing.fragment)["token"][0]
            headers = {"Authorization": f"Bearer {oa_token}"}
            assert http.get(f"{service}/api/v1/member/me", headers=headers, timeout=10).json()["id"] == member_id

            # Phone through WeChat's button (mini-program token).
            mp_headers = {"Authorization": f"Bearer {token}"}
            phone = http.post(
                f"{service}/api/v1/member/phone",
                json={"code": wechat.phone_code("zoe", MP.appid)},
                headers=mp_headers,
                timeout=10,
            )
            assert phone.status_code == 200, phone.text
            assert phone.json()["phone"] == "139****5678"

            # Staff define a custom field; she fills it with her name.
            staff = StaffAuth(app).headers("admin")
            field = http.post(
                f"{service}/api/v1/staff/member-fields",
                json={"key": "favourite_drink", "label": "Favourite drink", "field_type": "text"},
                headers=staff,
                timeout=10,
            )
            assert field.status_code == 201, field.text
            profile = http.patch(
                f"{service}/api/v1/member/me",
                json={"name": NAME, "region": "Hangzhou", "custom_fields": {"favourite_drink": CUSTOM_TEXT}},
                headers=mp_headers,
                timeout=10,
            )
            assert profile.status_code == 200, profile.text
            assert profile.json()["custom_fields"] == {"favourite_drink": CUSTOM_TEXT}
            http.put(
                f"{service}/api/v1/member/consents", json={"marketing_messages": True}, headers=mp_headers, timeout=10
            )

            # One member, two identities, one unionid.
            staff_view = http.get(f"{service}/api/v1/staff/members/{member_id}", headers=staff, timeout=10).json()
            assert sorted(i["app_kind"] for i in staff_view["identities"]) == ["miniprogram", "oa"]
            openids = [wechat.openid("zoe", OA.appid), wechat.openid("zoe", MP.appid)]
            unionid = wechat.user("zoe")["unionid"]

            export = http.get(f"{service}/api/v1/member/export", headers=mp_headers, timeout=10)
            assert export.status_code == 200
            exported = export.text
            for needle in ("+86" + PHONE, NAME, CUSTOM_TEXT, unionid, *openids):
                assert needle in exported

            with db.transaction() as session:
                before = occurrences(session, [PHONE, NAME, CUSTOM_TEXT, unionid, *openids])
            # The scan sees what erasure must remove: the phone in the member row and in her message, and so on.
            for place in (f"members.phone:{PHONE}", f"inbox.raw_xml:{PHONE}", f"members.name:{NAME}"):
                assert place in before
            assert f"inbox.openid:{openids[0]}" in before
            assert f"members.custom_fields:{CUSTOM_TEXT}" in before

            erased = http.delete(f"{service}/api/v1/member/me", headers=mp_headers, timeout=10)
            assert erased.status_code == 204

            after = http.get(f"{service}/api/v1/member/export", headers=mp_headers, timeout=10)
            assert after.status_code == 200
            assert after.json()["profile"]["erased"] is True
            for needle in (PHONE, NAME, CUSTOM_TEXT, unionid, *openids):
                assert needle not in after.text
        app.extensions["scrm"].db.dispose()

    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(InboxMessage)) >= 2
        assert occurrences(session, [PHONE, NAME, CUSTOM_TEXT, unionid, *openids]) == {}
        member = session.get(Member, member_id)
        assert member.erased_at is not None
        # The graph node stays: identities keep their member, with pseudonyms.
        pseudonyms = session.scalars(select(WeChatIdentity.openid).where(WeChatIdentity.member_id == member_id))
        assert all(openid.startswith("erased-") for openid in pseudonyms)
