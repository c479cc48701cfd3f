"""Journey over HTTP on PostgreSQL with the WeChat sandbox: a user who is in the legacy file follows the OA, logs
in through the mini-program and shares the phone (in a retry storm) — and is recognised once, with tier, points
and history."""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select

from member.legacy.models import LegacyBinding, LegacyMember
from member.legacy.runner import run_import
from member.legacy.selectors import legacy_history
from member.legacy.services.batches import open_batch
from member.models import Member
from scrm.app import create_app
from scrm.clock import utcnow
from scrm.secretbox import SecretBox
from scrm.wechat.sandbox import SandboxClient, running_sandbox
from scrm.wechat.wiring import DatabaseAppDirectory
from tests.conftest import TEST_SECRET_KEY, StaffAuth, live_server, make_config
from tests.member.centre.conftest import MP, OA
from tests.member.centre.test_journey import register_apps

pytestmark = pytest.mark.slow

PHONE = "13912345678"


def legacy_file(tmp_path):
    recent = (utcnow() - timedelta(days=20)).strftime("%Y-%m-%d")
    path = tmp_path / "old-crm.csv"
    path.write_text(
        "会员卡号,手机号,姓名,会员等级,积分,累计消费,入会日期,最后消费时间\n"
        f'VIP-0001,139 1234 5678,周舟,gold,800,"1,234.50",2019-05-01,{recent}\n'
        f"VIP-0002,13800138000,李雷,silver,10,5,2020-01-01,{recent}\n",
        encoding="utf-8-sig",
    )
    return path


def legacy_orders_file(tmp_path):
    path = tmp_path / "old-crm-orders.csv"
    path.write_text(
        "订单号,会员卡号,实付金额,下单时间,商品\n"
        "SO-1,VIP-0001,199.00,2024-11-11 20:00:00,羊绒围巾\n"
        "SO-2,VIP-0001,88.80,2025-02-14,巧克力\n"
        "SO-3,VIP-0002,5.00,2025-03-01,\n",
        encoding="gb18030",
    )
    return path


def test_a_legacy_member_is_recognised_once_after_follow_login_and_a_phone_retry_storm(
    embedded_pg_app, pg_url, tmp_path
):
    db = embedded_pg_app.extensions["scrm"].db
    register_apps(db)
    with db.transaction() as session:
        batch_id = open_batch(session, path=legacy_file(tmp_path), filename="old-crm.csv").batch.id
    run_import(db, batch_id)
    with db.transaction() as session:
        orders_batch = open_batch(
            session, path=legacy_orders_file(tmp_path), filename="orders.csv", orders_of=batch_id
        ).batch.id
    run_import(db, orders_batch)
    directory = DatabaseAppDirectory(db, SecretBox(TEST_SECRET_KEY))
    with running_sandbox(app_loader=directory.all) as (sandbox_url, _state):
        app = create_app(make_config(database_url=pg_url, wechat_api_base=sandbox_url, wechat_open_base=sandbox_url))
        with live_server(app) as service:
            wechat = SandboxClient(sandbox_url)
            wechat.configure(target_url=service)
            wechat.create_user("zhou", phone=PHONE, nickname="Zhou")
            assert wechat.follow("zhou", OA.appid)["callback"]["reply"]["status"] == 200
            http = requests.Session()
            login = http.post(
                f"{service}/api/v1/member/session/miniprogram",
                json={"appid": MP.appid, "code": wechat.login_code("zhou", MP.appid)},
                timeout=10,
            )
            assert login.status_code == 201, login.text
            headers = {"Authorization": f"Bearer {login.json()['token']}"}
            member_id = http.get(f"{service}/api/v1/member/me", headers=headers, timeout=10).json()["id"]

            def share_phone() -> int:
                code = wechat.phone_code("zhou", MP.appid)
                response = requests.post(
                    f"{service}/api/v1/member/phone", json={"code": code}, headers=headers, timeout=20
                )
                return response.status_code

            # The client retries the phone call: a burst in parallel, then more one after another.
            with ThreadPoolExecutor(max_workers=8) as pool:
                statuses = list(pool.map(lambda _: share_phone(), range(8)))
            statuses += [share_phone() for _ in range(4)]
            assert statuses.count(200) >= 1
            assert set(statuses) <= {200, 409}

            # The history arrived once, as orders that earned nothing new (the legacy balance is the points).
            orders = http.get(f"{service}/api/v1/member/orders", headers=headers, timeout=10).json()
            assert [(o["external_id"], o["amount_fen"], o["points_earned"]) for o in orders["items"]] == [
                (f"{batch_id}:SO-2", 8880, 0),
                (f"{batch_id}:SO-1", 19900, 0),
            ]

            staff = StaffAuth(app).headers("admin")
            batch = http.get(f"{service}/api/v1/staff/legacy/imports/{batch_id}", headers=staff, timeout=10).json()
            assert batch["valid_count"] == 2

    with db.transaction() as session:
        [binding] = session.scalars(select(LegacyBinding)).all()
        record = session.get(LegacyMember, binding.legacy_member_id)
        assert (binding.member_id, record.legacy_id, record.status) == (member_id, "VIP-0001", "bound")
        assert (binding.points_carried, binding.tier_carried, binding.points_key) == (
            800,
            "gold",
            f"legacy:{batch_id}:VIP-0001",
        )
        history = legacy_history(session, member_id)
        assert history["total_spend_fen"] == 123_450
        assert history["joined_at"].isoformat() == "2019-04-30T16:00:00+00:00"
        assert session.get(Member, member_id).phone == "+86" + PHONE
        assert session.scalar(select(func.count()).select_from(LegacyBinding)) == 1
        ledger = importlib.util.find_spec("member.services.ledger")
        if ledger is not None:
            from member.services import ledger as ledger_service

            assert ledger_service.balance(session, member_id) == 800
