"""The one-pass COPY renderer gives exactly what normalising and then `copy_text` give, row by row."""

from __future__ import annotations

import pytest

from member.legacy.services.copyrows import CopyRenderer
from member.legacy.services.normalise import RowNormaliser, build_mapping
from member.legacy.services.reader import Chunk
from member.legacy.services.stage import copy_text, prepare_chunk
from tests.member.legacy.files import HEADER, legacy_rows

AWKWARD = [
    ["A1", "13800138000", "张三", "金卡", "10", "1.50", "2020-01-02", "2026-03-04 05:06:07", "茶"],
    ["A2", "+86 138 0013 8001", "  Li  Si ", "", "007", "1,234.50", "2024/3/5", "", ""],
    ["A3", "0086-138-0013-8002", "Tab\there", "银\t卡", "0", "¥88", "2024年3月5日", "20240305", 'say "hi"'],
    ["A4", "13800138003", "Back\\slash", "金卡", "²", "12.5元", "", "", "\\N"],
    ["A5", "13800138004", "全角\u3000空格", "x" * 40, "1" * 19, "-5", "2024-02-30", "", "a\nb"],
    ["A6", "+852 9123 4567", "Line\nbreak", "金卡", "1,000", "0.07", "2024.03.05 08:30", "yesterday", ""],
    ["", "13800138006", "no id", "", "", "", "", "", ""],
    ["A" * 65, "13800138007", "long id", "", "", "", "", "", ""],
    ["A8", "", "no phone", "", "", "", "", "", ""],
    ["A9", "12345", "bad phone", "", "", "", "", "", ""],
    ["A10", "13800138010", "n" * 100, "", "1.0", "100.00", "2024-03-05T08:30:15", "", ""],
    ["A11", "13800138011"],
    ["A12", "13800138012", "short", "金卡", "5"],
    ["A13", "13800138013", "", "", "", "", "", "", "", "extra"],
    ["A14", "１３８００１３８０１４", "全角号码", "", "", "", "", "", ""],
    ["A15", "13800138015", "Cr\rhere", "", "", "", "", "", "x\ty"],
    ["A16", "13800138016", "decimal comma", "", "", "12,50", "0001-01-01", "", ""],
    ["A17", "13800138017", "wide digits", "", "１２", "１２3.5", "", "0001-01-02", ""],
    ["A18", "13800138018", "grouped", "", "", "12,345,678.9", "", "", ""],
]


def _both(header, rows):
    normaliser = RowNormaliser(build_mapping(header))
    numbered = [(n + 2, values) for n, values in enumerate(rows)]
    results = [normaliser(n, values) for n, values in numbered]
    good = [r for r in results if type(r) is tuple]
    bad = {n: r for (n, _), r in zip(numbered, results, strict=True) if type(r) is list}
    rendered = CopyRenderer(RowNormaliser(build_mapping(header)), 42).render(numbered)
    return (copy_text(42, good), bad), ("".join(rendered.lines), rendered.bad), rendered, good


@pytest.mark.parametrize("rows", [AWKWARD, legacy_rows(3000)[0]], ids=["awkward", "planted-faults"])
def test_the_renderer_equals_normalise_then_copy_text(rows):
    expected, got, rendered, good = _both(HEADER, rows)
    assert got == expected
    assert rendered.legacy_ids == [row[1] for row in good]
    assert set(rendered.raw_by_row) == set(rendered.bad)


def test_files_without_an_id_column_or_with_columns_in_another_order_render_the_same():
    reordered = ("姓名", "积分", "手机号", "备注", "会员编号")
    rows = [[r[2], r[4], r[1], r[8], r[0]] for r in AWKWARD if len(r) > 8]
    expected, got, _rendered, _good = _both(reordered, rows)
    assert got == expected
    no_id = ("手机号", "姓名", "注册时间")
    expected, got, rendered, _good = _both(no_id, [[r[1], r[2], r[6]] for r in AWKWARD if len(r) > 6])
    assert got == expected
    assert rendered.legacy_ids[0] == "row-2"


def test_a_chunk_repeating_an_id_gets_staging_rows_instead_of_a_payload():
    normaliser = RowNormaliser(build_mapping(HEADER))
    renderer = CopyRenderer(normaliser, 9)
    clean = Chunk(0, 2, 0, 0, [(2, list(AWKWARD[0])), (3, list(AWKWARD[1]))], eof=False)
    prepared = prepare_chunk(clean, normaliser, renderer=renderer)
    assert (prepared.valid, prepared.copy_batch_id, prepared.normal_rows) == (2, 9, None)
    assert prepared.copy_payload == copy_text(9, prepared.good).encode()
    repeated = Chunk(0, 2, 0, 0, [(2, list(AWKWARD[0])), (3, list(AWKWARD[0]))], eof=False)
    prepared = prepare_chunk(repeated, normaliser, renderer=renderer)
    assert (prepared.copy_payload, prepared.valid) == (None, 2)
    assert [row[1] for row in prepared.normal_rows or []] == ["A1", "A1"]


def test_a_superscript_digit_in_points_is_a_bad_row_not_a_crash():
    # "²".isdigit() is true but int("²") raises; the whole chunk used to fail on it.
    _expected, (_text, bad), _rendered, _good = _both(HEADER, [AWKWARD[3]])
    assert bad == {2: ["invalid_points"]}
