"""Member-centre reads at scale: `GET /member/me` and the staff 360 view against one indexed primary-key query.

Usage: python benchmarks/member_centre.py [--members 1000000] [--requests 2000]
Needs PostgreSQL on 127.0.0.1 (SCRM_BENCH_DATABASE_URL to override; the database is dropped and rebuilt).
Requests go through the Flask app in process (no HTTP server), so the figures are the application's own time:
routing, token check, queries and serialisation. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from member.models import Member
from scrm import auth
from scrm.app import create_app
from scrm.audit import Actor
from scrm.config import Config
from scrm.guards import member_tokens

DATABASE_URL = os.environ.get(
    "SCRM_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/scrm_bench_member_centre"
)
SECRET_KEY = "benchmark-secret-key-0123456789abcdef0123"


def fresh_database() -> str:
    from scrm import migrate

    url = make_url(DATABASE_URL)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{url.database}"')
    rendered = url.render_as_string(hide_password=False)
    migrate.upgrade(rendered)
    return rendered


def generate(engine, members: int) -> float:
    """Members with a profile and custom fields, a mini-program identity each (an OA one for half), one tag for
    a tenth, consents for a tenth, and audit rows for a hundredth; returns seconds taken."""
    started = time.perf_counter()
    statements = [
        """INSERT INTO members (source, role, name, phone, phone_verified_at, phone_verified_method, region,
                custom_fields, created_at, last_active_at, lifecycle_stage)
            SELECT 'miniprogram', 'consumer', 'Member ' || i, '+86139' || lpad(i::text, 8, '0'), now(), 'wechat',
                   'City ' || (i % 50), jsonb_build_object('shoe_size', 35 + i % 10, 'skin_type', 'dry'),
                   now() - ((i % 400) || ' days')::interval, now() - ((i % 90) || ' days')::interval, 'active'
            FROM generate_series(1, :members) AS i""",
        """INSERT INTO wechat_identities (appid, openid, unionid, app_kind, member_id, subscribed, created_at)
            SELECT 'wxBENCHMP00000001', 'oMP' || lpad(id::text, 25, '0'), 'u' || lpad(id::text, 27, '0'),
                   'miniprogram', id, false, created_at FROM members""",
        """INSERT INTO wechat_identities (appid, openid, unionid, app_kind, member_id, subscribed, created_at)
            SELECT 'wxBENCHOA00000001', 'oOA' || lpad(id::text, 25, '0'), 'u' || lpad(id::text, 27, '0'),
                   'oa', id, true, created_at FROM members WHERE id % 2 = 0""",
        """INSERT INTO member_tag_definitions (name, kind, created_at)
            SELECT 'tag ' || i, 'manual', now() FROM generate_series(1, 20) AS i""",
        """INSERT INTO member_tags (member_id, tag_id, added_at)
            SELECT id, 1 + id % 20, now() FROM members WHERE id % 10 = 0""",
        """INSERT INTO member_consents (member_id, purpose, granted, policy_version, at)
            SELECT id, 'marketing_messages', true, 'v1', now() FROM members WHERE id % 10 = 0""",
        """INSERT INTO audit_log (actor_type, action, target_type, target_id, at)
            SELECT 'staff', 'member.tag', 'member', id::text, now() FROM members WHERE id % 100 = 0""",
        "ANALYZE",
    ]
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement), {"members": members} if ":members" in statement else {})
    return time.perf_counter() - started


def timed(samples: int, call: Callable[[int], object], ids: list[int]) -> list[float]:
    durations = []
    for member_id in ids[:samples]:
        started = time.perf_counter()
        call(member_id)
        durations.append((time.perf_counter() - started) * 1000)
    return durations


def percentiles(durations: list[float]) -> tuple[float, float]:
    ordered = sorted(durations)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()

    url = fresh_database()
    config = Config(env="dev", database_url=url, secret_key=SECRET_KEY, log_level="WARNING", log_json=True)
    app = create_app(config)
    db = app.extensions["scrm"].db
    generate_s = generate(db.engine, args.members)
    print(f"generated {args.members:,} members in {generate_s:.1f} s")

    with db.transaction() as session:
        user = auth.create_staff_user(
            session, username="bench", password="benchmark-password", role="analyst", actor=Actor.system()
        )
        staff_token = auth.login_staff(session, username=user.username, password="benchmark-password", ttl_s=3600)
    staff_headers = {"Authorization": f"Bearer {staff_token.token}"}
    with app.app_context():
        tokens = member_tokens()
    rng = random.Random(6)
    ids = [rng.randint(1, args.members) for _ in range(args.requests)]
    client = app.test_client()

    def me(member_id: int) -> None:
        token = tokens.issue(member_id, appid="wxBENCHMP00000001")
        response = client.get("/api/v1/member/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.status_code

    def staff_360(member_id: int) -> None:
        response = client.get(f"/api/v1/staff/members/{member_id}", headers=staff_headers)
        assert response.status_code == 200, response.status_code

    def pk(member_id: int) -> None:
        with db.session() as session:
            assert session.execute(select(Member.id, Member.name).where(Member.id == member_id)).one()

    warm = ids[: min(200, len(ids))]
    for call in (me, staff_360, pk):
        timed(len(warm), call, warm)
    results = {}
    for name, call in (("pk", pk), ("me", me), ("360", staff_360)):
        p50, p99 = percentiles(timed(args.requests, call, ids))
        results[name] = (p50, p99)
        print(f"{name:>4}: p50 {p50:.2f} ms, p99 {p99:.2f} ms over {args.requests} requests")
    app.extensions["scrm"].db.dispose()
    print(
        json.dumps(
            {
                "members": args.members,
                "requests": args.requests,
                "generate_s": round(generate_s, 1),
                "p50_ms_pk": round(results["pk"][0], 2),
                "p99_ms_pk": round(results["pk"][1], 2),
                "p50_ms_me": round(results["me"][0], 2),
                "p99_ms_me": round(results["me"][1], 2),
                "p50_ms_360": round(results["360"][0], 2),
                "p99_ms_360": round(results["360"][1], 2),
                "p99_ratio_me_pk": round(results["me"][1] / results["pk"][1], 1),
                "p99_ratio_360_pk": round(results["360"][1] / results["pk"][1], 1),
            }
        )
    )


if __name__ == "__main__":
    main()
