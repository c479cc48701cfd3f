"""Legacy import throughput against `psql \\copy` of the same file, peak memory, and bind-on-verify latency.

Usage: python benchmarks/legacy_import.py [--rows 1000000] [--big] [--members 1000] [--samples 500]
Generates a CSV, imports it with `scrm`'s pipeline (validate, normalise, stage via COPY, move, bind pass) in a
child process (its peak RSS is measured), then `psql \\copy`s the same members into a table of the same shape
with the same indexes and foreign keys as `legacy_members` (the fair anchor the JSON `ratio` is against; the
older narrow anchor is printed too), in the same run. `--big` adds a 5M-row file (memory must stay flat). Then times
`phone_verified` → bind against the imported rows. Needs PostgreSQL on 127.0.0.1 and `psql` on PATH
(SCRM_BENCH_DATABASE_URL to override).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

DATABASE_URL = os.environ.get(
    "SCRM_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/scrm_bench_legacy"
)
HEADER = "会员编号,手机号,姓名,等级,积分,消费金额,注册时间,最后消费时间\n"
# The fair anchor (issue 7: "a table of the same shape with the same indexes as ours"): a copy of
# legacy_members with every column type, default, check, index and foreign key, loaded by `psql \\copy` from
# the same members written in that table's shape (E.164 phones, fen, timestamps, jsonb custom fields) — i.e.
# COPY doing exactly the writes our import must do, with none of the reading, validating or normalising.
FAIR_TABLE = """
DROP TABLE IF EXISTS copy_anchor;
CREATE TABLE copy_anchor (LIKE legacy_members INCLUDING ALL);
ALTER TABLE copy_anchor
    ADD FOREIGN KEY (batch_id) REFERENCES import_batches (id),
    ADD FOREIGN KEY (bound_member_id) REFERENCES members (id),
    ADD FOREIGN KEY (merged_into_id) REFERENCES copy_anchor (id);
"""
FAIR_COLUMNS = (
    "batch_id, status, row_number, legacy_id, phone, name, tier, points, total_spend_fen, joined_at, "
    "last_active_at, custom_fields"
)
# The earlier, narrower anchor (the raw file's columns; no jsonb, no FK), printed for comparison only.
NARROW_TABLE = """
DROP TABLE IF EXISTS copy_anchor_narrow;
CREATE TABLE copy_anchor_narrow (
    id bigserial PRIMARY KEY, legacy_id text NOT NULL, phone text NOT NULL, name text, tier text,
    points bigint, spend numeric(14, 2), joined_at timestamptz, last_active_at timestamptz
);
CREATE UNIQUE INDEX ON copy_anchor_narrow (legacy_id);
CREATE INDEX ON copy_anchor_narrow (phone);
"""


TIERS = ("普通", "银卡", "金卡", "钻石")


def phone_of(i: int) -> str:
    return f"1{3 + i % 7}{i:09d}"


def generate(path: Path, rows: int) -> None:
    """A CRM export of `rows` members (UTF-8, comma-separated), written in blocks so memory stays small."""
    tiers = TIERS
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        block: list[str] = []
        for i in range(rows):
            block.append(
                f"M{i:09d},{phone_of(i)},会员{i % 9973},{tiers[i % 4]},{i % 3000},{i % 90000}.{i % 100:02d},"
                f"20{10 + i % 15}-{1 + i % 12:02d}-{1 + i % 28:02d},2026-{1 + i % 11:02d}-{1 + i % 28:02d}\n"
            )
            if len(block) == 50_000:
                out.write("".join(block))
                block.clear()
        out.write("".join(block))


def generate_shaped(path: Path, rows: int, batch_id: int) -> None:
    """The members of `generate`'s file as legacy_members rows (what our import writes), for the fair anchor."""
    tiers = TIERS
    with open(path, "w", encoding="utf-8", newline="") as out:
        block: list[str] = []
        for i in range(rows):
            block.append(
                f"{batch_id},unbound,{i + 2},M{i:09d},+86{phone_of(i)},会员{i % 9973},{tiers[i % 4]},{i % 3000},"
                f"{(i % 90000) * 100 + i % 100},20{10 + i % 15}-{1 + i % 12:02d}-{1 + i % 28:02d} 00:00:00+08,"
                f"2026-{1 + i % 11:02d}-{1 + i % 28:02d} 00:00:00+08,{{}}\n"
            )
            if len(block) == 50_000:
                out.write("".join(block))
                block.clear()
        out.write("".join(block))


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


def _app(url: str):
    from scrm.app import create_app
    from scrm.config import Config

    return create_app(
        Config(env="test", database_url=url, secret_key="bench-secret-key-0123456789abcdef01234", log_json=False)
    )


def child_import(url: str, path: str, chunk_rows: int) -> None:
    """Run in a child process: import `path` and print {"rows", "seconds"} (the parent reads our peak RSS)."""
    from member.legacy.runner import run_import
    from member.legacy.services.batches import open_batch

    logging.getLogger("member.legacy.carryover").setLevel(logging.ERROR)
    db = _app(url).extensions["scrm"].db
    started = time.perf_counter()
    with db.transaction() as session:
        batch_id = open_batch(session, path=path, filename=Path(path).name).batch.id
    result = run_import(db, batch_id, chunk_rows=chunk_rows)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "rows": result.rows,
                "inserted": result.inserted,
                "seconds": seconds,
                "import_s": result.import_s,
                "bind_s": result.bind_s,
                "bind": result.bind_pass,
            }
        )
    )


def run_child(url: str, path: Path, chunk_rows: int) -> tuple[dict, float]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", url, str(path), str(chunk_rows)],
        stdout=subprocess.PIPE,
        cwd=REPO_ROOT,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"import child failed with status {status}")
    return json.loads(output.decode().strip().splitlines()[-1]), usage.ru_maxrss / 1024


def _psql(dsn: str, command: str) -> None:
    subprocess.run(["psql", dsn, "-q", "-v", "ON_ERROR_STOP=1", "-c", command], check=True)


def psql_copy(url: str, path: Path, shaped: Path) -> tuple[float, float]:
    """Seconds of `psql \\copy` into the fair anchor (from `shaped`) and into the narrow one (from `path`)."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    _psql(dsn, FAIR_TABLE)
    started = time.perf_counter()
    _psql(dsn, f"\\copy copy_anchor ({FAIR_COLUMNS}) FROM '{shaped}' WITH (FORMAT csv)")
    fair_s = time.perf_counter() - started
    _psql(dsn, NARROW_TABLE)
    started = time.perf_counter()
    _psql(
        dsn,
        f"\\copy copy_anchor_narrow (legacy_id, phone, name, tier, points, spend, joined_at, last_active_at) "
        f"FROM '{path}' WITH (FORMAT csv, HEADER true)",
    )
    narrow_s = time.perf_counter() - started
    _psql(dsn, "DROP TABLE copy_anchor; DROP TABLE copy_anchor_narrow")
    return fair_s, narrow_s


def last_batch_id(url: str) -> int:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as connection:
        row = connection.execute("SELECT max(id) FROM import_batches").fetchone()
    return int(row[0])  # type: ignore[index]


def seed_verified_members(url: str, rows: int, members: int) -> None:
    """Members who verified a phone before the import, so the bind pass has work."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as connection:
        connection.execute(
            "INSERT INTO members (phone, phone_verified_at, role, custom_fields, source, created_at) "
            "SELECT '+86' || p, now(), 'consumer', '{}', 'miniprogram', now() FROM unnest(%s::text[]) AS p",
            ([phone_of(i) for i in random.Random(7).sample(range(rows), members)],),
        )
        # The file's tiers exist, so binds raise tiers as they would in a deployment.
        connection.execute(
            "INSERT INTO tiers (code, name, rank, threshold_kind, threshold, points_multiplier_pct, is_active, "
            "created_at) SELECT t, t, r, 'points', r * 1000, 100, true, now() "
            "FROM unnest(%s::text[]) WITH ORDINALITY AS x(t, r) ON CONFLICT DO NOTHING",
            (list(TIERS),),
        )


def bind_latency(url: str, rows: int, samples: int) -> tuple[list[float], list[int]]:
    """Milliseconds and SQL statements per verification transaction (phone set, `phone_verified` sent, bind, commit)."""
    from sqlalchemy import event

    from member import signals
    from member.models import Member
    from scrm.clock import utcnow

    logging.getLogger("member.legacy.carryover").setLevel(logging.ERROR)
    app = _app(url)
    db = app.extensions["scrm"].db
    statements = [0]

    @event.listens_for(db.engine, "before_cursor_execute")
    def count(*_args: object) -> None:
        statements[0] += 1

    picks = random.Random(11).sample(range(rows), samples)
    timings: list[float] = []
    counts: list[int] = []
    with app.app_context():
        for i in picks:
            phone = "+86" + phone_of(i)
            with db.transaction() as session:
                if session.query(Member.id).filter(Member.phone == phone).first() is not None:
                    continue
                member = Member(source="miniprogram")
                session.add(member)
                session.flush()
            started = time.perf_counter()
            statements[0] = 0
            with db.transaction() as session:
                member = session.get(Member, member.id)
                member.phone, member.phone_verified_at = phone, utcnow()
                session.flush()
                signals.phone_verified.send(member.id, session=session, phone=phone, method="wechat", at=utcnow())
            timings.append((time.perf_counter() - started) * 1000)
            counts.append(statements[0])
    return timings, counts


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def load_average() -> str:
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def measure(url: str, rows: int, members: int, chunk_rows: int, workdir: Path) -> dict:
    path = workdir / f"legacy-{rows}.csv"
    shaped = workdir / f"legacy-{rows}-shaped.csv"
    generate(path, rows)
    seed_verified_members(url, rows, members)
    load_before = load_average()
    ours, rss_mb = run_child(url, path, chunk_rows)
    generate_shaped(shaped, rows, last_batch_id(url))
    copy_s, narrow_s = psql_copy(url, path, shaped)
    ours_rate, copy_rate, narrow_rate = rows / ours["seconds"], rows / copy_s, rows / narrow_s
    print(
        f"{rows:>9,} rows  scrm import {ours['seconds']:6.1f} s = {ours_rate:9,.0f} rows/s "
        f"(load {ours['import_s']:.1f} s, "
        f"bind pass {ours['bind_s']:.1f} s {ours['bind']}; peak RSS {rss_mb:.0f} MB)  |  "
        f"psql \\copy same-shape table {copy_s:6.1f} s = {copy_rate:9,.0f} rows/s  |  "
        f"ratio {ours_rate / copy_rate:.2f}  |  narrow anchor {narrow_rate:9,.0f} rows/s "
        f"(ratio {ours_rate / narrow_rate:.2f})  |  loadavg {load_before} -> {load_average()}"
    )
    path.unlink()
    shaped.unlink()
    return {
        "rows": rows,
        "rows_per_s": ours_rate,
        "copy_rows_per_s": copy_rate,
        "narrow_copy_rows_per_s": narrow_rate,
        "peak_rss_mb": rss_mb,
        "load_s": ours["import_s"],
        "bind_pass_s": ours["bind_s"],
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_import(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big", action="store_true", help="also 5M rows (memory must stay flat)")
    parser.add_argument("--members", type=int, default=1000, help="members who verified before the import")
    parser.add_argument("--samples", type=int, default=500, help="bind-on-verify latency samples")
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    args = parser.parse_args()
    url = fresh_database()
    with tempfile.TemporaryDirectory() as workdir:
        first = measure(url, args.rows, args.members, args.chunk_rows, Path(workdir))
        big = None
        if args.big:
            url = fresh_database()
            big = measure(url, 5 * args.rows, args.members, args.chunk_rows, Path(workdir))
            url = fresh_database()
            measure(url, args.rows, args.members, args.chunk_rows, Path(workdir))  # rows for the latency run
    timings, counts = bind_latency(url, args.rows, args.samples)
    p50, p99 = statistics.median(timings), percentile(timings, 0.99)
    print(
        f"bind on phone verification against {args.rows:,} legacy rows: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"SQL statements per verification median {statistics.median(counts):.0f} max {max(counts)} "
        f"(loadavg {load_average()})"
    )
    summary = {
        "rows": args.rows,
        "rows_per_s": round(first["rows_per_s"]),
        "copy_rows_per_s": round(first["copy_rows_per_s"]),
        # Against the fair (same-shape) anchor.
        "ratio": round(first["rows_per_s"] / first["copy_rows_per_s"], 3),
        "narrow_copy_rows_per_s": round(first["narrow_copy_rows_per_s"]),
        "load_s": round(first["load_s"], 1),
        "bind_pass_s": round(first["bind_pass_s"], 1),
        "peak_rss_mb": round(first["peak_rss_mb"], 1),
        "bind_p50_ms": round(p50, 2),
        "bind_p99_ms": round(p99, 2),
        "bind_statements_median": statistics.median(counts),
    }
    if big is not None:
        summary.update(
            big_rows=big["rows"],
            big_rows_per_s=round(big["rows_per_s"]),
            big_ratio=round(big["rows_per_s"] / big["copy_rows_per_s"], 3),
            big_peak_rss_mb=round(big["peak_rss_mb"], 1),
            big_copy_rows_per_s=round(big["copy_rows_per_s"]),
        )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
