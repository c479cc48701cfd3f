"""The direct COPY path: awkward text (backslashes, tabs, quotes, JSON escapes) lands as read; repeated ids do not."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from sqlalchemy import select

from member.legacy.models import LegacyMember, LegacyRowError
from member.legacy.runner import run_import
from member.legacy.services.batches import open_batch

HEADER = ("会员编号", "手机号", "姓名", "等级", "积分", "消费金额", "注册时间", "最后消费时间", "备注")


def test_awkward_text_lands_unchanged_through_the_direct_copy(db, session, tmp_path):
    rows = [
        ["L\\1", "13800138000", "Back\\slash", "金\t卡", "10", "1.50", "2020-01-02", "", 'say "hi"\\n\tnow'],
        ["L2", "+86 139 0013 9000", "", "", "", "", "", "2026-03-04 05:06:07", "\\N"],
    ]
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    path = tmp_path / "awkward.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    with db.transaction() as tx:
        batch_id = open_batch(tx, path=path, filename=path.name).batch.id
    result = run_import(db, batch_id)
    assert (result.inserted, result.invalid) == (2, 0)

    first, second = session.scalars(
        select(LegacyMember).where(LegacyMember.batch_id == batch_id).order_by(LegacyMember.row_number)
    )
    assert (first.legacy_id, first.phone, first.name, first.tier) == ("L\\1", "+8613800138000", "Back\\slash", "金\t卡")
    assert (first.points, first.total_spend_fen, first.last_active_at) == (10, 150, None)
    assert first.joined_at == datetime(2020, 1, 1, 16, tzinfo=UTC)
    assert first.custom_fields == {"备注": 'say "hi"\\n\tnow'}
    assert (second.name, second.tier, second.points, second.total_spend_fen, second.joined_at) == (
        None,
        None,
        0,
        0,
        None,
    )
    assert second.last_active_at == datetime(2026, 3, 3, 21, 6, 7, tzinfo=UTC)
    assert second.custom_fields == {"备注": "\\N"}


def test_an_id_imported_by_an_earlier_chunk_is_reported_not_copied_again(db, session, tmp_path):
    rows = [
        ["L1", "13800138001", "甲"],
        ["L2", "13800138002", "乙"],
        ["L1", "13800138003", "丙"],
        ["L3", "13800138004", "丁"],
    ]
    path = tmp_path / "repeat.csv"
    path.write_text("会员编号,手机号,姓名\n" + "".join(",".join(row) + "\n" for row in rows), encoding="utf-8")
    with db.transaction() as tx:
        batch_id = open_batch(tx, path=path, filename=path.name).batch.id
    result = run_import(db, batch_id, chunk_rows=2)
    assert (result.inserted, result.invalid) == (3, 1)
    kept = session.execute(
        select(LegacyMember.legacy_id, LegacyMember.name)
        .where(LegacyMember.batch_id == batch_id)
        .order_by(LegacyMember.row_number)
    ).all()
    assert kept == [("L1", "甲"), ("L2", "乙"), ("L3", "丁")]
    error = session.scalar(select(LegacyRowError).where(LegacyRowError.batch_id == batch_id))
    assert (error.row_number, error.reasons) == (4, "duplicate_legacy_id")
