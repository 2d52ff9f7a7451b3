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
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from origine.errors import BadInput

MALFORMED_ROW = "MALFORMED_ROW"
DELIMITERS = (";", ",", "\t", "|")
_CHUNK = 1 << 20
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

    def to_dict(self) -> dict[str, Any]:
        """JSON form recorded with the delivery."""
        return {
            "format": self.format,
            "compression": self.compression,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "columns": list(self.columns),
        }


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


def open_records(path: Path, name: str) -> tuple[FileShape, Iterator[Record]]:
    """Open ``path`` (shown to users as ``name``) and stream its records.

    The shape's ``columns`` is complete once the iterator is exhausted (JSON Lines
    discovers its keys as it goes).
    """
    fmt, compression = detect_format(name)
    if compression is None and _is_gzip(path):
        compression = "gzip"
    shape = FileShape(format=fmt, compression=compression)
    opener: Callable[[], BinaryIO] = (
        (lambda: _gzip_open(path, name)) if compression else (lambda: path.open("rb"))
    )
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
    return _GuardedGzip(gzip.open(path, "rb"), name)  # type: ignore[return-value]


class _GuardedGzip(io.RawIOBase):
    """A gzip stream whose truncation or corruption becomes a BadInput naming the file."""

    def __init__(self, inner: BinaryIO, name: str) -> None:
        self._inner, self._name = inner, name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._inner.read(len(buffer))
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
            raise BadInput(f"truncated or corrupt gzip: {exc}", file=self._name) from None
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        super().close()


# ---------------------------------------------------------------- delimited text


def detect_encoding(opener: Callable[[], BinaryIO], name: str) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, else cp1252, else latin-1.

    Decided over the whole file, not a sample: a cp1252 accent on row 900,000 of
    an otherwise ASCII file must not turn into a decoding error mid-run.
    """
    with opener() as fh:
        head = fh.read(4)
        if head.startswith(codecs.BOM_UTF8):
            candidates = ["utf-8-sig"]
        elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        else:
            candidates = ["utf-8", "cp1252", "latin-1"]
    for encoding in candidates:
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with opener() as fh:
                while chunk := fh.read(_CHUNK):
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
            return encoding
        except UnicodeDecodeError:
            continue
    if candidates == ["utf-8-sig"]:
        raise BadInput("starts with a UTF-8 BOM but is not valid UTF-8", file=name)
    return "latin-1"  # pragma: no cover - latin-1 decodes every byte


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
    with opener() as raw:
        text = io.TextIOWrapper(raw, encoding=encoding, newline="")  # type: ignore[arg-type]
        first = text.readline()
        while first and not first.strip():
            first = text.readline()
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
            if len(cells) > width and not any(c.strip() for c in cells[width:]):
                cells = cells[:width]  # trailing empty fields from spreadsheet exports
            if len(cells) != width:
                yield Record(row, None, MALFORMED_ROW)
                continue
            yield Record(row, dict(zip(columns, cells)))


def _chain_first(first: str, rest: io.TextIOBase) -> Iterator[str]:
    yield first
    yield from rest


# ---------------------------------------------------------------- JSON Lines


def _jsonl(opener: Callable[[], BinaryIO], name: str, shape: FileShape) -> Iterator[Record]:
    encoding = detect_encoding(opener, name)
    shape.encoding = encoding
    seen: dict[str, None] = {}
    with opener() as raw:
        text = io.TextIOWrapper(raw, encoding=encoding, newline="")  # type: ignore[arg-type]
        row = 0
        for line in text:
            if not line.strip():
                continue
            row += 1
            try:
                obj = json.loads(line)
            except ValueError:
                yield Record(row, None, MALFORMED_ROW)
                continue
            if not isinstance(obj, dict):
                yield Record(row, None, MALFORMED_ROW)
                continue
            values = {str(k).strip(): v for k, v in obj.items()}
            for key in values:
                if key not in seen:
                    seen[key] = None
                    shape.columns = list(seen)
            yield Record(row, values)


# ---------------------------------------------------------------- XLSX


def _xlsx(opener: Callable[[], BinaryIO], name: str, shape: FileShape) -> Iterator[Record]:
    import openpyxl  # imported here: only XLSX deliveries pay for it

    with opener() as raw:
        # openpyxl needs a seekable file; a gzipped workbook is read into memory.
        data: BinaryIO = raw if raw.seekable() else io.BytesIO(raw.read())
        try:
            workbook = openpyxl.load_workbook(data, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many types for a corrupt workbook
            raise BadInput(f"unreadable XLSX workbook: {type(exc).__name__}", file=name) from None
        try:
            sheet = workbook.worksheets[0]
            rows = sheet.iter_rows(values_only=True)
            header: tuple[Any, ...] | None = None
            for cells in rows:
                if any(c not in (None, "") for c in cells):
                    header = cells
                    break
            if header is None:
                raise BadInput("workbook's first sheet is empty: no header row", file=name, column="phone")
            columns = header_names(["" if c is None else str(c) for c in header])
            shape.columns = columns
            width = len(columns)
            row = 0
            for cells in rows:
                if all(c in (None, "") for c in cells):
                    continue
                row += 1
                cells = tuple(cells[:width]) + (None,) * (width - len(cells))
                yield Record(row, dict(zip(columns, cells)))
        finally:
            workbook.close()


# ---------------------------------------------------------------- Parquet


def _parquet(opener: Callable[[], BinaryIO], name: str, shape: FileShape) -> Iterator[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with opener() as raw:
        data: BinaryIO = raw if raw.seekable() else io.BytesIO(raw.read())
        try:
            pfile = pq.ParquetFile(data)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise BadInput(f"unreadable Parquet file: {type(exc).__name__}", file=name) from None
        columns = [str(c) for c in pfile.schema_arrow.names]
        shape.columns = columns
        row = 0
        try:
            for batch in pfile.iter_batches(batch_size=65536):
                for values in batch.to_pylist():
                    row += 1
                    yield Record(row, {str(k): v for k, v in values.items()})
        except (pa.ArrowException, OSError) as exc:
            raise BadInput(f"corrupt Parquet data: {type(exc).__name__}", file=name, row=row + 1) from None
