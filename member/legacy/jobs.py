"""Legacy jobs and receivers: import chunks, bind passes, binds on verification, merges, erasure; the section."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy.orm import Session

from member import sections, signals
from member.legacy import selectors
from member.legacy.errors import UnreadableFile
from member.legacy.models import ImportBatch
from member.legacy.services.batches import IMPORT_CHUNK, batch_reader, mark_failed
from member.legacy.services.binding import bind_batch, bind_verified_phone
from member.legacy.services.dryrun import dry_run
from member.legacy.services.erasure import erase_bound_records
from member.legacy.services.merges import follow_merge, follow_unmerge
from member.legacy.services.policy import DEFAULT_POLICY, BindPolicy
from member.legacy.services.reader import DEFAULT_CHUNK_ROWS
from member.legacy.services.stage import apply_chunk
from scrm import outbox
from scrm.clock import utcnow
from scrm.errors import DomainError

log = logging.getLogger(__name__)

sections.register("legacy", staff=selectors.staff_section, export=selectors.export_section)

BIND_BATCH = "legacy.bind_batch"
BIND_PHONE = "legacy.bind_phone"


def _config() -> Any:
    return current_app.extensions["scrm"].config if has_app_context() else None


def current_policy() -> BindPolicy:
    config = _config()
    if config is None:
        return DEFAULT_POLICY
    return BindPolicy.from_config(config)


def chunk_rows() -> int:
    config = _config()
    return config.legacy_chunk_rows if config is not None else DEFAULT_CHUNK_ROWS


@outbox.handler(IMPORT_CHUNK)
def import_chunk(session: Session, payload: dict[str, Any]) -> None:
    """Apply one chunk from the checkpoint and queue the next (or the bind pass); a dry run runs whole."""
    batch_id = int(payload["batch_id"])
    batch = session.get(ImportBatch, batch_id)
    if batch is None or batch.status == "done" or batch.rows_done != payload.get("start_row", batch.rows_done):
        # Done, or this row's chunk was applied already (a rerun): one effect per row.
        return
    try:
        if batch.dry_run:
            dry_run(session, batch_id, chunk_rows=chunk_rows(), policy=current_policy())
            return
        source, normaliser = batch_reader(batch)
        chunks = source.chunks(start_row=batch.rows_done, start_offset=batch.resume_offset, chunk_rows=chunk_rows())
        try:
            chunk = next(chunks)
        finally:
            chunks.close()
        outcome = apply_chunk(session, batch_id, chunk, normaliser)
    except (UnreadableFile, FileNotFoundError) as exc:
        # Retrying cannot help a file that is gone or unreadable: the batch fails and says why.
        message = exc.message if isinstance(exc, DomainError) else "the uploaded file is missing"
        mark_failed(session, batch_id, message)
        return
    if outcome is None:
        return
    if outcome.eof:
        outbox.emit(session, BIND_BATCH, {"batch_id": batch_id}, key=f"legacy:bind-batch:{batch_id}")
    else:
        outbox.emit(
            session,
            IMPORT_CHUNK,
            {"batch_id": batch_id, "start_row": chunk.end_row},
            key=f"legacy:import:{batch_id}:{chunk.end_row}",
        )


@outbox.handler(BIND_BATCH)
def bind_batch_job(session: Session, payload: dict[str, Any]) -> None:
    """The bind pass after an import (safe twice: binding is idempotent per phone)."""
    bind_batch(session, int(payload["batch_id"]), policy=current_policy())


@outbox.handler(BIND_PHONE)
def bind_phone_job(session: Session, payload: dict[str, Any]) -> None:
    """A bind that failed inside the phone verification, retried on its own."""
    bind_verified_phone(
        session,
        member_id=int(payload["member_id"]),
        phone=payload["phone"],
        method=payload["method"],
        at=datetime.fromisoformat(payload["at"]),
        policy=current_policy(),
    )


@signals.phone_verified.connect
def bind_on_phone_verified(
    member_id: int, *, session: Session, phone: str, method: str, at: datetime | None = None, **_: Any
) -> None:
    """Bind (or queue) the legacy record of the phone a member just verified, in the verification's transaction.

    A failing bind must not fail the verification: it is rolled back alone and retried through the outbox.
    """
    at = at or utcnow()
    try:
        with session.begin_nested():
            bind_verified_phone(
                session, member_id=member_id, phone=phone, method=method, at=at, policy=current_policy()
            )
    except Exception:
        log.exception("legacy bind on phone verification failed; retrying through the outbox")
        outbox.emit(
            session,
            BIND_PHONE,
            {"member_id": member_id, "phone": phone, "method": method, "at": at.isoformat()},
            key=f"legacy:bind-phone:{member_id}:{at.isoformat()}",
        )


@signals.members_merged.connect
def move_bindings_on_merge(survivor_id: int, *, session: Session, merge_id: int, **_: Any) -> None:
    """A merged member's legacy bindings follow it to the survivor, in the merge's transaction."""
    follow_merge(session, merge_id=merge_id)


@signals.members_unmerged.connect
def return_bindings_on_unmerge(survivor_id: int, *, session: Session, merge_id: int, **_: Any) -> None:
    """An unmerge gives the source member back the legacy bindings its merge moved."""
    follow_unmerge(session, merge_id=merge_id)


@signals.member_erased.connect
def erase_legacy_records(member_id: int, *, session: Session, **_: Any) -> None:
    """An erased member's legacy records lose their personal data too, in the erasure's transaction."""
    erase_bound_records(session, member_id)
