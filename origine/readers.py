"""Readers for what vendors really send: delimited text of any common dialect and
encoding, XLSX, Parquet, JSON Lines, each optionally gzipped.

A reader yields ``Record`` objects: the 1-based data row number (the header is
not counted), the values keyed by the column names as delivered, or a problem
code when the row cannot be split into columns. Whole-file problems (undecodable,
truncated compression, no header) raise :class:`BadInput` naming the file, and
the row where known.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import re
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import numpy as np
import pyarrow as pa

from origine import limits
from origine.errors import BadInput

MALFORMED_ROW = "MALFORMED_ROW"
# The encoding of a UTF-8 file holding some lines that are not UTF-8 (a cp1252 row
# pasted into a UTF-8 export): each line is decoded on its own, see :func:`_mixed_lines`.
MIXED_UTF8_CP1252 = "utf-8/cp1252"
# Bytes cp1252 leaves undefined: a file holding them is read as latin-1.
_CP1252_UNDEFINED_BYTES = b"\x81\x8d\x8f\x90\x9d"
_CP1252_UNDEFINED = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")
_LINE_END = re.compile(rb"[\r\n]")
DELIMITERS = (";", ",", "\t", "|")
_CHUNK = 1 << 20
_SPOOL_IN_MEMORY = 32 << 20
# csv's default field limit (128 KiB) is too small for some free-text columns.
csv.field_size_limit(1 << 26)

TEXT_SUFFIXES = {".csv", ".tsv", ".txt", ".tab"}
JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}


@dataclass(frozen=True, slots=True)
class Record:
    """One data row: its number, its values by delivered column name, or a problem."""

    row: int
    values: dict[str, Any] | None
    problem: str | None = None


@dataclass
class FileShape:
    """What was detected about a file: format, compression, encoding, delimiter, columns."""

    format: str
    compression: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    columns: list[str] = field(default_factory=list)
    # A MIXED_UTF8_CP1252 file: how many rows were not UTF-8 (read as cp1252), the first ones.
    rows_not_utf8: int = 0
    first_rows_not_utf8: list[int] = field(default_factory=list)
    # XLSX: per worksheet, its title, state (visible, hidden, veryHidden), rows read and
    # the row numbers they were given (``first_row``..``last_row``).
    sheets: list[dict[str, Any]] | None = None

    def not_utf8(self, row: int) -> None:
        """Record that data row ``row`` was not UTF-8 and was decoded as cp1252."""
        self.rows_not_utf8 += 1
        if len(self.first_rows_not_utf8) < 20:
            self.first_rows_not_utf8.append(row)

    def to_dict(self) -> dict[str, Any]:
        """JSON form recorded with the delivery."""
        doc: dict[str, Any] = {
            "format": self.format,
            "compression": self.compression,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "columns": list(self.columns),
        }
        if self.encoding == MIXED_UTF8_CP1252:
            doc["rows_not_utf8"] = {"rows": self.rows_not_utf8, "first": list(self.first_rows_not_utf8)}
        if self.sheets is not None:
            doc["sheets"] = [dict(s) for s in self.sheets]
        return doc


def detect_format(name: str) -> tuple[str, str | None]:
    """``(format, compression)`` from the file name: csv, xlsx, parquet or jsonl."""
    lower = name.lower()
    compression = None
    if lower.endswith(".gz"):
        compression, lower = "gzip", lower[:-3]
    suffix = Path(lower).suffix
    if suffix in TEXT_SUFFIXES:
        return "csv", compression
    if suffix in (".xlsx", ".xlsm"):
        return "xlsx", compression
    if suffix in (".parquet", ".pq"):
        return "parquet", compression
    if suffix in JSONL_SUFFIXES:
        return "jsonl", compression
    raise BadInput(
        "unsupported file type (csv, tsv, txt, xlsx, parquet, jsonl, optionally .gz)", file=name
    )


def _open(path: Path, name: str) -> tuple[FileShape, Callable[[], BinaryIO]]:
    fmt, compression = detect_format(name)
    if compression is None and _is_gzip(path):
        compression = "gzip"
    shape = FileShape(format=fmt, compression=compression)
    opener: Callable[[], BinaryIO] = (
        (lambda: _gzip_open(path, name)) if compression else (lambda: path.open("rb"))
    )
    return shape, opener


def _seekable(raw: BinaryIO, name: str, magic: bytes, what: str) -> BinaryIO:
    """``raw`` itself when seekable, else its bytes spooled to an anonymous temporary file
    (a gzipped workbook or Parquet file: memory stays bounded, the bytes read are
    bounded by the gzip stream's expansion limit, the file vanishes when closed).
    Gzip data that does not start with the format's ``magic`` is refused at once."""
    if raw.seekable():
        return raw
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)
    chunk = raw.read(_CHUNK)
    if not chunk.startswith(magic):
        raise BadInput(f"its gzip data is not {what}", file=name)
    while chunk:
        spool.write(chunk)
        chunk = raw.read(_CHUNK)
    spool.seek(0)
    return spool  # type: ignore[return-value]


def open_records(path: Path, name: str) -> tuple[FileShape, Iterator[Record]]:
    """Open ``path`` (shown to users as ``name``) and stream its records.

    The shape's ``columns`` is complete once the iterator is exhausted (JSON Lines
    discovers its keys as it goes).
    """
    shape, opener = _open(path, name)
    fmt = shape.format
    if fmt == "csv":
        return shape, _delimited(opener, name, shape)
    if fmt == "jsonl":
        return shape, _jsonl(opener, name, shape)
    if fmt == "xlsx":
        return shape, _xlsx(opener, name, shape)
    return shape, _parquet(opener, name, shape)


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _gzip_open(path: Path, name: str) -> BinaryIO:
    limit = limits.expansion_limit(path.stat().st_size)
    return _GuardedGzip(gzip.open(path, "rb"), name, limit)  # type: ignore[return-value]


class _GuardedGzip(io.RawIOBase):
    """A gzip stream whose truncation or corruption becomes a BadInput naming the file,
    as does expanding past ``limit`` bytes (a decompression bomb: refused as it is
    read, before it fills memory or disk)."""

    def __init__(self, inner: BinaryIO, name: str, limit: int) -> None:
        self._inner, self._name, self._limit, self._expanded = inner, name, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._inner.read(len(buffer))
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
            raise BadInput(f"truncated or corrupt gzip: {exc}", file=self._name) from None
        self._expanded += len(data)
        if self._expanded > self._limit:
            raise BadInput(limits.too_expanded("gzip data", self._limit), file=self._name)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        super().close()


# ---------------------------------------------------------------- delimited text


def detect_encoding(opener: Callable[[], BinaryIO], name: str) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, else cp1252, else latin-1; a file
    that is UTF-8 but for some lines is :data:`MIXED_UTF8_CP1252` (read line by line:
    a cp1252 row pasted into a UTF-8 export must not turn the whole file to mojibake).

    Decided over the whole file, not a sample: a cp1252 accent on row 900,000 of
    an otherwise ASCII file must not turn into a decoding error mid-run. A line longer
    than :func:`origine.limits.max_line_bytes` is refused here, before any reader
    would hold it whole in memory.
    """
    return _inspect_text(opener, name)[0]


def _inspect_text(opener: Callable[[], BinaryIO], name: str) -> tuple[str, bool, bool]:
    """The encoding (see :func:`detect_encoding`); whether the bytes are plain (no
    NUL or lone carriage return: every line ends a record unless a quote spans it);
    and whether they hold a double quote at all. One pass over the file."""
    with opener() as fh:
        head = fh.read(4)
    bom8 = head.startswith(codecs.BOM_UTF8)
    utf16 = head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    decoder = codecs.getincrementaldecoder("utf-16" if utf16 else "utf-8")()
    decodes, multibyte, cp1252 = True, False, True
    plain, quoted, last = True, False, b""
    max_line = limits.max_line_bytes()
    longer = re.compile(rb"[^\r\n]{%d}" % (max_line + 1)) if max_line < _CHUNK else None
    run = 0  # bytes since the last line end
    with opener() as fh:
        while chunk := fh.read(_CHUNK):
            if decodes:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    decodes = False
                else:
                    # valid UTF-8 and not ASCII: it holds UTF-8 characters
                    multibyte = multibyte or not chunk.isascii()
            if not decodes and not utf16:
                # Past the first invalid byte: does valid UTF-8 remain (a mixed file)?
                # Does cp1252 leave a byte undefined? (Earlier chunks were UTF-8.)
                multibyte = multibyte or not chunk.decode("utf-8", "ignore").isascii()
                cp1252 = cp1252 and len(chunk.translate(None, _CP1252_UNDEFINED_BYTES)) == len(chunk)
            quoted = quoted or b'"' in chunk
            if plain:
                # Every carriage return but the chunk's last byte (the next chunk's
                # first byte settles it) starts a CRLF, the previous chunk's last
                # byte included; counted without joining the two (a copy per chunk),
                # and only where the chunk holds a carriage return at all.
                crlf_across = last == b"\r" and chunk[:1] == b"\n"
                if b"\r" in chunk:
                    lone = (last == b"\r") + chunk.count(b"\r") - (chunk[-1:] == b"\r")
                    plain = lone == chunk.count(b"\r\n") + crlf_across
                else:
                    plain = last != b"\r" or crlf_across
                plain = plain and b"\x00" not in chunk
            last = chunk[-1:]
            first_end = _LINE_END.search(chunk)
            if first_end is None:
                run += len(chunk)
            else:
                run += first_end.start()
            if run > max_line or (longer is not None and longer.search(chunk)):
                raise BadInput(
                    f"a line longer than {max_line:,} bytes (raise ${limits.MAX_LINE_ENV} if it is real)",
                    file=name,
                )
            if first_end is not None:
                run = len(chunk) - 1 - max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        if decodes:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                decodes = False
    plain = plain and not last.endswith(b"\r")
    if utf16:
        if not decodes:
            raise BadInput("starts with a UTF-16 BOM but is not valid UTF-16", file=name)
        return "utf-16", False, True
    if decodes:
        return ("utf-8-sig" if bom8 else "utf-8"), plain, quoted
    if multibyte or bom8:
        return MIXED_UTF8_CP1252, False, quoted
    return ("cp1252" if cp1252 else "latin-1"), plain, quoted


class _Fallbacks:
    """How many lines of a :data:`MIXED_UTF8_CP1252` file were not UTF-8 so far."""

    lines = 0


def _text_lines(raw: BinaryIO, encoding: str, fallbacks: _Fallbacks) -> Iterator[str]:
    """The file's lines as text, ends kept (as ``open(newline="")`` gives them).

    A :data:`MIXED_UTF8_CP1252` file is decoded line by line: UTF-8, else cp1252
    (latin-1 where cp1252 leaves a byte undefined), counting those in ``fallbacks``.
    """
    if encoding != MIXED_UTF8_CP1252:
        yield from io.TextIOWrapper(raw, encoding=encoding, newline="")  # type: ignore[arg-type]
        return
    lines: Any = raw if isinstance(raw, io.BufferedIOBase) else io.BufferedReader(raw)  # type: ignore[arg-type]
    first = True
    for line in lines:  # split on \n only: lone \r ends a line too (as in universal newlines)
        for part in re.split(rb"(?<=\r)(?!\n)", line) if b"\r" in line else (line,):
            if not part:
                continue
            try:
                text = part.decode("utf-8")
            except UnicodeDecodeError:
                fallbacks.lines += 1
                text = part.decode("latin-1" if _CP1252_UNDEFINED.search(part) else "cp1252")
            if first:
                text, first = text.removeprefix("\ufeff"), False
            yield text


def sniff_delimiter(header_line: str) -> str:
    """The candidate delimiter that splits the header the most (quotes respected)."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for ch in header_line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def header_names(cells: list[str]) -> list[str]:
    """Clean header cells: trimmed, BOM-free, empty ones named ``column_N``, unique."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for i, cell in enumerate(cells, 1):
        name = cell.replace("\ufeff", "").strip() or f"column_{i}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 1
        names.append(name)
    return names


def _delimited(opener: Callable[[], BinaryIO], name: str, shape: FileShape) -> Iterator[Record]:
    encoding = detect_encoding(opener, name)
    shape.encoding = encoding
    fallbacks = _Fallbacks()
    with opener() as raw:
        text = _text_lines(raw, encoding, fallbacks)
        first = next(text, "")
        while first and not first.strip():
            first = next(text, "")
        if not first:
            raise BadInput("file is empty: no header row", file=name, column="phone")
        delimiter = "\t" if name.lower().removesuffix(".gz").endswith((".tsv", ".tab")) else None
        shape.delimiter = delimiter or sniff_delimiter(first)
        reader = csv.reader(
            _chain_first(first, text), delimiter=shape.delimiter, quotechar='"', strict=True
        )
        try:
            header = next(reader)
        except csv.Error as exc:
            raise BadInput(f"unreadable header: {exc}", file=name, row=None) from None
        columns = header_names(header)
        shape.columns = columns
        width = len(columns)
        row = 0
        while True:
            before = fallbacks.lines
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise BadInput(
                    f"malformed CSV near line {reader.line_num}: {exc}", file=name, row=row + 1
                ) from None
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # blank line: not a row
            row += 1
            if fallbacks.lines != before:
                shape.not_utf8(row)
            if len(cells) > width and not any(c.strip() for c in cells[width:]):
                cells = cells[:width]  # trailing empty fields from spreadsheet exports
            if len(cells) != width:
                yield Record(row, None, MALFORMED_ROW)
                continue
            yield Record(row, dict(zip(columns, cells)))


def _chain_first(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


# ---------------------------------------------------------------- JSON Lines


def _jsonl(opener: Callable[[], BinaryIO], name: str, shape: FileShape) -> Iterator[Record]:
    encoding = detect_encoding(opener, name)
    shape.encoding = encoding
    seen: dict[str, None] = {}
    fallbacks = _Fallbacks()
    with opener() as raw:
        row, before = 0, 0
        for line in _text_lines(raw, encoding, fallbacks):
            if not line.strip():
                before = fallbacks.lines
                continue
            row += 1
            if fallbacks.lines != before:
                shape.not_utf8(row)
                before = fallbacks.lines
            try:
                obj = json.loads(line)
            except ValueError:
                yield Record(row, None, MALFORMED_ROW)
                continue
            if not isinstance(obj, dict) or (("\\ud" in line or "\\uD" in line) and not _unicode_text(obj)):
                # a lone surrogate escape (\ud800) decodes to no character: the row is
                # not text any store can hold, so it is malformed (never a crash later)
                yield Record(row, None, MALFORMED_ROW)
                continue
            values = {str(k).strip(): json_cell(v) for k, v in obj.items()}
            for key in values:
                if key not in seen:
                    seen[key] = None
                    shape.columns = list(seen)
            yield Record(row, values)


def _unicode_text(obj: Any) -> bool:
    """Whether every string in a decoded JSON value (keys included) is valid Unicode."""
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_cell(value: Any) -> Any:
    """A JSON Lines value as a cell, deliberately by JSON type.

    Strings, numbers, booleans and null are cells as they are. An array of those is
    a multi-valued cell, kept as a list: ``consent_purposes: ["a", "b"]`` is two
    purposes (see :func:`origine.ingest.columns.purpose_text`), elsewhere its JSON text is
    stored. An object, or an array holding arrays or objects, is not one value: it
    becomes its compact JSON text (stored as text, never taken apart).
    """
    if isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value


# ---------------------------------------------------------------- XLSX


def _xlsx(opener: Callable[[], BinaryIO], name: str, shape: FileShape) -> Iterator[Record]:
    """Every worksheet that holds rows, hidden ones included, one after the other.

    Data rows are numbered on across sheets (row numbers stay unique in the file);
    ``shape.sheets`` tells, per sheet, its rows and the range of row numbers they got.
    Each sheet's rows are keyed by its own header; the file's columns are the union.
    """
    import openpyxl  # imported here: only XLSX deliveries pay for it

    with opener() as raw:
        # openpyxl needs a seekable file; a gzipped workbook is spooled, not read into memory.
        data = _seekable(raw, name, b"PK\x03\x04", "an XLSX workbook")
        try:
            _check_workbook(data, name)
            workbook = openpyxl.load_workbook(data, read_only=True, data_only=True)
        except BadInput:
            raise
        except MemoryError:
            raise
        except Exception as exc:  # openpyxl raises many types for a corrupt workbook
            raise BadInput(f"unreadable XLSX workbook: {_xml_problem(exc)}", file=name) from None
        row = 0
        try:
            sheets = [_sheet_header(sheet) for sheet in workbook.worksheets]
            with_rows = [s for s in sheets if s.has_rows] or [s for s in sheets if s.header is not None][:1]
            if not with_rows:
                raise BadInput("workbook is empty: no sheet has a header row", file=name, column="phone")
            seen: dict[str, None] = {}
            for s in with_rows:
                seen.update(dict.fromkeys(s.columns))
            shape.columns = list(seen)
            shape.sheets = [s.report for s in sheets]
            for s in with_rows:
                s.report["first_row"] = row + 1
                rows = s.sheet.iter_rows(values_only=True)
                for _ in range(s.header_at):
                    next(rows)
                width = len(s.columns)
                for cells in rows:
                    if all(c in (None, "") for c in cells):
                        continue
                    row += 1
                    s.report["rows"] += 1
                    cells = tuple(cells[:width]) + (None,) * (width - len(cells))
                    yield Record(row, dict(zip(s.columns, cells)))
                s.report["last_row"] = row
        except BadInput:
            raise
        except MemoryError:
            raise
        except Exception as exc:
            # Sheets are parsed as they are read: a corrupt or hostile sheet (an XML entity
            # bomb, refused by defusedxml) fails here, not when the workbook opens.
            raise BadInput(f"unreadable XLSX sheet: {_xml_problem(exc)}", file=name, row=row + 1) from None
        finally:
            workbook.close()


def _xml_problem(exc: Exception) -> str:
    """What went wrong reading a workbook, in words that never quote its content."""
    cause: BaseException | None = exc
    while cause is not None:  # openpyxl wraps the parser's error in a ValueError of its own
        if type(cause).__module__.startswith("defusedxml"):
            # openpyxl parses with defusedxml when it is installed (a dependency of origine).
            return f"its XML declares entities or a DTD, refused ({type(cause).__name__}: an XML entity bomb?)"
        cause = cause.__cause__ or cause.__context__
    return type(exc).__name__


@dataclass
class _Sheet:
    sheet: Any
    header: tuple[Any, ...] | None
    header_at: int  # rows to skip to get past the header
    has_rows: bool
    columns: list[str]
    report: dict[str, Any]


def _sheet_header(sheet: Any) -> _Sheet:
    """A worksheet's header (its first non-empty row) and whether any row follows it."""
    # Rows as stored, not padded to the sheet's declared dimension (a hostile workbook
    # can declare 16,384 columns by a million rows).
    sheet.reset_dimensions()
    header: tuple[Any, ...] | None = None
    header_at, has_rows = 0, False
    for cells in sheet.iter_rows(values_only=True):
        if header is None:
            header_at += 1
        if any(c not in (None, "") for c in cells):
            if header is not None:
                has_rows = True
                break
            header = cells
    columns = header_names(["" if c is None else str(c) for c in header]) if header is not None else []
    report = {"sheet": str(sheet.title), "state": str(getattr(sheet, "sheet_state", "visible")), "rows": 0}
    return _Sheet(sheet, header, header_at, has_rows, columns, report)


def _check_workbook(data: BinaryIO, name: str) -> None:
    """Refuse a workbook whose parts expand past :func:`origine.limits.expansion_limit`
    (each part against its compressed size, all of them against the workbook's size):
    openpyxl holds the shared strings whole in memory. ``zipfile`` stops each part at
    its declared size, so a part that lies about it fails its CRC instead."""
    import zipfile

    data.seek(0, io.SEEK_END)
    size = data.tell()
    data.seek(0)
    try:
        with zipfile.ZipFile(data) as zf:
            members = zf.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return  # not a zip: openpyxl says so in its own words
    finally:
        data.seek(0)
    total = 0
    for info in members:
        total += info.file_size
        limit = limits.expansion_limit(info.compress_size)
        if info.file_size > limit:
            raise BadInput(limits.too_expanded("a part of the workbook", limit), file=name)
    limit = limits.expansion_limit(size)
    if total > limit:
        raise BadInput(limits.too_expanded("the workbook", limit), file=name)


# ---------------------------------------------------------------- Parquet


def _parquet(opener: Callable[[], BinaryIO], name: str, shape: FileShape) -> Iterator[Record]:
    # The columnar reader's batches, value by value: one reading of Parquet, two shapes.
    for batch in _arrow_parquet(opener, name, shape, 65536):
        table = pa.table(batch.columns)
        for row, values in zip(batch.rows.tolist(), table.to_pylist()):
            yield Record(row, values)


# ---------------------------------------------------------------- whole columns


@dataclass
class ColumnBatch:
    """Consecutive data rows as columns.

    ``rows`` holds the row numbers of the rows that split into columns, ``columns``
    their values by delivered column name (Arrow arrays, or lists where rows were
    read one by one), ``problems`` the ``(row, code)`` of rows that did not split.
    """

    rows: np.ndarray
    columns: dict[str, pa.Array | list[Any]]
    problems: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows) + len(self.problems)


class NotColumnar(Exception):
    """The columnar reader met a row only the row-by-row reader reads exactly
    (a row of the wrong width, a whitespace-only line): read the file again with
    ``columnar=False``. Raised before any batch of a file that is plain throughout."""


def open_batches(
    path: Path, name: str, *, size: int = 100_000, columnar: bool = True
) -> tuple[FileShape, Iterator[ColumnBatch]]:
    """Open ``path`` (shown to users as ``name``) and stream it as column batches.

    Plain delimited text (see :func:`_inspect_text`) and Parquet are read by Arrow,
    without a Python object per value; everything else, and everything when
    ``columnar`` is false, comes from :func:`open_records`. Both give the same rows,
    row numbers and values (tested); the columnar CSV reader may raise
    :class:`NotColumnar` while iterating.
    """
    if columnar:
        shape, opener = _open(path, name)
        if shape.format == "csv":
            encoding, plain, quoted = _inspect_text(opener, name)
            if plain and encoding != "utf-16":
                fast = _arrow_csv(path, opener, name, shape, encoding, size, quoted)
                if fast is not None:
                    return shape, fast
        elif shape.format == "parquet":
            return shape, _arrow_parquet(opener, name, shape, size)
    shape, records = open_records(path, name)
    return shape, _record_batches(records, shape, size)


def _record_batches(records: Iterator[Record], shape: FileShape, size: int) -> Iterator[ColumnBatch]:
    pending: list[Record] = []

    def flush() -> ColumnBatch:
        good = [r for r in pending if r.values is not None]
        problems = [(r.row, r.problem or MALFORMED_ROW) for r in pending if r.values is None]
        columns = {c: [r.values.get(c) for r in good] for c in shape.columns}  # type: ignore[union-attr]
        return ColumnBatch(np.array([r.row for r in good], dtype=np.int64), columns, problems)

    for record in records:
        pending.append(record)
        if len(pending) >= size:
            yield flush()
            pending = []
    if pending:
        yield flush()


def _arrow_csv(
    path: Path,
    opener: Callable[[], BinaryIO],
    name: str,
    shape: FileShape,
    encoding: str,
    size: int,
    quoted: bool,
) -> Iterator[ColumnBatch] | None:
    """Arrow's CSV reader over a plain file, or None when the file needs ``csv``.

    Quotes are admitted only as whole-field quoting within a line (``"06 12";x``),
    checked over every line first: there both readers split alike, whereas a quote
    inside a field, a doubled quote or a quoted line break is read by ``csv`` alone.
    """
    import pyarrow.csv as pacsv

    with opener() as raw:
        first = io.TextIOWrapper(raw, encoding=encoding, newline="").readline()  # type: ignore[arg-type]
    if not first.strip() or not first.endswith(("\n", "\r\n")):
        return None  # blank lines before the header, or a header-only file without newline
    delimiter = "\t" if name.lower().removesuffix(".gz").endswith((".tsv", ".tab")) else None
    delimiter = delimiter or sniff_delimiter(first)
    if quoted and not _simply_quoted(path, opener, shape, encoding, delimiter):
        return None
    header = first.rstrip("\r\n").split(delimiter)
    if any('"' in cell for cell in header):
        return None  # keep header parsing to csv (it is one line: nothing to gain)
    shape.encoding = encoding
    shape.delimiter = delimiter
    columns = header_names(header)
    shape.columns = columns

    def invalid(row: Any) -> str:
        return "error"  # Arrow's message quotes the row: never let it out (see below)

    def batches() -> Iterator[ColumnBatch]:
        source: Any = str(path) if shape.compression is None else opener()
        refused = False
        try:
            reader = pacsv.open_csv(
                source,
                read_options=pacsv.ReadOptions(
                    encoding="utf8" if encoding.startswith("utf-8") else encoding,
                    skip_rows=1,
                    column_names=columns,
                    block_size=1 << 24,
                ),
                parse_options=pacsv.ParseOptions(
                    delimiter=shape.delimiter,
                    quote_char='"' if quoted else False,
                    double_quote=False,
                    escape_char=False,
                    newlines_in_values=False,
                    ignore_empty_lines=True,
                    invalid_row_handler=invalid,
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() for c in columns},
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
            row = 0
            for batch in reader:
                for lo in range(0, batch.num_rows, size):
                    part = batch.slice(lo, size)
                    cols = {c: part.column(i) for i, c in enumerate(columns)}
                    if len(columns) == 1:
                        _no_blank_lines(cols[columns[0]], name)
                    yield ColumnBatch(np.arange(row + 1, row + 1 + part.num_rows, dtype=np.int64), cols)
                    row += part.num_rows
        except pa.ArrowInvalid:
            refused = True
        finally:
            if not isinstance(source, str):
                source.close()
        if refused:
            # Raised out here, without the original: Arrow's parse errors quote the
            # raw row, numbers included, and must not ride along as __context__.
            raise NotColumnar(f"{name}: a row that is not plain delimited text")

    return batches()


def _simply_quoted(
    path: Path, opener: Callable[[], BinaryIO], shape: FileShape, encoding: str, delimiter: str
) -> bool:
    """True when every line is fields that are either free of quotes or wholly
    quoted without a quote inside (RE2 over the lines, read by Arrow as one column)."""
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    d = "\\t" if delimiter == "\t" else "\\" + delimiter
    field_re = f'(?:[^"{d}]*|"[^"]*")'
    line_re = f"^{field_re}(?:{d}{field_re})*$"
    source: Any = str(path) if shape.compression is None else opener()
    try:
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(
                encoding="utf8" if encoding.startswith("utf-8") else encoding,
                column_names=["line"],
                block_size=1 << 24,
            ),
            # Each line one value: a line holding the unit separator gets two and is
            # refused, which only sends the file to the row reader.
            parse_options=pacsv.ParseOptions(delimiter="\x1f", quote_char=False, escape_char=False),
            convert_options=pacsv.ConvertOptions(column_types={"line": pa.string()}, strings_can_be_null=False),
        )
        for batch in reader:
            if not pc.all(pc.match_substring_regex(batch.column(0), line_re)).as_py():
                return False
        return True
    except pa.ArrowInvalid:
        return False
    finally:
        if not isinstance(source, str):
            source.close()


def _no_blank_lines(values: pa.Array, name: str) -> None:
    """``csv`` skips a whitespace-only line; Arrow reads it as a one-column row."""
    import pyarrow.compute as pc

    from origine.dates import PY_WHITESPACE

    if pc.any(pc.equal(pc.utf8_trim(values, characters=PY_WHITESPACE), "")).as_py():
        raise NotColumnar(f"{name}: a whitespace-only line")


def _arrow_parquet(opener: Callable[[], BinaryIO], name: str, shape: FileShape, size: int) -> Iterator[ColumnBatch]:
    import pyarrow.parquet as pq

    with opener() as raw:
        data = _seekable(raw, name, b"PAR1", "a Parquet file")
        try:
            # not pre_buffer (the default): it reads whole columns ahead, memory ∝ file
            pfile = pq.ParquetFile(data, pre_buffer=False)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise BadInput(f"unreadable Parquet file: {type(exc).__name__}", file=name) from None
        columns = [str(c) for c in pfile.schema_arrow.names]
        shape.columns = columns
        row = 0
        try:
            for batch in pfile.iter_batches(batch_size=size):
                cols = {c: batch.column(i) for i, c in enumerate(columns)}
                yield ColumnBatch(np.arange(row + 1, row + 1 + batch.num_rows, dtype=np.int64), cols)
                row += batch.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise BadInput(f"corrupt Parquet data: {type(exc).__name__}", file=name, row=row + 1) from None
