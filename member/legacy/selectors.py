"""Legacy reads: batches and their progress, error reports, duplicate groups, the conflict queue, binding rate."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from member.legacy.models import (
    BindingConflict,
    ImportBatch,
    LegacyBinding,
    LegacyMember,
    LegacyOrder,
    LegacyRowError,
)
from scrm.clock import utcnow


def file_in_use(session: Session, stored_path: str) -> bool:
    """Whether a batch reads the uploaded file at `stored_path` (uploads are named by content hash)."""
    return session.scalar(select(ImportBatch.id).where(ImportBatch.stored_path == stored_path).limit(1)) is not None


def batches_query() -> Select[Any]:
    return select(ImportBatch).order_by(ImportBatch.id.desc())


def conflicts_query(
    *,
    status: str | None = None,
    kind: str | None = None,
    phone: str | None = None,
    member_id: int | None = None,
    batch_id: int | None = None,
) -> Select[Any]:
    query = select(BindingConflict).order_by(BindingConflict.id.desc())
    if status:
        query = query.where(BindingConflict.status == status)
    if kind:
        query = query.where(BindingConflict.kind == kind)
    if phone:
        query = query.where(BindingConflict.phone == phone)
    if member_id:
        query = query.where(BindingConflict.member_id == member_id)
    if batch_id:
        in_batch = select(LegacyMember.phone).where(LegacyMember.batch_id == batch_id)
        query = query.where(BindingConflict.phone.in_(in_batch))
    return query


def batch_progress(batch: ImportBatch, *, now: datetime | None = None) -> dict[str, Any]:
    """How far a batch is: fraction done, rows per second so far and the estimated seconds left."""
    now = now or utcnow()
    total = batch.progress_total or 0
    done = batch.progress_done or 0
    fraction = 1.0 if batch.status == "done" else (done / total if total else 0.0)
    elapsed = ((batch.finished_at or now) - batch.started_at).total_seconds() if batch.started_at else 0.0
    rows_per_s = batch.rows_done / elapsed if elapsed > 0 else 0.0
    eta_s = elapsed * (1 - fraction) / fraction if 0 < fraction < 1 else 0.0
    return {"fraction": round(min(fraction, 1.0), 4), "rows_per_s": round(rows_per_s, 1), "eta_s": round(eta_s, 1)}


ERROR_REPORT_HEADER = ("row_number", "kind", "reasons", "group", "phone", "raw")


def error_report_rows(session: Session, batch_id: int, *, page: int = 5000) -> Iterator[tuple[Any, ...]]:
    """Bad rows (kind `invalid`), then the rows whose phone the file holds more than once (kind
    `duplicate_phone`, grouped by the row number of the group's first row; phones masked), page by page."""
    last = 0
    while True:
        rows = session.execute(
            select(LegacyRowError.row_number, LegacyRowError.reasons, LegacyRowError.raw)
            .where(LegacyRowError.batch_id == batch_id, LegacyRowError.row_number > last)
            .order_by(LegacyRowError.row_number)
            .limit(page)
        ).all()
        if not rows:
            break
        for number, reasons, raw in rows:
            yield (number, "invalid", reasons, "", "", raw)
        last = rows[-1][0]
    groups = (
        select(LegacyMember.phone, func.min(LegacyMember.row_number).label("first_row"))
        .where(LegacyMember.batch_id == batch_id)
        .group_by(LegacyMember.phone)
        .having(func.count() > 1)
        .subquery()
    )
    for first_row, phone, number, legacy_id in session.execute(
        select(groups.c.first_row, LegacyMember.phone, LegacyMember.row_number, LegacyMember.legacy_id)
        .join(groups, (groups.c.phone == LegacyMember.phone) & (LegacyMember.batch_id == batch_id))
        .order_by(groups.c.first_row, LegacyMember.row_number)
        .execution_options(yield_per=page)
    ):
        yield (number, "duplicate_phone", "duplicate_phone", first_row, mask_phone(phone), legacy_id)


#: A cell starting with one of these is a formula to a spreadsheet tool (CSV injection, OWASP).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """Text a spreadsheet would run as a formula, prefixed with an apostrophe so it shows as text."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def error_report_csv(session: Session, batch_id: int) -> Iterator[str]:
    """The error report as CSV text chunks (UTF-8 with BOM, so spreadsheet tools open Chinese text right).

    The last column comes from the uploaded file (the raw row, or a legacy id): a cell that would run as a
    formula is written as text. The other columns are ours.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(ERROR_REPORT_HEADER)
    for count, row in enumerate(error_report_rows(session, batch_id), start=1):
        writer.writerow((*row[:-1], spreadsheet_safe(row[-1])))
        if count % 1000 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def mask_phone(phone: str | None) -> str:
    """+8613812345678 → +86138****5678: enough to group and compare, not enough to call."""
    if not phone:
        return ""
    return phone[:-8] + "****" + phone[-4:] if len(phone) > 8 else "****"


def binding_rate(session: Session, *, days: int = 30, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per day of the last `days`: legacy records imported so far, bound so far (active binds), and the rate."""
    now = now or utcnow()
    imported_by_day = dict(
        session.execute(
            select(func.date(ImportBatch.finished_at), func.sum(ImportBatch.inserted_count))
            .where(ImportBatch.dry_run.is_(False), ImportBatch.status == "done")
            .group_by(func.date(ImportBatch.finished_at))
        ).all()
    )
    bound_by_day = dict(
        session.execute(
            select(func.date(LegacyBinding.bound_at), func.count())
            .where(LegacyBinding.status == "active")
            .group_by(func.date(LegacyBinding.bound_at))
        ).all()
    )
    start = (now - timedelta(days=days - 1)).date()
    imported = sum(int(n or 0) for day, n in imported_by_day.items() if _day(day) < start)
    bound = sum(int(n or 0) for day, n in bound_by_day.items() if _day(day) < start)
    series: list[dict[str, Any]] = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        imported += sum(int(n or 0) for d, n in imported_by_day.items() if _day(d) == day)
        bound += sum(int(n or 0) for d, n in bound_by_day.items() if _day(d) == day)
        series.append(
            {
                "day": day.isoformat(),
                "imported": imported,
                "bound": bound,
                "rate": round(bound / imported, 4) if imported else 0.0,
            }
        )
    return series


def _day(value: Any) -> date:
    # PostgreSQL returns dates, SQLite returns text.
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def legacy_history(session: Session, member_id: int) -> dict[str, Any]:
    """What the old CRM knew of a member (for RFM/CLV): legacy spend, earliest join date and the records."""
    records = list(
        session.scalars(select(LegacyMember).where(LegacyMember.bound_member_id == member_id).order_by(LegacyMember.id))
    )
    joined = [r.joined_at for r in records if r.joined_at is not None]
    return {
        "legacy_ids": [r.legacy_id for r in records],
        "total_spend_fen": sum(r.total_spend_fen for r in records),
        "joined_at": min(joined) if joined else None,
        "tier": next((r.tier for r in records if r.status == "bound"), None),
        "points": sum(r.points for r in records),
    }


def _bound_records(session: Session, member_id: int) -> list[tuple[LegacyMember, LegacyBinding | None, int]]:
    """The member's legacy records, each with its active binding (merged records have none of their own) and
    how many legacy orders it has (carried over as the member's orders)."""
    orders = (
        select(func.count(LegacyOrder.id))
        .where(LegacyOrder.legacy_member_id == LegacyMember.id)
        .correlate(LegacyMember)
        .scalar_subquery()
    )
    return [
        (record, binding, orders)
        for record, binding, orders in session.execute(
            select(LegacyMember, LegacyBinding, orders)
            .outerjoin(
                LegacyBinding,
                (LegacyBinding.legacy_member_id == LegacyMember.id) & (LegacyBinding.status == "active"),
            )
            .where(LegacyMember.bound_member_id == member_id)
            .order_by(LegacyMember.id)
        )
    ]


def _record_view(record: LegacyMember, binding: LegacyBinding | None, orders: int, *, phone: str) -> dict[str, Any]:
    return {
        "legacy_member_id": record.id,
        "batch_id": record.batch_id,
        "legacy_id": record.legacy_id,
        "status": record.status,
        "phone": phone,
        "name": record.name,
        "tier": record.tier,
        "points": record.points,
        "total_spend_fen": record.total_spend_fen,
        "joined_at": record.joined_at,
        "last_active_at": record.last_active_at,
        "orders": orders,
        "binding": None
        if binding is None
        else {
            "id": binding.id,
            "via": binding.via,
            "bound_at": binding.bound_at,
            "points_carried": binding.points_carried,
            "tier_before": binding.tier_before,
            "tier_carried": binding.tier_carried,
        },
    }


def staff_section(session: Session, member_id: int) -> list[dict[str, Any]]:
    """The staff 360 view's `legacy` block: the old CRM records bound to the member (phones masked)."""
    return [_record_view(r, b, n, phone=mask_phone(r.phone)) for r, b, n in _bound_records(session, member_id)]


def export_section(session: Session, member_id: int) -> list[dict[str, Any]]:
    """The PIPL export's `legacy` block: everything the old CRM records bound to the member hold."""
    return [
        {**_record_view(r, b, n, phone=r.phone), "custom_fields": r.custom_fields}
        for r, b, n in _bound_records(session, member_id)
    ]
