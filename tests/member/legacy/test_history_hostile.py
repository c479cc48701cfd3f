"""Legacy order history against hostile and messy input: encodings, delimiters, XLSX, header variants, odd amounts
and dates, COPY-unsafe order ids, empty files, and records merged, erased, unbound and re-bound, or bound to members
who are merged and unmerged; the upload API with bad `orders_of` values and roles."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select

from member.legacy.errors import InvalidMapping, UnreadableFile
from member.legacy.models import BindingConflict, ImportBatch, LegacyBinding, LegacyMember, LegacyOrder, LegacyRowError
from member.legacy.runner import run_import
from member.legacy.selectors import error_report_csv
from member.legacy.services.batches import open_batch
from member.legacy.services.binding import unbind
from member.legacy.services.conflicts import reopen_conflict, resolve_conflict
from member.models import Member, Order
from member.services.merge import merge_members, unmerge_members
from member.services.privacy import erase_member
from tests.conftest import make_config
from tests.member.legacy.files import write_xlsx
from tests.member.legacy.test_binding import verify
from tests.member.legacy.test_history import MEMBERS, STAFF, import_file, legacy_orders, write

API = "/api/v1/staff/legacy"
HEADER = ["订单号", "会员编号", "手机号", "实付金额", "下单时间", "商品"]


@pytest.fixture
def members_batch(db, tmp_path):
    return import_file(db, write(tmp_path / "members.csv", MEMBERS))


def ids(session):
    return dict(session.execute(select(LegacyMember.legacy_id, LegacyMember.id)).all())


def stored(session, batch_id):
    return {
        order.order_ref: (order.legacy_member_id, order.amount_fen, order.paid_at.isoformat(), order.items)
        for order in session.scalars(select(LegacyOrder).where(LegacyOrder.batch_id == batch_id))
    }


def errors(session, batch_id):
    return dict(
        session.execute(
            select(LegacyRowError.row_number, LegacyRowError.reasons).where(LegacyRowError.batch_id == batch_id)
        ).all()
    )


def all_orders(session):
    return session.execute(
        select(Order.member_id, Order.external_id).where(Order.source == "legacy").order_by(Order.external_id)
    ).all()


# --- files: encodings, delimiters, XLSX, headers ---


@pytest.mark.parametrize(
    ("encoding", "delimiter"),
    [("gb18030", ","), ("utf-8-sig", ","), ("utf-8", ";"), ("utf-8-sig", "\t"), ("gb18030", "|")],
)
def test_orders_file_in_any_encoding_and_delimiter(db, session, tmp_path, members_batch, encoding, delimiter):
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerows(
        [
            HEADER,
            ["O1", "A1", "", "1,234.5", "2024年3月1日", "绿茶、红茶"],
            ["O2", "", "139 0000 0002", "￥88", "2024/3/2 9:05", ""],
        ]
    )
    path = tmp_path / "orders.csv"
    path.write_bytes(buffer.getvalue().encode(encoding))
    batch_id = import_file(db, path, orders_of=members_batch)
    record = ids(session)
    assert stored(session, batch_id) == {
        "O1": (record["A1"], 123450, "2024-02-29T16:00:00+00:00", [{"name": "绿茶"}, {"name": "红茶"}]),
        "O2": (record["A2"], 8800, "2024-03-02T01:05:00+00:00", None),
    }
    assert errors(session, batch_id) == {}


def test_orders_file_as_xlsx(db, session, tmp_path, members_batch):
    path = write_xlsx(
        tmp_path / "orders.xlsx",
        [["O1", "A1", "", "12.5", "2024-03-01 10:00:00", "茶"], ["O2", "A9", "", "1", "2024-03-01", ""]],
        header=tuple(HEADER),
    )
    batch_id = import_file(db, path, orders_of=members_batch)
    assert stored(session, batch_id) == {
        "O1": (ids(session)["A1"], 1250, "2024-03-01T02:00:00+00:00", [{"name": "茶"}]),
    }
    assert errors(session, batch_id) == {3: "unknown_member"}
    assert session.get(ImportBatch, batch_id).file_format == "xlsx"


def test_header_variants_english_chinese_extra_and_duplicate_columns(db, session, tmp_path, members_batch):
    rows = [
        # English, odd case and spacing, an extra column, and a second "order no" column that is ignored.
        ["Order No", "Customer ID", "Store", "Paid Amount", "Order Date", "ORDER_NO", " SKU "],
        ["O1", "A1", "上海", "10", "2024-01-01", "X9", "teaA|teaB"],
    ]
    batch_id = import_file(db, write(tmp_path / "orders.csv", rows), orders_of=members_batch)
    assert stored(session, batch_id) == {
        "O1": (ids(session)["A1"], 1000, "2023-12-31T16:00:00+00:00", [{"name": "teaA"}, {"name": "teaB"}]),
    }
    mapping = session.get(ImportBatch, batch_id).mapping["columns"]
    assert mapping == {
        "Order No": "order_ref",
        "Customer ID": "member_ref",
        "Store": "ignore",
        "Paid Amount": "amount",
        "Order Date": "paid_at",
        "ORDER_NO": "ignore",
        "SKU": "items",
    }


def test_a_members_header_is_not_an_orders_header(db, tmp_path, members_batch):
    # The members file itself sent as order history: no order id, amount or date columns.
    with pytest.raises(InvalidMapping) as refused, db.transaction() as s:
        open_batch(s, path=write(tmp_path / "m.csv", MEMBERS), filename="m.csv", orders_of=members_batch)
    assert refused.value.details["missing"] == ["order_ref", "amount", "paid_at"]


def test_header_only_and_bom_only_files(db, session, tmp_path, members_batch):
    header_only = tmp_path / "header.csv"
    header_only.write_bytes(("\ufeff" + ",".join(HEADER) + "\r\n\r\n\r\n").encode())
    batch_id = import_file(db, header_only, orders_of=members_batch)
    batch = session.get(ImportBatch, batch_id)
    assert (batch.status, batch.valid_count, batch.invalid_count) == ("done", 0, 0)
    bom_only = tmp_path / "bom.csv"
    bom_only.write_bytes(b"\xef\xbb\xbf")
    with pytest.raises(UnreadableFile), db.transaction() as s:
        open_batch(s, path=bom_only, filename="bom.csv", orders_of=members_batch)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(UnreadableFile), db.transaction() as s:
        open_batch(s, path=empty, filename="empty.csv", orders_of=members_batch)


# --- cells: amounts, dates, order ids ---


@pytest.mark.parametrize(
    ("amount", "fen"),
    [
        ("1,234.5", 123450),
        ("￥88", 8800),
        ("¥ 88.80 元", 8880),
        ("１２８", 12800),
        ("0.01", 1),
        ("9999999999999999.99", 999999999999999999),
        ("12.345", None),
        ("-5", None),
        ("0.00", None),
        ("0", None),
        ("99999999999999999", None),
        ("1e3", None),
        ("abc", None),
        ("12.3.4", None),
        ("NaN", None),
        # A decimal comma (a semicolon-delimited European export) is not a thousands separator: not 1250 yuan.
        ("12,50", None),
        ("1,2,3", None),
    ],
)
def test_amounts(db, session, tmp_path, members_batch, factories, amount, fen):
    rows = [HEADER, ["O1", "A2", "", amount, "2024-01-01", ""]]
    batch_id = import_file(db, write(tmp_path / "orders.csv", rows), orders_of=members_batch)
    if fen is None:
        assert errors(session, batch_id) == {2: "invalid_amount"}
        assert stored(session, batch_id) == {}
        return
    assert stored(session, batch_id)["O1"][1] == fen
    member = factories.MemberFactory()
    verify(session, member, phone="+8613900000002")
    assert [o.amount_fen for o in legacy_orders(session, member)] == [fen]


@pytest.mark.parametrize(
    ("paid_at", "utc"),
    [
        ("2024-03-01", "2024-02-29T16:00:00+00:00"),
        ("2024/3/1 8:00", "2024-03-01T00:00:00+00:00"),
        ("2024.03.01 08:00:30", "2024-03-01T00:00:30+00:00"),
        ("2024年3月1日", "2024-02-29T16:00:00+00:00"),
        ("20240301", "2024-02-29T16:00:00+00:00"),
        ("2024-03-01T08:00:00.123", "2024-03-01T00:00:00+00:00"),
        ("2024-02-30", None),
        ("2024-13-01", None),
        ("01/03/2024", None),
        ("yesterday", None),
        ("2024-03-01 25:00", None),
        ("0000-01-01", None),
        ("0001-01-01", None),
        # A payment in the future is a typo (2204 for 2024); as history it would pin the last order date ahead.
        ("2204-01-01", None),
        ("9999-12-31 23:59", None),
        ("0001-01-01 08:00", "0001-01-01T00:00:00+00:00"),
    ],
)
def test_dates(db, session, tmp_path, members_batch, factories, paid_at, utc):
    rows = [HEADER, ["O1", "A2", "", "10", paid_at, ""]]
    batch_id = import_file(db, write(tmp_path / "orders.csv", rows), orders_of=members_batch)
    if utc is None:
        assert errors(session, batch_id) == {2: "invalid_paid_at"}
        return
    assert stored(session, batch_id)["O1"][2] == utc
    member = factories.MemberFactory()
    verify(session, member, phone="+8613900000002")
    assert len(legacy_orders(session, member)) == 1


@pytest.mark.parametrize(
    "order_ref",
    [
        "a\tb",
        "a\nb",
        "a\r\nb",
        'say "hi"',
        "back\\slash",
        "\\N",
        "\\.",
        "'quoted'",
        "订单,含逗号",
        "=1+2",
        "x" * 64,
    ],
)
def test_order_ids_that_copy_text_must_escape(db, session, tmp_path, members_batch, factories, order_ref):
    rows = [HEADER, [order_ref, "A2", "", "10", "2024-01-01", "a\\b\tc"]]
    batch_id = import_file(db, write(tmp_path / "orders.csv", rows), orders_of=members_batch)
    assert errors(session, batch_id) == {}
    assert list(stored(session, batch_id)) == [order_ref]
    member = factories.MemberFactory()
    verify(session, member, phone="+8613900000002")
    assert [o.external_id for o in legacy_orders(session, member)] == [f"{members_batch}:{order_ref}"]


def test_nul_characters_are_refused_in_ids_and_dropped_from_item_names(db, session, tmp_path, members_batch):
    # PostgreSQL text cannot hold NUL: one in a cell must not fail the import's COPY (and every retry of it).
    rows = [
        HEADER,
        ["O\x001", "A2", "", "10", "2024-01-01", ""],  # row 2
        ["O2", "A\x002", "", "10", "2024-01-01", ""],  # row 3
        ["O3", "A2", "", "10", "2024-01-01", "绿\x00茶;红茶"],  # row 4
        ["O4", "A2", "", "abc\x00", "2024-01-01", "x"],  # row 5
    ]
    batch_id = import_file(db, write(tmp_path / "orders.csv", rows), orders_of=members_batch)
    batch = session.get(ImportBatch, batch_id)
    assert (batch.status, batch.valid_count, batch.invalid_count) == ("done", 1, 3)
    assert errors(session, batch_id) == {2: "invalid_order_id", 3: "invalid_member_ref", 5: "invalid_amount"}
    assert stored(session, batch_id)["O3"][3] == [{"name": "绿茶"}, {"name": "红茶"}]
    raw = session.scalar(select(LegacyRowError.raw).where(LegacyRowError.row_number == 5))
    assert raw == "O4\tA2\t\tabc\ufffd\t2024-01-01\tx"


def test_overlong_and_blank_values_and_empty_lines(db, session, tmp_path, members_batch):
    rows = [
        HEADER,
        ["x" * 65, "A2", "", "10", "2024-01-01", ""],  # row 2
        ["   ", "A2", "", "10", "2024-01-01", ""],  # row 3
        ["", "", "", "", "", ""],  # row 4: blank, skipped
        [],  # row 5: empty line, skipped
        ["O1", "B" * 65, "", "10", "2024-01-01", "长" * 500],  # row 6
        ["O2", "A2", "", "10", "2024-01-01", "长" * 500],  # row 7
        ["O3", "A2"],  # row 8: a short row
    ]
    batch_id = import_file(db, write(tmp_path / "orders.csv", rows), orders_of=members_batch)
    assert errors(session, batch_id) == {
        2: "invalid_order_id",
        3: "missing_order_id",
        6: "invalid_member_ref",
        8: "missing_amount;missing_paid_at",
    }
    assert stored(session, batch_id)["O2"][3] == [{"name": "长" * 120}]
    report = "".join(error_report_csv(session, batch_id))
    assert report.count("\n") == 5


def test_the_same_order_id_for_two_members_keeps_the_first_and_reports_the_second(
    db, session, tmp_path, members_batch, factories
):
    rows = [HEADER, ["O1", "A1", "", "10", "2024-01-01", ""], ["O1", "A2", "", "20", "2024-01-02", ""]]
    batch_id = import_file(db, write(tmp_path / "orders.csv", rows), orders_of=members_batch)
    assert errors(session, batch_id) == {3: "duplicate_order_id"}
    # A second file with that id again (another export) reports it too and changes nothing.
    again = import_file(
        db, write(tmp_path / "more.csv", [HEADER, ["O1", "A2", "", "30", "2024-01-03", ""]]), orders_of=members_batch
    )
    assert errors(session, again) == {2: "duplicate_order_id"}
    first, second = factories.MemberFactory(), factories.MemberFactory()
    verify(session, first, phone="+8613900000001")
    verify(session, second, phone="+8613900000002")
    assert [o.amount_fen for o in legacy_orders(session, first)] == [1000]
    assert legacy_orders(session, second) == []


def test_an_orders_file_uploaded_again_under_another_name_adds_nothing(db, session, tmp_path, members_batch):
    rows = [HEADER, ["O1", "A1", "", "10", "2024-01-01", ""]]
    first = import_file(db, write(tmp_path / "orders.csv", rows), orders_of=members_batch)
    again = import_file(db, write(tmp_path / "renamed-copy.CSV", rows), orders_of=members_batch)
    assert again == first
    assert session.scalar(select(func.count()).select_from(LegacyOrder)) == 1
    assert session.scalar(select(func.count()).select_from(ImportBatch).where(ImportBatch.kind == "orders")) == 1


# --- records merged, erased, unbound and re-bound; members merged and unmerged ---

ORDERS = [
    HEADER,
    ["O1", "A1", "", "10", "2024-01-01", ""],
    ["O2", "A2", "", "20", "2024-01-02", ""],
    ["O4", "A4", "", "40", "2024-01-04", ""],
    ["O5", "A5", "", "50", "2024-01-05", ""],
]


@pytest.fixture
def orders_path(tmp_path):
    return write(tmp_path / "orders.csv", ORDERS)


def test_staff_merge_of_records_then_unbind_and_rebind(db, session, members_batch, orders_path, factories):
    import_file(db, orders_path, orders_of=members_batch)
    member = factories.MemberFactory()
    verify(session, member, phone="+8613900000004")
    conflict = session.scalar(select(BindingConflict).where(BindingConflict.status == "open"))
    resolve_conflict(session, conflict.id, action="merge", legacy_member_id=ids(session)["A5"], actor=STAFF)
    assert [o.external_id for o in legacy_orders(session, member)] == [f"{members_batch}:O4", f"{members_batch}:O5"]
    binding = session.scalar(select(LegacyBinding).where(LegacyBinding.status == "active"))
    unbind(session, binding.id, actor=STAFF)
    assert all_orders(session) == []
    assert session.scalar(select(func.count()).select_from(LegacyOrder)) == 4  # kept for a later bind
    # Bound again through a new decision: once each, nothing twice.
    verify(session, member, phone="+8613900000004")
    conflict = session.scalar(select(BindingConflict).where(BindingConflict.status == "open"))
    resolve_conflict(session, conflict.id, action="bind", legacy_member_id=ids(session)["A4"], actor=STAFF)
    assert [o.external_id for o in legacy_orders(session, member)] == [f"{members_batch}:O4"]


def test_a_recycled_number_moves_the_history_to_the_new_owner_and_a_reopen_moves_it_back(
    db, session, members_batch, orders_path, factories
):
    import_file(db, orders_path, orders_of=members_batch)
    old_owner = factories.MemberFactory()
    verify(session, old_owner, phone="+8613900000001")
    old_owner.phone = None  # the number went to someone else
    session.flush()
    newcomer = factories.MemberFactory()
    verify(session, newcomer, phone="+8613900000001")
    conflict = session.scalar(select(BindingConflict).where(BindingConflict.status == "open"))
    assert conflict.kind == "phone_bound_elsewhere"
    resolve_conflict(session, conflict.id, action="bind", legacy_member_id=ids(session)["A1"], actor=STAFF)
    assert all_orders(session) == [(newcomer.id, f"{members_batch}:O1")]
    reopen_conflict(session, conflict.id, actor=STAFF)
    assert all_orders(session) == [(old_owner.id, f"{members_batch}:O1")]


def test_orders_wait_for_a_second_check_and_arrive_when_it_passes(db, session, tmp_path, factories):
    # A1 holds enough points to need a second check: its assets, orders included, stay frozen until then.
    members = import_file(db, write(tmp_path / "m.csv", [MEMBERS[0], ["A1", "13900000001", "甲", "999999"]]))
    import_file(db, write(tmp_path / "orders.csv", ORDERS[:2]), orders_of=members)
    member = factories.MemberFactory()
    verify(session, member, phone="+8613900000001")
    assert session.scalar(select(BindingConflict.kind)) == "second_check"
    assert all_orders(session) == []
    verify(session, member, phone="+8613900000001", method="sms")
    assert all_orders(session) == [(member.id, f"{members}:O1")]


def test_orders_arriving_after_a_staff_merge_reach_the_member_and_leave_with_the_unbind(
    db, session, members_batch, orders_path, factories
):
    member = factories.MemberFactory()
    verify(session, member, phone="+8613900000004")
    conflict = session.scalar(select(BindingConflict).where(BindingConflict.status == "open"))
    resolve_conflict(session, conflict.id, action="merge", legacy_member_id=ids(session)["A4"], actor=STAFF)
    batch_id = import_file(db, orders_path, orders_of=members_batch)
    assert [o.external_id for o in legacy_orders(session, member)] == [f"{members_batch}:O4", f"{members_batch}:O5"]
    assert session.get(ImportBatch, batch_id).bound_count == 2
    binding = session.scalar(select(LegacyBinding).where(LegacyBinding.status == "active"))
    unbind(session, binding.id, actor=STAFF)
    assert all_orders(session) == []


def test_orders_arriving_after_an_unbind_wait_for_the_next_bind(db, session, members_batch, orders_path, factories):
    member = factories.MemberFactory()
    verify(session, member, phone="+8613900000001")
    binding = session.scalar(select(LegacyBinding).where(LegacyBinding.status == "active"))
    unbind(session, binding.id, actor=STAFF)
    import_file(db, orders_path, orders_of=members_batch)
    assert all_orders(session) == []
    verify(session, member, phone="+8613900000001")
    assert all_orders(session) == [(member.id, f"{members_batch}:O1")]


def test_erased_member_keeps_carried_orders_and_an_unbind_still_removes_them(
    db, session, members_batch, orders_path, factories
):
    import_file(db, orders_path, orders_of=members_batch)
    member = factories.MemberFactory()
    verify(session, member, phone="+8613900000001")
    erase_member(session, member, actor=STAFF)
    assert all_orders(session) == [(member.id, f"{members_batch}:O1")]
    record = session.get(LegacyMember, ids(session)["A1"])
    assert record.phone.startswith("erased-")
    # The erased phone no longer links an order by phone.
    late = import_file(
        db,
        write(orders_path.parent / "late.csv", [HEADER, ["O9", "", "13900000001", "5", "2024-01-09", ""]]),
        orders_of=members_batch,
    )
    assert errors(session, late) == {2: "unknown_or_shared_phone"}
    binding = session.scalar(select(LegacyBinding).where(LegacyBinding.member_id == member.id))
    unbind(session, binding.id, actor=STAFF)
    assert all_orders(session) == []


def test_orders_of_an_erased_member_arriving_later_are_refused(db, session, tmp_path, members_batch, factories):
    member = factories.MemberFactory()
    verify(session, member, phone="+8613900000001")
    erase_member(session, member, actor=STAFF)
    # After a PIPL erasure nothing new about the person comes in: the row goes to the error report instead.
    batch_id = import_file(db, write(tmp_path / "orders.csv", ORDERS), orders_of=members_batch)
    assert errors(session, batch_id) == {2: "erased_member"}
    assert sorted(stored(session, batch_id)) == ["O2", "O4", "O5"]
    assert all_orders(session) == []


def test_member_merge_moves_the_history_and_an_unbind_afterwards_removes_it(
    db, session, members_batch, orders_path, factories
):
    import_file(db, orders_path, orders_of=members_batch)
    source, survivor = factories.MemberFactory(), factories.MemberFactory()
    verify(session, source, phone="+8613900000001")
    merge = merge_members(session, survivor_id=survivor.id, source_id=source.id, actor=STAFF)
    assert all_orders(session) == [(survivor.id, f"{members_batch}:O1")]
    binding = session.scalar(select(LegacyBinding).where(LegacyBinding.status == "active"))
    assert binding.member_id == survivor.id
    unbind(session, binding.id, actor=STAFF)
    assert all_orders(session) == []
    unmerge_members(session, merge.id, actor=STAFF)
    assert all_orders(session) == []
    session.refresh(survivor)
    session.refresh(source)
    assert (survivor.last_order_at, source.last_order_at) == (None, None)


def test_member_merge_and_unmerge_take_the_history_along(db, session, members_batch, orders_path, factories):
    import_file(db, orders_path, orders_of=members_batch)
    source, survivor = factories.MemberFactory(), factories.MemberFactory()
    verify(session, source, phone="+8613900000001")
    merge = merge_members(session, survivor_id=survivor.id, source_id=source.id, actor=STAFF)
    unmerge_members(session, merge.id, actor=STAFF)
    assert all_orders(session) == [(source.id, f"{members_batch}:O1")]
    binding = session.scalar(select(LegacyBinding).where(LegacyBinding.status == "active"))
    unbind(session, binding.id, actor=STAFF)
    assert all_orders(session) == []


def test_orders_arriving_while_the_member_is_merged_go_back_with_the_unmerge(
    db, session, tmp_path, members_batch, factories
):
    source, survivor = factories.MemberFactory(), factories.MemberFactory()
    verify(session, source, phone="+8613900000001")
    merge = merge_members(session, survivor_id=survivor.id, source_id=source.id, actor=STAFF)
    # The orders file arrives while the record's member is merged: its pass carries them to the survivor.
    import_file(db, write(tmp_path / "orders.csv", ORDERS), orders_of=members_batch)
    assert all_orders(session) == [(survivor.id, f"{members_batch}:O1")]
    unmerge_members(session, merge.id, actor=STAFF)
    # The record and its binding went back to the source member; so must the orders it carried.
    assert session.get(LegacyMember, ids(session)["A1"]).bound_member_id == source.id
    assert all_orders(session) == [(source.id, f"{members_batch}:O1")]
    session.refresh(survivor)
    session.refresh(source)
    assert survivor.last_order_at is None
    assert source.last_order_at is not None
    binding = session.scalar(select(LegacyBinding).where(LegacyBinding.status == "active"))
    unbind(session, binding.id, actor=STAFF)
    assert all_orders(session) == []


def test_a_record_with_many_orders_binds(db, session, tmp_path, members_batch, factories):
    # A "walk-in customer" record of a shop's old CRM holds thousands of orders: more than one statement
    # can insert (65,535 parameters, 7 per order).
    rows = [HEADER, *([f"W{i}", "A2", "", "1", "2024-01-01", "茶"] for i in range(9_400))]
    path = write(tmp_path / "orders.csv", rows)
    with db.transaction() as s:
        batch_id = open_batch(s, path=path, filename=path.name, orders_of=members_batch).batch.id
    run_import(db, batch_id, chunk_rows=5000)
    assert session.get(ImportBatch, batch_id).valid_count == 9_400
    member = factories.MemberFactory()
    verify(session, member, phone="+8613900000002")
    assert session.scalar(select(func.count()).where(Order.member_id == member.id)) == 9_400
    binding = session.scalar(select(LegacyBinding).where(LegacyBinding.member_id == member.id))
    unbind(session, binding.id, actor=STAFF)
    assert session.scalar(select(func.count()).where(Order.member_id == member.id)) == 0


# --- the upload API ---


@pytest.fixture
def config(tmp_path):
    return make_config(legacy_upload_dir=str(tmp_path / "uploads"))


def upload(client, headers, content, *, name="orders.csv", **form):
    data = {"file": (io.BytesIO(content), name), **form}
    return client.post(f"{API}/imports", data=data, headers=headers, content_type="multipart/form-data")


def test_upload_with_bad_orders_of_values(client, staff, session, db, tmp_path, members_batch):
    admin = staff.headers("admin")
    orders = "订单号,会员编号,金额,下单时间\nO1,A1,12.50,2024-01-02\n".encode()
    with db.transaction() as s:
        dry = open_batch(s, path=write(tmp_path / "dry.csv", MEMBERS[:3]), filename="dry.csv", dry_run=True).batch.id
    first = upload(client, admin, orders, orders_of=str(members_batch))
    assert first.status_code == 202, first.json
    orders_batch = first.json["id"]
    cases = {
        "": 422,
        " ": 422,
        "0": 422,
        "-1": 422,
        "abc": 422,
        "1.5": 422,
        "1e3": 422,
        "99999999999999999999": 422,
        "9223372036854775808": 422,
        "2147483648": 409,
        "123456": 409,
        str(dry): 409,
        str(orders_batch): 409,
    }
    for value, status in cases.items():
        other = orders + f"O-{value!r},A1,1,2024-01-02\n".encode()
        response = upload(client, admin, other, orders_of=value)
        assert response.status_code == status, (value, response.status_code, response.json)
        assert response.json["error"]["code"], value
    # Nothing of the refused uploads was stored.
    assert session.scalar(select(func.count()).select_from(ImportBatch).where(ImportBatch.kind == "orders")) == 1
    assert session.scalar(select(func.count()).select_from(LegacyOrder)) == 1


def test_upload_of_a_members_file_already_imported_as_orders_is_refused_clearly(
    client, staff, db, tmp_path, members_batch
):
    admin = staff.headers("admin")
    orders = "订单号,会员编号,金额,下单时间\nO1,A1,12.50,2024-01-02\n".encode()
    assert upload(client, admin, orders, orders_of=str(members_batch)).status_code == 202
    # The same bytes as a members file: no phone column, a clear 422.
    assert upload(client, admin, orders).status_code == 422


def test_only_an_admin_uploads_orders(client, staff, members_batch):
    orders = "订单号,会员编号,金额,下单时间\nO1,A1,12.50,2024-01-02\n".encode()
    for role in ("analyst", "campaign_manager", "kol_manager"):
        assert upload(client, staff.headers(role), orders, orders_of=str(members_batch)).status_code == 403
    assert upload(client, {}, orders, orders_of=str(members_batch)).status_code == 401


def test_orders_import_on_embedded_sqlite(sqlite_app, tmp_path):
    db = sqlite_app.extensions["scrm"].db
    members = import_file(db, write(tmp_path / "members.csv", MEMBERS))
    with sqlite_app.app_context(), db.transaction() as session:
        member = Member(source="miniprogram")
        session.add(member)
        session.flush()
        verify(session, member, phone="+8613900000001")
        erase_member(session, member, actor=STAFF)
    batch_id = import_file(db, write(tmp_path / "orders.csv", ORDERS), orders_of=members)
    with db.transaction() as session:
        assert errors(session, batch_id) == {2: "erased_member"}
        assert sorted(stored(session, batch_id)) == ["O2", "O4", "O5"]


def test_an_unbind_in_flight_and_the_orders_pass_leave_no_order_behind(committed_app):
    import threading

    from member.legacy.services.binding import bind_batch, bind_verified_phone
    from scrm.clock import utcnow
    from tests.member.legacy.test_binding import make_batch, make_record

    db = committed_app.extensions["scrm"].db
    phone = "+8613900000001"
    with committed_app.app_context(), db.transaction() as session:
        members = make_batch(session, "members.csv")
        record = make_record(session, members, "L1", phone=phone, points=0, tier=None)
        member = Member(source="miniprogram", phone=phone, phone_verified_at=utcnow())
        session.add(member)
        session.flush()
        assert bind_verified_phone(session, member_id=member.id, phone=phone, method="wechat").status == "bound"
        orders = ImportBatch(
            kind="orders",
            parent_id=members.id,
            content_hash="o" * 64,
            filename="orders.csv",
            stored_path="orders.csv",
            file_format="csv",
            status="done",
        )
        session.add(orders)
        session.flush()
        # Stored, not carried yet: the orders batch's pass is about to run.
        session.add(
            LegacyOrder(
                batch_id=orders.id,
                members_batch_id=members.id,
                row_number=2,
                legacy_member_id=record.id,
                order_ref="O1",
                amount_fen=500,
                paid_at=utcnow(),
            )
        )
        binding_id = session.scalar(select(LegacyBinding.id))
        member_id, orders_id = member.id, orders.id

    # Staff unbind the record; not committed yet.
    unbinder = db.session()
    with committed_app.app_context():
        unbind(unbinder, binding_id, actor=STAFF)
    carried: list[dict] = []

    def orders_pass() -> None:
        with committed_app.app_context(), db.transaction() as session:
            carried.append(bind_batch(session, orders_id))

    thread = threading.Thread(target=orders_pass)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive(), "the orders pass waits for the unbind in flight"
    unbinder.commit()
    unbinder.close()
    thread.join(10)
    assert not thread.is_alive()
    # The pass waited for the unbind and found the record unbound: no order of an unbound record on the member.
    assert carried == [{"orders_carried": 0}]
    with db.transaction() as session:
        assert session.scalars(select(Order.external_id).where(Order.member_id == member_id)).all() == []


def test_cli_refuses_a_batch_number_that_cannot_be_one(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from scrm import migrate
    from scrm.cli import main

    url = f"sqlite:///{tmp_path / 'scrm.db'}"
    migrate.upgrade(url)
    monkeypatch.setenv("SCRM_DATABASE_URL", url)
    monkeypatch.setenv("SCRM_LOG_JSON", "0")
    orders = write(tmp_path / "orders.csv", ORDERS)
    for value in ("0", "-1", "99999999999999999999", "abc"):
        result = CliRunner().invoke(main, ["legacy", "import", str(orders), "--orders-of", value])
        assert result.exit_code == 2, (value, result.output, result.exception)
        assert "--orders-of" in result.output


def test_upload_orders_as_xlsx_with_a_mapping_and_bad_forms(client, staff, session, tmp_path, members_batch):
    admin = staff.headers("admin")
    content = write_xlsx(
        tmp_path / "o.xlsx", [["X1", "A1", "12.5", "2024-03-01"]], header=("ID", "会员编号", "金额", "时间")
    ).read_bytes()
    # "ID" and "时间" are nobody's alias in an orders file: the mapping has to say.
    unmapped = upload(client, admin, content, name="o.xlsx", orders_of=str(members_batch))
    assert unmapped.status_code == 422
    assert unmapped.json["error"]["details"]["missing"] == ["order_ref", "paid_at"]
    custom = '{"ID": "order_ref", "时间": "custom:when"}'
    refused = upload(client, admin, content, name="o.xlsx", orders_of=str(members_batch), mapping=custom)
    assert refused.status_code == 422
    dry = upload(client, admin, content, name="o.xlsx", orders_of=str(members_batch), dry_run="true")
    assert dry.status_code == 409
    assert dry.json["error"]["code"] == "legacy_invalid_orders_parent"
    assert upload(client, admin, content, name="o.xlsx", orders_of=str(members_batch), mapping="[1]").status_code == 422
    mapping = '{"ID": "order_ref", "时间": "paid_at"}'
    done = upload(client, admin, content, name="o.xlsx", orders_of=str(members_batch), mapping=mapping)
    assert done.status_code == 202, done.json
    shown = client.get(f"{API}/imports/{done.json['id']}", headers=staff.headers("analyst")).json
    assert (shown["status"], shown["file_format"], shown["valid_count"]) == ("done", "xlsx", 1)
    again = upload(client, admin, content, name="again.xlsx", orders_of=str(members_batch), mapping=mapping)
    assert (again.status_code, again.json["id"], again.json["created"]) == (202, done.json["id"], False)
    assert session.scalar(select(func.count()).select_from(LegacyOrder)) == 1


def test_ids_in_the_path_past_a_bigint_are_not_found(client, staff):
    admin = staff.headers("admin")
    for path in ("imports/99999999999999999999", "imports/9223372036854775808/errors.csv", "bindings/1" + "0" * 19):
        response = client.get(f"{API}/{path}", headers=admin)
        assert response.status_code == 404, (path, response.status_code)
        assert response.json["error"]["code"] == "not_found"
    assert client.get(f"{API}/imports/9223372036854775807", headers=admin).json["error"]["code"] == (
        "legacy_batch_not_found"
    )
