"""Verified phones (T17): WeChat's phone code only, never a phone from the client; SMS one-time codes with exact
limits (6 digits, 5 minutes, 5 wrong answers then locked, 60 s cooldown, 10 a day, per-IP cap)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from member import signals
from member.models import Member, PhoneCode
from tests.member.centre.conftest import MP, bearer, mp_login, oauth_login

pytestmark = pytest.mark.usefixtures("apps")

PHONE = "13912345678"
E164 = "+8613912345678"


def test_wechat_phone_is_bound_in_e164_with_method_time_and_signal(client, wechat, session):
    wechat.create_user("amy", phone=PHONE)
    token = mp_login(client, wechat, "amy")
    seen = []

    def receiver(sender, **kwargs):
        # Sent inside the transaction: the receiver sees the phone through the same session.
        seen.append((sender, kwargs["phone"], kwargs["method"], kwargs["session"].get(Member, sender).phone))

    signals.phone_verified.connect(receiver)
    try:
        response = client.post(
            "/api/v1/member/phone", json={"code": wechat.phone_code("amy", MP.appid)}, headers=bearer(token)
        )
    finally:
        signals.phone_verified.disconnect(receiver)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"phone": "139****5678", "phone_verified_method": "wechat"}
    member = session.scalars(select(Member)).one()
    session.refresh(member)
    assert (member.phone, member.phone_verified_method) == (E164, "wechat")
    assert member.phone_verified_at is not None
    assert seen == [(member.id, E164, "wechat", E164)]
    me = client.get("/api/v1/member/me", headers=bearer(token)).get_json()
    assert (me["phone"], me["phone_verified"]) == ("139****5678", True)


def test_t17_a_phone_sent_by_the_client_is_refused_and_codes_are_single_use(client, wechat, session):
    wechat.create_user("ben", phone=PHONE)
    token = mp_login(client, wechat, "ben")
    code = wechat.phone_code("ben", MP.appid)
    forged = client.post("/api/v1/member/phone", json={"code": code, "phone": "13800000000"}, headers=bearer(token))
    assert forged.status_code == 422
    assert "phone" in forged.get_json()["error"]["details"]["fields"]
    only_phone = client.post("/api/v1/member/phone", json={"phone": "13800000000"}, headers=bearer(token))
    assert only_phone.status_code == 422
    assert session.scalar(select(Member.phone)) is None
    assert client.post("/api/v1/member/phone", json={"code": code}, headers=bearer(token)).status_code == 200
    reused = client.post("/api/v1/member/phone", json={"code": code}, headers=bearer(token))
    assert reused.status_code == 409
    assert reused.get_json()["error"]["code"] == "code_used"


def test_the_wechat_phone_needs_a_mini_program_login(client, wechat):
    wechat.create_user("cat", phone=PHONE)
    token = oauth_login(client, "cat").get_json()["token"]
    response = client.post("/api/v1/member/phone", json={"code": "whatever"}, headers=bearer(token))
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "app_not_usable"


def test_a_phone_verified_by_another_wechat_user_is_refused(client, wechat, session):
    wechat.create_user("dan", phone=PHONE)
    wechat.create_user("dora", phone=PHONE)  # a recycled number: two WeChat users, one phone
    dan = mp_login(client, wechat, "dan")
    assert (
        client.post(
            "/api/v1/member/phone", json={"code": wechat.phone_code("dan", MP.appid)}, headers=bearer(dan)
        ).status_code
        == 200
    )
    dora = mp_login(client, wechat, "dora")
    refused = client.post(
        "/api/v1/member/phone", json={"code": wechat.phone_code("dora", MP.appid)}, headers=bearer(dora)
    )
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "phone_taken"
    assert session.scalar(select(func.count()).select_from(Member).where(Member.phone == E164)) == 1


def test_a_phone_held_by_a_member_without_a_competing_identity_merges_into_it(app, client, wechat, session):
    # A member known by phone only (say, bound earlier through SMS from the OA) and the same person's MP login.
    wechat.create_user("eve", phone=PHONE)
    holder = Member(source="legacy", phone=E164, name="Eve")
    session.add(holder)
    session.commit()
    token = mp_login(client, wechat, "eve")
    response = client.post(
        "/api/v1/member/phone", json={"code": wechat.phone_code("eve", MP.appid)}, headers=bearer(token)
    )
    assert response.status_code == 200
    new_token = response.get_json()["token"]
    me = client.get("/api/v1/member/me", headers=bearer(new_token)).get_json()
    assert (me["id"], me["name"]) == (holder.id, "Eve")
    assert client.get("/api/v1/member/me", headers=bearer(token)).get_json()["id"] == holder.id


def sms_code(wechat, phone: str = E164) -> str:
    return re.search(r"\b(\d{6})\b", wechat.sms(phone)[-1]["text"]).group(1)


def age_codes(session, seconds: int) -> None:
    for row in session.scalars(select(PhoneCode)):
        row.created_at -= timedelta(seconds=seconds)
        row.expires_at -= timedelta(seconds=seconds)
    session.commit()


def test_sms_code_binds_the_phone_once_and_is_stored_hashed(client, wechat, session):
    wechat.create_user("fay")
    token = mp_login(client, wechat, "fay")
    sent = client.post("/api/v1/member/phone/sms", json={"phone": PHONE}, headers=bearer(token))
    assert sent.status_code == 202
    assert sent.get_json() == {"expires_in": 300, "resend_after": 60}
    code = sms_code(wechat)
    assert len(code) == 6
    row = session.scalars(select(PhoneCode)).one()
    assert code not in row.code_digest
    assert PHONE not in row.phone_digest
    assert row.delivery_sealed is None
    assert row.sent_at is not None
    verified = client.post(
        "/api/v1/member/phone/sms/verify", json={"phone": PHONE, "code": code}, headers=bearer(token)
    )
    assert verified.status_code == 200, verified.get_json()
    assert verified.get_json()["phone_verified_method"] == "sms"
    reused = client.post("/api/v1/member/phone/sms/verify", json={"phone": PHONE, "code": code}, headers=bearer(token))
    assert reused.status_code == 422


def test_sms_code_locks_after_five_wrong_answers(client, wechat):
    wechat.create_user("gus")
    token = mp_login(client, wechat, "gus")
    client.post("/api/v1/member/phone/sms", json={"phone": PHONE}, headers=bearer(token))
    code = sms_code(wechat)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    left = []
    for _ in range(5):
        answer = client.post(
            "/api/v1/member/phone/sms/verify", json={"phone": PHONE, "code": wrong}, headers=bearer(token)
        )
        assert answer.status_code == 422
        left.append(answer.get_json()["error"]["details"]["attempts_left"])
    assert left == [4, 3, 2, 1, 0]
    locked = client.post("/api/v1/member/phone/sms/verify", json={"phone": PHONE, "code": code}, headers=bearer(token))
    assert locked.status_code == 429
    assert locked.get_json()["error"]["code"] == "code_locked"


def test_sms_code_format_is_six_digits(client, wechat):
    wechat.create_user("hal")
    token = mp_login(client, wechat, "hal")
    for bad in ("12345", "1234567", "abcdef"):
        answer = client.post(
            "/api/v1/member/phone/sms/verify", json={"phone": PHONE, "code": bad}, headers=bearer(token)
        )
        assert answer.status_code == 422


def test_sms_code_expires_after_five_minutes(client, wechat, session):
    wechat.create_user("ivy")
    token = mp_login(client, wechat, "ivy")
    client.post("/api/v1/member/phone/sms", json={"phone": PHONE}, headers=bearer(token))
    code = sms_code(wechat)
    age_codes(session, 299)
    fresh = client.post(
        "/api/v1/member/phone/sms/verify",
        json={"phone": PHONE, "code": "000000" if code != "000000" else "111111"},
        headers=bearer(token),
    )
    assert fresh.get_json()["error"]["code"] == "code_invalid"  # still valid at 4:59
    age_codes(session, 2)
    expired = client.post("/api/v1/member/phone/sms/verify", json={"phone": PHONE, "code": code}, headers=bearer(token))
    assert expired.status_code == 422
    assert expired.get_json()["error"]["code"] == "code_expired"


def test_sms_cooldown_is_60_seconds_and_ten_a_day_per_phone(client, wechat, session):
    wechat.create_user("jon")
    token = mp_login(client, wechat, "jon")
    send = lambda: client.post("/api/v1/member/phone/sms", json={"phone": PHONE}, headers=bearer(token))  # noqa: E731
    assert send().status_code == 202
    cooling = send()
    assert cooling.status_code == 429
    assert cooling.get_json()["error"]["code"] == "sms_cooldown"
    age_codes(session, 59)
    assert send().status_code == 429
    age_codes(session, 1)
    assert send().status_code == 202
    for _ in range(8):
        age_codes(session, 60)
        assert send().status_code == 202
    assert session.scalar(select(func.count()).select_from(PhoneCode)) == 10
    age_codes(session, 60)
    capped = send()
    assert capped.status_code == 429
    assert capped.get_json()["error"]["code"] == "sms_daily_limit"
    assert len(wechat.sms(E164)) == 10
    # A day after the first code, one more is allowed.
    age_codes(session, 24 * 3600 - 9 * 60 - 59)
    assert send().status_code == 202


def test_sms_per_ip_cap(app, client, wechat):
    app.extensions["scrm"].config = app.extensions["scrm"].config.replace(sms_ip_daily_limit=2)
    wechat.create_user("kim")
    token = mp_login(client, wechat, "kim")
    for number in ("13912340001", "13912340002"):
        assert client.post("/api/v1/member/phone/sms", json={"phone": number}, headers=bearer(token)).status_code == 202
    capped = client.post("/api/v1/member/phone/sms", json={"phone": "13912340003"}, headers=bearer(token))
    assert capped.status_code == 429
    assert capped.get_json()["error"]["code"] == "sms_ip_limit"


def test_an_invalid_phone_is_refused(client, wechat):
    wechat.create_user("lea")
    token = mp_login(client, wechat, "lea")
    answer = client.post("/api/v1/member/phone/sms", json={"phone": "12345"}, headers=bearer(token))
    assert answer.status_code == 422
    assert answer.get_json()["error"]["code"] == "phone_invalid"


def test_a_phone_left_on_a_merged_row_goes_to_the_member_it_was_merged_into(client, wechat, session):
    from member.services.merge import merge_members
    from scrm.audit import Actor

    survivor = Member(source="legacy", phone="+8613700000001", name="Old")
    merged = Member(source="legacy", phone=E164)
    session.add_all([survivor, merged])
    session.flush()
    merge_members(session, survivor_id=survivor.id, source_id=merged.id, actor=Actor.system())
    session.commit()
    assert merged.phone == E164  # the survivor kept its own number
    wechat.create_user("zed", phone=PHONE)
    token = mp_login(client, wechat, "zed")
    answer = client.post(
        "/api/v1/member/phone", json={"code": wechat.phone_code("zed", MP.appid)}, headers=bearer(token)
    )
    assert answer.status_code == 200, answer.get_json()
    me = client.get("/api/v1/member/me", headers=bearer(answer.get_json()["token"])).get_json()
    assert (me["id"], me["name"], me["phone"]) == (survivor.id, "Old", "139****5678")
