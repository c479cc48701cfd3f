"""Row normalisation: phones to E.164, dates in common formats (China time), yuan to fen, the column mapping."""

from __future__ import annotations

import pytest

from member.legacy.errors import InvalidMapping, UnreadableFile
from member.legacy.services.normalise import (
    RowNormaliser,
    build_mapping,
    normalise_phone,
    parse_fen,
    parse_legacy_datetime,
    to_utc,
)
from member.legacy.services.reader import detect_encoding, sniff_delimiter


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("13800138000", "+8613800138000"),
        ("+86 138 0013 8000", "+8613800138000"),
        ("86-138-0013-8000", "+8613800138000"),
        ("0086 13800138000", "+8613800138000"),
        ("(138)00138000", "+8613800138000"),
        ("+852 9123 4567", "+85291234567"),
        ("+1 650-253-0000", "+16502530000"),
        ("12800138000", None),
        ("12345", None),
        ("not a phone", None),
    ],
)
def test_phones_normalise_to_e164(raw, e164):
    assert normalise_phone(raw) == e164


@pytest.mark.parametrize(
    ("raw", "utc"),
    [
        ("2024-03-05", "2024-03-04T16:00:00+00:00"),
        ("2024/3/5", "2024-03-04T16:00:00+00:00"),
        ("2024.03.05 08:30", "2024-03-05T00:30:00+00:00"),
        ("2024-03-05T08:30:15", "2024-03-05T00:30:15+00:00"),
        ("2024年3月5日", "2024-03-04T16:00:00+00:00"),
        ("20240305", "2024-03-04T16:00:00+00:00"),
        ("2024-02-30", None),
        ("05/03/2024", None),
        ("yesterday", None),
        # Before 08:00 on 0001-01-01 China time is year 0 in UTC: PostgreSQL stores it as BC, Python cannot read it.
        ("0001-01-01", None),
        ("9999-12-31 23:59", "9999-12-31T15:59:00+00:00"),
    ],
)
def test_dates_are_read_as_china_time(raw, utc):
    parsed = parse_legacy_datetime(raw)
    assert (to_utc(parsed).isoformat() if parsed else None) == utc


@pytest.mark.parametrize(
    ("raw", "fen"),
    [
        ("1,234.50", 123450),
        ("¥88", 8800),
        ("12.5元", 1250),
        ("0.07", 7),
        ("100.00", 10000),
        ("-5", None),
        ("1.234", None),
        ("１，２３４，５６７.８", 123456780),
        ("12,50", None),
        ("1,2,3", None),
        ("1234,567", None),
    ],
)
def test_spend_in_yuan_becomes_fen(raw, fen):
    assert parse_fen(raw) == fen


def test_default_mapping_knows_common_headers_and_keeps_the_rest_as_custom_fields():
    mapping = build_mapping(["Mobile", "Name", "会员等级", "积分余额", "Total Spend", "Join Date", "门店"])
    assert mapping.describe() == {
        "Mobile": "phone",
        "Name": "name",
        "会员等级": "tier",
        "积分余额": "points",
        "Total Spend": "spend",
        "Join Date": "joined_at",
        "门店": "custom:门店",
    }
    normalise = RowNormaliser(mapping)
    row = normalise(2, [" 138-0013-8000 ", "  Li   Lei ", "金卡", "1,200", "3,000.5", "2020-01-01", "静安店"])
    assert row[1:7] == ("row-2", "+8613800138000", "Li Lei", "金卡", 1200, 300050)
    assert row[9] == '{"门店": "静安店"}'
    assert normalise(3, ["", "x", "", "-1", "abc", "2020-13-01", ""]) == [
        "missing_phone",
        "invalid_points",
        "invalid_spend",
        "invalid_joined_at",
    ]


def test_a_mapping_overrides_defaults_and_is_checked():
    mapping = build_mapping(["卡号", "联系人电话", "备注"], {"联系人电话": "phone", "备注": "ignore"})
    assert mapping.describe() == {"卡号": "legacy_id", "联系人电话": "phone", "备注": "ignore"}
    with pytest.raises(InvalidMapping):
        build_mapping(["手机号", "x"], {"x": "favourite_colour"})
    with pytest.raises(InvalidMapping):
        build_mapping(["姓名", "城市"])


def test_encoding_and_delimiter_detection():
    text = "手机号;姓名\n13800138000;张三\n"
    assert detect_encoding(text.encode("utf-8")) == "utf-8"
    assert detect_encoding(b"\xef\xbb\xbf" + text.encode("utf-8")) == "utf-8-sig"
    assert detect_encoding(text.encode("gb18030")) == "gb18030"
    assert sniff_delimiter(text.encode("gb18030"), "gb18030") == ";"
    assert sniff_delimiter(b"a\tb\n1\t2\n", "utf-8") == "\t"
    with pytest.raises(UnreadableFile):
        detect_encoding(text.encode("utf-16"))


def test_full_width_and_mixed_digits_become_an_ascii_e164_phone():
    assert normalise_phone("１３９ ０００ ０００ ０１") == "+8613900000001"
    assert normalise_phone("1３900000001") == "+8613900000001"
    assert normalise_phone("＋８６" + "１３９０００００００１") == "+8613900000001"
    # Digits of other scripts are never stored as they are: ASCII E.164, or refused.
    for raw in ("١٣٩٠٠٠٠٠٠٠١", "१३९००००००००१"):
        phone = normalise_phone(raw)
        assert phone is None or (phone.isascii() and phone.startswith("+"))
