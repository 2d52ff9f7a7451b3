"""The ledger's leaf format (v2): a delivery leaf, one row leaf per accepted row, and
one leaf per later event.

Each leaf is one row of ``ledger_leaves`` (its ``seq`` is its index in the tree).
Three shapes (docs/ledger-format.md):

* ``delivery`` — one per committed delivery: what is constant for it (vendor, delivery
  id, recipient, delivery time, the key id its subject keys are under, each file's
  name, SHA-256 and row count, the manifest's claims);
* ``row`` — one per accepted row: everything the row says (subject key, source,
  collection time, consent with its purposes, time, proof and bundled flag, transfer
  origin, vendor opt-out time, country code, line type) and its evidence
  ``[delivery leaf seq, file index, row]``; nothing its delivery leaf already says;
* events — one per later fact (``opted_out``, ``consent_withdrawn``, ``targeted``,
  ``erased``, ``key_map``), with v1's fields.

A leaf's bytes (the payload) are canonical JSON: keys in sorted order, no whitespace,
no null or empty member, strings escaped as DuckDB's ``to_json`` does. They are computed
in SQL from the row's own columns (:data:`PAYLOAD_SQL`), so the columns readers use
and the bytes the tree commits to cannot drift apart unnoticed: the check recomputes
every leaf from its columns. The payload is not stored.

Readers see events, not leaves: the view ``ledger_events`` (:data:`EVENTS_VIEW`)
expands each row leaf into the events it states (``collected``, ``transferred``,
``consent_granted`` per purpose, ``opted_out``, ``delivered``) with its delivery's
constants joined in, so consent, opt-out and custody queries read one shape.

This module is the only one that knows what a leaf says: the tree, the checkpoints
and the check take leaves as bytes (their hashes).
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Sequence, Union

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FORMAT = "origine-ledger-v2"
"""The leaf format's name (docs/ledger-format.md)."""
VERSION = 2

LEAF_TYPES = ("delivery", "row")
EVENT_TYPES = (
    "collected",
    "consent_granted",
    "consent_withdrawn",
    "opted_out",
    "transferred",
    "delivered",
    "targeted",
    "erased",
    "key_map",
)
"""Event types readers see in ``ledger_events``; the first six (but withdrawals)
come from row and delivery leaves, the others are leaves of their own."""

# The columns of an event, in table order: what an event leaf stores and what the
# ``ledger_events`` view gives for every event.
EVENT_COLUMNS = (
    ("type", "VARCHAR"),
    ("subject_key", "VARCHAR"),
    ("key_id", "VARCHAR"),
    ("at", "TIMESTAMPTZ"),
    ("purpose", "VARCHAR"),
    ("bundled", "BOOLEAN"),
    ("channel", "VARCHAR"),
    ("origin", "VARCHAR"),
    ("party_from", "VARCHAR"),
    ("party_to", "VARCHAR"),
    ("source", "VARCHAR"),
    ("proof", "VARCHAR"),
    ("campaign_id", "VARCHAR"),
    ("evidence_kind", "VARCHAR"),
    ("vendor", "VARCHAR"),
    ("delivery_id", "VARCHAR"),
    ("file", "VARCHAR"),
    ("file_sha256", "VARCHAR"),
    ("row", "BIGINT"),
)
FILES_TYPE = 'STRUCT(name VARCHAR, "rows" BIGINT, sha256 VARCHAR)[]'
# What row and delivery leaves add. Row leaves reuse type, subject_key, at
# (collected), bundled, proof (consent proof), party_from (transfer origin), source,
# row; delivery leaves reuse type, key_id, at (delivered), party_to (recipient),
# vendor, delivery_id.
LEAF_EXTRA_COLUMNS = (
    ("purposes", "VARCHAR[]"),
    ("consent_at", "TIMESTAMPTZ"),
    ("opted_out_at", "TIMESTAMPTZ"),
    ("cc", "INTEGER"),
    ("line", "VARCHAR"),
    ("delivery_seq", "BIGINT"),
    ("file_index", "INTEGER"),
    ("files", FILES_TYPE),
    ("claims", "VARCHAR"),
)
LEAF_COLUMNS = EVENT_COLUMNS + LEAF_EXTRA_COLUMNS
"""Every stored column of a leaf, in ``ledger_leaves`` order (``seq`` before,
``leaf_hash`` and ``erased_at`` after)."""
_COLS = ", ".join(f'"{name}"' for name, _ in LEAF_COLUMNS)


# -- canonical JSON in SQL ---------------------------------------------------------
# Members are written in sorted key order; a member whose value is NULL is left out
# (concat_ws skips NULLs), so no null is ever written. One concat() per member and
# per object, not chains of ||: each || makes a string of its own (the same bytes,
# a sixth less CPU building 9.2M row leaves).

def _member(key: str, value_sql: str, raw: bool = False) -> str:
    value = f"({value_sql})" if raw else f"to_json({value_sql})"
    return f"""CASE WHEN ({value_sql}) IS NOT NULL THEN concat('"{key}":', {value}) END"""


def _object(members: dict[str, tuple[str, bool]]) -> str:
    parts = ", ".join(_member(k, *members[k]) for k in sorted(members))
    return f"concat('{{', concat_ws(',', {parts}), '}}')"


def _nonempty(obj_sql: str) -> str:
    return f"nullif({obj_sql}, '{{}}')"


def _unix(col: str) -> str:
    # whole seconds (row and delivery leaves store their instants truncated to the second)
    return f'(epoch_us("{col}") // 1000000)'


def _rfc3339(col: str) -> str:
    return f"""strftime("{col}", '%Y-%m-%dT%H:%M:%S.%fZ')"""


def _plain(value_sql: str) -> tuple[str, bool]:
    return (value_sql, False)


def _raw(value_sql: str) -> tuple[str, bool]:
    return (value_sql, True)


_CONSENT = _object({
    "at": _plain(_unix("consent_at")),
    "bundled": _plain('CASE WHEN "bundled" THEN true END'),
    "proof": _plain('"proof"'),
    "purposes": _plain('CASE WHEN len("purposes") > 0 THEN "purposes" END'),
})
ROW_PAYLOAD_SQL = _object({
    "at": _plain(_unix("at")),
    "cc": _plain('"cc"'),
    "consent": _raw(_nonempty(_CONSENT)),
    # NULL when one of the three is (a row leaf always has them): concat alone would not be
    "ev": _raw("""CASE WHEN "delivery_seq" IS NOT NULL AND "file_index" IS NOT NULL AND "row" IS NOT NULL """
               """THEN concat('[', "delivery_seq", ',', "file_index", ',', "row", ']') END"""),
    "from": _plain('"party_from"'),
    "line": _plain('"line"'),
    "opted_out": _plain(_unix("opted_out_at")),
    "source": _plain('"source"'),
    "subject": _plain('"subject_key"'),
    "type": _plain("'row'"),
    "v": _plain(str(VERSION)),
})
DELIVERY_PAYLOAD_SQL = _object({
    "at": _plain(_unix("at")),
    "claims": _raw('"claims"'),
    "delivery": _plain('"delivery_id"'),
    "files": _plain('"files"'),
    "key_id": _plain('"key_id"'),
    "recipient": _plain('"party_to"'),
    "type": _plain("'delivery'"),
    "v": _plain(str(VERSION)),
    "vendor": _plain('"vendor"'),
})
_EVIDENCE = _object({
    "delivery_id": _plain('"delivery_id"'),
    "file": _plain('"file"'),
    "file_sha256": _plain('"file_sha256"'),
    "kind": _plain('"evidence_kind"'),
    "row": _plain('"row"'),
    "vendor": _plain('"vendor"'),
})
EVENT_PAYLOAD_SQL = _object({
    "at": _plain(_rfc3339("at")),
    "bundled": _plain('"bundled"'),
    "campaign": _plain('"campaign_id"'),
    "channel": _plain('"channel"'),
    "evidence": _raw(_nonempty(_EVIDENCE)),
    "from": _plain('"party_from"'),
    "key_id": _plain('"key_id"'),
    "origin": _plain('"origin"'),
    "proof": _plain('"proof"'),
    "purpose": _plain('"purpose"'),
    "source": _plain('"source"'),
    "subject": _plain('"subject_key"'),
    "to": _plain('"party_to"'),
    "type": _plain('"type"'),
    "v": _plain(str(VERSION)),
})
PAYLOAD_SQL = (
    f"""(CASE "type" WHEN 'row' THEN {ROW_PAYLOAD_SQL} WHEN 'delivery' THEN {DELIVERY_PAYLOAD_SQL} """
    f"ELSE {EVENT_PAYLOAD_SQL} END)"
)
"""A leaf's canonical bytes (as text), from its stored columns."""
LEAF_SQL = f"unhex(sha256('\\x00'::BLOB || encode({PAYLOAD_SQL})))"  # RFC 9162 leaf hash, from the columns


def events_sql(select_events: str, *, ordered: bool = True, leaf_type: str | None = None) -> str:
    """Wrap a query yielding the leaf columns (see :func:`flat_columns`, plus ``ord``)
    with their canonical payload, ordered by ``ord`` unless the source order already
    is the leaf order (a sort of full payloads costs memory in proportion to the
    delivery); :func:`write_events` adds the leaf hash.

    ``leaf_type`` (``'row'`` or ``'delivery'``): every leaf the query yields is of that
    type, so its payload is that branch of :data:`PAYLOAD_SQL` alone (same bytes):
    DuckDB's ``CASE`` over the three shapes costs twice the row branch itself
    (measured: 11.9 s against 5.7 s of CPU for 9.2M row leaves)."""
    payload = {"row": ROW_PAYLOAD_SQL, "delivery": DELIVERY_PAYLOAD_SQL, None: PAYLOAD_SQL}[leaf_type]
    return f"""
        WITH ev AS ({select_events})
        SELECT {_COLS}, {payload} AS payload FROM ev {"ORDER BY ord" if ordered else ""}
    """


def flat_columns(**given: str) -> str:
    """A SELECT list of every leaf column: given expressions, NULL for the rest."""
    parts = []
    for name, sql_type in LEAF_COLUMNS:
        expr = given.pop(name, "NULL")
        parts.append(f"CAST({expr} AS {sql_type}) AS \"{name}\"")
    if given:
        raise ValueError(f"not leaf columns: {sorted(given)}")
    return ", ".join(parts)


def canonical_json(value: Any) -> str:
    """``value`` as canonical JSON text (sorted keys, no whitespace, UTF-8 kept): how a
    delivery leaf embeds the manifest's claims."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


Query = Union[str, tuple[str, Sequence[Any]]]


def delivery_leaves_queries(
    rows_parquet: Path,
    *,
    delivery_seq: int,
    vendor: str,
    delivery_id: str,
    recipient: str | None,
    delivered_at: datetime,
    key_id: str,
    files: Sequence[dict[str, Any]],
    claims: dict[str, Any] | None,
    row_columns: dict[str, str],
) -> list[Query]:
    """The queries giving one delivery's leaves, in order: its delivery leaf (which
    will be leaf ``delivery_seq``), then one row leaf per accepted row in segment
    order. ``files`` is the delivery's files in manifest order, each with ``name``,
    ``rows`` (rows read) and ``sha256``; a row's file index is its position there.
    ``row_columns`` gives each field a row leaf states the segment column holding it
    (ingest's declaration: ``origine.canonical.ROW_LEAF_COLUMNS``).
    Instants are truncated to the second (the leaf states Unix seconds)."""
    files_json = json.dumps(
        [{"name": f["name"], "rows": int(f["rows"]), "sha256": f["sha256"]} for f in files]
    )
    delivery = flat_columns(
        type="'delivery'", at="date_trunc('second', $1::TIMESTAMPTZ)", vendor="$2::VARCHAR",
        delivery_id="$3::VARCHAR", party_to="$4::VARCHAR", key_id="$5::VARCHAR",
        files=f"from_json($6, '{_FILES_JSON_SHAPE}')", claims="$7::VARCHAR",
    )
    types = dict(LEAF_COLUMNS)
    row = flat_columns(
        type="'row'", delivery_seq="$2::BIGINT", file_index="list_position($3::VARCHAR[], file) - 1",
        **{field: f"date_trunc('second', \"{column}\")" if types.get(field) == "TIMESTAMPTZ" else f'"{column}"'
           for field, column in row_columns.items()},
    )
    claims_text = canonical_json(claims) if claims else None
    return [
        (events_sql(f"SELECT {delivery}, 0 AS ord", ordered=False, leaf_type="delivery"),
         [delivered_at, vendor, delivery_id, recipient, key_id, files_json, claims_text]),
        (events_sql(f"SELECT {row} FROM read_parquet($1)", ordered=False, leaf_type="row"),
         [str(rows_parquet), delivery_seq, [f["name"] for f in files]]),
    ]


_FILES_JSON_SHAPE = '[{"name": "VARCHAR", "rows": "BIGINT", "sha256": "VARCHAR"}]'


def _events_view() -> str:
    """``ledger_events``: every event leaf as stored, and each row leaf expanded into
    the events it states, with its delivery leaf's constants; ``part`` orders the
    events of one leaf.

    A row leaf's events are built as one list and unnested, so the leaves are scanned
    once (and a reader's key filter applied once): a branch per event type scanned and
    semi-joined them six times, which ran out of DuckDB's memory cap on an audit of
    4.6M targets.
    """
    names = [name for name, _ in EVENT_COLUMNS]
    deliveries = (
        'SELECT seq AS d_seq, vendor AS d_vendor, delivery_id AS d_delivery_id, key_id AS d_key_id, '
        '"at" AS d_at, party_to AS d_recipient, files AS d_files FROM ledger_leaves WHERE "type" = \'delivery\''
    )
    # what varies between a row leaf's events; the rest is the leaf's (subject, evidence)
    varying = [("type", "VARCHAR"), ("at", "TIMESTAMPTZ"), ("purpose", "VARCHAR"), ("bundled", "BOOLEAN"),
               ("channel", "VARCHAR"), ("origin", "VARCHAR"), ("party_from", "VARCHAR"),
               ("party_to", "VARCHAR"), ("source", "VARCHAR"), ("proof", "VARCHAR")]

    def event(part: int, **cols: str) -> str:
        fields = ", ".join(f'"{n}" := CAST({cols.get(n, "NULL")} AS {t})' for n, t in varying)
        return f"struct_pack(part := {part}, {fields})"

    events = f"""list_concat(
        [{event(1, type="'collected'", at='l."at"', source="l.source")}],
        CASE WHEN l.party_from IS NOT NULL
             THEN [{event(2, type="'transferred'", party_from="l.party_from", party_to="d.d_vendor")}] ELSE [] END,
        list_transform(coalesce(l.purposes, []), lambda p: {event(3, type="'consent_granted'", at="l.consent_at",
                                                                  purpose="p", bundled="false", proof="l.proof")}),
        CASE WHEN l.bundled
             THEN [{event(4, type="'consent_granted'", at="l.consent_at", bundled="true", proof="l.proof")}]
             ELSE [] END,
        CASE WHEN l.opted_out_at IS NOT NULL
             THEN [{event(5, type="'opted_out'", at="l.opted_out_at", channel="'all'", origin="'vendor-flag'")}]
             ELSE [] END,
        [{event(6, type="'delivered'", at="d.d_at", party_from="d.d_vendor", party_to="d.d_recipient")}]
    )"""
    given = {n: f"e.ev.{n}" for n, _ in varying}
    given.update(
        subject_key="e.subject_key", key_id="e.d_key_id",
        evidence_kind="CASE WHEN e.d_seq IS NOT NULL THEN 'delivery' END", vendor="e.d_vendor",
        delivery_id="e.d_delivery_id", file="e.d_files[e.file_index + 1].name",
        file_sha256="e.d_files[e.file_index + 1].sha256", row='e."row"',
    )
    expanded = ", ".join(f'CAST({given.get(n, "NULL")} AS {t}) AS "{n}"' for n, t in EVENT_COLUMNS)
    stored = ", ".join(f'"{n}"' for n in names)
    return f"""CREATE OR REPLACE VIEW ledger_events AS
SELECT seq, 0 AS part, {stored}, leaf_hash, erased_at FROM ledger_leaves
WHERE "type" NOT IN ('row', 'delivery')
UNION ALL
SELECT e.seq, e.ev.part, {expanded}, e.leaf_hash, e.erased_at
FROM (SELECT l.seq, l.subject_key, l.file_index, l."row", l.leaf_hash, l.erased_at, d.*, unnest({events}) AS ev
      FROM ledger_leaves l LEFT JOIN ({deliveries}) d ON d.d_seq = l.delivery_seq
      WHERE l."type" = 'row') e;
"""


EVENTS_VIEW = _events_view()


def write_events(
    con: duckdb.DuckDBPyConnection, query: Query | Sequence[Query], params: Sequence[Any], out: Path
) -> int:
    """Write the leaves the queries yield to ``out`` (Parquet, in order, with leaf hashes).

    A query is SQL (given ``params``, those it names) or ``(sql, its own params)``.

    The payloads come from SQL, streamed; their leaf hashes are computed here with
    hashlib, several times faster than DuckDB's ``sha256`` on this machine; the
    payloads are then dropped (see the module docstring). ``check_ledger``
    recomputes the leaves in SQL, so the two must (and are tested to) agree.

    Three stages overlap, each in its own thread: DuckDB building the next batch of
    payloads, hashlib hashing this one (the only stage holding the GIL), and Parquet
    encoding the previous one; a batch is in at most one stage, in order.
    """
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = true")
    queries = [query] if isinstance(query, (str, tuple)) else list(query)
    count = 0
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="origine-events") as pool:
        batches = _prefetched(pool, con, queries, params)
        written: Any = None  # the previous batch's write, waited for before the next
        try:
            for batch in batches:
                if writer is None:  # written even with no events: the commit reads it
                    # Nullable everywhere: each event type leaves other columns empty.
                    schema = pa.schema(
                        [f.with_nullable(True) for f in batch.schema if f.name != "payload"]
                        + [pa.field("leaf_hash", pa.binary())]
                    )
                    writer = pq.ParquetWriter(
                        out, schema, compression="zstd", write_statistics=False,
                        use_dictionary=[f.name for f in schema if f.name not in _UNIQUE_COLUMNS],
                    )
                if batch.num_rows == 0:
                    continue
                assert schema is not None
                digests = leaf_digests(batch.column(batch.schema.get_field_index("payload")))
                leaves = pa.FixedSizeBinaryArray.from_buffers(
                    pa.binary(32), batch.num_rows, [None, pa.py_buffer(digests)]
                ).cast(pa.binary())
                columns = [batch.column(batch.schema.get_field_index(f.name)).cast(f.type) for f in schema][:-1]
                if written is not None:
                    written.result()
                written = pool.submit(writer.write_batch, pa.RecordBatch.from_arrays([*columns, leaves], schema=schema))
                count += batch.num_rows
            if written is not None:
                written.result()
        finally:
            batches.close()
            if written is not None:
                written.exception()  # an interrupted loop: the last write ends before the close
            if writer is not None:
                writer.close()
    return count


def leaf_digests(inputs: pa.Array) -> bytes:
    """SHA-256 of each value of a binary Arrow array (a leaf's input, ``0x00 || bytes``,
    gives its RFC 9162 leaf hash), packed back to back, 32 bytes each.

    Hashes slices of the array's data buffer: no ``bytes`` object per value (about a
    tenth of the time ``to_pylist`` then hashing takes). ``ValueError`` on a null.
    """
    if inputs.null_count:
        raise ValueError("a leaf without its bytes")
    if len(inputs) == 0:
        return b""
    if pa.types.is_binary(inputs.type) or pa.types.is_string(inputs.type):
        width = np.int32
    elif pa.types.is_large_binary(inputs.type) or pa.types.is_large_string(inputs.type):
        width = np.int64
    else:
        raise TypeError(f"leaf inputs must be binary, not {inputs.type}")
    _, offsets_buffer, data_buffer = inputs.buffers()
    offsets = np.frombuffer(offsets_buffer, width, len(inputs) + 1, inputs.offset * np.dtype(width).itemsize).tolist()
    data = memoryview(data_buffer if data_buffer is not None else b"")
    sha = hashlib.sha256
    return b"".join([sha(data[a:b]).digest() for a, b in zip(offsets, offsets[1:])])


# Leaf columns whose values (nearly) never repeat: a dictionary of them only costs
# (the events file is read once, whole, by the append: statistics serve nothing either).
_UNIQUE_COLUMNS = frozenset({"leaf_hash", "subject_key", "row", "at", "consent_at", "opted_out_at"})


def _prefetched(
    pool: ThreadPoolExecutor, con: duckdb.DuckDBPyConnection, queries: list[Query], params: Sequence[Any]
) -> Iterator[pa.RecordBatch]:
    """The queries' batches, each with its leaf input (``0x00 || payload``, RFC 9162)
    as ``payload``; the next batch is fetched from DuckDB while the caller works on
    this one. Every query yields at least one (maybe empty) batch, for its schema."""

    def reader(query: Query) -> pa.RecordBatchReader:
        if isinstance(query, tuple):
            q, used = query[0], list(query[1])
        else:
            # A parameter the query does not use is an error in DuckDB: pass only those it names.
            q = query
            used = [v for n, v in enumerate(params, 1) if f"${n}" in q] if "$" in q else list(params)
        leaf_input = f"SELECT * REPLACE ('\\x00'::BLOB || encode(payload) AS payload) FROM ({q})"
        return con.sql(leaf_input, params=used or None).to_arrow_reader(1 << 17)

    def first(q: Query) -> tuple[pa.RecordBatchReader, pa.RecordBatch | None]:
        r = reader(q)
        return r, _next_batch(r)

    for q in queries:
        r, batch = pool.submit(first, q).result()
        if batch is None:
            yield pa.RecordBatch.from_pylist([], schema=r.schema)
            continue
        while batch is not None:
            ahead = pool.submit(_next_batch, r)
            try:
                yield batch
            except GeneratorExit:
                ahead.result()  # the connection must be idle before it is closed
                raise
            batch = ahead.result()


def _next_batch(reader: pa.RecordBatchReader) -> pa.RecordBatch | None:
    try:
        return reader.read_next_batch()
    except StopIteration:
        return None
