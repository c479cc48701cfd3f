"""Legacy import on PostgreSQL: exact counts and error report for a 100k-row file with planted faults, in every
encoding and as XLSX; re-import adds nothing; a crash at 50% and a resume end in the uninterrupted state."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select, text

from member.legacy import selectors
from member.legacy.models import ImportBatch, LegacyMember, LegacyRowError
from member.legacy.runner import run_import
from member.legacy.services.batches import batch_counts, open_batch
from member.legacy.services.dryrun import dry_run
from tests.member.legacy.files import legacy_rows, write_csv, write_xlsx

N = 100_000


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    rows, expected = legacy_rows(N)
    path = write_csv(tmp_path_factory.mktemp("legacy") / "crm.csv", rows)
    return path, rows, expected


def _import(db, path, **kwargs):
    with db.transaction() as session:
        batch_id = open_batch(session, path=path, filename=path.name).batch.id
    run_import(db, batch_id, **kwargs)
    return batch_id


def _state(session, batch_id):
    members = session.execute(
        text(
            "SELECT row_number, legacy_id, phone, name, tier, points, total_spend_fen, joined_at, last_active_at, "
            "custom_fields::text FROM legacy_members WHERE batch_id = :b ORDER BY row_number"
        ),
        {"b": batch_id},
    ).all()
    errors = session.execute(
        select(LegacyRowError.row_number, LegacyRowError.reasons, LegacyRowError.raw)
        .where(LegacyRowError.batch_id == batch_id)
        .order_by(LegacyRowError.row_number)
    ).all()
    batch = session.get(ImportBatch, batch_id)
    return members, errors, batch_counts(batch), batch.rows_done, batch.status


def test_100k_rows_import_with_exact_counts_and_error_report(db, session, big):
    path, _rows, expected = big
    batch_id = _import(db, path, chunk_rows=25_000)
    batch = session.get(ImportBatch, batch_id)
    assert batch_counts(batch) == {
        "rows": N,
        "valid": expected.valid,
        "invalid": expected.invalid,
        "invalid_by_reason": dict(sorted(expected.invalid_by_reason.items())),
        "duplicate_phone_rows": expected.duplicate_rows,
        "duplicate_phone_groups": expected.duplicate_groups,
    }
    assert batch.status == "done"
    assert session.scalar(select(func.count()).where(LegacyMember.batch_id == batch_id)) == expected.valid
    first = session.scalar(select(LegacyMember).where(LegacyMember.batch_id == batch_id, LegacyMember.row_number == 3))
    assert (first.phone, first.name, first.points, first.total_spend_fen, first.custom_fields) == (
        "+8613900000001",
        "会员1",
        1,
        101,
        {"喜好": "茶"},
    )
    assert first.joined_at.isoformat() == "2024-02-01T16:00:00+00:00"  # 2024-02-02 00:00 in China
    multi_line = session.scalar(select(LegacyMember.name).where(LegacyMember.legacy_id == "L0000700"))
    assert multi_line == "Smith, John"

    report = list(csv.reader(io.StringIO("".join(selectors.error_report_csv(session, batch_id)).lstrip("\ufeff"))))
    assert report[0] == list(selectors.ERROR_REPORT_HEADER)
    invalid = [row for row in report[1:] if row[1] == "invalid"]
    assert [int(row[0]) for row in invalid] == expected.bad_rows
    assert invalid[0][2] == "invalid_phone"
    assert invalid[0][5].split("\t")[1] == "12345"
    duplicates = [row for row in report[1:] if row[1] == "duplicate_phone"]
    assert len(duplicates) == expected.duplicate_rows
    assert len({row[3] for row in duplicates}) == expected.duplicate_groups
    assert duplicates[:2] == [
        ["501", "duplicate_phone", "duplicate_phone", "501", "+86139****0499", "L0000499"],
        ["502", "duplicate_phone", "duplicate_phone", "501", "+86139****0499", "L0000500"],
    ]


def test_reimporting_the_same_file_adds_nothing(db, session, big):
    path, _rows, expected = big
    first = _import(db, path, chunk_rows=50_000)
    again = _import(db, path, chunk_rows=50_000)
    assert again == first
    assert session.scalar(select(func.count()).select_from(LegacyMember)) == expected.valid
    assert session.scalar(select(func.count()).select_from(LegacyRowError)) == expected.invalid
    assert session.scalar(select(func.count()).select_from(ImportBatch)) == 1


class Crash(Exception):
    pass


def test_a_crash_at_half_and_a_resume_end_in_the_uninterrupted_state(db, session, big, tmp_path):
    path, _rows, _expected = big
    uninterrupted_id = _import(db, path, chunk_rows=10_000)
    # The same records with one trailing blank line: a new batch (another content hash), the same rows.
    twin = tmp_path / "crm-twin.csv"
    twin.write_bytes(path.read_bytes() + b"\r\n")

    def crash_in_the_sixth_chunk(chunk, outcome):
        if chunk.start_row >= N // 2:
            raise Crash()

    with pytest.raises(Crash):
        _import(db, twin, chunk_rows=10_000, on_chunk=crash_in_the_sixth_chunk)
    with db.transaction() as check:
        halfway = check.scalar(select(ImportBatch).where(ImportBatch.id != uninterrupted_id))
        assert (halfway.status, halfway.rows_done) == ("running", N // 2)
        assert check.scalar(select(func.count()).where(LegacyMember.batch_id == halfway.id)) < N // 2
        resumed_id = halfway.id
    assert _import(db, twin, chunk_rows=10_000) == resumed_id
    members, errors, counts, rows_done, status = _state(session, resumed_id)
    assert (members, errors, counts, status) == (*_state(session, uninterrupted_id)[:3], "done")
    assert rows_done == N + 1


@pytest.mark.parametrize(("encoding", "delimiter"), [("utf-8-sig", ","), ("gb18030", "\t"), ("gb18030", ";")])
def test_encodings_and_delimiters_give_the_same_import(db, session, tmp_path, encoding, delimiter):
    rows, expected = legacy_rows(3000)
    path = write_csv(tmp_path / "crm.csv", rows, encoding=encoding, delimiter=delimiter)
    batch_id = _import(db, path, chunk_rows=1000)
    batch = session.get(ImportBatch, batch_id)
    assert (batch.valid_count, batch.invalid_count, batch.duplicate_groups) == (
        expected.valid,
        expected.invalid,
        expected.duplicate_groups,
    )
    assert session.scalar(select(LegacyMember.name).where(LegacyMember.row_number == 2)) == "会员0"


def test_the_xlsx_twin_imports_like_the_csv(db, session, tmp_path):
    rows, expected = legacy_rows(5000)
    csv_id = _import(db, write_csv(tmp_path / "crm.csv", rows), chunk_rows=2000)
    xlsx_id = _import(db, write_xlsx(tmp_path / "crm.xlsx", rows), chunk_rows=2000)
    csv_state, xlsx_state = _state(session, csv_id), _state(session, xlsx_id)
    assert xlsx_state[2] == csv_state[2]
    assert xlsx_state[2]["valid"] == expected.valid
    assert xlsx_state[0] == csv_state[0]
    assert [e[:2] for e in xlsx_state[1]] == [e[:2] for e in csv_state[1]]


def test_dry_run_reports_without_writing(db, session, tmp_path, factories):
    rows, expected = legacy_rows(2000)
    member = factories.MemberFactory(phone="+8613900000001", phone_verified_at=factories_now())
    factories.MemberFactory(phone="+8613900000499", phone_verified_at=factories_now())  # row 500 repeats it
    path = write_csv(tmp_path / "crm.csv", rows)
    batch = open_batch(session, path=path, filename="crm.csv", dry_run=True).batch
    report = dry_run(session, batch.id, chunk_rows=500)
    assert report["rows"] == 2000
    assert report["valid"] == expected.valid
    assert report["invalid_by_reason"] == dict(sorted(expected.invalid_by_reason.items()))
    assert report["duplicate_phone_groups"] == expected.duplicate_groups
    assert (report["matches_verified_members"], report["would_bind"], report["would_queue_conflicts"]) == (2, 1, 1)
    assert session.scalar(select(func.count()).select_from(LegacyMember)) == 0
    assert session.scalar(select(func.count()).select_from(LegacyRowError)) == 0
    assert session.get(ImportBatch, batch.id).report == report
    assert member.id is not None


def factories_now():
    from scrm.clock import utcnow

    return utcnow()


def test_sqlite_embedded_import(sqlite_app, tmp_path):
    rows, expected = legacy_rows(1500)
    db = sqlite_app.extensions["scrm"].db
    batch_id = _import(db, write_csv(tmp_path / "crm.csv", rows), chunk_rows=400)
    again = _import(db, write_csv(tmp_path / "crm.csv", rows), chunk_rows=400)
    with db.transaction() as session:
        batch = session.get(ImportBatch, batch_id)
        assert (batch.valid_count, batch.invalid_count, batch.duplicate_rows) == (
            expected.valid,
            expected.invalid,
            expected.duplicate_rows,
        )
        assert session.scalar(select(func.count()).select_from(LegacyMember)) == expected.valid
        first = session.scalar(select(LegacyMember).where(LegacyMember.row_number == 3))
        assert first.joined_at.isoformat() == "2024-02-01T16:00:00+00:00"
    assert again == batch_id


def test_clean_chunks_copy_straight_in_and_a_later_repeated_id_is_still_reported(db, session, tmp_path):
    rows = [[f"C{i:05d}", f"137{i:08d}", f"name {i}", "", str(i), "1.5", "2024-01-01", "", ""] for i in range(3000)]
    rows[2500][0] = "C00010"  # repeats an id of the first chunk
    batch_id = _import(db, write_csv(tmp_path / "clean.csv", rows), chunk_rows=1000)
    batch = session.get(ImportBatch, batch_id)
    assert (batch.valid_count, batch.invalid_count, batch.invalid_by_reason) == (
        2999,
        1,
        {"duplicate_legacy_id": 1},
    )
    assert session.scalar(select(LegacyRowError.row_number).where(LegacyRowError.batch_id == batch_id)) == 2502
    first = session.scalar(select(LegacyMember).where(LegacyMember.legacy_id == "C00010"))
    assert (first.row_number, first.total_spend_fen, first.custom_fields) == (12, 150, {})


def test_nul_characters_of_a_broken_export_neither_stop_the_import_nor_reach_the_database(db, session, tmp_path):
    path = tmp_path / "nul.csv"
    path.write_bytes(
        "会员编号,手机号,姓名,等级,喜好\n"
        "A\x001,13900000001,甲,金卡,茶\n"  # the id holds NUL: refused
        "A2,13900000002,乙\x00乙,金\x00卡,红\x00茶\n"  # text loses it
        "A3,139\x0000000003,丙,,\n"  # a phone with NUL is no phone
        "A4,13900000004,丁,,\n".encode()
    )
    batch_id = _import(db, path)
    batch = session.get(ImportBatch, batch_id)
    assert (batch.status, batch.valid_count, batch.invalid_by_reason) == (
        "done",
        2,
        {"invalid_legacy_id": 1, "invalid_phone": 1},
    )
    stored = session.execute(
        select(LegacyMember.legacy_id, LegacyMember.name, LegacyMember.tier, LegacyMember.custom_fields)
        .where(LegacyMember.batch_id == batch_id)
        .order_by(LegacyMember.row_number)
    ).all()
    assert [tuple(row) for row in stored] == [("A2", "乙乙", "金卡", {"喜好": "红茶"}), ("A4", "丁", None, {})]
    raws = session.scalars(
        select(LegacyRowError.raw).where(LegacyRowError.batch_id == batch_id).order_by(LegacyRowError.row_number)
    ).all()
    assert raws[0].startswith("A\ufffd1\t")
