"""A lookup index of the ledger: which leaves hold a stored subject key, found in milliseconds.

``lookup`` must answer "what do you hold on this number?" in well under a second on a
ledger of tens of millions of events; filtering ``ledger_events`` on a random hex key
reads the whole key column (1.4 s at 5M events). The index is a derived table,
``subject_index(h, seq)``: ``h`` the first 60 bits of each leaf's stored subject key,
``seq`` the leaf (``ledger_leaves``), **sorted by h**, so DuckDB's per-row-group min/max (zone maps)
skip every row group but one for a point query. It covers events up to
``subject_index_meta.indexed_upto``; a lookup reads the index for those and scans only
the later events (a ``seq`` range: the zone maps of the events table, which is in
``seq`` order, skip the rest).

It is not evidence and is never trusted as such: events are re-read from
``ledger_events`` by ``seq`` and filtered on their full subject key and ``erased_at``,
so a stale entry (an event erased since) is harmless, and an event appended since
is in the scanned tail. Stored keys never change (a key rotation maps them in
``subject_key_map``), nor do sequence numbers, so the index stays valid across
rotations and erasures. :func:`refresh` rebuilds it (one sort) when the tail has
grown; retention, which runs daily, calls it, as does ``origine ledger index``.
"""

from __future__ import annotations

from typing import Any

import duckdb

# Rebuild when the events not indexed exceed this many, or this share of the ledger.
TAIL_MAX = 500_000
TAIL_SHARE = 0.02
_H = "('0x' || left(subject_key, 15))::BIGINT"


def key_prefix(subject_key: str) -> int:
    """The index's ``h`` of a stored subject key (its first 15 hex digits)."""
    return int(subject_key[:15], 16)


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


def indexed_upto(con: duckdb.DuckDBPyConnection) -> int:
    """The last ``seq`` the index covers (-1 when there is no index)."""
    if "subject_index_meta" not in _tables(con):
        return -1
    row = con.execute("SELECT indexed_upto FROM subject_index_meta").fetchall()
    return int(row[0][0]) if row else -1


def refresh(con: duckdb.DuckDBPyConnection, *, force: bool = False) -> dict[str, Any]:
    """Rebuild the index when its tail is long (or ``force``); returns what it did.

    Runs in its own transaction on a writable connection.
    """
    if "ledger_leaves" not in _tables(con):
        return {"rebuilt": False, "indexed_upto": -1, "tail": 0}
    last = con.execute("SELECT coalesce(max(seq), -1) FROM ledger_leaves").fetchall()[0][0]
    upto = indexed_upto(con)
    tail = int(last) - upto
    if not force and tail <= min(TAIL_MAX, max(1, int((last + 1) * TAIL_SHARE))):
        return {"rebuilt": False, "indexed_upto": upto, "tail": tail}
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("SET preserve_insertion_order = true")  # the sort order is what makes it an index
        con.execute(
            f"""CREATE OR REPLACE TABLE subject_index AS
                SELECT {_H} AS h, seq FROM ledger_leaves
                WHERE subject_key IS NOT NULL AND seq <= ? ORDER BY h, seq""",
            [last],
        )
        # the rotation map sorted by today's key: the zone maps find a subject's older keys
        con.execute("CREATE OR REPLACE TABLE subject_map_index AS "
                    "SELECT current_key, key_id, subject_key FROM subject_key_map ORDER BY current_key")
        con.execute("CREATE OR REPLACE TABLE subject_index_meta AS SELECT ?::BIGINT AS indexed_upto, "
                    "?::BIGINT AS map_leaf", [last, _map_leaf(con)])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return {"rebuilt": True, "indexed_upto": int(last), "tail": 0}


def _map_leaf(con: duckdb.DuckDBPyConnection) -> int:
    """The seq of the latest ``key_map`` leaf: every change of the map records one."""
    return int(con.execute("SELECT coalesce(max(seq), -1) FROM ledger_leaves WHERE type = 'key_map'")
               .fetchall()[0][0])


def mapped_keys(con: duckdb.DuckDBPyConnection, subject_key: str) -> list[tuple[str | None, str]]:
    """``(key_id, stored key)`` of the older keys rotation maps to ``subject_key``: from the
    sorted copy while no ``key_map`` leaf came after it, else from the map itself."""
    if "subject_index_meta" in _tables(con):
        recorded = con.execute("SELECT map_leaf FROM subject_index_meta").fetchall()
        # the latest key_map leaf: a scan of the few events after the index, else the index's own
        later = con.execute("SELECT max(seq) FROM ledger_leaves WHERE type = 'key_map' AND seq > ?",
                            [indexed_upto(con)]).fetchall()[0][0]
        if recorded and later is None:
            return [(k, s) for k, s in con.execute(
                "SELECT key_id, subject_key FROM subject_map_index WHERE current_key = ?", [subject_key]).fetchall()]
    return [(k, s) for k, s in con.execute(
        "SELECT key_id, subject_key FROM subject_key_map WHERE current_key = ?", [subject_key]).fetchall()]


def is_mapped_away(con: duckdb.DuckDBPyConnection, key_id: str | None, stored_key: str) -> bool:
    """True when rotation maps the stored ``(key_id, stored_key)`` to a later key."""
    return con.execute(
        "SELECT 1 FROM subject_key_map WHERE key_id IS NOT DISTINCT FROM ? AND subject_key = ? LIMIT 1",
        [key_id, stored_key]).fetchall() != []


def events_for(con: duckdb.DuckDBPyConnection, stored_keys: list[str], columns: str) -> list[tuple[Any, ...]]:
    """``SELECT key_id, subject_key, <columns>`` of the live events whose stored subject
    key is one of ``stored_keys``, in ``seq`` order: through the index where it covers,
    by a scan of the later events beyond."""
    keys = sorted(set(stored_keys))
    marks = ", ".join("?" for _ in keys)
    upto = indexed_upto(con)
    seqs: list[int] = []
    if upto >= 0:
        prefixes = sorted({key_prefix(k) for k in keys})
        seqs = [r[0] for r in con.execute(
            f"SELECT seq FROM subject_index WHERE h IN ({', '.join('?' for _ in prefixes)})", prefixes).fetchall()]
    rows: list[tuple[Any, ...]] = []
    if seqs:
        # One range per run of consecutive seqs, as literals: DuckDB prunes row groups
        # on a constant range, not on an IN list of parameters (60 ms against 1 ms).
        parts = [
            f"""SELECT key_id, subject_key, {columns} FROM ledger_events
                WHERE seq BETWEEN {int(a)} AND {int(b)} AND subject_key IN ({marks}) AND erased_at IS NULL"""
            for a, b in _runs(seqs)
        ]
        rows += con.execute(" UNION ALL ".join(parts), keys * len(parts)).fetchall()
    rows += con.execute(
        f"""SELECT key_id, subject_key, {columns} FROM ledger_events
            WHERE seq > ? AND subject_key IN ({marks}) AND erased_at IS NULL""",
        [upto, *keys]).fetchall()
    return sorted(rows, key=lambda r: r[2])  # columns start with seq


def _runs(seqs: list[int]) -> list[tuple[int, int]]:
    """Sorted ``seqs`` as ``(first, last)`` runs of consecutive numbers."""
    out: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out
