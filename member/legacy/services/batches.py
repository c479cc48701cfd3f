"""Import batches: one per file content (and one per dry run of it), with the mapping that reads it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from member.legacy.errors import BatchNotFound, InvalidOrdersParent
from member.legacy.models import ImportBatch
from member.legacy.services.history import OrderNormaliser, build_order_mapping
from member.legacy.services.normalise import ColumnMapping, RowNormaliser, build_mapping
from member.legacy.services.reader import LegacySource, content_hash
from scrm import outbox

#: The outbox kind of one import chunk (handled in member.legacy.jobs, on the default queue).
IMPORT_CHUNK = "legacy.import_chunk"


@dataclass(frozen=True)
class BatchHandle:
    batch: ImportBatch
    created: bool


def open_batch(
    session: Session,
    *,
    path: str | os.PathLike[str],
    filename: str,
    mapping: Mapping[str, str] | None = None,
    dry_run: bool = False,
    created_by: int | None = None,
    digest: str | None = None,
    orders_of: int | None = None,
) -> BatchHandle:
    """The batch of this file's content, created when new; the mapping is checked against the header first.

    Re-importing a file whose batch exists returns that batch (`created` False): the caller resumes it if it
    is unfinished and otherwise has nothing to do, so the same file never adds rows twice. `orders_of`: the
    file is the order history of that members batch, which must have finished importing.
    """
    kind = "members" if orders_of is None else "orders"
    if orders_of is not None:
        parent = session.get(ImportBatch, orders_of)
        if parent is None:
            raise InvalidOrdersParent(f"there is no import batch {orders_of}")
        if parent.kind != "members" or parent.dry_run:
            raise InvalidOrdersParent("order history belongs to a members import, not a dry run or an orders import")
        if parent.status != "done":
            raise InvalidOrdersParent("import the members file completely before its order history")
        if dry_run:
            raise InvalidOrdersParent("an orders file has no dry run; import it (re-importing adds nothing)")
    source = LegacySource(path)
    column_mapping = (build_mapping if kind == "members" else build_order_mapping)(source.header, mapping)
    digest = digest or content_hash(path)
    existing = _find(session, digest, dry_run, kind)
    if existing is not None:
        if existing.parent_id != orders_of:
            raise InvalidOrdersParent(
                f"this file was imported as the order history of batch {existing.parent_id}",
                details={"batch_id": existing.id, "parent_id": existing.parent_id},
            )
        return BatchHandle(existing, created=False)
    batch = ImportBatch(
        kind=kind,
        parent_id=orders_of,
        content_hash=digest,
        dry_run=dry_run,
        filename=filename[:255],
        stored_path=str(path),
        file_format=source.format,
        mapping={"overrides": dict(mapping or {}), "columns": column_mapping.describe()},
        status="queued",
        progress_total=source.progress_total,
        created_by=created_by,
        invalid_by_reason={},
        report={},
    )
    try:
        with session.begin_nested():
            session.add(batch)
            session.flush()
    except IntegrityError:
        # The same file uploaded twice at once: the other upload's batch is the batch.
        found = _find(session, digest, dry_run, kind)
        if found is None:
            raise
        return BatchHandle(found, created=False)
    return BatchHandle(batch, created=True)


def _find(session: Session, digest: str, dry_run: bool, kind: str) -> ImportBatch | None:
    return session.scalar(
        select(ImportBatch).where(
            ImportBatch.content_hash == digest, ImportBatch.dry_run.is_(dry_run), ImportBatch.kind == kind
        )
    )


def get_batch(session: Session, batch_id: int) -> ImportBatch:
    batch = session.get(ImportBatch, batch_id)
    if batch is None:
        raise BatchNotFound()
    return batch


def batch_reader(batch: ImportBatch) -> tuple[LegacySource, RowNormaliser | OrderNormaliser]:
    """The file of `batch` and the normaliser its mapping defines."""
    source = LegacySource(batch.stored_path)
    overrides = (batch.mapping or {}).get("overrides")
    if batch.kind == "orders":
        return source, OrderNormaliser(build_order_mapping(source.header, overrides))
    mapping: ColumnMapping = build_mapping(source.header, overrides)
    return source, RowNormaliser(mapping)


def mark_failed(session: Session, batch_id: int, message: str) -> None:
    batch = session.get(ImportBatch, batch_id)
    if batch is not None and batch.status != "done":
        batch.status = "failed"
        batch.error_message = message[:500]
        session.flush()


def batch_counts(batch: ImportBatch) -> dict[str, Any]:
    """The counts of a batch as reports print them."""
    counts = {
        "rows": batch.valid_count + batch.invalid_count,
        "valid": batch.valid_count,
        "invalid": batch.invalid_count,
        "invalid_by_reason": dict(sorted((batch.invalid_by_reason or {}).items())),
    }
    if batch.kind == "members":
        counts["duplicate_phone_rows"] = batch.duplicate_rows
        counts["duplicate_phone_groups"] = batch.duplicate_groups
    return counts


def start_import(session: Session, batch: ImportBatch) -> None:
    """Queue the batch's next chunk to run after commit; queuing twice queues once."""
    outbox.emit(
        session,
        IMPORT_CHUNK,
        {"batch_id": batch.id, "start_row": batch.rows_done},
        key=f"legacy:import:{batch.id}:{batch.rows_done}",
    )
