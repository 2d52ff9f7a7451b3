"""The per-row reference engine of ingest: one record, one value at a time.

The definition the production path (``origine.ingest.columns``, whole columns at a time) is
tested against, row for row and field for field (tests/test_columns.py,
test_readers_properties.py, test_hostile_files.py, test_ingest_batches.py):
``prepare_delivery(..., row_engine=process_rows)`` (this module's) prepares a delivery
with every file read by the row reader and every batch made by :func:`process_rows`
instead of :func:`origine.ingest.columns.process_batch`; the rest (the segment, the
accounting, the findings) is the production code. It lives with the tests because
only they run it.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable
from unittest import mock

import pyarrow as pa

from origine import phones
from origine.canonical import INSTANT_COLUMNS, TEXT_COLUMNS
from origine.dates import UnreadableDate, parse_instant
from origine.ingest import DeliveryReport, columns, prepare
from origine.ingest.columns import cell_text as _text
from origine.ingest.prepare import (
    BUNDLED_CONSENT,
    COLLECTED_AFTER_DELIVERY,
    CONSENT_AFTER_DELIVERY,
    CONSENT_WITHOUT_DATE,
    UNKNOWN_PURPOSE,
    UNREADABLE_DATE,
)
from origine.manifest import Delivery
from origine.readers import ColumnBatch, Record

if TYPE_CHECKING:  # the engine fills ingest's own per-file state
    from origine.ingest.prepare import BatchContext, Counters


def instants_one_by_one(values: list, tz: Any) -> tuple[list, list]:
    """``parse_instant`` per value: each instant (None when unreadable) and whether it was."""
    stamps, bad = [], []
    for v in values:
        try:
            stamps.append(parse_instant(v, tz))
            bad.append(False)
        except UnreadableDate:
            stamps.append(None)
            bad.append(True)
    return stamps, bad


def records(batch: ColumnBatch) -> list[Record]:
    """The batch's records in file order: the rows that did not split, then the others
    (a batch the row reader made holds each cell as read, in lists)."""
    out = [Record(row, None, problem) for row, problem in batch.problems]
    for i, row in enumerate(batch.rows.tolist()):
        values = {}
        for name, cells in batch.columns.items():
            assert isinstance(cells, list), "the reference reads what the row reader read"
            values[name] = cells[i]
        out.append(Record(row, values))
    return out


def process_rows(
    batch: ColumnBatch,
    mapping: dict[str, str],
    region: str,
    base: dict[str, Any],
    ctx: BatchContext,
    reasons: Counter[str],
    counters: Counters,
    name: str,
    schemas: tuple[pa.Schema, pa.Schema],
) -> tuple[pa.Table, pa.Table]:
    """Normalize and hash one batch, a record at a time: its accepted rows and
    quarantine entries as tables of ``schemas`` (rows, quarantine)."""
    accepted: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    phone_col = mapping["phone"]
    good = []
    for record in records(batch):
        if record.values is None:
            reasons[record.problem] += 1
            rejected.append({**base, "row": record.row, "reason": record.problem, "column": None, "subject_key": None})
        else:
            good.append(record)
    # one value at a time through the per-value reference (phones.normalize), not the batch
    results = [phones.normalize(r.values.get(phone_col), region) for r in good]  # type: ignore[union-attr]
    subject_key = ctx.key.subject_key
    text_cols = [(c, mapping[c]) for c in TEXT_COLUMNS if c in mapping]
    date_cols = [(c, mapping[c]) for c in INSTANT_COLUMNS if c in mapping]
    purpose_col = mapping.get("consent_purposes")
    for record, result in zip(good, results):
        values = record.values
        assert values is not None
        if result.reason is not None:
            reasons[result.reason] += 1
            rejected.append(
                {
                    **base,
                    "row": record.row,
                    "reason": result.reason,
                    "column": phone_col,
                    "subject_key": subject_key(result.e164) if result.e164 else None,
                }
            )
            continue
        assert result.e164 is not None
        flags: list[str] = []
        row: dict[str, Any] = {
            **base,
            "row": record.row,
            "subject_key": subject_key(result.e164),
            "key_id": ctx.key.key_id,
            "country_code": result.country_code,
            "line_type": result.line_type,
            **dict.fromkeys(TEXT_COLUMNS + INSTANT_COLUMNS),
        }
        for column, delivered in text_cols:
            text = _text(values.get(delivered))
            if text is not None:
                scrubbed = ctx.scrub(text)
                text = scrubbed.text
                counters.personal_text_in(column, 1, scrubbed.kinds)
            row[column] = text
        for column, delivered in date_cols:
            try:
                row[column] = _instant(values.get(delivered), ctx)
            except UnreadableDate:
                flags.append(UNREADABLE_DATE)
                counters.unreadable_dates[(name, delivered)] += 1
        parsed = ctx.purposes_of(
            columns.purpose_text(values.get(purpose_col), ctx.profile.purpose_separator) if purpose_col else None
        )
        row["consent_purposes"] = list(parsed.codes)
        row["bundled_consent"] = parsed.bundled
        if parsed.bundled:
            flags.append(BUNDLED_CONSENT)
        if parsed.unknown:
            flags.append(UNKNOWN_PURPOSE)
            words, kinds = ctx.unknown_words(parsed)
            counters.unknown_words.update(words)
            counters.personal_text_in("consent_purposes", 1, kinds)
        if parsed.codes and row["consent_at"] is None:
            flags.append(CONSENT_WITHOUT_DATE)
        if row["consent_at"] is not None and row["consent_at"] > ctx.delivered_at:
            flags.append(CONSENT_AFTER_DELIVERY)
        if row["collected_at"] is not None and row["collected_at"] > ctx.delivered_at:
            flags.append(COLLECTED_AFTER_DELIVERY)
        if flags:
            flags = sorted(set(flags))
            counters.flags.update(flags)
        row["flags"] = flags
        accepted.append(row)
    rows_schema, quarantine_schema = schemas
    return pa.Table.from_pylist(accepted, schema=rows_schema), pa.Table.from_pylist(rejected, schema=quarantine_schema)


def _instant(value: Any, ctx: BatchContext) -> datetime | None:
    """One cell's instant, in the delivery's time zone with the profile's formats;
    raises :class:`UnreadableDate`."""
    return parse_instant(value, ctx.tz, ctx.profile.date_formats)


Engine = Callable[..., tuple[pa.Table, pa.Table]]


def prepare_delivery(delivery: Delivery, *, row_engine: Engine | None = None, **kwargs: Any) -> DeliveryReport:
    """:func:`origine.ingest.prepare_delivery`; with ``row_engine``, every file read by the
    row reader and every batch processed by ``row_engine`` instead of the columns."""
    if row_engine is None:
        return prepare.prepare_delivery(delivery, **kwargs)
    read = prepare.open_batches

    def by_rows(path: Path, name: str, *, size: int, columnar: bool = True) -> Any:
        return read(path, name, size=size, columnar=False)

    with mock.patch.object(prepare, "open_batches", by_rows), mock.patch.object(columns, "process_batch", row_engine):
        return prepare.prepare_delivery(delivery, **kwargs)


# For the tests that run a delivery through both: the engine by name.
ENGINES: dict[str, Engine | None] = {"rows": process_rows, "columns": None}
