"""Member centre at scale: `GET /member/me`, the staff 360 view and a points earn against one primary-key query.

Usage: python benchmarks/member.py [--members 1000000] [--entries 10000000] [--requests 2000] [--reuse] [--no-http]
Needs PostgreSQL on 127.0.0.1 (SCRM_BENCH_DATABASE_URL to override). By default the database is dropped,
rebuilt by the migrations and filled with set-based SQL (members with identities, loyalty accounts, tiers, tags,
custom fields, consents, a points ledger whose balances match `loyalty_accounts`, orders, coupons and audit rows);
`--reuse` keeps a database an earlier run generated with the same sizes (the earn requests it wrote stay in it).

Each path is timed twice, each time on its own random members: through the Flask app in process (routing,
guards, queries, serialisation: our code) and over HTTP (gunicorn, one gthread worker, on 127.0.0.1 with a
keep-alive client: what a caller sees). The anchor is `SELECT … FROM members WHERE id = $1` through psycopg in
the same run. Ends with one JSON line; its `p50_ms_*` / `p99_ms_*` headline figures are the HTTP ones, `inproc_*`
the in-process ones.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scrm import auth
from scrm.app import create_app
from scrm.audit import Actor
from scrm.config import Config
from scrm.guards import member_tokens

REPO_ROOT = Path(__file__).resolve().parents[1]
DATABASE_URL = os.environ.get(
    "SCRM_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/scrm_bench_member"
)
SECRET_KEY = "benchmark-secret-key-0123456789abcdef0123"
STAFF_PASSWORD = "benchmark-password"
MP_APPID = "wxBENCHMP00000001"
#: Tables whose rows the generator writes; their secondary indexes are rebuilt after the load.
BULK_TABLES = (
    "members",
    "wechat_identities",
    "loyalty_accounts",
    "points_entries",
    "orders",
    "coupons",
    "audit_log",
    "member_tags",
    "member_consents",
    "tier_history",
)

# Ten ledger entries per member, one of each row below (entry i belongs to member 1 + (i-1) % M, slot (i-1) / M):
# kind, delta, state; slot 0's lot is partly spent by slot 1, slot 6's wholly by slot 7, slot 2 expired unspent.
LEDGER_SLOTS = """(VALUES
    (0, 'earn', 200, 'available'), (1, 'spend', -50, 'available'), (2, 'earn', 100, 'expired'),
    (3, 'earn', 120, 'available'), (4, 'earn', 80, 'pending'), (5, 'adjust', 30, 'available'),
    (6, 'earn', 90, 'available'), (7, 'spend', -90, 'available'), (8, 'earn', 60, 'available'),
    (9, 'earn', 150, 'pending')) AS slot(n, kind, delta, state)"""


def generation_sql(members: int, entries: int) -> list[str]:
    """Set-based statements that fill the database; `:m` is the member count, `:e` the entry count."""
    statements = [
        """INSERT INTO loyalty_settings (id, points_per_yuan, pending_days, points_valid_days, tier_period_days,
                tier_grace_days) VALUES (1, 1, 7, 365, 365, 30)""",
        """INSERT INTO tiers (code, name, rank, threshold_kind, threshold, benefits, points_multiplier_pct,
                is_active, created_at)
            VALUES ('silver', 'Silver', 1, 'spend_fen', 100000, 'Free shipping', 100, true, now()),
                   ('gold', 'Gold', 2, 'spend_fen', 500000, 'Birthday gift', 120, true, now()),
                   ('platinum', 'Platinum', 3, 'spend_fen', 2000000, 'Personal shopper', 150, true, now())""",
        """INSERT INTO member_field_definitions (key, label, field_type, choices, required, member_editable,
                created_at)
            VALUES ('shoe_size', 'Shoe size', 'number', NULL, false, true, now()),
                   ('skin_type', 'Skin type', 'single_choice', '["dry", "oily", "mixed"]', false, true, now()),
                   ('newsletter', 'Newsletter', 'bool', NULL, false, true, now())""",
        """INSERT INTO members (source, role, name, unionid, phone, phone_verified_at, phone_verified_method,
                region, custom_fields, created_at, last_active_at, last_order_at, lifecycle_stage)
            SELECT 'miniprogram', 'consumer', 'Member ' || i, 'u' || lpad(i::text, 27, '0'),
                   '+86139' || lpad(i::text, 8, '0'),
                   now() - ((i % 300) || ' days')::interval, 'wechat', 'City ' || (i % 50),
                   jsonb_build_object('shoe_size', 35 + i % 10, 'skin_type', (ARRAY['dry', 'oily', 'mixed'])[1 + i % 3],
                                      'newsletter', i % 2 = 0),
                   now() - ((i % 400) || ' days')::interval, now() - ((i % 90) || ' days')::interval,
                   now() - ((i % 60) || ' days')::interval,
                   (ARRAY['new', 'active', 'silent', 'churned'])[1 + i % 4]
            FROM generate_series(1, :m) AS i""",
        """INSERT INTO wechat_identities (appid, openid, unionid, app_kind, member_id, subscribed, created_at)
            SELECT 'wxBENCHMP00000001', 'oMP' || lpad(id::text, 25, '0'), 'u' || lpad(id::text, 27, '0'),
                   'miniprogram', id, false, created_at FROM members""",
        """INSERT INTO wechat_identities (appid, openid, unionid, app_kind, member_id, subscribed, subscribe_scene,
                first_subscribed_at, subscribed_at, created_at)
            SELECT 'wxBENCHOA00000001', 'oOA' || lpad(id::text, 25, '0'), 'u' || lpad(id::text, 27, '0'),
                   'oa', id, true, 'ADD_SCENE_QR_CODE', created_at, created_at, created_at
            FROM members WHERE id % 2 = 0""",
        """INSERT INTO member_tag_definitions (name, kind, rule, created_at)
            SELECT 'tag ' || i, CASE WHEN i <= 15 THEN 'manual' ELSE 'rule' END,
                   CASE WHEN i > 15 THEN jsonb_build_object('kind', 'region_is', 'region', 'City ' || i) END, now()
            FROM generate_series(1, 20) AS i""",
        """INSERT INTO member_tags (member_id, tag_id, added_at)
            SELECT id, 1 + (id + k * 7) % 20, now() - (k || ' days')::interval
            FROM members, generate_series(0, 2) AS k WHERE k < 1 + id % 3""",
        """INSERT INTO member_consents (member_id, purpose, granted, policy_version, at)
            SELECT id, purpose, id % 3 <> 0, 'v1', created_at
            FROM members, unnest(ARRAY['marketing_messages', 'profiling']) AS purpose WHERE id % 4 <> 0""",
        """INSERT INTO points_entries (member_id, kind, delta, remaining, state, reason, source, key, available_at,
                expires_at, ref_entry_id, detail, created_at)
            SELECT 1 + (i - 1) % :m, slot.kind, slot.delta,
                   CASE WHEN slot.delta < 0 THEN NULL
                        WHEN slot.state = 'expired' THEN 0
                        WHEN slot.n = 0 AND i + :m <= :e THEN 150
                        WHEN slot.n = 6 AND i + :m <= :e THEN 0
                        ELSE slot.delta END,
                   slot.state, CASE WHEN slot.kind = 'adjust' THEN 'goodwill' ELSE 'order' END,
                   CASE WHEN slot.kind = 'adjust' THEN 'staff' ELSE 'order' END, 'bench:' || i,
                   CASE WHEN slot.state = 'pending' THEN now() + interval '5 days'
                        ELSE now() - ((400 - slot.n * 30) || ' days')::interval END,
                   CASE WHEN slot.delta > 0 THEN now() + ((slot.n * 30 - 35) || ' days')::interval END,
                   NULL, NULL, now() - ((420 - slot.n * 40) || ' days')::interval
            FROM generate_series(1::bigint, :e) AS i JOIN LEDGER_SLOTS ON slot.n = ((i - 1) / :m) % 10""",
        """INSERT INTO orders (source, external_id, member_id, amount_fen, refunded_fen, paid_at, items, status,
                points_earned, points_reversed, created_at)
            SELECT 'shop', 'bench-' || i, 1 + (i * 7919) % :m, 1000 + (i * 37) % 90000, 0,
                   now() - ((i % 700) || ' days')::interval,
                   jsonb_build_array(jsonb_build_object('sku', 'SKU' || i % 500, 'qty', 1)), 'paid',
                   (1000 + (i * 37) % 90000) / 100, 0, now() - ((i % 700) || ' days')::interval
            FROM generate_series(1::bigint, 2 * :m) AS i""",
        """INSERT INTO loyalty_accounts (member_id, points_balance, points_pending, tier_id, tier_since,
                tier_period_end, created_at)
            SELECT m.id, coalesce(p.balance, 0), coalesce(p.pending, 0), t.id,
                   CASE WHEN t.id IS NOT NULL THEN now() - interval '100 days' END,
                   CASE WHEN t.id IS NOT NULL THEN now() + interval '265 days' END, m.created_at
            FROM members m
            LEFT JOIN (SELECT member_id, sum(delta) FILTER (WHERE state = 'available') AS balance,
                              sum(delta) FILTER (WHERE state = 'pending') AS pending
                       FROM points_entries GROUP BY member_id) p ON p.member_id = m.id
            LEFT JOIN tiers t ON t.rank = m.id % 4""",
        """INSERT INTO tier_history (member_id, from_tier_id, to_tier_id, reason, source, at)
            SELECT member_id, NULL, tier_id, 'upgrade', 'evaluation', tier_since
            FROM loyalty_accounts WHERE tier_id IS NOT NULL""",
        """INSERT INTO coupon_templates (code, name, kind, amount_off_fen, percent_off, min_spend_fen, valid_days,
                granted_count, is_active, created_at)
            VALUES ('welcome', 'Welcome 20 off', 'amount', 2000, NULL, 10000, 30, 0, true, now()),
                   ('birthday', 'Birthday 10%', 'percent', NULL, 10, 0, 14, 0, true, now())""",
        """INSERT INTO coupons (template_id, member_id, key, state, reason, source, expires_at, granted_at,
                redeemed_at, redeemed_by)
            SELECT 1 + i % 2, 1 + (i * 104729) % :m, 'bench-coupon:' || i,
                   (ARRAY['available', 'redeemed', 'expired'])[1 + i % 3], 'campaign', 'staff',
                   now() + ((i % 60 - 20) || ' days')::interval, now() - ((i % 90) || ' days')::interval,
                   CASE WHEN i % 3 = 1 THEN now() - interval '1 day' END, CASE WHEN i % 3 = 1 THEN 'member' END
            FROM generate_series(1::bigint, :m / 2) AS i""",
        """UPDATE coupon_templates
            SET granted_count = (SELECT count(*) FROM coupons WHERE template_id = coupon_templates.id)""",
        """INSERT INTO audit_log (actor_type, actor_id, action, target_type, target_id, after, at)
            SELECT 'staff', 1, (ARRAY['member.tag', 'member.update', 'member.phone_reveal'])[1 + k],
                   'member', (1 + (i - 1) % :m)::text, NULL, now() - ((i % 500) || ' hours')::interval
            FROM generate_series(1, :m) AS i, generate_series(0, 2) AS k WHERE k < 1 + i % 3""",
        """INSERT INTO audit_log (actor_type, actor_id, action, target_type, target_id, after, at)
            SELECT 'staff', 1, 'order.record', 'order', id::text, NULL, created_at FROM orders WHERE id % 4 = 0""",
    ]
    return [statement.replace("LEDGER_SLOTS", LEDGER_SLOTS) for statement in statements]


def admin_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def generated_sizes(url: str) -> dict[str, Any] | None:
    """The sizes an earlier run generated into the database, or None when it holds no complete generation."""
    parsed = make_url(url)
    with psycopg.connect(admin_url(url), autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (parsed.database,)).fetchone()
    if not exists:
        return None
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        row = connection.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = current_database()"
        ).fetchone()
    return json.loads(row[0]) if row and row[0] else None


def fresh_database(url: str) -> None:
    from scrm import migrate

    database = make_url(url).database
    with psycopg.connect(admin_url(url), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{database}"')
    migrate.upgrade(url)


def generate(url: str, members: int, entries: int) -> float:
    """Fill the migrated database; returns seconds taken.

    Why this way: the rows are written with foreign-key triggers off (`session_replication_role = replica`; the
    generator writes consistent rows), and the unique constraints and secondary indexes of the big tables are
    dropped first and rebuilt from their own definitions afterwards: several times faster than row by row.
    """
    started = time.perf_counter()
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        tables = list(BULK_TABLES)
        uniques = connection.execute(
            """SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c
               WHERE c.contype = 'u' AND c.conrelid::regclass::text = ANY(%s)""",
            (tables,),
        ).fetchall()
        for table, name, _definition in uniques:
            connection.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')  # type: ignore[arg-type]
        indexes = connection.execute(
            """SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x
               JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
               WHERE t.relname = ANY(%s) AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)""",
            (tables,),
        ).fetchall()
        for name, _definition in indexes:
            connection.execute(f'DROP INDEX "{name}"')  # type: ignore[arg-type]
        connection.execute("SET session_replication_role = replica")
        connection.execute("SET maintenance_work_mem = '256MB'")
        connection.execute("SET work_mem = '64MB'")
        for statement in generation_sql(members, entries):
            step = time.perf_counter()
            sql = statement.replace(":m", str(members)).replace(":e", str(entries))
            connection.execute(sql)  # type: ignore[arg-type]
            print(f"  {time.perf_counter() - step:6.1f} s  {' '.join(statement.split()[:3])}", flush=True)
        step = time.perf_counter()
        for table, name, definition in uniques:
            connection.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')  # type: ignore[arg-type]
        for _name, definition in indexes:
            connection.execute(definition)  # type: ignore[arg-type]
        print(f"  {time.perf_counter() - step:6.1f} s  indexes and unique constraints rebuilt", flush=True)
        connection.execute("SET session_replication_role = origin")
        step = time.perf_counter()
        connection.execute("VACUUM ANALYZE")
        print(f"  {time.perf_counter() - step:6.1f} s  VACUUM ANALYZE", flush=True)
        sizes = json.dumps({"members": members, "entries": entries})
        connection.execute(f"COMMENT ON DATABASE \"{make_url(url).database}\" IS '{sizes}'")  # type: ignore[arg-type]
    return time.perf_counter() - started


def percentiles(durations: list[float]) -> tuple[float, float]:
    ordered = sorted(durations)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def timed(call: Callable[[int], object], ids: list[int]) -> list[float]:
    durations = []
    for member_id in ids:
        started = time.perf_counter()
        call(member_id)
        durations.append((time.perf_counter() - started) * 1000)
    return durations


class QueryCounter:
    """Counts the SQL statements an engine runs (SQLAlchemy's `before_cursor_execute` hook)."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: Any) -> None:
        self.count += 1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SCRM_ENV": "dev",
        "SCRM_DATABASE_URL": url,
        "SCRM_SECRET_KEY": SECRET_KEY,
        "SCRM_LOG_LEVEL": "WARNING",
    }
    env.pop("SCRM_REDIS_URL", None)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--worker-class",
            "gthread",
            "--threads",
            "1",
            "--keep-alive",
            "30",
            "--log-level",
            "warning",
            "scrm.wsgi:app",
        ],
        cwd=REPO_ROOT,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("gunicorn did not start")


class Paths:
    """The three measured requests for a member id, over any transport `send(method, path, headers, body)`."""

    def __init__(self, send: Callable[..., tuple[int, bytes]], staff: dict[str, str], tokens: dict[int, str]) -> None:
        self.send = send
        self.staff = staff
        self.tokens = tokens
        self.orders = 0
        self.paid_at = datetime.now(UTC).isoformat()
        self.run = f"{os.getpid()}-{int(time.time())}"

    def me(self, member_id: int) -> None:
        status, _ = self.send("GET", "/api/v1/member/me", {"Authorization": f"Bearer {self.tokens[member_id]}"})
        assert status == 200, status

    def staff_360(self, member_id: int) -> None:
        status, _ = self.send("GET", f"/api/v1/staff/members/{member_id}", self.staff)
        assert status == 200, status

    def earn(self, member_id: int) -> None:
        self.orders += 1
        body = {
            "source": "bench",
            "external_id": f"{self.run}-{self.orders}",
            "member_id": member_id,
            "amount_fen": 5000 + member_id % 20000,
            "paid_at": self.paid_at,
        }
        status, _ = self.send("POST", "/api/v1/staff/orders", self.staff, body)
        assert status == 201, status

    def adjust(self, member_id: int) -> None:
        self.orders += 1
        body = {"points": 10, "reason": "benchmark goodwill", "key": f"bench-{self.run}-{self.orders}"}
        status, _ = self.send("POST", f"/api/v1/staff/members/{member_id}/points/adjustments", self.staff, body)
        assert status == 201, status


def http_sender(port: int) -> Callable[..., tuple[int, bytes]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def send(method: str, path: str, headers: dict[str, str], body: dict[str, Any] | None = None) -> tuple[int, bytes]:
        payload = None if body is None else json.dumps(body).encode()
        all_headers = dict(headers) if payload is None else {**headers, "Content-Type": "application/json"}
        connection.request(method, path, body=payload, headers=all_headers)
        response = connection.getresponse()
        return response.status, response.read()

    return send


def measure(label: str, paths: Paths, samples: dict[str, list[int]], warm: list[int]) -> dict[str, tuple[float, float]]:
    calls = {"me": paths.me, "360": paths.staff_360, "earn": paths.earn, "adjust": paths.adjust}
    for call in calls.values():
        timed(call, warm)
    results = {}
    for name, call in calls.items():
        results[name] = percentiles(timed(call, samples[name]))
        print(f"  {label} {name}: p50 {results[name][0]:.2f} ms, p99 {results[name][1]:.2f} ms", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--reuse", action="store_true", help="keep a database generated with the same sizes")
    parser.add_argument("--no-http", action="store_true", help="in-process figures only")
    args = parser.parse_args()
    url = make_url(DATABASE_URL).render_as_string(hide_password=False)

    sizes = {"members": args.members, "entries": args.entries}
    reused = args.reuse and generated_sizes(url) == sizes
    generate_s = 0.0
    if not reused:
        fresh_database(url)
        generate_s = generate(url, args.members, args.entries)
        print(f"generated {args.members:,} members and {args.entries:,} ledger entries in {generate_s:.1f} s")

    config = Config(env="dev", database_url=url, secret_key=SECRET_KEY, log_level="WARNING", log_json=True)
    app = create_app(config)
    db = app.extensions["scrm"].db
    with db.transaction() as session:
        username = f"bench-{os.getpid()}-{int(time.time())}"
        user = auth.create_staff_user(
            session, username=username, password=STAFF_PASSWORD, role="admin", actor=Actor.system()
        )
        staff_token = auth.login_staff(session, username=user.username, password=STAFF_PASSWORD, ttl_s=3600)
    staff = {"Authorization": f"Bearer {staff_token.token}"}
    rng = random.Random()

    # Every path and transport draws its own members, so no path runs on pages another one just warmed.
    def sample(size: int) -> list[int]:
        return [rng.randint(1, args.members) for _ in range(size)]

    warm = sample(min(200, args.requests))
    pk_ids = sample(args.requests)
    inproc_samples = {name: sample(args.requests) for name in ("me", "360", "earn", "adjust")}
    http_samples = {name: sample(args.requests) for name in ("me", "360", "earn", "adjust")}
    ids = [*warm, *inproc_samples["me"], *http_samples["me"]]
    with app.app_context():
        issuer = member_tokens()
        tokens = {member_id: issuer.issue(member_id, appid=MP_APPID) for member_id in set(ids)}

    client = app.test_client()

    def inproc_send(method: str, path: str, headers: dict[str, str], body: Any = None) -> tuple[int, bytes]:
        response = client.open(path, method=method, headers=headers, json=body)
        return response.status_code, response.data

    # Queries per request, counted on a few members before the timed runs.
    counter = QueryCounter(db.engine)
    counting = Paths(inproc_send, staff, tokens)
    queries = {}
    for name, call in (
        ("me", counting.me),
        ("360", counting.staff_360),
        ("earn", counting.earn),
        ("adjust", counting.adjust),
    ):
        counter.count = 0
        for member_id in warm[:20]:
            call(member_id)
        queries[name] = round(counter.count / len(warm[:20]), 1)
    event.remove(db.engine, "before_cursor_execute", counter._seen)

    with psycopg.connect(libpq_url(url), autocommit=True) as connection:

        def pk(member_id: int) -> None:
            assert connection.execute("SELECT id, name, phone FROM members WHERE id = %s", (member_id,)).fetchone()

        timed(pk, warm)
        pk_p50, pk_p99 = percentiles(timed(pk, pk_ids))
    inproc = measure("in process", Paths(inproc_send, staff, tokens), inproc_samples, warm)
    db.dispose()

    over_http: dict[str, tuple[float, float]] = {}
    if not args.no_http:
        port = free_port()
        server = start_server(url, port)
        try:
            over_http = measure("HTTP", Paths(http_sender(port), staff, tokens), http_samples, warm)
        finally:
            server.terminate()
            server.wait(timeout=30)

    print(f"  pk: p50 {pk_p50:.2f} ms, p99 {pk_p99:.2f} ms")
    for name in inproc:
        line = f"{name:>6}: in process p50 {inproc[name][0]:.2f} ms, p99 {inproc[name][1]:.2f} ms"
        if over_http:
            line += f"; HTTP p50 {over_http[name][0]:.2f} ms, p99 {over_http[name][1]:.2f} ms"
        print(f"{line}; {queries[name]} queries")
    headline = over_http or inproc
    result: dict[str, Any] = {
        "members": args.members,
        "entries": args.entries,
        "orders": 2 * args.members,
        "requests": args.requests,
        "generate_s": round(generate_s, 1),
        "reused": reused,
        "headline": "http" if over_http else "inproc",
        "p50_ms_pk": round(pk_p50, 2),
        "p99_ms_pk": round(pk_p99, 2),
    }
    for name, (p50, p99) in headline.items():
        result[f"p50_ms_{name}"] = round(p50, 2)
        result[f"p99_ms_{name}"] = round(p99, 2)
    for name, (p50, p99) in inproc.items():
        result[f"inproc_p50_ms_{name}"] = round(p50, 2)
        result[f"inproc_p99_ms_{name}"] = round(p99, 2)
    for name, count in queries.items():
        result[f"queries_{name}"] = count
    result["loadavg"] = Path("/proc/loadavg").read_text().split()[0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
