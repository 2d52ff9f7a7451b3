"""Reading one delivery into an immutable segment, with every row accounted for.

This is the heavy, parallel part of ingest: read every file, normalize and
key-hash every number, map columns and purposes, and write a per-delivery
segment (Parquet) plus its report. Nothing here touches the ledger; the short
serialized commit lives in :mod:`origine.ingest.commit`.

Accounting: for every file and for the delivery, ``rows_read = rows_accepted +
rows_quarantined``. A row is quarantined only when it cannot be used (no valid
number, a row that does not split into the header's columns), with a reason
code; suspicious but usable facts are accepted and flagged, so the audit sees them.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from origine import freetext, memory
from origine.canonical import DICTIONARY_COLUMNS, ROWS_ARROW_SCHEMA
from origine.errors import BadInput
from origine.ingest import columns
from origine.ingest.report import DeliveryReport, FileReport
from origine.keys import HashKey
from origine.manifest import CheckedFile, Delivery
from origine.profiles import Profile
from origine.purposes import ParsedPurposes, parse_purposes
from origine.readers import ColumnBatch, NotColumnar, open_batches
from origine.special_categories import special_category

# Row flags: accepted rows that carry a fact the audit must see.
CONSENT_AFTER_DELIVERY = "CONSENT_AFTER_DELIVERY"
COLLECTED_AFTER_DELIVERY = "COLLECTED_AFTER_DELIVERY"
CONSENT_WITHOUT_DATE = "CONSENT_WITHOUT_DATE"
BUNDLED_CONSENT = "BUNDLED_CONSENT"
UNKNOWN_PURPOSE = "UNKNOWN_PURPOSE"
UNREADABLE_DATE = "UNREADABLE_DATE"
SPECIAL_CATEGORY_COLUMN = "SPECIAL_CATEGORY_COLUMN"
DUPLICATE_NUMBERS = "DUPLICATE_NUMBERS"
ROWS_NOT_UTF8 = "ROWS_NOT_UTF8"
PERSONAL_DATA_IN_TEXT = "PERSONAL_DATA_IN_TEXT"

_WORKERS = 2  # column batches in flight at once (the ingest's share of the cores)
_COLUMN_BATCH = 100_000  # rows per column batch
_WRITES_AHEAD = 2  # batches queued for the segment writer
_MAX_WORD = 80

ROWS_SCHEMA = ROWS_ARROW_SCHEMA  # the row columns declared in origine.canonical
QUARANTINE_SCHEMA = pa.schema(
    [
        ("vendor", pa.string()),
        ("delivery_id", pa.string()),
        ("file", pa.string()),
        ("file_sha256", pa.string()),
        ("row", pa.int64()),
        ("reason", pa.string()),
        ("column", pa.string()),
        ("subject_key", pa.string()),
    ]
)


def segment_dir(segments_root: Path, vendor: str, delivery_id: str, fingerprint: str) -> Path:
    """Where a delivery's immutable segment lives."""
    return segments_root / vendor / delivery_id / fingerprint


def prepare_delivery(
    delivery: Delivery,
    *,
    key: HashKey,
    profile: Profile,
    segments_root: Path,
    progress: bool = False,
) -> DeliveryReport:
    """Read, normalize and key-hash a delivery into its segment; return its report.

    Whole columns at a time, batches side by side (:mod:`origine.ingest.columns`;
    ``tests/row_reference.py`` is the per-row reference they are tested against,
    field for field). The segment appears atomically (written aside, then renamed):
    a failure leaves nothing behind.
    """
    m = delivery.manifest
    final = segment_dir(segments_root, m.vendor, m.delivery_id, delivery.fingerprint)
    by_rows: set[str] = set()  # files whose text only the row reader reads exactly
    while True:
        partial = final.with_name(f"{final.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        partial.mkdir(parents=True)
        try:
            report = _prepare_into(partial, delivery, key, profile, progress, by_rows)
            report.segment = str(final)
            (partial / "report.json").write_text(json.dumps(report.to_dict(), sort_keys=True))
            if final.exists() and segment_key_id(final) not in (None, key.key_id):
                shutil.rmtree(final, ignore_errors=True)  # made under an older key generation
            if final.exists():
                # Another run prepared the same bytes (segments appear whole, by
                # rename, and depend only on the bytes and the key): keep it, since a
                # concurrent commit may be reading it, and drop this run's copy.
                shutil.rmtree(partial, ignore_errors=True)
                return load_prepared(final)
            try:
                os.replace(partial, final)
            except OSError:
                if not final.exists():
                    raise
                shutil.rmtree(partial, ignore_errors=True)  # lost the race to a twin run
                return load_prepared(final)
            return report
        except _ReadByRows as again:
            shutil.rmtree(partial, ignore_errors=True)
            by_rows.add(again.file)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise


def segment_key_id(segment: Path) -> str | None:
    """The key id a prepared segment's report names (None if unreadable)."""
    try:
        return json.loads((segment / "report.json").read_text()).get("key_id")
    except (OSError, ValueError):
        return None


class _ReadByRows(Exception):
    """Start the delivery again, reading ``file`` with the row-by-row reader."""

    def __init__(self, file: str) -> None:
        super().__init__(file)
        self.file = file


def _prepare_into(
    folder: Path,
    delivery: Delivery,
    key: HashKey,
    profile: Profile,
    progress: bool,
    by_rows: set[str],
) -> DeliveryReport:
    m = delivery.manifest
    counters = Counters()
    # The manifest's own free text enters storage here (report, warehouse, ledger):
    # scrubbed like the rows' text, so a number in claims.sources keeps its token.
    recipient, claims = m.recipient, m.claims
    if recipient is not None:
        scrubbed = freetext.scrub_text(recipient, key, m.country)
        recipient = scrubbed.text
        counters.personal_text_in("recipient", 0, scrubbed.kinds)
    claims, kinds = freetext.scrub_document(claims, lambda t: freetext.scrub_text(t, key, m.country))
    counters.personal_text_in("claims", 0, kinds)
    report = DeliveryReport(
        delivery_id=m.delivery_id,
        vendor=m.vendor,
        recipient=recipient,
        delivered_at=m.delivered_at.isoformat(),
        country=m.country,
        fingerprint=delivery.fingerprint,
        key_id=key.key_id,
        claims=claims,
    )
    with _SegmentWriter(folder) as writer:
        for checked in delivery.files:
            columnar = checked.entry.path not in by_rows
            try:
                report.files.append(
                    _read_file(delivery, checked, key, profile, writer, counters, progress, columnar)
                )
            except NotColumnar:
                raise _ReadByRows(checked.entry.path) from None
    report.rows_read = sum(f.rows_read for f in report.files)
    report.rows_accepted = sum(f.rows_accepted for f in report.files)
    report.rows_quarantined = sum(f.rows_quarantined for f in report.files)
    reasons: Counter[str] = Counter()
    for f in report.files:
        reasons.update(f.quarantine_reasons)
    report.quarantine_reasons = dict(sorted(reasons.items()))
    report.flags = dict(sorted(counters.flags.items()))
    report.findings = counters.findings(folder / "rows.parquet")
    # The ledger leaves its commit will append: a delivery leaf and a row leaf per
    # accepted row (built at the commit, which knows the delivery leaf's seq).
    report.events = report.rows_accepted + 1
    return report


def load_prepared(segment: Path) -> DeliveryReport:
    """The report a prepared segment carries."""
    return DeliveryReport.from_dict(json.loads((segment / "report.json").read_text()))


class Counters:
    """Delivery-wide counts that become findings."""

    def __init__(self) -> None:
        self.flags: Counter[str] = Counter()
        self.unknown_words: Counter[str] = Counter()
        self.unreadable_dates: Counter[tuple[str, str]] = Counter()
        self.special: list[dict[str, Any]] = []
        # field -> (rows whose text held personal data, kinds found)
        self.personal_text: dict[str, tuple[int, set[str]]] = {}

    def personal_text_in(self, field_name: str, rows: int, kinds: Iterable[str]) -> None:
        """Count rows of ``field_name`` whose text held personal data (0 rows for a
        delivery-level field), with the kinds found; nothing when ``kinds`` is empty."""
        kinds = set(kinds)
        if not kinds:
            return
        seen_rows, seen_kinds = self.personal_text.get(field_name, (0, set()))
        self.personal_text[field_name] = (seen_rows + rows, seen_kinds | kinds)

    def merge(self, other: "Counters") -> None:
        """Add ``other``'s counts (a batch's) to these."""
        self.flags.update(other.flags)
        self.unknown_words.update(other.unknown_words)
        self.unreadable_dates.update(other.unreadable_dates)
        self.special.extend(other.special)
        for name, (rows, kinds) in other.personal_text.items():
            self.personal_text_in(name, rows, kinds)

    def findings(self, rows_parquet: Path) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = list(self.special)
        for name, (rows, kinds) in sorted(self.personal_text.items()):
            # The field and counts only: never the text, not even scrubbed.
            out.append({"code": PERSONAL_DATA_IN_TEXT, "field": name, "rows": rows, "kinds": sorted(kinds)})
        for word, rows in sorted(self.unknown_words.items()):
            out.append({"code": UNKNOWN_PURPOSE, "word": word, "rows": rows})
        for (file, column), rows in sorted(self.unreadable_dates.items()):
            out.append({"code": UNREADABLE_DATE, "file": file, "column": column, "rows": rows})
        for flag in (CONSENT_AFTER_DELIVERY, COLLECTED_AFTER_DELIVERY, BUNDLED_CONSENT, CONSENT_WITHOUT_DATE):
            if self.flags.get(flag):
                out.append({"code": flag, "rows": self.flags[flag]})
        duplicates = _duplicate_rows(rows_parquet)
        if duplicates:
            out.append({"code": DUPLICATE_NUMBERS, "rows": duplicates})
        return out


def _duplicate_rows(rows_parquet: Path) -> int:
    """Accepted rows whose number already appeared earlier in the same delivery."""
    import duckdb

    con = memory.bound(duckdb.connect())
    try:
        # Distinct over the keys' first 128 bits (an HMAC: no collision among any
        # number of rows a delivery can hold), as integers: counting distinct 64-char
        # strings ran out of DuckDB's memory cap at 50M keys.
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT ('0x' || left(subject_key, 32))::UHUGEINT) "
            "FROM read_parquet(?)", [str(rows_parquet)]
        ).fetchone()  # type: ignore[misc]
    finally:
        con.close()
    return int(total - distinct)


class _SegmentWriter:
    """Writes the batches' rows and quarantine entries into the segment's Parquet files.

    In a thread of its own: encoding, compressing and writing a batch (about a
    fifth of the step's CPU, and the disk's stalls) used to hold the reading
    thread, which then fed the workers nothing. Batches are written in the order
    given; at most ``_WRITES_AHEAD`` wait, so memory stays bounded, and a failed
    write raises in the caller at its next write or at the end.
    """

    def __init__(self, folder: Path) -> None:
        self.rows_path = folder / "rows.parquet"
        self.quarantine_path = folder / "quarantine.parquet"
        self._pending: deque[Future[None]] = deque()

    def __enter__(self) -> "_SegmentWriter":
        self._rows_writer = pq.ParquetWriter(
            self.rows_path, ROWS_SCHEMA, compression="zstd", use_dictionary=DICTIONARY_COLUMNS
        )
        self._q_writer = pq.ParquetWriter(self.quarantine_path, QUARANTINE_SCHEMA, compression="zstd")
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="origine-segment-writer")
        return self

    def write(self, rows: pa.Table, quarantine: pa.Table) -> None:
        """Queue one batch's tables for writing (raises a failed earlier write)."""
        self._pending.append(self._thread.submit(self._write, rows, quarantine))
        while len(self._pending) > _WRITES_AHEAD:
            self._pending.popleft().result()

    def _write(self, rows: pa.Table, quarantine: pa.Table) -> None:
        if rows.num_rows:
            self._rows_writer.write_table(rows)
        if quarantine.num_rows:
            self._q_writer.write_table(quarantine)

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        try:
            # Every queued write ends before the files close; after an error
            # elsewhere the segment is discarded, so its writes' errors are moot.
            while self._pending:
                future = self._pending.popleft()
                if exc_type is None:
                    future.result()
                else:
                    future.cancel()
                    try:
                        future.result()
                    except BaseException:
                        pass
        finally:
            self._thread.shutdown(wait=True)
            self._rows_writer.close()
            self._q_writer.close()


def _read_file(
    delivery: Delivery,
    checked: CheckedFile,
    key: HashKey,
    profile: Profile,
    writer: _SegmentWriter,
    counters: Counters,
    progress: bool,
    columnar: bool,
) -> FileReport:
    m = delivery.manifest
    # Stored (report, rows, quarantine, findings, ledger) under its scrubbed name: a file
    # named after a number would carry it there. Errors name it as given.
    name = delivery.stored_names(key)[checked.entry.path]
    shown = f"{delivery.label}/{checked.entry.path}"
    report = FileReport(path=name, sha256=checked.sha256, size=checked.size, format={})
    reasons: Counter[str] = Counter()
    ctx = BatchContext(m.tzinfo(), m.delivered_at, profile, key, m.country)
    mapping: dict[str, str] | None = None
    base = {"vendor": m.vendor, "delivery_id": m.delivery_id, "file": name, "file_sha256": checked.sha256}

    bar = _progress(shown, checked.entry.rows, progress)
    shape, batches = open_batches(checked.local_path, shown, size=_COLUMN_BATCH, columnar=columnar)

    def process(cbatch: ColumnBatch, mapping: dict[str, str]) -> _BatchResult:
        # Counts of its own: batches run side by side, and are merged in file order.
        own = _BatchResult(len(cbatch), Counter(), Counters())
        own.rows, own.quarantine = columns.process_batch(
            cbatch, mapping, m.country, base, ctx, own.reasons, own.counters, name,
            (ROWS_SCHEMA, QUARANTINE_SCHEMA),
        )
        return own

    def done(result: _BatchResult) -> None:
        writer.write(result.rows, result.quarantine)
        report.rows_read += result.read
        report.rows_accepted += result.rows.num_rows
        reasons.update(result.reasons)
        counters.merge(result.counters)
        bar.update(result.read)

    # Most of a batch's work is in Arrow, DuckDB and RE2, which release the GIL:
    # two batches in flight keep two cores busy. Results are taken in file order,
    # so the segment, the counts and the first error are those of one batch at a time.
    with ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="origine-batch") as pool:
        pending: deque[Future[_BatchResult]] = deque()
        read = iter(batches)
        try:
            while True:
                try:
                    cbatch = next(read)
                except StopIteration:
                    break
                except BaseException:
                    # The reader failed after the pending batches: an error of
                    # theirs comes first, as it would one batch at a time.
                    for future in pending:
                        future.result()
                    raise
                if mapping is None:
                    mapping = _columns(shape.columns, profile, shown, report, counters)
                pending.append(pool.submit(process, cbatch, mapping))
                while len(pending) > _WORKERS:
                    done(pending.popleft().result())
            while pending:
                done(pending.popleft().result())
        finally:
            for future in pending:  # after an error: the batches behind it are moot
                future.cancel()
    bar.close()

    # Again at the end: JSON Lines discovers its keys as it goes, and a file with
    # no data rows must still have its header checked.
    _columns(shape.columns, profile, shown, report, counters)
    report.rows_quarantined = sum(reasons.values())
    report.quarantine_reasons = dict(sorted(reasons.items()))
    report.format = shape.to_dict()
    # The detected header and sheet titles are the vendor's text too.
    report.format["columns"] = [freetext.shown_column(c, i) for i, c in enumerate(report.format["columns"], 1)]
    if report.format.get("sheets"):
        report.format["sheets"], _ = freetext.scrub_document(report.format["sheets"], ctx.scrub)
    if shape.rows_not_utf8:  # a UTF-8 file with rows in cp1252, each decoded on its own (readers)
        counters.special.append({"code": ROWS_NOT_UTF8, "file": report.path, "rows": shape.rows_not_utf8})
    if checked.entry.rows is not None and checked.entry.rows != report.rows_read:
        raise BadInput(
            f"manifest declares {checked.entry.rows} rows, the file has {report.rows_read}",
            file=shown,
        )
    return report


@dataclass
class _BatchResult:
    """One column batch's output and counts, before they are merged in file order."""

    read: int
    reasons: Counter[str]
    counters: "Counters"
    rows: pa.Table = field(default=None)  # type: ignore[assignment]
    quarantine: pa.Table = field(default=None)  # type: ignore[assignment]


class BatchContext:
    """Per-file context and caches: vendors repeat the same purpose cells and free text endlessly."""

    def __init__(self, tz: Any, delivered_at: datetime, profile: Profile, key: HashKey, region: str) -> None:
        self.tz, self.delivered_at, self.profile, self.key = tz, delivered_at, profile, key
        self.region = region
        self.purposes: dict[str | None, ParsedPurposes] = {}
        self.scrubbed: dict[str, freetext.Scrubbed] = {}

    def scrub(self, text: str) -> freetext.Scrubbed:
        """``text`` with its numbers, e-mail and IP addresses tokenized (cached)."""
        hit = self.scrubbed.get(text)
        if hit is None:
            hit = freetext.scrub_text(text, self.key, self.region)
            if len(self.scrubbed) < 100_000:
                self.scrubbed[text] = hit
        return hit

    def unknown_words(self, parsed: ParsedPurposes) -> tuple[list[str], set[str]]:
        """The cell's unknown purpose words as findings quote them (scrubbed, then cut
        to their first 80 characters), and the kinds of personal data they held."""
        words: list[str] = []
        kinds: set[str] = set()
        for word in parsed.unknown:
            scrubbed = self.scrub(word)
            words.append(scrubbed.text[:_MAX_WORD])
            kinds |= scrubbed.kinds
        return words, kinds

    def purposes_of(self, cell: str | None) -> ParsedPurposes:
        """Parsed purposes of one cell (cached)."""
        hit = self.purposes.get(cell)
        if hit is None:
            hit = parse_purposes(cell, self.profile.purposes, self.profile.purpose_separator)
            if len(self.purposes) < 100_000:
                self.purposes[cell] = hit
        return hit


def _columns(
    columns: list[str], profile: Profile, shown: str, report: FileReport, counters: Counters
) -> dict[str, str]:
    """Map delivered columns; record the others' names; flag special categories."""
    mapping = profile.map_columns(columns, shown)
    if "phone" not in mapping:
        raise BadInput(
            f"required column missing (found: {freetext.describe_columns(columns)}; "
            "map the vendor's name in its profile)",
            file=shown,
            column="phone",
        )
    # Stored names: a header cell that may be a data cell is kept by position only.
    shown_names = {c: freetext.shown_column(c, i) for i, c in enumerate(columns, 1)}
    report.columns = [shown_names[c] for c in columns]
    report.mapped_columns = dict(mapping)
    used = set(mapping.values())
    report.ignored_columns = [shown_names[c] for c in columns if c not in used]
    for column in report.ignored_columns:
        category = special_category(column)
        if category and not any(
            f["file"] == report.path and f["column"] == column for f in counters.special
        ):
            counters.special.append(
                {"code": SPECIAL_CATEGORY_COLUMN, "file": report.path, "column": column, "category": category}
            )
    return mapping


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(name: str, total: int | None, enabled: bool) -> Any:
    """A progress bar on a terminal for long files (stderr, never the values)."""
    if not enabled or not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(desc=Path(name).name, total=total, unit=" rows", unit_scale=True, leave=False)


__all__ = [
    "load_prepared",
    "prepare_delivery",
    "segment_dir",
    "segment_key_id",
]
