"""The ledger's leaf format (v1): one leaf per provenance event.

Each event is one row of ``ledger_events`` keyed by subject key: ``collected``,
``consent_granted`` / ``consent_withdrawn``, ``opted_out``, ``transferred``,
``delivered``, ``targeted``, ``erased`` (a retention run: which events it erased)
and ``key_map`` (the subject key map a key rotation or an erasure left). Its
Merkle leaf is its canonical serialization (the payload: UTF-8 JSON, keys sorted,
no insignificant whitespace), computed in SQL from the row's own columns
(:data:`PAYLOAD_SQL`), so the columns the audit reads and the bytes the tree
commits to cannot drift apart unnoticed: ``origine.ledger.check`` recomputes the
leaf from the columns. The payload itself is not stored: it would double the
ledger's size for bytes the columns already fix; bundles and checks recompute it.

This module is the only one that knows what a leaf says: the tree, the
checkpoints and the check take leaves as bytes (their hashes), so the format can
change without touching them. See docs/ledger-format.md.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Sequence

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

FORMAT = "origine-events-v1"
"""The leaf format's name (docs/ledger-format.md)."""


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

# The flat columns of an event, in table order (seq, payload, leaf_hash and
# erased_at are added around them).
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
_COLS = ", ".join(f'"{name}"' for name, _ in EVENT_COLUMNS)


# The canonical serialization, as SQL over the flat columns. Keys are written in
# sorted order (to_json keeps struct order); timestamps are UTC with microseconds.
PAYLOAD_SQL = """to_json(struct_pack(
    "at" := strftime("at", '%Y-%m-%dT%H:%M:%S.%fZ'),
    "bundled" := "bundled",
    "campaign" := "campaign_id",
    "channel" := "channel",
    "evidence" := struct_pack(
        "delivery_id" := "delivery_id",
        "file" := "file",
        "file_sha256" := "file_sha256",
        "kind" := "evidence_kind",
        "row" := "row",
        "vendor" := "vendor"
    ),
    "from" := "party_from",
    "key_id" := "key_id",
    "origin" := "origin",
    "proof" := "proof",
    "purpose" := "purpose",
    "source" := "source",
    "subject" := "subject_key",
    "to" := "party_to",
    "type" := "type",
    "v" := 1
))"""
LEAF_SQL = f"unhex(sha256('\\x00'::BLOB || encode({PAYLOAD_SQL})))"  # from the flat columns


def events_sql(select_events: str, *, ordered: bool = True) -> str:
    """Wrap a query yielding the flat event columns (plus ``ord``) with their canonical
    payload, ordered by ``ord`` unless the source order already is the event order
    (a sort of full payloads costs memory in proportion to the delivery);
    :func:`write_events` adds the leaf hash."""
    return f"""
        WITH ev AS ({select_events})
        SELECT {_COLS}, {PAYLOAD_SQL} AS payload FROM ev {"ORDER BY ord" if ordered else ""}
    """


def flat_columns(**given: str) -> str:
    """A SELECT list of every flat column: given expressions, NULL for the rest."""
    parts = []
    for name, sql_type in EVENT_COLUMNS:
        expr = given.get(name, "NULL")
        parts.append(f"CAST({expr} AS {sql_type}) AS \"{name}\"")
    return ", ".join(parts)


def delivery_events_query(
    rows_parquet: Path, *, recipient: str | None, delivered_at: datetime
) -> tuple[list[str], list[Any]]:
    """The queries giving one delivery's events, in a deterministic order.

    Per row: ``collected`` (source, collected_at), ``transferred`` (acquired_from ->
    vendor), ``consent_granted`` per purpose (and one marked ``bundled`` for a
    catch-all consent, which names no purpose), ``opted_out`` (vendor flag, every
    channel), then ``delivered`` (vendor -> recipient at delivery time).
    """
    evidence = dict(
        evidence_kind="'delivery'", vendor="vendor", delivery_id="delivery_id",
        file="file", file_sha256="file_sha256", row="row", subject_key="subject_key", key_id="key_id",
    )
    # One query per event type, each a single scan of the segment in file order, so
    # no sort is needed (sorting full payloads costs memory in proportion to the
    # delivery): events are ordered by type, then by row, then by purpose (the row's
    # purposes are stored sorted), the same way on every run.
    rows = "(SELECT *, file_row_number AS ord FROM read_parquet($1, file_row_number = true))"
    purposes = f"(SELECT *, unnest(consent_purposes) AS p FROM {rows})"

    def part(relation: str, where: str, **cols: str) -> str:
        select = f"SELECT {flat_columns(**cols, **evidence)}, ord FROM {relation} r {where}"
        return events_sql(select, ordered=False)

    queries = [
        part(rows, "", type="'collected'", at="collected_at", source="source"),
        part(rows, "WHERE acquired_from IS NOT NULL", type="'transferred'",
             party_from="acquired_from", party_to="vendor"),
        part(purposes, "", type="'consent_granted'", at="consent_at", purpose="p", bundled="false",
             proof="consent_proof"),
        part(rows, "WHERE bundled_consent", type="'consent_granted'", at="consent_at",
             bundled="true", proof="consent_proof"),
        part(rows, "WHERE opted_out_at IS NOT NULL", type="'opted_out'", at="opted_out_at",
             channel="'all'", origin="'vendor-flag'"),
        part(rows, "", type="'delivered'", at="$2::TIMESTAMPTZ", party_from="vendor", party_to="$3::VARCHAR"),
    ]
    return queries, [str(rows_parquet), delivered_at, recipient]


def write_events(
    con: duckdb.DuckDBPyConnection, query: str | Sequence[str], params: Sequence[Any], out: Path
) -> int:
    """Write the events a query yields to ``out`` (Parquet, in order, with leaf hashes).

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
    queries = [query] if isinstance(query, str) else list(query)
    count = 0
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    leaf = hashlib.sha256
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
                    writer = pq.ParquetWriter(out, schema, compression="zstd")
                if batch.num_rows == 0:
                    continue
                assert schema is not None
                payloads = batch.column(batch.schema.get_field_index("payload")).to_pylist()
                digests = b"".join([leaf(p).digest() for p in payloads])
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


def _prefetched(
    pool: ThreadPoolExecutor, con: duckdb.DuckDBPyConnection, queries: list[str], params: Sequence[Any]
) -> Iterator[pa.RecordBatch]:
    """The queries' batches, each with its leaf input (``0x00 || payload``, RFC 9162)
    as ``payload``; the next batch is fetched from DuckDB while the caller works on
    this one. Every query yields at least one (maybe empty) batch, for its schema."""

    def reader(q: str) -> pa.RecordBatchReader:
        # A parameter the query does not use is an error in DuckDB: pass only those it names.
        used = [v for n, v in enumerate(params, 1) if f"${n}" in q] if "$" in q else list(params)
        leaf_input = f"SELECT * REPLACE ('\\x00'::BLOB || encode(payload) AS payload) FROM ({q})"
        return con.sql(leaf_input, params=used or None).to_arrow_reader(1 << 17)

    def first(q: str) -> tuple[pa.RecordBatchReader, pa.RecordBatch | None]:
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
