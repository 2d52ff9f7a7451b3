"""The provenance ledger: append-only events, tamper-evident under an RFC 9162 tree.

Each event is one row of ``ledger_events`` keyed by subject key: ``collected``,
``consent_granted`` / ``consent_withdrawn``, ``opted_out``, ``transferred``,
``delivered``, ``targeted``, ``erased``. Its Merkle leaf is its canonical
serialization (the payload: UTF-8 JSON, keys sorted, no insignificant whitespace),
computed in SQL from the row's own columns (:data:`PAYLOAD_SQL`), so the columns
the audit reads and the bytes the tree commits to cannot drift apart unnoticed:
``check_ledger`` recomputes the leaf from the columns. The payload itself is not
stored: it would double the ledger's size for bytes the columns already fix;
bundles and checks recompute it.

Events are built in the parallel prepare step (per delivery, into the segment);
``append_events`` is the short serialized step that numbers them, extends the
tree and records a tree head, inside the caller's transaction.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from origine import faults, merkle

EVENT_TYPES = (
    "collected",
    "consent_granted",
    "consent_withdrawn",
    "opted_out",
    "transferred",
    "delivered",
    "targeted",
    "erased",
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

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS ledger_events (
    seq BIGINT NOT NULL,
    {", ".join(f'"{n}" {t}' for n, t in EVENT_COLUMNS)},
    leaf_hash BLOB NOT NULL,
    erased_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS ledger_nodes (
    level INTEGER NOT NULL,
    idx BIGINT NOT NULL,
    hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS tree_heads (
    tree_size BIGINT NOT NULL,
    root_hash VARCHAR NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    reason VARCHAR NOT NULL,
    frontier JSON NOT NULL,
    signature VARCHAR,
    signer VARCHAR
);
-- Ledger events keep the subject key they were recorded with; after key rotations
-- this gives each stored (key_id, subject_key) its key under the current generation
-- (origine.rotation). The view ledger_current reads events through it.
CREATE TABLE IF NOT EXISTS subject_key_map (
    key_id VARCHAR,
    subject_key VARCHAR NOT NULL,
    current_key VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS erasures (
    erasure_seq BIGINT NOT NULL,
    event_seq BIGINT NOT NULL
);
"""

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


def install(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ledger tables and views (idempotent); UTC for every timestamp text."""
    con.execute("SET TimeZone = 'UTC'")
    con.execute(SCHEMA)
    con.execute(STATE_VIEWS)


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


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


# ---------------------------------------------------------------- the tree


class DuckDBNodeStore:
    """A read-only :class:`origine.merkle.NodeStore` over the ``ledger_nodes`` table
    (proofs read it); appends write nodes through :class:`ParquetNodeWriter`."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self._cache: dict[tuple[int, int], bytes] = {}

    def get(self, level: int, index: int) -> bytes:
        """The stored node; ``KeyError`` when absent."""
        hit = self._cache.get((level, index))
        if hit is not None:
            return hit
        row = self.con.execute(
            "SELECT hash FROM ledger_nodes WHERE level = ? AND idx = ?", [level, index]
        ).fetchone()
        if row is None:
            raise KeyError((level, index))
        value = bytes(row[0])
        self._cache[(level, index)] = value
        return value

    def put_many(self, level: int, start_index: int, hashes: Sequence[bytes]) -> None:
        """Refused: nodes are appended only by :func:`append_events`."""
        raise TypeError("DuckDBNodeStore is read-only: append through append_events")


class ParquetNodeWriter:
    """A write-only :class:`origine.merkle.NodeStore` streaming the nodes above the
    leaves to a Parquet file, for :func:`append_events` to insert in one statement.

    DuckDB holds everything a transaction inserts in memory until it commits when
    the rows come in many statements (measured: ~80 MB per million nodes, past
    ``memory_limit``), but spills a single ``INSERT … SELECT`` from a file: so a
    delivery's millions of nodes are written here first, in bounded memory.
    Level 0 is skipped: :func:`append_events` inserts it from the events file.
    """

    ROW_GROUP = 1 << 20

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = pq.ParquetWriter(path, _NODES_SCHEMA, compression="none")
        self._pending: list[tuple[int, int, Sequence[bytes]]] = []
        self._buffered = 0
        self.written = 0

    def get(self, level: int, index: int) -> bytes:
        """Never read while appending (the frontier holds what extending needs)."""
        raise KeyError((level, index))

    def put_many(self, level: int, start_index: int, hashes: Sequence[bytes]) -> None:
        """Buffer consecutive nodes of one level; written a row group at a time."""
        if level == 0:
            return
        self._pending.append((level, start_index, list(hashes)))
        self._buffered += len(hashes)
        if self._buffered >= self.ROW_GROUP:
            self._write()

    def _write(self) -> None:
        if not self._pending:
            return
        levels = np.concatenate([np.full(len(h), lv, np.int32) for lv, _, h in self._pending])
        indexes = np.concatenate(
            [np.arange(start, start + len(h), dtype=np.int64) for _, start, h in self._pending]
        )
        hashes = pa.array([x for _, _, h in self._pending for x in h], pa.binary())
        self._writer.write_table(pa.table({"level": levels, "idx": indexes, "hash": hashes}, schema=_NODES_SCHEMA))
        self.written += len(hashes)
        self._pending, self._buffered = [], 0

    def close(self) -> None:
        """Write what is buffered and close the file."""
        try:
            self._write()
        finally:
            self._writer.close()


_NODES_SCHEMA = pa.schema([("level", pa.int32()), ("idx", pa.int64()), ("hash", pa.binary())])


@dataclass(frozen=True)
class TreeHead:
    """A recorded state of the tree: size, root, when, and why."""

    tree_size: int
    root_hash: str
    recorded_at: str
    reason: str
    signature: str | None = None
    signer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {k: v for k, v in self.__dict__.items()}


def latest_head(con: duckdb.DuckDBPyConnection) -> TreeHead | None:
    """The most recent tree head, if any."""
    row = con.execute(
        "SELECT tree_size, root_hash, recorded_at, reason, signature, signer FROM tree_heads "
        "ORDER BY tree_size DESC, recorded_at DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    return TreeHead(int(row[0]), row[1], _iso(row[2]), row[3], row[4], row[5])


def _frontier(con: duckdb.DuckDBPyConnection) -> merkle.Frontier:
    row = con.execute(
        "SELECT frontier FROM tree_heads ORDER BY tree_size DESC, recorded_at DESC LIMIT 1"
    ).fetchone()
    return merkle.Frontier.from_dict(json.loads(row[0])) if row else merkle.Frontier()


def tree_size(con: duckdb.DuckDBPyConnection) -> int:
    """Number of events in the ledger."""
    return int(con.execute("SELECT count(*) FROM ledger_events").fetchone()[0])  # type: ignore[index]


def append_events(
    con: duckdb.DuckDBPyConnection,
    events_parquet: Path,
    *,
    reason: str,
    signer: Any = None,
    scratch: Path | None = None,
) -> TreeHead:
    """Append prepared events (in file order), extend the tree, record a tree head.

    Runs inside the caller's transaction: on any failure nothing is appended. Each
    table gets one ``INSERT … SELECT`` from a file, so memory stays bounded whatever
    the number of events (see :class:`ParquetNodeWriter`); the new tree nodes are
    written to a temporary file under ``scratch`` (default: the system's).
    """
    install(con)
    frontier = _frontier(con)
    start = tree_size(con)
    if frontier.size != start:
        raise RuntimeError(
            f"ledger holds {start} events but its last tree head covers {frontier.size}: "
            "run `origine ledger check`"
        )
    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True)
    # named like a segment's partial folder, so a run killed here leaves something
    # `intake.sweep_dead_partials` recognises and removes
    with tempfile.TemporaryDirectory(prefix=f"nodes.partial-{os.getpid()}-", dir=scratch) as tmp:
        nodes = ParquetNodeWriter(Path(tmp) / "nodes.parquet")

        def extend_tree() -> None:
            try:
                faults.point("commit.in_tree")
                frontier.extend(_leaf_hashes(events_parquet), nodes)
            finally:
                nodes.close()

        # The tree is hashed in Python while DuckDB inserts the events (it releases
        # the GIL): the serialized step takes the longer of the two, not their sum.
        with ThreadPoolExecutor(1, thread_name_prefix="merkle") as pool:
            tree = pool.submit(extend_tree)
            try:
                con.execute(
                    f"INSERT INTO ledger_events (seq, {_COLS}, leaf_hash, erased_at) "
                    f"SELECT ? + file_row_number, {_COLS}, leaf_hash, NULL "
                    "FROM read_parquet(?, file_row_number = true)",
                    [start, str(events_parquet)],
                )
                # Level 0 repeats the events' leaf hashes: `check_ledger` compares the
                # two to name the first event edited, deleted or moved.
                con.execute(
                    "INSERT INTO ledger_nodes SELECT 0, ? + file_row_number, leaf_hash "
                    "FROM read_parquet(?, file_row_number = true)",
                    [start, str(events_parquet)],
                )
            finally:
                tree.exception()  # the file is closed before the folder goes
            tree.result()
        con.execute("INSERT INTO ledger_nodes SELECT * FROM read_parquet(?)", [str(nodes.path)])
    return record_head(con, frontier, reason=reason, signer=signer)


def _leaf_hashes(events_parquet: Path) -> Iterator[bytes]:
    # pre_buffer (pyarrow's default) reads the whole column ahead: ~1 GB at 27M events.
    pfile = pq.ParquetFile(events_parquet, pre_buffer=False)
    for batch in pfile.iter_batches(batch_size=65536, columns=["leaf_hash"]):
        yield from batch.column(0).to_pylist()


def record_head(
    con: duckdb.DuckDBPyConnection, frontier: merkle.Frontier, *, reason: str, signer: Any = None
) -> TreeHead:
    """Record the tree head for ``frontier`` (signed when a signer is given)."""
    now = datetime.now(timezone.utc)
    root = frontier.root().hex()
    signature = signer_id = None
    if signer is not None:
        signature, signer_id = signer.sign_head(frontier.size, root, _iso(now))
    con.execute(
        "INSERT INTO tree_heads VALUES (?, ?, ?, ?, ?, ?, ?)",
        [frontier.size, root, now, reason, json.dumps(frontier.to_dict()), signature, signer_id],
    )
    return TreeHead(frontier.size, root, _iso(now), reason, signature, signer_id)


def _iso(when: datetime) -> str:
    """The one text form of a head's time (what signatures cover)."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def current_frontier(con: duckdb.DuckDBPyConnection) -> merkle.Frontier:
    """The frontier of the latest tree head."""
    return _frontier(con)


def inclusion_proofs(
    con: duckdb.DuckDBPyConnection, seqs: Sequence[int], size: int
) -> dict[int, list[bytes]]:
    """RFC 9162 inclusion proofs of events ``seqs`` in the tree of ``size`` events."""
    store = DuckDBNodeStore(con)
    return {s: merkle.inclusion_proof(s, size, store) for s in seqs}


def consistency(con: duckdb.DuckDBPyConnection, old_size: int, new_size: int) -> list[bytes]:
    """RFC 9162 consistency proof between two tree sizes of this ledger."""
    return merkle.consistency_proof(old_size, new_size, DuckDBNodeStore(con))


# ---------------------------------------------------------------- the check


@dataclass
class LedgerCheck:
    """The outcome of :func:`check_ledger`."""

    ok: bool
    events: int
    heads: int
    problems: list[str] = field(default_factory=list)
    first_bad_seq: int | None = None

    def describe(self) -> str:
        """One paragraph for people."""
        if self.ok:
            return f"ledger ok: {self.events} events, {self.heads} tree heads verified"
        where = f" (first bad event: seq {self.first_bad_seq})" if self.first_bad_seq is not None else ""
        return "ledger check FAILED" + where + ": " + "; ".join(self.problems)


def check_ledger(con: duckdb.DuckDBPyConnection) -> LedgerCheck:
    """Detect any edit, deletion, insertion or reordering of stored events.

    1. seq runs 0..n-1 without gaps or repeats;
    2. every live event's leaf hash is SHA-256(0x00 || the canonical
       serialization of its columns);
    3. leaf hashes rebuilt into the tree give every recorded tree head's root,
       and the stored nodes agree with them.
    """
    install(con)
    n, lo, hi, distinct = con.execute(
        "SELECT count(*), min(seq), max(seq), count(DISTINCT seq) FROM ledger_events"
    ).fetchone()  # type: ignore[misc]
    heads = con.execute("SELECT tree_size, root_hash FROM tree_heads ORDER BY tree_size, recorded_at").fetchall()
    result = LedgerCheck(ok=True, events=int(n), heads=len(heads))

    def bad(message: str, seq: int | None) -> None:
        result.ok = False
        result.problems.append(message)
        if seq is not None and (result.first_bad_seq is None or seq < result.first_bad_seq):
            result.first_bad_seq = seq

    if n and (lo != 0 or hi != n - 1 or distinct != n):
        gap = con.execute(
            "SELECT min(expected) FROM (SELECT seq AS s, row_number() OVER (ORDER BY seq) - 1 AS expected "
            "FROM ledger_events) WHERE s <> expected"
        ).fetchone()[0]  # type: ignore[index]
        bad(f"event sequence is not 0..{n - 1}: an event was deleted, inserted or renumbered", gap)
    row = con.execute(
        f"""SELECT min(seq), count(*) FROM ledger_events
            WHERE erased_at IS NULL AND leaf_hash IS DISTINCT FROM {LEAF_SQL}"""
    ).fetchone()
    if row and row[1]:
        bad(f"{row[1]} event(s) whose columns and leaf hash disagree (edited)", int(row[0]))
    misshapen = con.execute(
        "SELECT min(seq) FROM ledger_events WHERE leaf_hash IS NULL OR octet_length(leaf_hash) <> 32"
    ).fetchone()[0]  # type: ignore[index]
    if misshapen is not None:
        # No tree can be rebuilt over a leaf that is not a SHA-256 digest.
        bad("an event's leaf hash is not a 32-byte digest (edited)", int(misshapen))
        return result
    # Rebuild the tree in seq order and compare with each recorded head.
    frontier = merkle.Frontier()
    head_iter = iter(heads)
    pending = next(head_iter, None)
    stored_level0 = con.execute(
        "SELECT e.seq FROM ledger_events e LEFT JOIN ledger_nodes n ON n.level = 0 AND n.idx = e.seq "
        "WHERE n.hash IS DISTINCT FROM e.leaf_hash ORDER BY e.seq LIMIT 1"
    ).fetchone()
    if stored_level0:
        bad("an event's leaf hash differs from the tree's stored leaf (edited or reordered)", int(stored_level0[0]))
    reader = con.execute("SELECT leaf_hash FROM ledger_events ORDER BY seq")
    while pending is not None and pending[0] == 0:
        pending = next(head_iter, None)
    while True:
        chunk = reader.fetchmany(65536)
        if not chunk:
            break
        hashes = [bytes(r[0]) for r in chunk]
        offset = 0
        while pending is not None and frontier.size + len(hashes) - offset >= pending[0]:
            take = pending[0] - frontier.size
            frontier.extend(hashes[offset : offset + take])
            offset += take
            if frontier.root().hex() != pending[1]:
                bad(f"tree head of size {pending[0]} does not match the events (root differs)", None)
            pending = next(head_iter, None)
        frontier.extend(hashes[offset:])
    if pending is not None:
        bad(f"tree head of size {pending[0]} covers more events than the ledger holds ({n})", int(n))
    return result


# ---------------------------------------------------------------- state as of a date

# ledger_current: every event once, under its key of the current generation (as
# recorded, unless a rotation mapped it). ledger_current_of('table') is the same rows
# for the subject keys in a table's subject_key column: readers of a set of subjects
# use it because DuckDB does not push a key filter through the map join (47M events,
# 14M mapped subjects, 1M keys: 16-19 s through the view, 3.5 s through the macro).
STATE_VIEWS = """
CREATE OR REPLACE VIEW ledger_current AS
    SELECT e.*, e.subject_key AS stored_subject_key
    FROM ledger_events e
    WHERE NOT EXISTS (SELECT 1 FROM subject_key_map m
                      WHERE m.key_id IS NOT DISTINCT FROM e.key_id AND m.subject_key = e.subject_key)
    UNION ALL
    SELECT e.* REPLACE (m.current_key AS subject_key), e.subject_key AS stored_subject_key
    FROM subject_key_map m
    JOIN ledger_events e ON m.key_id IS NOT DISTINCT FROM e.key_id AND m.subject_key = e.subject_key;
CREATE OR REPLACE MACRO ledger_current_of(keys) AS TABLE
    SELECT e.*, e.subject_key AS stored_subject_key
    FROM ledger_events e
    WHERE e.subject_key IN (SELECT subject_key FROM query_table(keys))
      AND NOT EXISTS (SELECT 1 FROM subject_key_map m
                      WHERE m.key_id IS NOT DISTINCT FROM e.key_id AND m.subject_key = e.subject_key)
    UNION ALL
    SELECT e.* REPLACE (m.current_key AS subject_key), e.subject_key AS stored_subject_key
    FROM (SELECT * FROM subject_key_map WHERE current_key IN (SELECT subject_key FROM query_table(keys))) m
    JOIN ledger_events e ON m.key_id IS NOT DISTINCT FROM e.key_id AND m.subject_key = e.subject_key;
CREATE OR REPLACE MACRO consent_as_of(ts) AS TABLE
    SELECT subject_key, purpose,
           max("at") FILTER (WHERE type = 'consent_granted') AS granted_at,
           max("at") FILTER (WHERE type = 'consent_withdrawn') AS withdrawn_at,
           bool_or(proof IS NOT NULL) FILTER (WHERE type = 'consent_granted') AS has_proof
    FROM ledger_current
    WHERE type IN ('consent_granted', 'consent_withdrawn') AND purpose IS NOT NULL
      AND "at" <= ts AND erased_at IS NULL
    GROUP BY subject_key, purpose
    HAVING granted_at IS NOT NULL AND (withdrawn_at IS NULL OR withdrawn_at < granted_at);
CREATE OR REPLACE MACRO optouts_as_of(ts) AS TABLE
    SELECT subject_key, channel, min("at") AS opted_out_at, list(DISTINCT origin ORDER BY origin) AS origins
    FROM ledger_current
    WHERE type = 'opted_out' AND "at" <= ts AND erased_at IS NULL
    GROUP BY subject_key, channel;
CREATE OR REPLACE MACRO custody_as_of(ts) AS TABLE
    SELECT subject_key, list(struct_pack(party_from := party_from, party_to := party_to,
                                         "at" := "at", vendor := vendor, delivery_id := delivery_id)
                             ORDER BY seq) AS chain
    FROM ledger_current
    WHERE type IN ('transferred', 'delivered') AND coalesce("at", TIMESTAMPTZ '-infinity') <= ts
      AND erased_at IS NULL
    GROUP BY subject_key;
"""


@dataclass
class SubjectState:
    """What the ledger says of one subject at one instant."""

    subject_key: str
    consented: dict[str, str] = field(default_factory=dict)  # purpose -> granted_at (ISO)
    opted_out: dict[str, str] = field(default_factory=dict)  # channel -> at (ISO)
    custody: list[dict[str, Any]] = field(default_factory=list)


def state_as_of(
    con: duckdb.DuckDBPyConnection, at: datetime, subject_keys: Sequence[str] | None = None
) -> dict[str, SubjectState]:
    """Consented purposes, opted-out channels and custody chain per subject at ``at``.

    A consent counts when granted at or before ``at`` and not withdrawn after that
    grant; an opt-out counts from its instant on; custody lists the transfers and
    deliveries dated at or before ``at`` (undated transfers count), in ledger order.
    """
    install(con)
    filt = ""
    params: list[Any] = [at]
    if subject_keys is not None:
        con.register("_subjects", pa.table({"subject_key": pa.array(list(subject_keys), pa.string())}))
        filt = " WHERE subject_key IN (SELECT subject_key FROM _subjects)"
    states: dict[str, SubjectState] = {}

    def get(s: str) -> SubjectState:
        if s not in states:
            states[s] = SubjectState(s)
        return states[s]

    try:
        for s, purpose, granted in con.execute(
            f"SELECT subject_key, purpose, granted_at FROM consent_as_of(?){filt}", params
        ).fetchall():
            get(s).consented[purpose] = granted.astimezone(timezone.utc).isoformat()
        for s, channel, when in con.execute(
            f"SELECT subject_key, channel, opted_out_at FROM optouts_as_of(?){filt}", params
        ).fetchall():
            get(s).opted_out[channel] = when.astimezone(timezone.utc).isoformat()
        for s, chain in con.execute(f"SELECT subject_key, chain FROM custody_as_of(?){filt}", params).fetchall():
            get(s).custody = [
                {**hop, "at": hop["at"].astimezone(timezone.utc).isoformat() if hop["at"] else None}
                for hop in chain
            ]
    finally:
        if subject_keys is not None:
            con.unregister("_subjects")
    return states
