"""Legacy order history: the orders file's mapping and rows, their staging, and the orders a bind carries over."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, text
from sqlalchemy.orm import Session

from member.legacy.errors import InvalidMapping
from member.legacy.models import ImportBatch, LegacyMember, LegacyOrder
from member.legacy.services.erasure import ERASED_PHONE_PREFIX
from member.legacy.services.normalise import (
    DEFAULT_ALIASES,
    IGNORE,
    header_key,
    normalise_phone,
    parse_fen,
    parse_legacy_datetime,
)
from member.services import orders as order_service
from scrm.clock import utcnow

#: The order source of carried-over history; external ids are `<members batch>:<legacy order id>`.
SOURCE = "legacy"
ORDER_FIELDS = ("order_ref", "member_ref", "phone", "amount", "paid_at", "items")
ORDER_ALIASES: dict[str, tuple[str, ...]] = {
    "order_ref": ("订单号", "订单编号", "订单id", "单号", "orderid", "orderno", "ordernumber", "order", "orderref"),
    # The members file's own id column names (but not a bare "id", which in an orders file names the order).
    "member_ref": (
        *(alias for alias in DEFAULT_ALIASES["legacy_id"] if alias not in ("id", "编号")),
        "客户编号",
        "客户id",
        "memberref",
    ),
    "phone": DEFAULT_ALIASES["phone"],
    "amount": (
        "实付金额",
        "订单金额",
        "支付金额",
        "金额",
        "实付",
        "amount",
        "total",
        "paid",
        "paidamount",
        "orderamount",
    ),
    "paid_at": (
        "支付时间",
        "付款时间",
        "下单时间",
        "订单时间",
        "成交时间",
        "日期",
        "paidat",
        "paytime",
        "orderdate",
        "ordertime",
        "orderedat",
        "date",
        "createdat",
    ),
    "items": ("商品", "商品名称", "商品明细", "品名", "items", "products", "product", "sku"),
}
_ORDER_ALIAS_TO_FIELD = {alias: name for name, aliases in ORDER_ALIASES.items() for alias in aliases}
# ASCII and full-width semicolons and commas, the ideographic comma and a bar.
_ITEM_SEPARATORS = re.compile("[;\uff1b|\u3001,\uff0c]")
#: How far past the import's clock a payment time may lie (exports' clocks and time zones are loose); later is a typo.
PAID_AT_SLACK = timedelta(days=1)
#: Orders read and written per statement when history is carried over to already-bound members.
ATTACH_GROUP = 1000

#: (row_number, order_ref, member_ref, phone, amount_fen, paid_at, items JSON text or None).
OrderRow = tuple[int, str, str | None, str | None, int, datetime, str | None]


@dataclass(frozen=True)
class OrderMapping:
    header: tuple[str, ...]
    fields: tuple[tuple[int, str], ...]

    def index_of(self, name: str) -> int | None:
        return next((index for index, target in self.fields if target == name), None)

    def describe(self) -> dict[str, str]:
        targets = dict(self.fields)
        return {self.header[i]: targets.get(i, IGNORE) for i in range(len(self.header))}


def build_order_mapping(header: Sequence[str], overrides: Mapping[str, str] | None = None) -> OrderMapping:
    """Map an orders file's header: `overrides` (header → field) first, then common aliases; the rest is ignored."""
    overrides = {header_key(k): v.strip() for k, v in (overrides or {}).items()}
    fields: list[tuple[int, str]] = []
    taken: set[str] = set()
    for index, column in enumerate(header):
        key = header_key(column)
        target = overrides.get(key) or _ORDER_ALIAS_TO_FIELD.get(key)
        if not key or target is None or target == IGNORE or target in taken:
            continue
        if target not in ORDER_FIELDS:
            raise InvalidMapping(
                f"column {column!r} maps to unknown field {target!r}",
                details={"column": column, "allowed": [*ORDER_FIELDS, IGNORE]},
            )
        taken.add(target)
        fields.append((index, target))
    missing = [name for name in ("order_ref", "amount", "paid_at") if name not in taken]
    if "member_ref" not in taken and "phone" not in taken:
        missing.append("member_ref or phone")
    if missing:
        raise InvalidMapping(
            "an orders file needs columns for: " + ", ".join(missing),
            details={"header": list(header), "missing": missing},
        )
    return OrderMapping(header=tuple(header), fields=tuple(fields))


class OrderNormaliser:
    """Turns one orders-file record into an OrderRow, or into the list of reasons it is refused."""

    def __init__(self, mapping: OrderMapping, *, now: datetime | None = None) -> None:
        self.mapping = mapping
        self._latest = (now or utcnow()) + PAID_AT_SLACK
        get = mapping.index_of
        self._order = get("order_ref")
        self._member = get("member_ref")
        self._phone = get("phone")
        self._amount = get("amount")
        self._paid = get("paid_at")
        self._items = get("items")

    @staticmethod
    def _cell(values: Sequence[str], index: int | None) -> str:
        return values[index].strip() if index is not None and index < len(values) else ""

    def __call__(self, row_number: int, values: Sequence[str]) -> OrderRow | list[str]:
        cell = self._cell
        reasons: list[str] = []
        order_ref = cell(values, self._order)
        if not order_ref:
            reasons.append("missing_order_id")
        elif len(order_ref) > 64 or "\x00" in order_ref:
            # PostgreSQL text cannot hold NUL; an id is refused rather than changed.
            reasons.append("invalid_order_id")
        member_ref = cell(values, self._member)
        if len(member_ref) > 64 or "\x00" in member_ref:
            reasons.append("invalid_member_ref")
        raw_phone = cell(values, self._phone)
        phone = normalise_phone(raw_phone) if raw_phone else None
        if raw_phone and phone is None and not member_ref:
            reasons.append("invalid_phone")
        if not member_ref and not raw_phone:
            reasons.append("missing_member")
        raw = cell(values, self._amount)
        amount = parse_fen(raw) if raw else None
        if not raw:
            reasons.append("missing_amount")
        elif not amount:
            # Zero is refused as well: an order here is a payment (the orders table holds amount > 0).
            reasons.append("invalid_amount")
        raw = cell(values, self._paid)
        paid_at = parse_legacy_datetime(raw) if raw else None
        if not raw:
            reasons.append("missing_paid_at")
        elif paid_at is None or paid_at > self._latest:
            # A payment in the future is a typo (2204 for 2024); as history it would pin the last order date ahead.
            reasons.append("invalid_paid_at")
        if reasons:
            return reasons
        listed = cell(values, self._items).replace("\x00", "")
        names = [name.strip() for name in _ITEM_SEPARATORS.split(listed) if name.strip()]
        items = json.dumps([{"name": name[:120]} for name in names], ensure_ascii=False) if names else None
        return (row_number, order_ref, member_ref or None, phone, amount, paid_at, items)  # type: ignore[return-value]


_PG_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS legacy_order_stage (
    row_number bigint, order_ref text, member_ref text, phone text, amount_fen bigint, paid_at timestamptz,
    items jsonb, legacy_member_id bigint
) ON COMMIT DELETE ROWS
"""
_SQLITE_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS legacy_order_stage (
    row_number INTEGER, order_ref TEXT, member_ref TEXT, phone TEXT, amount_fen INTEGER, paid_at DATETIME,
    items TEXT, legacy_member_id INTEGER
)
"""
_STAGE_COLUMNS = "row_number, order_ref, member_ref, phone, amount_fen, paid_at, items"
# Link each order to its legacy member: by legacy id, else by a phone that exactly one record of the batch has.
_LINK_BY_ID = """
UPDATE legacy_order_stage SET legacy_member_id = (
    SELECT m.id FROM legacy_members m
    WHERE m.batch_id = :members_batch_id AND m.legacy_id = legacy_order_stage.member_ref
) WHERE member_ref IS NOT NULL
"""
_LINK_BY_PHONE = """
UPDATE legacy_order_stage SET legacy_member_id = (
    SELECT min(m.id) FROM legacy_members m WHERE m.batch_id = :members_batch_id AND m.phone = legacy_order_stage.phone
    HAVING count(*) = 1
) WHERE member_ref IS NULL AND phone IS NOT NULL
"""
# An erased member's record (its phone replaced by a marker) takes no new data: its orders are refused.
# (Joined from the chunk's rows by primary key: the batch's records are not scanned once per chunk.)
_UNLINK_ERASED = """
UPDATE legacy_order_stage SET legacy_member_id = NULL
FROM legacy_members m
WHERE m.id = legacy_order_stage.legacy_member_id AND m.phone LIKE :erased
RETURNING legacy_order_stage.row_number
"""
_UNLINKED = "SELECT row_number, member_ref FROM legacy_order_stage WHERE legacy_member_id IS NULL"
_MOVE = """
INSERT INTO legacy_orders
    (batch_id, members_batch_id, row_number, legacy_member_id, order_ref, amount_fen, paid_at, items)
SELECT :batch_id, :members_batch_id, row_number, legacy_member_id, order_ref, amount_fen, paid_at, items
FROM legacy_order_stage WHERE legacy_member_id IS NOT NULL ORDER BY row_number
ON CONFLICT (members_batch_id, order_ref) DO NOTHING
RETURNING row_number
"""


# Rows whose order id the members batch holds already with the same member, amount and payment time.
_IDENTICAL = """
SELECT s.row_number FROM legacy_order_stage s
JOIN legacy_orders o ON o.members_batch_id = :members_batch_id AND o.order_ref = s.order_ref
WHERE o.legacy_member_id = s.legacy_member_id AND o.amount_fen = s.amount_fen AND o.paid_at = s.paid_at
"""


@dataclass(frozen=True)
class StagedOrders:
    inserted: int
    #: Rows stored before, identically (overlapping exports): valid, not stored again, not reported.
    already: int
    refused: dict[int, list[str]]


def stage_orders(session: Session, batch: ImportBatch, rows: list[OrderRow]) -> StagedOrders:
    """Link a chunk of order rows to their legacy members and store them.

    Refused here: an order whose member is not in the members batch (or whose phone several records share) or
    was erased, and an order id stored before in this members batch with another member, amount or payment
    time (the first one stays). The same order again, identical, is counted as there already.
    """
    if not rows:
        return StagedOrders(0, 0, {})
    connection = session.connection()
    if session.get_bind().dialect.name == "postgresql":
        connection.exec_driver_sql(_PG_STAGE)
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(f"COPY legacy_order_stage ({_STAGE_COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()
    else:
        connection.exec_driver_sql(_SQLITE_STAGE)
        connection.exec_driver_sql("DELETE FROM legacy_order_stage")
        connection.exec_driver_sql(
            f"INSERT INTO legacy_order_stage ({_STAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            [(*row[:5], _sqlite_time(row[5]), row[6]) for row in rows],
        )
    params = {"batch_id": batch.id, "members_batch_id": batch.parent_id}
    session.execute(text(_LINK_BY_ID), params)
    session.execute(text(_LINK_BY_PHONE), params)
    erased = session.execute(text(_UNLINK_ERASED), {"erased": f"{ERASED_PHONE_PREFIX}%"}).scalars().all()
    refused: dict[int, list[str]] = {
        row_number: ["unknown_member" if member_ref else "unknown_or_shared_phone"]
        for row_number, member_ref in session.execute(text(_UNLINKED))
    }
    refused.update((row_number, ["erased_member"]) for row_number in erased)
    inserted = {row_number for (row_number,) in session.execute(text(_MOVE), params)}
    same = set(session.scalars(text(_IDENTICAL), params)) - inserted
    for row in rows:
        if row[0] not in inserted and row[0] not in refused and row[0] not in same:
            refused[row[0]] = ["duplicate_order_id"]
    session.execute(text("DELETE FROM legacy_order_stage"))
    return StagedOrders(len(inserted), len(same - refused.keys()), refused)


def _sqlite_time(value: datetime) -> str:
    # The format SQLAlchemy's UTCDateTime stores on SQLite: naive UTC with microseconds.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _past_orders(rows: Sequence[LegacyOrder]) -> list[order_service.PastOrder]:
    return [
        order_service.PastOrder(
            external_id=f"{row.members_batch_id}:{row.order_ref}",
            amount_fen=row.amount_fen,
            paid_at=row.paid_at,
            items=row.items,
        )
        for row in rows
    ]


def _orders_of(session: Session, legacy_member_ids: Sequence[int]) -> list[LegacyOrder]:
    return list(
        session.scalars(
            select(LegacyOrder)
            .where(LegacyOrder.legacy_member_id.in_(list(legacy_member_ids)))
            .order_by(LegacyOrder.id)
        )
    )


def carry_orders(session: Session, *, member_id: int, legacy_member_ids: Sequence[int]) -> int:
    """Record the legacy records' order history as the member's orders (once); returns how many were new."""
    return order_service.record_history(
        session, member_id=member_id, source=SOURCE, orders=_past_orders(_orders_of(session, legacy_member_ids))
    )


def uncarry_orders(session: Session, *, member_id: int, legacy_member_ids: Sequence[int]) -> int:
    """Remove the orders a bind carried over (they stay as legacy orders for a later bind)."""
    external_ids = [order.external_id for order in _past_orders(_orders_of(session, legacy_member_ids))]
    return order_service.remove_history(session, member_id=member_id, source=SOURCE, external_ids=external_ids)


def move_orders(session: Session, *, legacy_member_ids: Sequence[int], from_member_id: int, to_member_id: int) -> int:
    """Move the orders carried from these legacy records to the member the records now belong to."""
    external_ids = [order.external_id for order in _past_orders(_orders_of(session, legacy_member_ids))]
    return order_service.move_history(
        session, source=SOURCE, external_ids=external_ids, from_member_id=from_member_id, to_member_id=to_member_id
    )


def attach_to_bound(session: Session, batch: ImportBatch) -> int:
    """After an orders import has committed: carry its orders to members whose legacy record is bound already.

    No order falls between this and a bind: a bind locks its legacy rows FOR UPDATE before it reads their
    orders, and storing an order takes the foreign-key lock on its legacy row, which waits for that bind to
    commit. So an order committed before a bind's read is carried by the bind, and one committed after it
    belongs to a record already bound when this pass reads. An unbind in flight is waited for the same way: the
    pass locks the records (FOR SHARE, in id order as binds do) and carries only what is still bound then.
    Returns how many orders were new.
    """
    carried = 0
    last_id = 0
    while True:
        found = session.execute(
            select(LegacyOrder, LegacyMember.bound_member_id)
            .join(LegacyMember, LegacyMember.id == LegacyOrder.legacy_member_id)
            .where(
                LegacyOrder.batch_id == batch.id,
                LegacyOrder.id > last_id,
                LegacyMember.bound_member_id.is_not(None),
                or_(LegacyMember.status == "bound", LegacyMember.status == "merged"),
            )
            .order_by(LegacyOrder.id)
            .limit(ATTACH_GROUP)
        ).all()
        if not found:
            return carried
        owners = dict(
            session.execute(
                select(LegacyMember.id, LegacyMember.bound_member_id)
                .where(
                    LegacyMember.id.in_(sorted({order.legacy_member_id for order, _ in found})),
                    LegacyMember.bound_member_id.is_not(None),
                    or_(LegacyMember.status == "bound", LegacyMember.status == "merged"),
                )
                .order_by(LegacyMember.id)
                .with_for_update(read=True)
            ).all()
        )
        by_member: dict[int, list[LegacyOrder]] = defaultdict(list)
        for order, _ in found:
            if order.legacy_member_id in owners:
                by_member[owners[order.legacy_member_id]].append(order)
        for member_id, rows in sorted(by_member.items()):
            carried += order_service.record_history(
                session, member_id=member_id, source=SOURCE, orders=_past_orders(rows)
            )
        last_id = found[-1][0].id


__all__ = [
    "ORDER_FIELDS",
    "SOURCE",
    "OrderMapping",
    "OrderNormaliser",
    "attach_to_bound",
    "build_order_mapping",
    "carry_orders",
    "move_orders",
    "stage_orders",
    "uncarry_orders",
]
