"""File records straight to COPY text for legacy_members: the common shape in one pass, the rest via RowNormaliser."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from json.encoder import encode_basestring as encode_json_string

from member.legacy.services.normalise import (
    FIELDS,
    MAINLAND_MOBILE,
    PHONE_NOISE,
    NormalRow,
    RowNormaliser,
    parse_fen,
    parse_legacy_datetime,
)

# COPY's text format: backslash, tab, newline and carriage return escaped; \N is NULL.
COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
COPY_NULL = "\\N"
# Digits with an optional fraction: an amount parse_fen reads as it is (no symbol, unit, space or grouping).
_PLAIN_AMOUNT = re.compile(r"(\d{1,16})(?:\.(\d{1,2})0*)?")


def copy_line(head: str, row: NormalRow, stamps: dict[datetime, str]) -> str:
    """One normalised row as a COPY text line after `head` (the batch id and status columns)."""
    row_number, legacy_id, phone, name, tier, points, spend, joined, active, custom = row
    escapes, null = COPY_ESCAPES, COPY_NULL
    return (
        f"{head}{row_number}\t{legacy_id.translate(escapes)}\t{phone}\t"
        f"{null if name is None else name.translate(escapes)}\t"
        f"{null if tier is None else tier.translate(escapes)}\t{points}\t{spend}\t"
        f"{_stamp(joined, stamps)}\t{_stamp(active, stamps)}\t{custom.translate(escapes)}\n"
    )


def _stamp(value: datetime | None, stamps: dict[datetime, str]) -> str:
    if value is None:
        return COPY_NULL
    text = stamps.get(value)
    if text is None:
        text = stamps[value] = value.isoformat(sep=" ")
    return text


@dataclass
class RenderedChunk:
    """A chunk's good rows as COPY lines (with their legacy ids) and its bad rows with their reasons."""

    lines: list[str] = field(default_factory=list)
    legacy_ids: list[str] = field(default_factory=list)
    bad: dict[int, list[str]] = field(default_factory=dict)
    raw_by_row: dict[int, list[str]] = field(default_factory=dict)


class CopyRenderer:
    """Turns file records into COPY lines for one batch, equal to `copy_text` of what `RowNormaliser` makes.

    The common record — every mapped column present, a mainland mobile, digits for points, an amount,
    dates of a known shape, no text needing COPY escapes — is checked and rendered in one pass with
    no intermediate tuple and no datetime round trip (a date's text is memoised from the cell's text). Any
    record that misses one of those checks goes through `RowNormaliser` unchanged, so every reason a row can
    be refused, and every value a row can hold, stays the normaliser's.
    """

    #: Dates repeat across an export; the memo of cell text → COPY text is dropped when it grows past this.
    STAMP_MEMO_SIZE = 50_000

    def __init__(self, normaliser: RowNormaliser, batch_id: int) -> None:
        self.normaliser = normaliser
        self.batch_id = batch_id
        self.head = f"{batch_id}\tunbound\t"
        mapping = normaliser.mapping
        self._columns = tuple(mapping.index_of(name) for name in FIELDS)
        # Without an id column a record's id is made from its row number; such files take the general path.
        self._id_column = self._columns[0] is not None
        self._custom = tuple((index, encode_json_string(key) + ": ") for index, key in mapping.custom)
        self._min_width = 1 + max(
            [i for i in self._columns if i is not None] + [i for i, _ in self._custom], default=-1
        )
        self._stamps: dict[str, str | None] = {}

    def _date_text(self, raw: str) -> str | None:
        stamps = self._stamps
        text = stamps.get(raw, "")
        if text == "":
            if len(stamps) >= self.STAMP_MEMO_SIZE:
                stamps.clear()
            value = parse_legacy_datetime(raw)
            text = stamps[raw] = None if value is None else value.isoformat(sep=" ")
        return text

    def render(self, rows: Sequence[tuple[int, list[str]]]) -> RenderedChunk:
        out = RenderedChunk()
        lines, ids, bad, raw_by_row = out.lines, out.legacy_ids, out.bad, out.raw_by_row
        normaliser, head = self.normaliser, self.head
        datetimes: dict[datetime, str] = {}

        def general(row_number: int, values: list[str]) -> None:
            result = normaliser(row_number, values)
            if type(result) is list:
                bad[row_number] = result
                raw_by_row[row_number] = values
            else:
                lines.append(copy_line(head, result, datetimes))  # type: ignore[arg-type]
                ids.append(result[1])  # type: ignore[index]

        min_width = self._min_width if self._id_column else 1 << 62
        id_i, phone_i, name_i, tier_i, points_i, spend_i, joined_i, active_i = self._columns
        custom_columns = self._custom
        mobile, money, date_text = MAINLAND_MOBILE.fullmatch, _PLAIN_AMOUNT.fullmatch, self._date_text
        null, escapes, phone_noise = COPY_NULL, COPY_ESCAPES, PHONE_NOISE
        append_line, append_id = lines.append, ids.append
        for row_number, values in rows:
            # Each check that fails hands the whole record to the normaliser (`general`) and moves on.
            if len(values) < min_width:
                general(row_number, values)
                continue
            legacy_id = values[id_i].strip()
            if not legacy_id or len(legacy_id) > 64:
                general(row_number, values)
                continue
            phone = values[phone_i].strip()
            match = mobile(phone) or mobile(phone.translate(phone_noise))
            if match is None:
                general(row_number, values)
                continue
            name = values[name_i].strip() if name_i is not None else ""
            tier = values[tier_i].strip()[:32] if tier_i is not None else ""
            # isprintable() is False for tabs, newlines and every space but " ": text that passes, holds no
            # backslash and no double space needs neither whitespace folding nor COPY escapes.
            probe = legacy_id + name + tier
            if not probe.isprintable() or "\\" in probe or "  " in name:
                general(row_number, values)
                continue
            points = values[points_i].strip() if points_i is not None else ""
            if not points:
                points = "0"
            elif not (points.isascii() and points.isdigit() and len(points) <= 18):
                general(row_number, values)
                continue
            elif points[0] == "0":
                points = str(int(points))
            spend = values[spend_i].strip() if spend_i is not None else ""
            if spend:
                amount = money(spend)
                if amount is not None:
                    cents = amount.group(2)
                    spend = int(amount.group(1)) * 100 + (int(cents.ljust(2, "0")) if cents else 0)
                else:
                    spend = parse_fen(spend)
                    if spend is None:
                        general(row_number, values)
                        continue
            else:
                spend = 0
            joined = values[joined_i].strip() if joined_i is not None else ""
            if joined:
                joined = date_text(joined)
                if joined is None:
                    general(row_number, values)
                    continue
            else:
                joined = null
            active = values[active_i].strip() if active_i is not None else ""
            if active:
                active = date_text(active)
                if active is None:
                    general(row_number, values)
                    continue
            else:
                active = null
            custom = "{}"
            if custom_columns:
                parts = [key + encode_json_string(values[i].strip()) for i, key in custom_columns if values[i].strip()]
                if parts:
                    custom = "{" + ", ".join(parts) + "}"
                    if "\\" in custom:
                        if "\\u0000" in custom:
                            general(row_number, values)
                            continue
                        custom = custom.translate(escapes)
            append_line(
                f"{head}{row_number}\t{legacy_id}\t+86{match.group(1)}\t{name[:80] if name else null}\t"
                f"{tier or null}\t{points}\t{spend}\t{joined}\t{active}\t{custom}\n"
            )
            append_id(legacy_id)
        return out
