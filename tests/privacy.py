"""Find raw phone numbers wherever origine writes: every written form, inside every file format.

The privacy invariant ("no raw number in the warehouse, Dagster's storage, logs,
errors, findings, exports") is only as good as the search for it. Given the test's
numbers, :func:`written_forms` lists the ways a person or a program writes each one
(E.164, ``00`` prefix, national with its trunk prefix, the significant digits alone,
groups separated by spaces, dots, dashes or no-break spaces), and :class:`Scanner`
looks for all of them and more — each digit string with any grouping
(:func:`number_patterns`: ``0661-234568`` as well as ``06 61 23 45 68``) — in bytes,
text, and files: plain files byte for byte, and also
what a byte search cannot see — DuckDB databases and Parquet files (compressed pages)
and SQLite databases (a value can straddle overflow pages) are read through their own
readers; gzip files and zip members are decompressed and scanned in turn.

A form made only of digits counts as a hit only when neither side touches a hex
character: a subject key, a digest or a signature is hex, and a hex string holds any
9-digit run by chance often enough to fail CI (git log 69c6882). A form with a
separator or a ``+`` needs only non-digits around it.
"""

from __future__ import annotations

import gzip
import io
import re
import sqlite3
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import phonenumbers

_SEPARATORS = (" ", ".", "-", "\u00a0", "/")
# A run of the characters forms are made of (the no-break space is \xc2\xa0 in UTF-8),
# long enough to hold the shortest form (8 significant digits).
_RUNS = re.compile(rb"[+0-9][-+0-9 ./()\xc2\xa0]{6,}[0-9]")
_CONTEXT = 40


def _pairs(digits: str) -> list[str]:
    """``0612345678`` → ``06 12 34 56 78`` groups (an odd length starts with one digit)."""
    head = len(digits) % 2
    return ([digits[:head]] if head else []) + [digits[i:i + 2] for i in range(head, len(digits), 2)]


def _groups(formatted: str) -> list[str]:
    return re.findall(r"\+?\d+", formatted)


def written_forms(e164: str) -> list[str]:
    """Every way ``e164`` (``+33612345678``) is commonly written, most specific first.

    E.164; without ``+``; with ``00``; national (trunk prefix and significant digits);
    the significant digits alone; and each of phonenumbers' national and international
    groupings, French-style pairs, and ``+33 (0)6…``, with every separator.
    """
    number = phonenumbers.parse(e164)
    cc = str(number.country_code)
    nsn = phonenumbers.national_significant_number(number)
    region = phonenumbers.region_code_for_number(number)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region or "", None)
    trunk = (metadata.national_prefix or "") if metadata else ""
    national = trunk + nsn
    forms: list[str] = ["+" + cc + nsn, "00" + cc + nsn, cc + nsn, national, nsn]
    groupings: list[list[str]] = [
        _groups(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)),
        _groups(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)),
        _pairs(national),
        _pairs(nsn),
        ["+" + cc, *_pairs(nsn)],
        ["+" + cc, *_pairs(nsn[1:])] if len(nsn) % 2 else ["+" + cc, nsn],
    ]
    for groups in list(groupings):
        if groups and groups[0].startswith("+"):
            groupings.append(["00" + groups[0][1:], *groups[1:]])
    for groups in groupings:
        if len(groups) < 2 or "".join(groups).lstrip("+") not in (cc + nsn, national, nsn, "00" + cc + nsn):
            continue
        for sep in _SEPARATORS:
            forms.append(sep.join(groups))
            if groups[0].startswith("+"):  # "+33 6 12 …" also written "+33 612 …" by some exports
                forms.append(groups[0] + sep + "".join(groups[1:]))
    if trunk:
        for sep in ("", " "):
            forms.append(f"+{cc}{sep}({trunk}){sep}{nsn}")
            forms.append(f"+{cc}{sep}({trunk}){nsn[0]}{sep}" + sep.join(_pairs(nsn[1:])))
    seen: dict[str, None] = {}
    for form in forms:
        seen.setdefault(form, None)
    return list(seen)


def _pattern(form: str) -> bytes:
    body = re.escape(form.encode("utf-8"))
    if form.isdigit():  # a bare digit run inside hex (a key, a digest) is not a number
        return rb"(?<![0-9A-Fa-f])" + body + rb"(?![0-9A-Fa-f])"
    return rb"(?<![0-9])" + body + rb"(?![0-9])"


@dataclass(frozen=True)
class Hit:
    """One raw number found: where (file, member, table/column, output), which form, around what."""

    where: str
    number: str
    form: str  # the text found
    context: str

    def __str__(self) -> str:
        return f"{self.where}: {self.number} written {self.form!r} in …{self.context}…"


# Between any two digits of a written number: nothing, or one separator.
_SEP = rb"(?:[ .\-/]|\xc2\xa0)?"
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _flexible(digits: str) -> bytes:
    return _SEP.join(re.escape(d.encode()) for d in digits)


def number_patterns(e164: str) -> list[tuple[str, bytes]]:
    """Regular expressions (bytes) matching ``e164`` written any way :func:`written_forms`
    lists and more: its digit strings (E.164, ``00``, without ``+``, national, significant
    digits) with any grouping, each gap empty or one space, dot, dash, slash or no-break
    space (``0661-234568``, ``06 612 345 68``), and ``+33 (0)6…``. Named by digit string.
    """
    number = phonenumbers.parse(e164)
    cc = str(number.country_code)
    nsn = phonenumbers.national_significant_number(number)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(phonenumbers.region_code_for_number(number) or "", None)
    trunk = (metadata.national_prefix or "") if metadata else ""
    out = [("+" + cc + nsn, rb"\+" + _SEP + _flexible(cc + nsn))]
    if trunk:
        out.append((f"+{cc}({trunk}){nsn}",
                    rb"\+" + _flexible(cc) + _SEP + re.escape(f"({trunk})".encode()) + _SEP + _flexible(nsn)))
    out += [(d, _flexible(d)) for d in ("00" + cc + nsn, cc + nsn, trunk + nsn, nsn) if d]
    return list(dict(out).items())


class Scanner:
    """Searches bytes, text, files and trees for every written form of some numbers."""

    def __init__(self, numbers: Iterable[str], extra: Iterable[str] = ()) -> None:
        """``numbers`` in E.164; ``extra``: other exact strings to find (same boundary rules)."""
        self.numbers = list(numbers)
        self._forms: list[tuple[str, str]] = []
        parts = []
        for n in self.numbers:
            for name, pattern in number_patterns(n):
                self._forms.append((n, name))
                parts.append(b"(" + rb"(?<![0-9])" + pattern + rb"(?![0-9])" + b")")
        self._regex = re.compile(b"|".join(parts)) if parts else None
        self._extras = [(s, s) for s in extra]
        self._extra = re.compile(b"|".join(b"(" + _pattern(s) + b")" for s in extra)) if self._extras else None

    # ------------------------------------------------------------ bytes and text

    def scan_bytes(self, data: bytes, where: str) -> list[Hit]:
        """Hits in ``data`` as bytes (UTF-8 or any ASCII-compatible encoding)."""
        hits = []
        if self._extra is not None:
            for m in self._extra.finditer(data):
                hits.append(self._hit(data, m, where, self._extras))
        # Every form is a run of digits and separators: the alternation of all forms
        # (slow, ~100 per number) runs only over such runs, found by one character class.
        for run in _RUNS.finditer(data) if self._regex is not None else ():
            for m in self._regex.finditer(data, run.start(), min(len(data), run.end() + 1)):
                if m.group().isdigit() and (  # a bare digit run touching hex: part of a key or digest
                        (m.start() > 0 and data[m.start() - 1] in _HEX) or (m.end() < len(data) and data[m.end()] in _HEX)):
                    continue
                hits.append(self._hit(data, m, where, self._forms))
        return hits

    @staticmethod
    def _hit(data: bytes, m: re.Match[bytes], where: str, forms: list[tuple[str, str]]) -> Hit:
        number, _ = forms[m.lastindex - 1]  # type: ignore[operator]
        lo, hi = max(0, m.start() - _CONTEXT), m.end() + _CONTEXT
        return Hit(where, number, m.group().decode("utf-8", "replace"),
                   data[lo:hi].decode("utf-8", "replace").replace("\n", "\\n"))

    def scan_text(self, text: str, where: str) -> list[Hit]:
        """Hits in ``text`` (captured stdout/stderr, log messages)."""
        return self.scan_bytes(text.encode("utf-8", "surrogateescape"), where)

    # ------------------------------------------------------------ files

    def scan_data(self, data: bytes, where: str, path: Path | None = None) -> list[Hit]:
        """Hits in a file's bytes, and in what its format hides from a byte search."""
        hits = self.scan_bytes(data, where)
        if data[:2] == b"\x1f\x8b":
            try:
                inner = gzip.decompress(data)
            except (OSError, EOFError, gzip.BadGzipFile):
                inner = None
            if inner is not None:
                hits += self.scan_data(inner, where + "::gunzip")
        elif data[:4] == b"PK\x03\x04":
            hits += self._scan_zip(data, where)
        elif data[:4] == b"PAR1" and data[-4:] == b"PAR1":
            hits += self._scan_parquet(data, where)
        elif data[:16] == b"SQLite format 3\x00":
            hits += self._scan_sqlite(data, where, path)
        elif data[8:12] == b"DUCK":
            hits += self._scan_duckdb(data, where, path)
        return hits

    def scan_file(self, path: Path, where: str | None = None) -> list[Hit]:
        """Hits in the file at ``path``."""
        return self.scan_data(Path(path).read_bytes(), where or str(path), Path(path))

    def scan_tree(self, root: Path, *, exclude: Iterable[str] = ()) -> list[Hit]:
        """Hits in every file under ``root``, except under the relative folders ``exclude``."""
        root = Path(root)
        skip = [root / e for e in exclude]
        hits: list[Hit] = []
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink() and not any(path.is_relative_to(s) for s in skip):
                hits += self.scan_file(path)
        return hits

    # ------------------------------------------------------------ formats

    def _scan_zip(self, data: bytes, where: str) -> list[Hit]:
        hits: list[Hit] = []
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile:
            return hits
        with zf:
            for info in zf.infolist():
                if not info.is_dir():
                    hits += self.scan_data(zf.read(info), f"{where}::{info.filename}")
        return hits

    def _scan_values(self, rows: Iterable[tuple[object, ...]], where: str) -> list[Hit]:
        # One value per line: separators that no form contains keep values apart.
        buf = io.BytesIO()
        for row in rows:
            for value in row:
                if value is None:
                    continue
                buf.write(value if isinstance(value, bytes) else str(value).encode("utf-8", "replace"))
                buf.write(b"\n")
        return self.scan_bytes(buf.getvalue(), where)

    def _scan_parquet(self, data: bytes, where: str) -> list[Hit]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(pa.BufferReader(data))
        hits = self._scan_values(((c,) for c in table.column_names), where + "::columns")
        hits += self._scan_values((tuple(r.values()) for r in table.to_pylist()), where + "::rows")
        meta = table.schema.metadata or {}
        hits += self._scan_values(((k, v) for k, v in meta.items()), where + "::metadata")
        return hits

    def _scan_duckdb(self, data: bytes, where: str, path: Path | None) -> list[Hit]:
        import tempfile

        import duckdb

        with tempfile.TemporaryDirectory(prefix="privacy-scan-") as tmp:
            # A copy: reading must neither wait for nor disturb a writer of the original.
            copy = Path(tmp) / "copy.duckdb"
            copy.write_bytes(data)
            if path is not None and path.with_name(path.name + ".wal").is_file():
                copy.with_name("copy.duckdb.wal").write_bytes(path.with_name(path.name + ".wal").read_bytes())
            con = duckdb.connect(str(copy), read_only=True)
            try:
                hits: list[Hit] = []
                for schema, table in con.execute(
                    "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT internal"
                ).fetchall():
                    name = f'"{schema}"."{table}"'
                    columns = [r[0] for r in con.execute(f"DESCRIBE {name}").fetchall()]
                    rows = con.execute(f"SELECT COLUMNS(*)::VARCHAR FROM {name}").fetchall()
                    hits += self._scan_values([tuple(columns)] + rows, f"{where}::{schema}.{table}")
                return hits
            finally:
                con.close()

    def _scan_sqlite(self, data: bytes, where: str, path: Path | None) -> list[Hit]:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="privacy-scan-") as tmp:
            copy = Path(tmp) / "copy.db"
            copy.write_bytes(data)
            if path is not None:
                for suffix in ("-wal", "-journal"):
                    side = path.with_name(path.name + suffix)
                    if side.is_file():
                        copy.with_name("copy.db" + suffix).write_bytes(side.read_bytes())
            con = sqlite3.connect(str(copy))
            con.text_factory = bytes
            try:
                hits: list[Hit] = []
                tables = [r[0].decode() for r in con.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()]
                for table in tables:
                    rows = con.execute(f'SELECT * FROM "{table}"').fetchall()
                    hits += self._scan_values(rows, f"{where}::{table}")
                return hits
            finally:
                con.close()


def assert_no_raw_number(hits: list[Hit]) -> None:
    """Fail listing every hit (file, number, form, context)."""
    assert not hits, f"{len(hits)} raw number(s) found:\n" + "\n".join(map(str, hits[:50]))
