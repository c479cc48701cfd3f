"""Dry run of a legacy file: the whole import inside a savepoint that is rolled back, leaving only its report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from member.legacy.services.batches import batch_counts, batch_reader, get_batch
from member.legacy.services.binding import preview_bind
from member.legacy.services.policy import DEFAULT_POLICY, BindPolicy
from member.legacy.services.reader import DEFAULT_CHUNK_ROWS
from member.legacy.services.stage import apply_chunk
from scrm.clock import utcnow


def dry_run(
    session: Session,
    batch_id: int,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    policy: BindPolicy = DEFAULT_POLICY,
    at: datetime | None = None,
) -> dict[str, Any]:
    """Rows, valid, invalid by reason, duplicates, matches with verified members and conflicts it would queue.

    Runs the real pipeline (so the counts are the import's counts) in a savepoint and rolls it back: no
    legacy record, member or binding is written. The report is stored on the batch row.
    """
    at = at or utcnow()
    batch = get_batch(session, batch_id)
    source, normaliser = batch_reader(batch)
    savepoint = session.begin_nested()
    try:
        for chunk in source.chunks(chunk_rows=chunk_rows):
            apply_chunk(session, batch_id, chunk, normaliser, now=at)
        staged = get_batch(session, batch_id)
        report: dict[str, Any] = {**batch_counts(staged), **preview_bind(session, batch_id, at=at, policy=policy)}
        counters = {name: getattr(staged, name) for name in _COUNTERS}
    finally:
        savepoint.rollback()
    batch = get_batch(session, batch_id)
    for name, value in counters.items():
        setattr(batch, name, value)
    batch.report = report
    batch.status = "done"
    batch.started_at = batch.started_at or at
    batch.finished_at = utcnow()
    session.flush()
    return report


_COUNTERS = (
    "rows_done",
    "progress_done",
    "valid_count",
    "invalid_count",
    "duplicate_rows",
    "duplicate_groups",
    "invalid_by_reason",
)
