"""WeChat identities: one per (appid, openid), joined into one member by unionid, safe under concurrent first sight."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select

from member import signals
from member.models import Member, WeChatIdentity
from member.services import identity as services
from scrm.clock import utcnow


def test_first_sight_creates_member_and_identity_once(session):
    first = services.ensure_identity(session, appid="wxoa", openid="o1", app_kind="oa", source="oa_follow")
    again = services.ensure_identity(session, appid="wxoa", openid="o1", app_kind="oa", source="oa_follow")
    assert first.id == again.id
    assert session.scalar(select(func.count()).select_from(Member)) == 1


def test_identities_sharing_a_unionid_are_one_member(session):
    oa = services.ensure_identity(session, appid="wxoa", openid="o-oa", app_kind="oa", source="oa_follow", unionid="u1")
    mp = services.ensure_identity(
        session, appid="wxmp", openid="o-mp", app_kind="miniprogram", source="miniprogram", unionid="u1"
    )
    assert oa.member_id == mp.member_id
    other = services.ensure_identity(
        session, appid="wxmp", openid="o-other", app_kind="miniprogram", source="miniprogram"
    )
    assert other.member_id != oa.member_id


def test_a_unionid_learned_later_joins_the_member(session):
    oa = services.ensure_identity(session, appid="wxoa", openid="o-late", app_kind="oa", source="oa_follow")
    services.ensure_identity(
        session, appid="wxoa", openid="o-late", app_kind="oa", source="oa_follow", unionid="u-late"
    )
    assert session.get(Member, oa.member_id).unionid == "u-late"
    mp = services.ensure_identity(
        session, appid="wxmp", openid="o-mp-late", app_kind="miniprogram", source="miniprogram", unionid="u-late"
    )
    assert mp.member_id == oa.member_id


def test_follow_scan_unfollow_keep_the_first_scene_and_send_signals(session):
    received = []
    receiver = lambda sender, **kw: received.append((sender, kw["scene_str"], kw["is_new_follow"], kw["first_ever"]))  # noqa: E731
    signals.wechat_followed.connect(receiver)
    try:
        at = utcnow()
        followed = services.record_follow(
            session, appid="wxoa", openid="o2", at=at, scene_str="r:AAA", is_new_follow=True
        )
        identity = followed.identity
        assert (identity.subscribed, identity.qr_scene_str, identity.subscribe_scene) == (
            True,
            "r:AAA",
            "ADD_SCENE_QR_CODE",
        )
        services.record_follow(
            session, appid="wxoa", openid="o2", at=at + timedelta(seconds=5), scene_str="r:BBB", is_new_follow=False
        )
        assert identity.qr_scene_str == "r:AAA"
        services.record_unfollow(session, appid="wxoa", openid="o2", at=at + timedelta(seconds=9))
        assert identity.subscribed is False
        refollow = services.record_follow(
            session, appid="wxoa", openid="o2", at=at + timedelta(seconds=20), scene_str="r:CCC", is_new_follow=True
        )
        assert refollow.first_ever is False
        assert identity.qr_scene_str == "r:AAA"
    finally:
        signals.wechat_followed.disconnect(receiver)
    member_id = identity.member_id
    assert received == [
        (member_id, "r:AAA", True, True),
        (member_id, "r:BBB", False, False),
        (member_id, "r:CCC", True, False),
    ]


def test_concurrent_first_sight_of_one_openid_makes_one_identity(committed_app):
    db = committed_app.extensions["scrm"].db
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def sight() -> None:
        try:
            barrier.wait()
            with db.transaction() as session:
                services.ensure_identity(
                    session, appid="wxoa", openid="o-race", app_kind="oa", source="oa_follow", unionid="u-race"
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sight) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(WeChatIdentity)) == 1
        assert session.scalar(select(func.count()).select_from(Member)) == 1


def test_factories_build_a_member_with_an_identity(factories, session):
    identity = factories.WeChatIdentityFactory(member=factories.MemberFactory(with_unionid=True))
    assert identity.member_id == identity.member.id
    assert identity.member.unionid.startswith("uTEST")
    again = services.ensure_identity(
        session, appid=identity.appid, openid=identity.openid, app_kind="oa", source="oa_follow"
    )
    assert again.id == identity.id
