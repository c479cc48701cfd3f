"""Column mapping and row normalisation: phones to E.164, trimmed names, parsed dates, points and fen as integers."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from json.encoder import encode_basestring as encode_json_string

import phonenumbers

from member.legacy.errors import InvalidMapping

#: The fields a legacy column can map to; anything else is `custom:<key>` or `ignore`.
FIELDS = ("legacy_id", "phone", "name", "tier", "points", "spend", "joined_at", "last_active_at")
CUSTOM_PREFIX = "custom:"
IGNORE = "ignore"

#: Common headers of CRM exports (compared after lower-casing and dropping spaces, "_" and "-").
DEFAULT_ALIASES: dict[str, tuple[str, ...]] = {
    "legacy_id": (
        "会员id",
        "会员编号",
        "会员号",
        "会员卡号",
        "卡号",
        "编号",
        "id",
        "memberid",
        "memberno",
        "cardno",
        "legacyid",
        "customerid",
        "customerno",
    ),
    "phone": (
        "手机号",
        "手机",
        "手机号码",
        "电话",
        "电话号码",
        "联系电话",
        "联系方式",
        "mobile",
        "phone",
        "phonenumber",
        "mobilephone",
        "cellphone",
        "tel",
        "telephone",
    ),
    "name": ("姓名", "名字", "会员姓名", "客户姓名", "name", "fullname", "membername", "customername"),
    "tier": ("等级", "会员等级", "级别", "会员级别", "tier", "level", "grade", "memberlevel", "membershiplevel"),
    "points": ("积分", "可用积分", "积分余额", "当前积分", "points", "point", "pointsbalance", "balance"),
    "spend": (
        "消费金额",
        "累计消费",
        "累计消费金额",
        "总消费",
        "消费总额",
        "spend",
        "totalspend",
        "amount",
        "totalamount",
        "lifetimespend",
    ),
    "joined_at": (
        "注册时间",
        "注册日期",
        "入会时间",
        "入会日期",
        "开卡时间",
        "开卡日期",
        "joindate",
        "joinedat",
        "joined",
        "registeredat",
        "signupdate",
        "createdat",
        "registerdate",
    ),
    "last_active_at": (
        "最后消费时间",
        "最近消费时间",
        "最后活跃时间",
        "最近活跃时间",
        "最后购买时间",
        "lastactive",
        "lastactiveat",
        "lastpurchase",
        "lastpurchaseat",
        "lastorderat",
        "lastvisit",
    ),
}
_ALIAS_TO_FIELD = {alias: name for name, aliases in DEFAULT_ALIASES.items() for alias in aliases}
_HEADER_NOISE = str.maketrans("", "", " _-\u3000\ufeff\t")

#: Legacy CRMs export local (China Standard) time without an offset.
LEGACY_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")

# ASCII digits only: `\d` would take full-width and other scripts' digits as they are, and store a phone no
# verified (ASCII) number ever matches.
MAINLAND_MOBILE = re.compile(r"(?:\+?86|0086)?(1[3-9][0-9]{9})")
#: Spaces, dashes, brackets and dots go; full-width digits and plus (common in Chinese exports) become ASCII.
PHONE_NOISE = str.maketrans(
    {
        **dict.fromkeys(map(ord, " -()\u3000\t."), None),
        **{0xFF10 + digit: ord("0") + digit for digit in range(10)},
        0xFF0B: ord("+"),
    }
)
_DATE = re.compile(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?")
_COMPACT_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_MONEY_NOISE = str.maketrans("", "", "¥￥元 \u3000")
# A comma groups thousands ("1,234.50"); anywhere else ("12,50", a decimal comma) it is not an amount we can read.
_MONEY = re.compile(r"(\d{1,16}|\d{1,3}(?:[,\uff0c]\d{3}){1,4})(?:\.(\d{1,2})0*)?")
_THOUSANDS = str.maketrans("", "", ",\uff0c")
_NAME_SPACE = re.compile(r"\s+")
#: NUL cannot be stored in PostgreSQL text or jsonb (nor sent through COPY): broken exports hold it; a legacy
#: id with one is refused, other text loses it.
NUL = "\x00"
_JSON_NUL = "\\u0000"

_UNSET = object()

#: Normalised values in staging-column order (after row_number).
NormalRow = tuple[int, str, str, str | None, str | None, int, int, datetime | None, datetime | None, str]


def header_key(header: str) -> str:
    return header.strip().lower().translate(_HEADER_NOISE)


def normalise_phone(raw: str) -> str | None:
    """E.164 for a mainland mobile (fast path) or any number `phonenumbers` accepts as valid; else None."""
    compact = raw.translate(PHONE_NOISE)
    match = MAINLAND_MOBILE.fullmatch(compact)
    if match:
        return "+86" + match.group(1)
    try:
        number = phonenumbers.parse(raw, "CN")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_legacy_datetime(raw: str) -> datetime | None:
    """A legacy date or date-time (local China time) as an aware datetime; None when it is not a date."""
    match = _DATE.fullmatch(raw) or _COMPACT_DATE.fullmatch(raw)
    if not match:
        return None
    parts = [int(p) if p else 0 for p in match.groups()]
    try:
        value = datetime(*parts, tzinfo=LEGACY_TZ)
        # Early on 0001-01-01 in China is still year 0 in UTC: stored, it could never be read back.
        value.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return value


def parse_fen(raw: str) -> int | None:
    """Yuan as written ("1,234.50", "¥88", "12.5元") to integer fen; None when it is not an amount."""
    match = _MONEY.fullmatch(raw.translate(_MONEY_NOISE))
    if not match:
        return None
    whole, cents = match.group(1, 2)
    if len(whole) > 3 and not whole.isdigit():
        whole = whole.translate(_THOUSANDS)
    return int(whole) * 100 + (int(cents.ljust(2, "0")) if cents else 0)


def parse_points(raw: str) -> int | None:
    text = raw.replace(",", "").strip()
    if text.endswith(".0"):
        text = text[:-2]
    # At most 18 digits: the column is a bigint, and one overflowing value must not fail its whole chunk.
    # isdecimal(), not isdigit(): int() refuses digits such as "²".
    return int(text) if text.isdecimal() and len(text) <= 18 else None


@dataclass(frozen=True)
class ColumnMapping:
    """Which field each column of the file feeds (by column index)."""

    header: tuple[str, ...]
    fields: tuple[tuple[int, str], ...]
    custom: tuple[tuple[int, str], ...] = ()
    unmapped: tuple[str, ...] = field(default=())

    def index_of(self, name: str) -> int | None:
        return next((index for index, target in self.fields if target == name), None)

    def describe(self) -> dict[str, str]:
        targets = {index: target for index, target in self.fields}
        targets.update({index: CUSTOM_PREFIX + key for index, key in self.custom})
        return {self.header[i]: targets.get(i, IGNORE) for i in range(len(self.header))}


def build_mapping(header: Sequence[str], overrides: Mapping[str, str] | None = None) -> ColumnMapping:
    """Map the file's header to fields: `overrides` (header → field) first, then the common aliases.

    Columns that match nothing become custom fields named after their header.
    """
    overrides = {header_key(k): v.strip() for k, v in (overrides or {}).items()}
    fields: list[tuple[int, str]] = []
    custom: list[tuple[int, str]] = []
    taken: set[str] = set()
    for index, column in enumerate(header):
        key = header_key(column)
        if not key:
            continue
        target = overrides.get(key) or _ALIAS_TO_FIELD.get(key) or CUSTOM_PREFIX + column.strip()
        if target == IGNORE:
            continue
        if target.startswith(CUSTOM_PREFIX):
            name = target.removeprefix(CUSTOM_PREFIX).strip()
            if not name:
                raise InvalidMapping(f"column {column!r}: a custom field needs a name", details={"column": column})
            custom.append((index, name[:64]))
            continue
        if target not in FIELDS:
            raise InvalidMapping(
                f"column {column!r} maps to unknown field {target!r}",
                details={"column": column, "allowed": [*FIELDS, "custom:<name>", IGNORE]},
            )
        if target in taken:
            # A second column with a known alias (e.g. both 电话 and 手机) is kept, as a custom field.
            custom.append((index, column.strip()[:64]))
            continue
        taken.add(target)
        fields.append((index, target))
    if "phone" not in taken:
        raise InvalidMapping(
            'no column maps to the phone number; give a mapping such as {"<header>": "phone"}',
            details={"header": list(header)},
        )
    return ColumnMapping(header=tuple(header), fields=tuple(fields), custom=tuple(custom))


class RowNormaliser:
    """Turns one file record into a staging row, or into the list of reasons it is refused."""

    #: Parsed dates are memoised (exports repeat the same days); the memo is dropped when it grows past this.
    DATE_MEMO_SIZE = 50_000

    def __init__(self, mapping: ColumnMapping) -> None:
        self.mapping = mapping
        get = mapping.index_of
        self._id = get("legacy_id")
        self._phone = get("phone")
        self._name = get("name")
        self._tier = get("tier")
        self._points = get("points")
        self._spend = get("spend")
        self._joined = get("joined_at")
        self._active = get("last_active_at")
        # Custom fields become JSON text; keys are encoded once, values by the C string encoder.
        self._custom = tuple((index, encode_json_string(key) + ": ") for index, key in mapping.custom)
        self._dates: dict[str, datetime | None] = {}

    def _date(self, text: str) -> datetime | None:
        memo = self._dates
        # One lookup, not `in` then `[]`: the staging fallback may normalise on the other thread while
        # this one clears the memo.
        value = memo.get(text, _UNSET)
        if value is not _UNSET:
            return value  # type: ignore[return-value]
        if len(memo) >= self.DATE_MEMO_SIZE:
            memo.clear()
        value = memo[text] = parse_legacy_datetime(text)
        return value

    def __call__(self, row_number: int, values: Sequence[str]) -> NormalRow | list[str]:
        width = len(values)
        reasons: list[str] = []
        index = self._id
        if index is None:
            legacy_id = f"row-{row_number}"
        else:
            legacy_id = values[index].strip() if index < width else ""
            if not legacy_id:
                reasons.append("missing_legacy_id")
            elif len(legacy_id) > 64 or NUL in legacy_id:
                reasons.append("invalid_legacy_id")
        index = self._phone
        raw = values[index].strip() if index is not None and index < width else ""
        phone = None
        if not raw:
            reasons.append("missing_phone")
        else:
            match = MAINLAND_MOBILE.fullmatch(raw)
            phone = "+86" + match.group(1) if match else normalise_phone(raw)
            if phone is None:
                reasons.append("invalid_phone")
        index = self._name
        name = values[index].strip() if index is not None and index < width else ""
        if name:
            name = _NAME_SPACE.sub(" ", name.replace(NUL, "") if NUL in name else name)[:80]
        index = self._tier
        tier = values[index].strip()[:32] if index is not None and index < width else ""
        if NUL in tier:
            tier = tier.replace(NUL, "")
        index = self._points
        raw = values[index].strip() if index is not None and index < width else ""
        points = (int(raw) if raw.isdecimal() and len(raw) <= 18 else parse_points(raw)) if raw else 0
        if points is None:
            reasons.append("invalid_points")
        index = self._spend
        raw = values[index].strip() if index is not None and index < width else ""
        spend = parse_fen(raw) if raw else 0
        if spend is None:
            reasons.append("invalid_spend")
        index = self._joined
        raw = values[index].strip() if index is not None and index < width else ""
        joined = self._date(raw) if raw else None
        if raw and joined is None:
            reasons.append("invalid_joined_at")
        index = self._active
        raw = values[index].strip() if index is not None and index < width else ""
        active = self._date(raw) if raw else None
        if raw and active is None:
            reasons.append("invalid_last_active_at")
        if reasons:
            return reasons
        custom = "{}"
        if self._custom:
            parts = [
                key + encode_json_string(values[i].strip())
                for i, key in self._custom
                if i < width and values[i].strip()
            ]
            if parts:
                custom = "{" + ", ".join(parts) + "}"
                if _JSON_NUL in custom:
                    custom = custom.replace(_JSON_NUL, "")
        return (row_number, legacy_id, phone, name or None, tier or None, points, spend, joined, active, custom)  # type: ignore[return-value]


def to_utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None
