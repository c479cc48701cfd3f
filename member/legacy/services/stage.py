"""Staging of legacy rows: COPY into a temporary table on PostgreSQL (batched inserts on SQLite), then set-based SQL."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from member.legacy.models import ImportBatch, LegacyMember, LegacyRowError
from member.legacy.services import history
from member.legacy.services.copyrows import CopyRenderer, copy_line
from member.legacy.services.normalise import NormalRow, RowNormaliser
from member.legacy.services.reader import Chunk
from scrm.clock import utcnow

STAGE_COLUMNS = (
    "row_number",
    "legacy_id",
    "phone",
    "name",
    "tier",
    "points",
    "total_spend_fen",
    "joined_at",
    "last_active_at",
    "custom_fields",
)
_PG_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS legacy_stage (
    row_number bigint, legacy_id text, phone text, name text, tier text, points bigint,
    total_spend_fen bigint, joined_at timestamptz, last_active_at timestamptz, custom_fields jsonb
) ON COMMIT DELETE ROWS
"""
_SQLITE_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS legacy_stage (
    row_number INTEGER, legacy_id TEXT, phone TEXT, name TEXT, tier TEXT, points INTEGER,
    total_spend_fen INTEGER, joined_at DATETIME, last_active_at DATETIME, custom_fields TEXT
)
"""
_COLUMNS_SQL = ", ".join(STAGE_COLUMNS)
_MOVE = (
    f"INSERT INTO legacy_members (batch_id, status, {_COLUMNS_SQL}) "  # noqa: S608 - constant column names
    f"SELECT :batch_id, 'unbound', {_COLUMNS_SQL} FROM legacy_stage WHERE true ORDER BY row_number "
    "ON CONFLICT (batch_id, legacy_id) DO NOTHING"
)
# Rows that lost to an earlier row with the same legacy id (in this chunk or an earlier one).
_DUPLICATE_IDS = """
SELECT s.row_number FROM legacy_stage s
WHERE NOT EXISTS (
    SELECT 1 FROM legacy_members m
    WHERE m.batch_id = :batch_id AND m.legacy_id = s.legacy_id AND m.row_number = s.row_number
)
"""


#: Reasons each refused row (by row number) was refused for.
RowReasons = dict[int, list[str]]
Normaliser = RowNormaliser | history.OrderNormaliser


@dataclass(frozen=True)
class ChunkOutcome:
    rows: int
    inserted: int
    invalid: int
    eof: bool


@dataclass
class PreparedChunk:
    """A chunk validated and normalised in Python, ready to stage (no database work yet)."""

    chunk: Chunk
    normaliser: Normaliser
    bad: dict[int, list[str]]
    raw_by_row: dict[int, list[str]]
    valid: int
    #: The good rows as COPY text for batch `copy_batch_id`, when built ahead (their legacy ids do not repeat).
    copy_payload: bytes | None = None
    copy_batch_id: int | None = None
    normal_rows: list[NormalRow] | None = None

    @property
    def good(self) -> list[NormalRow]:
        """The good rows as staging tuples; made on first use when only the COPY payload was built."""
        if self.normal_rows is None:
            normalise = self.normaliser
            results = (normalise(row_number, values) for row_number, values in self.chunk.rows)
            self.normal_rows = [row for row in results if type(row) is tuple]  # type: ignore[misc]
        return self.normal_rows


def prepare_chunk(chunk: Chunk, normaliser: Normaliser, *, renderer: CopyRenderer | None = None) -> PreparedChunk:
    """Validate and normalise a chunk; with a `renderer`, as the COPY payload for the renderer's batch.

    Rendering here lets the runner do it on the reading thread, while the database is still busy with the
    chunk before, instead of between that chunk's commit and this chunk's COPY. A chunk that repeats a
    legacy id gets staging tuples instead (the staging table sorts the repeats out).
    """
    if renderer is not None:
        rendered = renderer.render(chunk.rows)
        valid = len(rendered.lines)
        prepared = PreparedChunk(chunk, normaliser, rendered.bad, rendered.raw_by_row, valid)
        if valid and len(set(rendered.legacy_ids)) == valid:
            prepared.copy_payload = "".join(rendered.lines).encode()
            prepared.copy_batch_id = renderer.batch_id
        else:
            prepared.good  # noqa: B018 - made now, on the reading thread
        return prepared
    good: list[NormalRow] = []
    bad: dict[int, list[str]] = {}
    raw_by_row: dict[int, list[str]] = {}
    for row_number, values in chunk.rows:
        result = normaliser(row_number, values)
        if type(result) is list:
            bad[row_number] = result
            raw_by_row[row_number] = values
        else:
            good.append(result)  # type: ignore[arg-type]
    return PreparedChunk(chunk, normaliser, bad, raw_by_row, len(good), normal_rows=good)


def apply_chunk(
    session: Session, batch_id: int, chunk: Chunk, normaliser: Normaliser, *, now: datetime | None = None
) -> ChunkOutcome | None:
    """Validate, normalise and stage one chunk, move it into legacy_members and advance the checkpoint."""
    renderer = None
    if isinstance(normaliser, RowNormaliser) and session.get_bind().dialect.name == "postgresql":
        renderer = CopyRenderer(normaliser, batch_id)
    return apply_prepared(session, batch_id, prepare_chunk(chunk, normaliser, renderer=renderer), now=now)


def apply_prepared(
    session: Session, batch_id: int, prepared: PreparedChunk, *, now: datetime | None = None
) -> ChunkOutcome | None:
    """Stage a prepared chunk, move it into legacy_members and advance the checkpoint.

    The batch row is locked first: a chunk whose start is not the batch's checkpoint was already applied
    (a second runner, or a retry after a commit), so it returns None and changes nothing. Everything of
    the chunk — good rows, bad rows, counters, checkpoint — lands in the caller's one transaction.
    """
    chunk = prepared.chunk
    batch = session.scalar(
        select(ImportBatch)
        .where(ImportBatch.id == batch_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if batch is None or batch.rows_done != chunk.start_row or batch.status == "done":
        return None
    bad = dict(prepared.bad)
    raw_by_row = dict(prepared.raw_by_row)
    already = 0
    if batch.kind == "orders":
        staged = history.stage_orders(session, batch, prepared.good)  # type: ignore[arg-type]
        inserted, already = staged.inserted, staged.already
        bad.update(staged.refused)
        values_by_row = dict(chunk.rows)
        raw_by_row.update((row_number, values_by_row[row_number]) for row_number in staged.refused)
    else:
        inserted = _stage_members(session, batch_id, prepared, bad, raw_by_row)
    if bad:
        session.execute(
            insert(LegacyRowError),
            [
                {"batch_id": batch_id, "row_number": n, "reasons": ";".join(r), "raw": _raw_text(raw_by_row[n])}
                for n, r in sorted(bad.items())
            ],
        )
    reasons = Counter(reason for found in bad.values() for reason in found)
    merged = dict(batch.invalid_by_reason or {})
    for reason, count in reasons.items():
        merged[reason] = merged.get(reason, 0) + count
    batch.invalid_by_reason = merged
    batch.rows_done = chunk.end_row
    batch.resume_offset = chunk.end_offset
    batch.progress_done = chunk.progress
    batch.valid_count += inserted + already
    batch.inserted_count += inserted
    batch.invalid_count += len(bad)
    batch.status = "running"
    batch.started_at = batch.started_at or (now or utcnow())
    if chunk.eof:
        finish_batch(session, batch, now=now)
    session.flush()
    return ChunkOutcome(rows=len(chunk.rows), inserted=inserted, invalid=len(bad), eof=chunk.eof)


def _raw_text(values: list[str]) -> str:
    # PostgreSQL text cannot hold NUL: it shows as the replacement character, as undecodable bytes do.
    return "\t".join(values).replace("\x00", "\ufffd")


def _stage_members(
    session: Session,
    batch_id: int,
    prepared: PreparedChunk,
    bad: dict[int, list[str]],
    raw_by_row: dict[int, list[str]],
) -> int:
    """Move a chunk's good member rows into legacy_members; rows losing to an earlier legacy id join `bad`."""
    if not prepared.valid:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        payload = prepared.copy_payload if prepared.copy_batch_id == batch_id else None
        if payload is None and _ids_unique(prepared.good):
            payload = copy_text(batch_id, prepared.good).encode()
        if payload is not None and _copy_direct(session, payload):
            return prepared.valid
    good = prepared.good
    _stage(session, good, dialect)
    inserted = session.execute(text(_MOVE), {"batch_id": batch_id}).rowcount or 0
    if inserted < len(good):
        values_by_row = dict(prepared.chunk.rows)
        for (row_number,) in session.execute(text(_DUPLICATE_IDS), {"batch_id": batch_id}):
            bad[row_number] = ["duplicate_legacy_id"]
            raw_by_row[row_number] = values_by_row[row_number]
    session.execute(text("DELETE FROM legacy_stage"))
    return inserted


def finish_batch(session: Session, batch: ImportBatch, *, now: datetime | None = None) -> None:
    """Count the phones the file holds more than once (reported and grouped, all rows kept) and close the batch.

    An orders batch just closes: its bind pass, after this commits, carries its orders to bound members.
    """
    if batch.kind == "orders":
        batch.progress_done = batch.progress_total or batch.progress_done
        batch.status = "done"
        batch.finished_at = now or utcnow()
        return
    if session.get_bind().dialect.name == "postgresql":
        # Grouping millions of phones spills to disk at the default work_mem; this chunk's transaction may
        # use more (SET LOCAL ends with it).
        session.execute(text("SET LOCAL work_mem = '64MB'"))
    groups = (
        select(LegacyMember.phone, func.count().label("n"))
        .where(LegacyMember.batch_id == batch.id)
        .group_by(LegacyMember.phone)
        .having(func.count() > 1)
        .subquery()
    )
    group_count, row_count = session.execute(select(func.count(), func.coalesce(func.sum(groups.c.n), 0))).one()
    batch.duplicate_groups = group_count
    batch.duplicate_rows = int(row_count)
    batch.progress_done = batch.progress_total or batch.progress_done
    batch.status = "done"
    if session.get_bind().dialect.name == "postgresql":
        # A bulk load leaves the planner's statistics behind; the bind pass joins on these rows next.
        session.execute(text("ANALYZE legacy_members"))
    batch.finished_at = now or utcnow()


_DIRECT_COLUMNS = f"batch_id, status, {_COLUMNS_SQL}"


def _ids_unique(rows: list[NormalRow]) -> bool:
    return len({row[1] for row in rows}) == len(rows)


def _copy_direct(session: Session, payload: bytes) -> bool:
    """COPY a chunk straight into legacy_members when no legacy id repeats (the usual case), like `psql \\copy`.

    A legacy id seen twice inside the chunk (no payload is built then), or already imported by an earlier
    chunk (the unique key refuses the COPY, rolled back to its savepoint), sends the chunk through the staging
    table, which keeps the first row of each id and reports the others. Returns whether the rows went in.
    """
    try:
        with session.begin_nested():
            # Asked for inside the savepoint, so the SAVEPOINT is emitted before the COPY.
            connection = session.connection()
            cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                with cursor.copy(f"COPY legacy_members ({_DIRECT_COLUMNS}) FROM STDIN") as copy:
                    copy.write(payload)
            finally:
                cursor.close()
    except psycopg.errors.UniqueViolation:
        return False
    return True


def copy_text(batch_id: int, rows: list[NormalRow]) -> str:
    """The rows as COPY text for `_DIRECT_COLUMNS` (the general path; see CopyRenderer for the usual one)."""
    head = f"{batch_id}\tunbound\t"
    stamps: dict[datetime, str] = {}
    return "".join([copy_line(head, row, stamps) for row in rows])


def _stage(session: Session, rows: list[NormalRow], dialect: str) -> None:
    connection = session.connection()
    if dialect == "postgresql":
        connection.exec_driver_sql(_PG_STAGE)
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(f"COPY legacy_stage ({_COLUMNS_SQL}) FROM STDIN") as copy:
                write = copy.write_row
                for row in rows:
                    write(row)
        finally:
            cursor.close()
        return
    connection.exec_driver_sql(_SQLITE_STAGE)
    connection.exec_driver_sql("DELETE FROM legacy_stage")
    placeholders = ", ".join("?" for _ in STAGE_COLUMNS)
    connection.exec_driver_sql(
        f"INSERT INTO legacy_stage ({_COLUMNS_SQL}) VALUES ({placeholders})",  # noqa: S608 - constant names
        [(*row[:7], _sqlite_time(row[7]), _sqlite_time(row[8]), row[9]) for row in rows],
    )


def _sqlite_time(value: datetime | None) -> str | None:
    # The format SQLAlchemy's UTCDateTime stores on SQLite: naive UTC with microseconds.
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
