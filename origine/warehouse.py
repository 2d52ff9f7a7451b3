"""The embedded DuckDB warehouse: connection, locking, transactions and schema.

DuckDB allows one writing process at a time; a second one waits for the lock
(bounded) and then fails clearly, never half-writes. What goes in is written by
each step in its own transaction (ingest's commit: :mod:`origine.ingest.commit`).
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import duckdb

from origine import ledger, memory
from origine.canonical import DELIVERY_ROWS_DDL
from origine.errors import HashKeyError, OrigineError

# delivery_rows: one column per row column of the canonical declaration (origine.canonical).
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    vendor VARCHAR NOT NULL,
    delivery_id VARCHAR NOT NULL,
    fingerprint VARCHAR NOT NULL,
    recipient VARCHAR,
    delivered_at TIMESTAMPTZ NOT NULL,
    country VARCHAR NOT NULL,
    key_id VARCHAR NOT NULL,
    rows_read BIGINT NOT NULL,
    rows_accepted BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL,
    claims JSON,
    report JSON NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (vendor, delivery_id)
);
CREATE TABLE IF NOT EXISTS delivery_files (
    vendor VARCHAR NOT NULL,
    delivery_id VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    format JSON NOT NULL,
    rows_read BIGINT NOT NULL,
    rows_accepted BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL,
    columns VARCHAR[] NOT NULL,
    ignored_columns VARCHAR[] NOT NULL
);
""" + DELIVERY_ROWS_DDL + """CREATE TABLE IF NOT EXISTS quarantine (
    vendor VARCHAR NOT NULL,
    delivery_id VARCHAR NOT NULL,
    file VARCHAR NOT NULL,
    file_sha256 VARCHAR NOT NULL,
    row BIGINT NOT NULL,
    reason VARCHAR NOT NULL,
    "column" VARCHAR,
    subject_key VARCHAR
);
CREATE TABLE IF NOT EXISTS findings (
    vendor VARCHAR NOT NULL,
    delivery_id VARCHAR NOT NULL,
    code VARCHAR NOT NULL,
    detail JSON NOT NULL
);
"""

T = TypeVar("T")

LOCK_WAIT_SECONDS = 120.0
LOCK_WAIT_ENV = "ORIGINE_LOCK_WAIT"


def sql_text(value: object) -> str:
    """``value`` as text to put inside a single-quoted SQL literal (quotes doubled): for
    file paths in ``read_parquet('…')`` / ``COPY … TO '…'``, which DuckDB takes no
    parameter for."""
    return str(value).replace("'", "''")


def lock_wait_seconds() -> float:
    """How long to wait for another process's lock: ``$ORIGINE_LOCK_WAIT`` s, else 120."""
    text = os.environ.get(LOCK_WAIT_ENV)
    if not text:
        return LOCK_WAIT_SECONDS
    try:
        return max(float(text), 0.0)
    except ValueError:
        raise OrigineError(f"{LOCK_WAIT_ENV}={text!r} is not a number of seconds") from None


def connect(path: Path, *, read_only: bool = False, wait: float | None = None) -> duckdb.DuckDBPyConnection:
    """Open the warehouse, waiting up to ``wait`` seconds (default :func:`lock_wait_seconds`)
    for another process's lock."""
    if wait is None:
        wait = lock_wait_seconds()
    if read_only and not path.exists():
        connect(path, wait=wait).close()  # read-only needs a warehouse: create it first
    con = _open(path, read_only, wait)
    if read_only and _schema_outdated(con):
        # Written by an older origine: bring it up to date (a write open installs the
        # views readers need), then read.
        con.close()
        connect(path, wait=wait).close()
        con = _open(path, read_only, wait)
    con.execute("SET TimeZone = 'UTC'")
    memory.bound(con)
    if not read_only:
        con.execute(SCHEMA)
        ledger.install(con)
    return con


def retry_while_locked(
    attempt: Callable[[], T],
    wait: float,
    *,
    errors: type[Exception] | tuple[type[Exception], ...] = duckdb.IOException,
    before_retry: Callable[[], None] | None = None,
) -> T:
    """``attempt()``, tried again while it fails on another process's lock, for up to ``wait`` s.

    DuckDB lets one process write a file: a run that finds the warehouse locked waits
    for the other run rather than failing. The pause grows from 50 ms to 1 s, so a short
    lock costs little and a long one is not polled hard. An error of ``errors`` whose
    message names a lock is retried (after ``before_retry``, e.g. closing a half-opened
    connection); any other error, or the lock error once the wait is over, propagates.
    """
    deadline = time.monotonic() + wait
    delay = 0.05
    while True:
        try:
            return attempt()
        except errors as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise
        if before_retry is not None:
            before_retry()
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def _open(path: Path, read_only: bool, wait: float) -> duckdb.DuckDBPyConnection:
    try:
        return retry_while_locked(lambda: duckdb.connect(str(path), read_only=read_only), wait)
    except duckdb.IOException as exc:
        raise OrigineError(
            f"warehouse {path} is locked by another process (waited {wait:.0f}s): "
            "retry when the other run has finished"
            if "lock" in str(exc).lower()
            else f"cannot open warehouse {path}: {exc}"
        ) from None


def _schema_outdated(con: duckdb.DuckDBPyConnection) -> bool:
    """True when the file predates a view or macro readers need (installed by
    ``ledger.install`` on every write open since)."""
    # Binding the macro costs ~1 ms; listing duckdb_functions() (every built-in) ~50 ms,
    # most of a lookup's time.
    try:
        con.execute("SELECT * FROM ledger_current_of('ledger_events') LIMIT 0").fetchall()
    except duckdb.Error:
        return True
    return False


def select_list(con: duckdb.DuckDBPyConnection, table: str, alias: str, replace: dict[str, str]) -> str:
    """``table``'s columns in their order as a SELECT list over ``alias``, those named
    in ``replace`` given by its expressions instead (for :func:`rewrite_table`)."""
    columns = [r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index", [table]
    ).fetchall()]
    return ", ".join(replace.get(c, f'{alias}."{c}"') for c in columns)


def rewrite_table(
    con: duckdb.DuckDBPyConnection, table: str, select: Callable[[str], str], params: dict[str, Any] | None = None
) -> int:
    """Replace ``table``'s rows by ``select(name of the old table)``; return how many it holds.

    The table is renamed, re-created from its own DDL (constraints kept) and filled by
    one ``INSERT … SELECT`` in source order, then the old one is dropped. Inside the
    caller's transaction, for changes to millions of rows: DuckDB spills a single
    statement's rows to disk, whereas an in-place ``UPDATE`` keeps every changed row in
    memory until the transaction commits (14M re-keyed rows ran out of a 2 GB cap).
    """
    [ddl] = con.execute("SELECT sql FROM duckdb_tables() WHERE table_name = ?", [table]).fetchone()  # type: ignore[misc]
    before = f"{table}__before_rewrite"
    con.execute(f"ALTER TABLE {table} RENAME TO {before}")
    con.execute(ddl)
    count = con.execute(f"INSERT INTO {table} {select(before)}", params).fetchone()[0]  # type: ignore[index]
    con.execute(f"DROP TABLE {before}")
    return int(count)


@contextmanager
def session(path: Path, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection closed on exit."""
    con = connect(path, read_only=read_only)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN … COMMIT, rolled back on any exception."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


_KEY_HINT = (
    "use the home's key with every rotation layer ($ORIGINE_HASH_KEY_LAYERS, oldest first); "
    "`origine key rotate` adds a layer"
)


def check_key(con: duckdb.DuckDBPyConnection, key_id: str) -> None:
    """Refuse a key other than the one this warehouse was built with."""
    row = con.execute("SELECT value FROM meta WHERE name = 'key_id'").fetchone()
    if row is None:
        con.execute("INSERT INTO meta VALUES ('key_id', ?)", [key_id])
    elif row[0] != key_id:
        raise HashKeyError(
            f"this home's subject keys were made with key {row[0]}, not {key_id}: " + _KEY_HINT
        )


def check_key_readonly(con: duckdb.DuckDBPyConnection, key_id: str) -> None:
    """Like :func:`check_key`, on a read-only connection (records nothing)."""
    row = con.execute("SELECT value FROM meta WHERE name = 'key_id'").fetchone()
    if row is not None and row[0] != key_id:
        raise HashKeyError(
            f"this home's subject keys were made with key {row[0]}, not {key_id}: " + _KEY_HINT
        )


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Row counts per table, for run metadata."""
    tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
    return {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}  # type: ignore[index]
