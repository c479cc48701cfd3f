"""Generated legacy CRM exports with planted faults, and a minimal XLSX writer (no spreadsheet library needed)."""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

HEADER = ("会员编号", "手机号", "姓名", "等级", "积分", "消费金额", "注册时间", "最后消费时间", "喜好")
PERIOD = 1000


@dataclass
class Expected:
    rows: int = 0
    invalid_by_reason: dict[str, int] = field(default_factory=dict)
    duplicate_groups: int = 0
    duplicate_rows: int = 0
    bad_rows: list[int] = field(default_factory=list)

    @property
    def invalid(self) -> int:
        return len(self.bad_rows)

    @property
    def valid(self) -> int:
        return self.rows - self.invalid


def phone_of(i: int) -> str:
    return f"139{i:08d}"


def legacy_rows(n: int) -> tuple[list[list[str]], Expected]:
    """n data rows; per 1000: 1 bad phone, 1 missing phone, 1 bad date, 1 bad points, 1 duplicate legacy id,
    1 phone repeated from the row before (a duplicate group of 2), varied phone spellings and a multi-line name."""
    rows: list[list[str]] = []
    expected = Expected(rows=n)
    reasons = expected.invalid_by_reason
    for i in range(n):
        slot = i % PERIOD
        spelled = (phone_of(i), f"+86 {phone_of(i)}", f"0086-{phone_of(i)[:3]}-{phone_of(i)[3:7]}-{phone_of(i)[7:]}")
        phone = spelled[i % 3]
        legacy_id = f"L{i:07d}"
        name = f" 会员{i} "
        points, spend, joined = str(i % 3000), f"{i % 5000:,}.{i % 100:02d}", f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}"
        reason = None
        if slot == 7:
            phone, reason = "12345", "invalid_phone"
        elif slot == 8:
            phone, reason = "", "missing_phone"
        elif slot == 9:
            joined, reason = "2024-02-30", "invalid_joined_at"
        elif slot == 10:
            points, reason = "abc", "invalid_points"
        elif slot == 500:
            phone = phone_of(i - 1)
            expected.duplicate_groups += 1
            expected.duplicate_rows += 2
        elif slot == 600:
            legacy_id, reason = f"L{i - 1:07d}", "duplicate_legacy_id"
        elif slot == 700:
            name = "Smith,\nJohn"
        if reason:
            reasons[reason] = reasons.get(reason, 0) + 1
            expected.bad_rows.append(i + 2)
        rows.append([legacy_id, phone, name, "金卡" if i % 2 else "银卡", points, spend, joined, "2026-11-01", "茶"])
    return rows, expected


def write_csv(path: Path, rows: list[list[str]], *, encoding: str = "utf-8", delimiter: str = ",") -> Path:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def _column(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


def write_xlsx(path: Path, rows: list[list[str]], *, header: tuple[str, ...] = HEADER) -> Path:
    """A one-sheet workbook with inline strings (what calamine and every spreadsheet tool read)."""
    sheet = io.StringIO()
    sheet.write('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>')
    sheet.write('<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
    for r, values in enumerate([list(header), *rows], start=1):
        sheet.write(f'<row r="{r}">')
        for c, value in enumerate(values):
            if value != "":
                sheet.write(
                    f'<c r="{_column(c)}{r}" t="inlineStr"><is><t xml:space="preserve">{escape(value)}</t></is></c>'
                )
        sheet.write("</row>")
    sheet.write("</sheetData></worksheet>")
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            "</Types>"
        ),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{main}" xmlns:r="{rel}">'
            '<sheets><sheet name="members" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
        ),
        "xl/worksheets/sheet1.xml": sheet.getvalue(),
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in parts.items():
            archive.writestr(name, content)
    return path
