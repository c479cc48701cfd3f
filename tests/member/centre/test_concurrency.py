"""Concurrency on PostgreSQL with real commits: one-time-code limits hold when requests race."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from member.models import Member, PhoneCode
from scrm.guards import member_tokens


def test_racing_code_requests_for_one_phone_send_one_code(embedded_pg_app):
    db = embedded_pg_app.extensions["scrm"].db
    with db.transaction() as session:
        members = [Member(source="miniprogram") for _ in range(8)]
        session.add_all(members)
        session.flush()
        ids = [member.id for member in members]
    with embedded_pg_app.app_context():
        tokens = [member_tokens().issue(member_id, appid=None) for member_id in ids]
    barrier = threading.Barrier(len(tokens))
    statuses: list[int] = []

    def request(token: str) -> None:
        client = embedded_pg_app.test_client()
        barrier.wait()
        response = client.post(
            "/api/v1/member/phone/sms", json={"phone": "13912345678"}, headers={"Authorization": f"Bearer {token}"}
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=request, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [202] + [429] * 7
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(PhoneCode)) == 1
