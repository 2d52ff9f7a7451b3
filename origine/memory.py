"""One memory bound for every DuckDB database the process opens.

A DuckDB database left at its default may take 80% of the machine's RAM, and
scans, joins and inserts of a 55M-row delivery would. Capped, DuckDB spills to
disk instead; the cap is per database, so every connection — the warehouse,
the in-memory ones that build segments and events, those GX validates through —
gets it, not only the warehouse's.
"""

from __future__ import annotations

import os
import re

import duckdb

from origine.errors import OrigineError

MEMORY_ENV = "ORIGINE_DUCKDB_MEMORY"
DEFAULT_LIMIT = "2GB"
_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


def memory_limit() -> str:
    """``$ORIGINE_DUCKDB_MEMORY`` (e.g. ``4GB``), else :data:`DEFAULT_LIMIT`."""
    text = os.environ.get(MEMORY_ENV) or DEFAULT_LIMIT
    if not _SIZE.match(text):
        raise OrigineError(f"{MEMORY_ENV}={text!r} is not a size such as 1GB or 512MB")
    return text.strip()


def bound(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Cap ``con``'s database at :func:`memory_limit` (past it, DuckDB spills); ``con``."""
    con.execute(f"SET memory_limit = '{memory_limit()}'")
    return con
