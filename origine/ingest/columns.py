"""One batch of delivered columns into segment rows and quarantine entries, as whole columns.

This is the production path of ingest. It gives, row for row and field for field,
what the per-row reference (``tests/row_reference.py``) gives for the same rows;
``tests/test_columns.py`` compares both on the same deliveries. Work is done per
column, not per value: phone numbers and their keys by :func:`origine.numbers.keyed`,
dates by :func:`origine.dates.parse_instants`, and the columns vendors repeat
endlessly (purposes, sources) once per distinct value.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from origine import freetext, numbers
from origine.canonical import INSTANT_COLUMNS, TEXT_COLUMNS
from origine.dates import PY_WHITESPACE, TS, UnreadableDate, epoch_us, parse_instant, parse_instants
from origine.readers import ColumnBatch

if TYPE_CHECKING:
    from origine.ingest.prepare import BatchContext, Counters

# Accepted-row flags in the order ``sorted()`` puts their names (a row's flags are
# stored sorted); bit i of a row's flag code is FLAG_ORDER[i].
FLAG_ORDER = (
    "BUNDLED_CONSENT",
    "COLLECTED_AFTER_DELIVERY",
    "CONSENT_AFTER_DELIVERY",
    "CONSENT_WITHOUT_DATE",
    "UNKNOWN_PURPOSE",
    "UNREADABLE_DATE",
)
assert list(FLAG_ORDER) == sorted(FLAG_ORDER)


def process_batch(
    batch: ColumnBatch,
    mapping: dict[str, str],
    region: str,
    base: dict[str, Any],
    ctx: "BatchContext",
    reasons: Counter[str],
    counters: "Counters",
    name: str,
    schemas: tuple[pa.Schema, pa.Schema],
) -> tuple[pa.Table, pa.Table]:
    """The batch's accepted rows and quarantine entries as tables of ``schemas``
    (rows, quarantine); counts reasons, flags and findings as the reference does."""
    rows_schema, quarantine_schema = schemas
    phone_col = mapping["phone"]
    n = len(batch.rows)
    phone = _column(batch, phone_col, n)
    result = numbers.keyed(phone, region, ctx.key)
    reason = result.column("reason").combine_chunks()
    keys = result.column("subject_key").combine_chunks()
    rejected = _mask(pc.is_valid(reason))

    # Quarantine: rows that did not split first, then rows without a usable number.
    for _, code in batch.problems:
        reasons[code] += 1
    rej = np.flatnonzero(rejected)
    rej_reasons = reason.take(pa.array(rej, pa.int64()))
    reasons.update(rej_reasons.to_pylist())
    q_rows = np.concatenate([np.array([r for r, _ in batch.problems], dtype=np.int64), batch.rows[rej]])
    nq = len(q_rows)
    quarantine = pa.table(
        {
            **_constants(base, nq),
            "row": pa.array(q_rows, pa.int64()),
            "reason": pa.concat_arrays([pa.array([c for _, c in batch.problems], pa.string()), rej_reasons]),
            "column": pa.concat_arrays(
                [pa.nulls(len(batch.problems), pa.string()), pa.array([phone_col] * len(rej), pa.string())]
            ),
            "subject_key": pa.concat_arrays(
                [pa.nulls(len(batch.problems), pa.string()), keys.take(pa.array(rej, pa.int64()))]
            ),
        },
        schema=quarantine_schema,
    )

    acc = np.flatnonzero(~rejected)
    take = pa.array(acc, pa.int64())
    na = len(acc)

    def delivered(canonical: str) -> pa.Array | list[Any] | None:
        column = mapping.get(canonical)
        if column is None:
            return None
        values = _column(batch, column, n)
        return values.take(take) if isinstance(values, pa.Array) else [values[i] for i in acc]

    out: dict[str, Any] = {
        **_constants(base, na),
        "row": pa.array(batch.rows[acc], pa.int64()),
        "subject_key": keys.take(take),
        "key_id": _constants({"key_id": ctx.key.key_id}, na)["key_id"],
        "country_code": result.column("country_code").combine_chunks().take(take).cast(pa.int32()),
        "line_type": result.column("line_type").combine_chunks().take(take),
    }
    for column in TEXT_COLUMNS:
        values = delivered(column)
        if values is None:
            out[column] = pa.nulls(na, pa.string())
            continue
        # Numbers, e-mail and IP addresses in free text become keyed tokens; only the
        # distinct values the vectorized prefilter keeps reach Python.
        text, found, kinds = freetext.scrub_column(text_column(values), ctx.scrub)
        out[column] = text
        counters.personal_text_in(column, int(found.sum()), kinds)

    flags = np.zeros(na, dtype=np.int64)
    unreadable_any = np.zeros(na, dtype=bool)
    instants: dict[str, np.ndarray] = {}
    for column in INSTANT_COLUMNS:
        values = delivered(column)
        if values is None:
            out[column] = pa.nulls(na, TS)
            instants[column] = np.full(na, np.iinfo(np.int64).min)
            continue
        stamps, unreadable = _dates(values, ctx)
        out[column] = stamps
        instants[column] = np.asarray(stamps.cast(pa.int64()).fill_null(np.iinfo(np.int64).min).to_numpy())
        if unreadable.any():
            counters.unreadable_dates[(name, mapping[column])] += int(unreadable.sum())
            unreadable_any |= unreadable

    separator = ctx.profile.purpose_separator
    parsed, index = distinct(
        delivered("consent_purposes"), na, lambda v: ctx.purposes_of(purpose_text(v, separator)),
        none=ctx.purposes_of(None),
    )
    out["consent_purposes"] = pa.array([list(p.codes) for p in parsed], pa.list_(pa.string())).take(pa.array(index))
    bundled = np.array([p.bundled for p in parsed], dtype=bool)[index]
    has_codes = np.array([bool(p.codes) for p in parsed], dtype=bool)[index]
    unknown = np.array([bool(p.unknown) for p in parsed], dtype=bool)[index]
    out["bundled_consent"] = pa.array(bundled, pa.bool_())
    per_value = np.bincount(index, minlength=len(parsed))
    for p, rows in zip(parsed, per_value):
        if rows and p.unknown:
            words, kinds = ctx.unknown_words(p)
            for word in words:
                counters.unknown_words[word] += int(rows)
            counters.personal_text_in("consent_purposes", int(rows), kinds)

    delivered_us = epoch_us(ctx.delivered_at)
    no_date = np.iinfo(np.int64).min
    bits = {
        "BUNDLED_CONSENT": bundled,
        "COLLECTED_AFTER_DELIVERY": instants["collected_at"] > delivered_us,
        "CONSENT_AFTER_DELIVERY": instants["consent_at"] > delivered_us,
        "CONSENT_WITHOUT_DATE": has_codes & (instants["consent_at"] == no_date),
        "UNKNOWN_PURPOSE": unknown,
        "UNREADABLE_DATE": unreadable_any,
    }
    for i, flag in enumerate(FLAG_ORDER):
        raised = bits[flag]
        flags |= raised.astype(np.int64) << i
        if raised.any():
            counters.flags[flag] += int(raised.sum())
    codes, code_index = np.unique(flags, return_inverse=True)
    lists = [[f for i, f in enumerate(FLAG_ORDER) if c >> i & 1] for c in codes.tolist()]
    out["flags"] = pa.array(lists, pa.list_(pa.string())).take(pa.array(code_index.astype(np.int64)))
    rows = pa.table({f.name: out[f.name] for f in rows_schema}, schema=rows_schema)
    return rows, quarantine


def text_column(values: pa.Array | list[Any]) -> pa.Array:
    """The reference's ``_text`` over a column: trimmed as ``str.strip`` trims, empty as null."""
    if isinstance(values, pa.Array) and (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        trimmed = pc.utf8_trim(values, characters=PY_WHITESPACE)
        return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed).cast(pa.string())
    uniques, index = distinct(values, len(values), cell_text)
    return pa.array(uniques, pa.string()).take(pa.array(index))


def distinct(
    values: pa.Array | list[Any] | None, n: int, fn: Callable[[Any], Any], *, none: Any = None
) -> tuple[list[Any], np.ndarray]:
    """``fn`` applied once per distinct value: ``(results, index)`` with
    ``results[index[i]] == fn(values[i])``. A missing column is all ``none``."""
    if values is None:
        return [none], np.zeros(n, dtype=np.int64)
    if isinstance(values, pa.Array):
        try:
            encoded = pc.dictionary_encode(values, null_encoding="encode")
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
            values = values.to_pylist()
        else:
            uniques = encoded.dictionary.to_pylist()
            index = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
            return [fn(v) for v in uniques], index
    seen: dict[Any, int] = {}
    results: list[Any] = []
    index = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        # Typed key: 1, 1.0 and True are equal in a dict but not to the reference.
        try:
            slot = seen.setdefault((type(v), v), len(results))
        except TypeError:  # unhashable (a JSON list): its own entry
            slot = len(results)
            results.append(fn(v))
        else:
            if slot == len(results):
                results.append(fn(v))
        index[i] = slot
    return results, index


def _dates(values: pa.Array | list[Any], ctx: "BatchContext") -> tuple[pa.Array, np.ndarray]:
    if isinstance(values, pa.Array):
        return parse_instants(values, ctx.tz, ctx.profile.date_formats)

    def parse(value: Any) -> datetime | None | UnreadableDate:
        try:
            return parse_instant(value, ctx.tz, ctx.profile.date_formats)
        except UnreadableDate as exc:
            return exc

    results, index = distinct(values, len(values), parse)
    unreadable = np.array([isinstance(r, UnreadableDate) for r in results], dtype=bool)[index]
    stamps = pa.array([None if isinstance(r, UnreadableDate) else r for r in results], TS)
    return stamps.take(pa.array(index)), unreadable


def _column(batch: ColumnBatch, name: str, n: int) -> pa.Array | list[Any]:
    values = batch.columns.get(name)
    if values is None:
        return [None] * n
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    return values


def _constants(base: dict[str, Any], n: int) -> dict[str, pa.Array]:
    # One value taken n times: building n Python references first cost 6 ms a column.
    zeros = pa.array(np.zeros(n, dtype=np.int64))
    return {k: pa.array([v], pa.string()).take(zeros) for k, v in base.items()}


def _mask(arr: pa.Array) -> np.ndarray:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=bool)


def cell_text(value: Any) -> str | None:
    """A delivered cell as stored text: datetimes in ISO form, others stripped; empty is None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):  # a JSON array (origine.readers.json_cell): its JSON text, not Python's repr
        items = [t for t in map(cell_text, value) if t is not None]
        return json.dumps(items, ensure_ascii=False) if items else None
    text = str(value).strip()
    return text or None


def purpose_text(value: Any, separator: str) -> str | None:
    """A ``consent_purposes`` cell as the text the purpose parser splits on ``separator``:
    a JSON array's items are its purposes, joined by that separator."""
    if isinstance(value, list):
        return cell_text(separator.join(t for t in map(cell_text, value) if t is not None))
    return cell_text(value)


__all__: Sequence[str] = ("FLAG_ORDER", "cell_text", "distinct", "process_batch", "purpose_text", "text_column")
