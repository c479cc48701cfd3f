"""Legacy order history: an orders file linked to its members batch, carried over as orders on bind (once),
taken back on unbind, and carried at once to members bound before the orders arrived."""

from __future__ import annotations

import csv
import io
import threading

import pytest
from sqlalchemy import func, select

from member.legacy.errors import InvalidMapping, InvalidOrdersParent
from member.legacy.models import BindingConflict, ImportBatch, LegacyBinding, LegacyMember, LegacyOrder, LegacyRowError
from member.legacy.runner import run_import
from member.legacy.services.batches import batch_counts, open_batch
from member.legacy.services.binding import unbind
from member.legacy.services.conflicts import resolve_conflict
from member.legacy.services.history import OrderNormaliser, build_order_mapping
from member.models import Member, Order, PointsEntry
from scrm.audit import Actor
from scrm.clock import utcnow
from tests.member.legacy.test_binding import verify

STAFF = Actor("staff", None, "admin")
MEMBERS = [
    ["会员编号", "手机号", "姓名", "积分"],
    ["A1", "13900000001", "甲", "100"],
    ["A2", "13900000002", "乙", "0"],
    ["A3", "13900000003", "丙", "0"],
    ["A4", "13900000004", "丁", "50"],
    # A4 and A5 share a phone: ordering by that phone cannot tell them apart.
    ["A5", "13900000004", "戊", "70"],
]
ORDERS = [
    ["订单号", "会员编号", "手机号", "实付金额", "下单时间", "商品"],
    ["O1", "A1", "", "128.50", "2024-03-01 10:00:00", "绿茶;红茶"],  # row 2
    ["O2", "A1", "", "66", "2025-06-30", ""],  # row 3
    ["O3", "", "13900000002", "¥1,000.00", "2023/12/31", "礼盒"],  # row 4: linked by phone
    ["O4", "A9", "", "10", "2024-01-01", ""],  # row 5: no such member
    ["O5", "", "13900000004", "10", "2024-01-01", ""],  # row 6: the phone is shared
    ["O1", "A2", "", "10", "2024-01-01", ""],  # row 7: order id seen before
    ["O6", "A2", "", "0", "2024-01-01", ""],  # row 8: zero amount
    ["O7", "A2", "", "12", "2024-02-30", ""],  # row 9: no such day
    ["", "A2", "", "12", "2024-02-01", ""],  # row 10: no order id
    ["O8", "", "", "12", "2024-02-01", ""],  # row 11: no member at all
    ["O9", "A4", "", "20", "2024-05-05", ""],  # row 12
    ["O10", "A5", "", "30", "2024-05-06", ""],  # row 13
]


def write(path, rows, *, encoding="utf-8"):
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def import_file(db, path, **kwargs):
    with db.transaction() as session:
        batch_id = open_batch(session, path=path, filename=path.name, **kwargs).batch.id
    run_import(db, batch_id, chunk_rows=5)
    return batch_id


@pytest.fixture
def members_batch(db, tmp_path):
    return import_file(db, write(tmp_path / "members.csv", MEMBERS))


@pytest.fixture
def orders_path(tmp_path):
    return write(tmp_path / "orders.csv", ORDERS, encoding="gb18030")


def legacy_orders(session, member):
    return list(
        session.scalars(
            select(Order).where(Order.member_id == member.id, Order.source == "legacy").order_by(Order.paid_at)
        )
    )


def test_orders_file_links_to_members_and_reports_every_bad_row(db, session, members_batch, orders_path):
    orders_batch = import_file(db, orders_path, orders_of=members_batch)
    batch = session.get(ImportBatch, orders_batch)
    assert (batch.kind, batch.parent_id, batch.status) == ("orders", members_batch, "done")
    assert batch_counts(batch) == {
        "rows": 12,
        "valid": 5,
        "invalid": 7,
        "invalid_by_reason": {
            "duplicate_order_id": 1,
            "invalid_amount": 1,
            "invalid_paid_at": 1,
            "missing_member": 1,
            "missing_order_id": 1,
            "unknown_member": 1,
            "unknown_or_shared_phone": 1,
        },
    }
    errors = dict(
        session.execute(
            select(LegacyRowError.row_number, LegacyRowError.reasons).where(LegacyRowError.batch_id == orders_batch)
        ).all()
    )
    assert errors == {
        5: "unknown_member",
        6: "unknown_or_shared_phone",
        7: "duplicate_order_id",
        8: "invalid_amount",
        9: "invalid_paid_at",
        10: "missing_order_id",
        11: "missing_member",
    }
    stored = {
        order.order_ref: (order.legacy_member_id, order.amount_fen, order.items)
        for order in session.scalars(select(LegacyOrder).where(LegacyOrder.batch_id == orders_batch))
    }
    ids = dict(session.execute(select(LegacyMember.legacy_id, LegacyMember.id)).all())
    assert stored == {
        "O1": (ids["A1"], 12850, [{"name": "绿茶"}, {"name": "红茶"}]),
        "O2": (ids["A1"], 6600, None),
        "O3": (ids["A2"], 100000, [{"name": "礼盒"}]),
        "O9": (ids["A4"], 2000, None),
        "O10": (ids["A5"], 3000, None),
    }

    # The same file again adds nothing; the same file as another batch's history is refused.
    assert import_file(db, orders_path, orders_of=members_batch) == orders_batch
    assert session.scalar(select(func.count()).select_from(LegacyOrder)) == 5
    other = import_file(db, write(orders_path.parent / "more.csv", [*MEMBERS, ["A6", "13900000006", "", ""]]))
    with pytest.raises(InvalidOrdersParent), db.transaction() as s:
        open_batch(s, path=orders_path, filename="orders.csv", orders_of=other)


def test_bind_carries_the_history_once_and_unbind_takes_it_back(db, session, members_batch, orders_path, factories):
    import_file(db, orders_path, orders_of=members_batch)
    member = factories.MemberFactory()
    verify(session, member, phone="+8613900000001")
    verify(session, member, phone="+8613900000001")  # a retried verification

    carried = legacy_orders(session, member)
    assert [(o.external_id, o.amount_fen, o.points_earned, o.status) for o in carried] == [
        (f"{members_batch}:O1", 12850, 0, "paid"),
        (f"{members_batch}:O2", 6600, 0, "paid"),
    ]
    assert carried[0].items == [{"name": "绿茶"}, {"name": "红茶"}]
    session.refresh(member)
    assert member.last_order_at == carried[-1].paid_at
    # The history earned nothing: the only points are the legacy balance, carried as one entry.
    assert session.scalars(select(PointsEntry.delta).where(PointsEntry.member_id == member.id)).all() == [100]
    binding = session.scalar(select(LegacyBinding).where(LegacyBinding.member_id == member.id))

    unbind(session, binding.id, actor=STAFF)
    assert legacy_orders(session, member) == []
    assert binding.carryover["reversal"]["orders_removed"] == 2
    session.refresh(member)
    assert member.last_order_at is None

    # Bound again (a new verification), the history comes back, once.
    verify(session, member, phone="+8613900000001")
    assert len(legacy_orders(session, member)) == 2


def test_orders_arriving_after_the_bind_are_carried_at_once(db, session, members_batch, orders_path, factories):
    member = factories.MemberFactory()
    verify(session, member, phone="+8613900000002")
    assert session.scalar(select(LegacyMember.status).where(LegacyMember.legacy_id == "A2")) == "bound"
    assert legacy_orders(session, member) == []

    orders_batch = import_file(db, orders_path, orders_of=members_batch)
    assert [o.external_id for o in legacy_orders(session, member)] == [f"{members_batch}:O3"]
    assert session.get(ImportBatch, orders_batch).bound_count == 1
    # A later bind pass or retry finds the order there already.
    verify(session, member, phone="+8613900000002")
    assert len(legacy_orders(session, member)) == 1


def test_a_staff_merge_of_records_carries_the_orders_of_both(db, session, members_batch, orders_path, factories):
    import_file(db, orders_path, orders_of=members_batch)
    member = factories.MemberFactory()
    verify(session, member, phone="+8613900000004")
    conflict = session.scalar(select(BindingConflict).where(BindingConflict.status == "open"))
    assert conflict.kind == "multiple_records"
    ids = dict(session.execute(select(LegacyMember.legacy_id, LegacyMember.id)).all())
    resolve_conflict(session, conflict.id, action="merge", legacy_member_id=ids["A4"], actor=STAFF)
    assert sorted(o.external_id for o in legacy_orders(session, member)) == [
        f"{members_batch}:O10",
        f"{members_batch}:O9",
    ]


def test_orders_need_a_finished_members_batch(db, session, tmp_path, orders_path):
    with pytest.raises(InvalidOrdersParent), db.transaction() as s:
        open_batch(s, path=orders_path, filename="orders.csv", orders_of=987654)
    running = ImportBatch(
        content_hash="r" * 64, filename="m.csv", stored_path="m.csv", file_format="csv", status="running"
    )
    session.add(running)
    session.flush()
    with pytest.raises(InvalidOrdersParent):
        open_batch(session, path=orders_path, filename="orders.csv", orders_of=running.id)


def test_order_mapping_and_normaliser():
    mapping = build_order_mapping(["Order No", "Member ID", "Amount", "Paid At", "Note"])
    assert mapping.describe() == {
        "Order No": "order_ref",
        "Member ID": "member_ref",
        "Amount": "amount",
        "Paid At": "paid_at",
        "Note": "ignore",
    }
    with pytest.raises(InvalidMapping) as missing:
        build_order_mapping(["订单号", "金额"])
    assert missing.value.details["missing"] == ["paid_at", "member_ref or phone"]
    with pytest.raises(InvalidMapping):
        build_order_mapping(["订单号", "会员编号", "金额", "时间"], {"时间": "when"})
    normalise = OrderNormaliser(build_order_mapping(["订单号", "手机号", "金额", "时间"], {"时间": "paid_at"}))
    row = normalise(2, ["X", "+86 139-0000-0001", "1.5元", "20240102"])
    assert row[1:5] == ("X", None, "+8613900000001", 150)
    assert normalise(3, ["X", "12345", "1", "2024-01-01"]) == ["invalid_phone"]
    assert normalise(4, ["X" * 65, "13900000001", "-3", ""]) == [
        "invalid_order_id",
        "invalid_amount",
        "missing_paid_at",
    ]


def test_history_leaves_order_signals_and_points_alone(db, session, members_batch, orders_path, factories):
    from member import signals

    paid = []
    signals.order_paid.connect(receiver := lambda *a, **k: paid.append(a), weak=False)
    try:
        import_file(db, orders_path, orders_of=members_batch)
        member = factories.MemberFactory()
        verify(session, member, phone="+8613900000001")
    finally:
        signals.order_paid.disconnect(receiver)
    assert paid == []
    assert session.get(Member, member.id).last_order_at is not None
    assert utcnow() > session.get(Member, member.id).last_order_at


def test_an_orders_import_crashed_midway_resumes_to_the_same_orders(db, session, members_batch, orders_path):
    class Crash(Exception):
        pass

    def crash_in_the_second_chunk(chunk, outcome):
        if chunk.start_row >= 5:
            raise Crash

    with db.transaction() as s:
        batch_id = open_batch(s, path=orders_path, filename="orders.csv", orders_of=members_batch).batch.id
    with pytest.raises(Crash):
        run_import(db, batch_id, chunk_rows=5, on_chunk=crash_in_the_second_chunk)
    assert session.get(ImportBatch, batch_id).rows_done == 5
    run_import(db, batch_id, chunk_rows=5)
    batch = session.get(ImportBatch, batch_id)
    assert (batch.status, batch.valid_count, batch.invalid_count) == ("done", 5, 7)
    refs = session.scalars(select(LegacyOrder.order_ref).where(LegacyOrder.batch_id == batch_id)).all()
    assert sorted(refs) == ["O1", "O10", "O2", "O3", "O9"]
    assert session.scalar(select(func.count()).where(LegacyRowError.batch_id == batch_id)) == 7


def test_orders_stored_while_a_bind_is_in_flight_reach_the_member_once(committed_app):
    from member.legacy.services.binding import bind_batch, bind_verified_phone
    from tests.member.legacy.test_binding import make_batch, make_record

    db = committed_app.extensions["scrm"].db
    phone = "+8613900000001"
    with db.transaction() as session:
        members = make_batch(session, "members.csv")
        record = make_record(session, members, "L1", phone=phone, points=0, tier=None)
        member = Member(source="miniprogram", phone=phone, phone_verified_at=utcnow())
        orders = ImportBatch(
            kind="orders",
            parent_id=members.id,
            content_hash="o" * 64,
            filename="orders.csv",
            stored_path="orders.csv",
            file_format="csv",
            status="running",
        )
        session.add_all([member, orders])
        session.flush()
        members_id, record_id, member_id, orders_id = members.id, record.id, member.id, orders.id

    # A bind in flight has read the record's orders (none yet) and not committed.
    binder = db.session()
    assert bind_verified_phone(binder, member_id=member_id, phone=phone, method="wechat").status == "bound"

    def store_order() -> None:
        with db.transaction() as session:
            session.add(
                LegacyOrder(
                    batch_id=orders_id,
                    members_batch_id=members_id,
                    row_number=2,
                    legacy_member_id=record_id,
                    order_ref="O1",
                    amount_fen=500,
                    paid_at=utcnow(),
                )
            )

    thread = threading.Thread(target=store_order)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive(), "storing an order of a record being bound waits for the bind"
    binder.commit()
    binder.close()
    thread.join(10)
    assert not thread.is_alive()

    # The orders batch's pass then finds the record bound and carries the order; a second pass adds nothing.
    with committed_app.app_context(), db.transaction() as session:
        assert bind_batch(session, orders_id) == {"orders_carried": 1}
    with committed_app.app_context(), db.transaction() as session:
        assert bind_batch(session, orders_id) == {"orders_carried": 0}
        assert session.get(ImportBatch, orders_id).bound_count == 1
        assert session.scalars(select(Order.external_id).where(Order.member_id == member_id)).all() == [
            f"{members_id}:O1"
        ]


def test_an_overlapping_export_adds_its_new_orders_and_reports_only_real_clashes(db, session, members_batch, tmp_path):
    import_file(db, write(tmp_path / "orders-2024.csv", ORDERS), orders_of=members_batch)
    overlap = [
        ORDERS[0],
        ORDERS[1],  # O1 again, identical: there already
        ["O2", "A1", "", "67", "2025-06-30", ""],  # O2 again with another amount: a clash
        ["O11", "A3", "", "9.90", "2025-07-01", ""],  # new
    ]
    batch_id = import_file(db, write(tmp_path / "orders-2025.csv", overlap), orders_of=members_batch)
    batch = session.get(ImportBatch, batch_id)
    assert (batch.valid_count, batch.inserted_count, batch.invalid_by_reason) == (2, 1, {"duplicate_order_id": 1})
    assert session.scalar(select(func.count()).where(LegacyOrder.batch_id == batch_id)) == 1
