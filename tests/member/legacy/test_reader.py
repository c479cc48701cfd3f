"""The XLSX reader parses the sheet once per import: the header's parse is reused for the rows."""

from __future__ import annotations

from member.legacy.services.reader import LegacySource
from tests.member.legacy.files import legacy_rows, write_xlsx


def test_an_xlsx_import_parses_the_sheet_once_and_a_resume_once_more(tmp_path, monkeypatch):
    rows, _expected = legacy_rows(50)
    path = write_xlsx(tmp_path / "crm.xlsx", rows)
    parses = []
    original = LegacySource._sheet

    def counted(self):
        parses.append(1)
        return original(self)

    monkeypatch.setattr(LegacySource, "_sheet", counted)
    source = LegacySource(path)
    chunks = list(source.chunks(chunk_rows=20))
    assert (len(parses), [len(c.rows) for c in chunks]) == (1, [20, 20, 10])
    resumed = list(source.chunks(start_row=40, chunk_rows=20))
    assert len(parses) == 2
    assert [n for n, _ in resumed[0].rows] == list(range(42, 52))
    assert resumed[0].rows == chunks[2].rows
