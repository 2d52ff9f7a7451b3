"""The per-row reference engine of ingest: one record, one value at a time.

The definition the production path (``origine.ingest.columns``, whole columns at a time) is
tested against, row for row and field for field (tests/test_columns.py,
test_readers_properties.py, test_hostile_files.py): ``prepare_delivery(...,
row_engine=process_rows)``. It lives with the tests because only they run it.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from origine import phones
from origine.canonical import INSTANT_COLUMNS, TEXT_COLUMNS
from origine.ingest import columns
from origine.ingest.columns import cell_text as _text
from origine.dates import UnreadableDate
from origine.ingest.prepare import (
    BUNDLED_CONSENT,
    COLLECTED_AFTER_DELIVERY,
    CONSENT_AFTER_DELIVERY,
    CONSENT_WITHOUT_DATE,
    UNKNOWN_PURPOSE,
    UNREADABLE_DATE,
)
from origine.readers import MALFORMED_ROW, Record

if TYPE_CHECKING:  # the engine fills ingest's own per-file state
    from origine.ingest.prepare import BatchContext, Counters, _SegmentWriter



def process_rows(
    batch: list[Record],
    mapping: dict[str, str],
    region: str,
    base: dict[str, Any],
    ctx: BatchContext,
    writer: _SegmentWriter,
    reasons: Counter[str],
    counters: Counters,
    name: str,
) -> int:
    """Normalize, hash and write one batch; return how many rows were accepted."""
    phone_col = mapping["phone"]
    good = []
    for record in batch:
        if record.values is None:
            reasons[record.problem or MALFORMED_ROW] += 1
            writer.reject({**base, "row": record.row, "reason": record.problem, "column": None, "subject_key": None})
        else:
            good.append(record)
    results = phones.normalize_many([r.values.get(phone_col) for r in good], region)  # type: ignore[union-attr]
    subject_key = ctx.key.subject_key
    text_cols = [(c, mapping[c]) for c in TEXT_COLUMNS if c in mapping]
    date_cols = [(c, mapping[c]) for c in INSTANT_COLUMNS if c in mapping]
    purpose_col = mapping.get("consent_purposes")
    accepted = 0
    for record, result in zip(good, results):
        values = record.values
        assert values is not None
        if result.reason is not None:
            reasons[result.reason] += 1
            writer.reject(
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
                row[column] = ctx.date(values.get(delivered))
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
        writer.accept(row)
        accepted += 1
    return accepted


# For the tests that run a delivery through both: the engine by name.
ENGINES = {"rows": process_rows, "columns": None}
