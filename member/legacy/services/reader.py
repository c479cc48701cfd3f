"""Streaming readers of legacy files: CSV in any common encoding with a sniffed delimiter, and XLSX via calamine."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from member.legacy.errors import UnreadableFile

SAMPLE_BYTES = 64 * 1024
DEFAULT_CHUNK_ROWS = 20_000
_DELIMITERS = ",\t;|"
_XLSX_MAGIC = b"PK\x03\x04"


def content_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 of the file: the identity of an import batch."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Chunk:
    """A run of records: `rows` are (row number, cell texts); the checkpoint after them is (end_row, end_offset)."""

    start_row: int
    end_row: int
    end_offset: int
    progress: int
    rows: list[tuple[int, list[str]]]
    eof: bool


class LegacySource:
    """A legacy file opened for reading: its format, encoding, delimiter, header and size."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UnreadableFile(f"no such file: {self.path.name}")
        self.size = self.path.stat().st_size
        with open(self.path, "rb") as handle:
            sample = handle.read(SAMPLE_BYTES)
        self.format = "xlsx" if sample.startswith(_XLSX_MAGIC) else "csv"
        self.encoding = ""
        self.delimiter = ""
        self._data_offset = 0
        if self.format == "csv":
            self.encoding = detect_encoding(sample)
            self.delimiter = sniff_delimiter(sample, self.encoding)
            self.header, self._data_offset = self._read_csv_header()
        else:
            self._sheet_rows = 0
            self._loaded_sheet: Any = None
            self.header = self._read_xlsx_header()

    @property
    def progress_total(self) -> int:
        return self.size if self.format == "csv" else self._sheet_rows

    def chunks(
        self, *, start_row: int = 0, start_offset: int = 0, chunk_rows: int = DEFAULT_CHUNK_ROWS
    ) -> Iterator[Chunk]:
        """Chunks of records after the checkpoint (`start_row` records done, ending at byte `start_offset`)."""
        if self.format == "csv":
            yield from self._csv_chunks(start_row, start_offset, chunk_rows)
            return
        records = self._xlsx_records(start_row)
        done = start_row
        rows: list[tuple[int, list[str]]] = []
        offset = start_offset
        for offset, values in records:
            done += 1
            if any(values):
                # Row numbers as a spreadsheet shows them: the header is row 1.
                rows.append((done + 1, values))
            if len(rows) >= chunk_rows:
                yield Chunk(start_row, done, offset, self._progress(offset, done), rows, eof=False)
                start_row, rows = done, []
        yield Chunk(start_row, done, offset, self._progress(offset, done), rows, eof=True)

    def _progress(self, offset: int, done: int) -> int:
        return offset if self.format == "csv" else done + 1

    # --- CSV ---

    def _lines(self, handle: Any, counter: list[int]) -> Iterator[str]:
        decode = codecs.getdecoder(self.encoding)
        for line in handle:
            counter[0] += len(line)
            yield decode(line, "replace")[0]

    def _read_csv_header(self) -> tuple[list[str], int]:
        with open(self.path, "rb") as handle:
            if self.encoding == "utf-8-sig":
                handle.read(3)
            counter = [handle.tell()]
            for record in csv.reader(self._lines(handle, counter), delimiter=self.delimiter):
                if any(cell.strip() for cell in record):
                    return [cell.strip() for cell in record], counter[0]
        raise UnreadableFile("the file has no header row")

    def _csv_chunks(self, start_row: int, start_offset: int, chunk_rows: int) -> Iterator[Chunk]:
        # The text layer is C all the way (readline, csv); its tell() at a record's end is the exact byte
        # offset there (no decoder state is pending at a line end in UTF-8 or GB18030), asked once per chunk.
        offset = start_offset or self._data_offset
        encoding = "utf-8" if self.encoding == "utf-8-sig" else self.encoding
        with open(self.path, "rb") as handle:
            handle.seek(offset)
            text = io.TextIOWrapper(handle, encoding=encoding, errors="replace", newline="")
            done = start_row
            rows: list[tuple[int, list[str]]] = []
            append = rows.append
            for values in csv.reader(iter(text.readline, ""), delimiter=self.delimiter):
                done += 1
                if values and any(values):
                    # Row numbers as a spreadsheet shows them: the header is row 1.
                    append((done + 1, values))
                    if len(rows) >= chunk_rows:
                        offset = text.tell()
                        yield Chunk(start_row, done, offset, offset, rows, eof=False)
                        start_row, rows = done, []
                        append = rows.append
            offset = text.tell()
            text.detach()
        yield Chunk(start_row, done, offset, offset, rows, eof=True)

    # --- XLSX ---

    def _sheet(self) -> Any:
        from python_calamine import CalamineWorkbook

        try:
            workbook = CalamineWorkbook.from_path(str(self.path))
            return workbook.get_sheet_by_index(0)
        except Exception as exc:  # calamine raises its own error types for damaged files
            raise UnreadableFile(f"cannot read the workbook: {type(exc).__name__}") from None

    def _read_xlsx_header(self) -> list[str]:
        sheet = self._loaded_sheet = self._sheet()
        self._sheet_rows = max(sheet.total_height - 1, 0)
        for row in sheet.iter_rows():
            header = [cell_text(cell) for cell in row]
            if any(header):
                return header
        raise UnreadableFile("the sheet has no header row")

    def _xlsx_records(self, start_row: int) -> Iterator[tuple[int, list[str]]]:
        # calamine (python-calamine 0.9) parses the whole sheet into memory before the first row, and its
        # iter_rows() walks that parsed range (it cannot stream the XML: dimastbk/python-calamine#42). The
        # sheet the header was read from is reused once, so an import parses the file once, not twice; a
        # resume parses it again and skips the done rows without normalising them.
        sheet, self._loaded_sheet = self._loaded_sheet, None
        rows = (sheet or self._sheet()).iter_rows()
        for row in rows:
            if any(cell_text(cell) for cell in row):
                break
        for index, row in enumerate(rows):
            if index < start_row:
                continue
            yield 0, [cell_text(cell) for cell in row]


def cell_text(cell: Any) -> str:
    """A spreadsheet cell as the text a CSV export would hold."""
    if cell is None or cell == "":
        return ""
    if isinstance(cell, bool):
        return "1" if cell else "0"
    if isinstance(cell, float):
        return str(int(cell)) if cell.is_integer() else repr(cell)
    if isinstance(cell, datetime):
        return cell.isoformat(sep=" ")
    if isinstance(cell, date | time):
        return cell.isoformat()
    return str(cell).strip()


def detect_encoding(sample: bytes) -> str:
    """UTF-8 (with or without BOM) when the sample decodes as UTF-8, otherwise GB18030 (a superset of GBK/GB2312)."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise UnreadableFile("UTF-16 files are not supported; save the CSV as UTF-8 or GB18030")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        codecs.getincrementaldecoder("gb18030")().decode(sample, final=False)
        return "gb18030"
    except UnicodeDecodeError:
        raise UnreadableFile("the file is neither UTF-8 nor GB18030 text") from None


def sniff_delimiter(sample: bytes, encoding: str) -> str:
    text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(sample, final=False)
    lines = text.splitlines()[:20]
    if not lines:
        return ","
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=_DELIMITERS).delimiter
    except csv.Error:
        # Few columns or uneven rows defeat the sniffer; the most frequent candidate in the header wins.
        counts = {d: lines[0].count(d) for d in _DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","
