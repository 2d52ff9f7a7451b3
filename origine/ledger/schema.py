"""The ledger's tables: leaves, tree nodes, signed heads, the key map, erasures; and
the ``ledger_events`` view readers use."""

from __future__ import annotations

import duckdb

from origine.errors import OrigineError
from origine.ledger.checkpoint import HEADS_SCHEMA
from origine.ledger.events import EVENTS_VIEW, LEAF_COLUMNS
from origine.ledger.state import STATE_VIEWS
from origine.ledger.tree import NODES_SCHEMA

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS ledger_leaves (
    seq BIGINT NOT NULL,
    {", ".join(f'"{n}" {t}' for n, t in LEAF_COLUMNS)},
    -- random bytes: string compression never shrinks them (see ledger_nodes.hash)
    leaf_hash BLOB NOT NULL USING COMPRESSION uncompressed,
    erased_at TIMESTAMPTZ
);
{NODES_SCHEMA}
{HEADS_SCHEMA}
-- Ledger leaves keep the subject key they were recorded with; after key rotations
-- this gives each stored (key_id, subject_key) its key under the current generation
-- (origine.rotation). The view ledger_current reads events through it. Its content
-- is committed to by the latest key_map leaf.
CREATE TABLE IF NOT EXISTS subject_key_map (
    key_id VARCHAR,
    subject_key VARCHAR NOT NULL,
    current_key VARCHAR NOT NULL
);
-- Which leaves each erasure leaf erased (the leaf commits to this list's digest).
CREATE TABLE IF NOT EXISTS erasures (
    erasure_seq BIGINT NOT NULL,
    event_seq BIGINT NOT NULL
);
"""

V1_MESSAGE = (
    "this home's ledger was written by an older origine (ledger format v1: one leaf per "
    "event{detail}); this origine writes and reads format v2 only and has no migration: "
    "ingest its deliveries again into a new home (ORIGINE_HOME) and keep the old home "
    "read-only with the origine version that wrote it"
)


def require_current(con: duckdb.DuckDBPyConnection) -> None:
    """Refuse a ledger written in format v1 (``OrigineError``), on any connection."""
    columns = {r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = 'tree_heads'"
    ).fetchall()}
    if columns and "checkpoint" not in columns:
        raise OrigineError(V1_MESSAGE.format(detail=", tree heads without signed C2SP checkpoints"))
    v1_table = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'ledger_events'"
    ).fetchone()[0]  # type: ignore[index]
    if v1_table:
        raise OrigineError(V1_MESSAGE.format(detail=", stored in table ledger_events"))


def install(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ledger tables and views (idempotent); UTC for every timestamp text.
    A v1 ledger is refused."""
    con.execute("SET TimeZone = 'UTC'")
    require_current(con)
    con.execute(SCHEMA)
    con.execute(EVENTS_VIEW)
    con.execute(STATE_VIEWS)
