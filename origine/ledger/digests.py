"""Digests of lists too long for one string: what an erasure leaf says it erased, and
what a key-map leaf says the subject key map holds.

``list digest`` of lines ``l_0 … l_{n-1}`` (in a stated order): cut the list into
chunks of :data:`CHUNK` consecutive lines; each chunk's digest is the lowercase hex
SHA-256 of its lines joined by ``"\\n"`` (UTF-8, no final newline); the list's digest
is the lowercase hex SHA-256 of the chunk digests joined by ``"\\n"`` (so the empty
list's is SHA-256 of nothing). Chunked so that DuckDB computes it set-wise, in
bounded memory, for tens of millions of lines (one string of 30M sequence numbers
would be 270 MB), and an independent verifier in a few lines (docs/ledger-format.md).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    import duckdb

CHUNK = 65536
"""Lines per chunk."""


def list_digest_sql(relation: str, line: str, order: str, *, group: str | None = None) -> str:
    """SQL giving ``(count, digest)`` of the lines ``line`` of ``relation`` in ``order``
    — per value of ``group`` (then also selected first, as ``grp``) when given."""
    part = f"PARTITION BY {group} " if group else ""
    grp = f"{group} AS grp, " if group else ""
    by = "grp, " if group else ""
    return f"""
        WITH _lines AS (
            SELECT {grp}({line})::VARCHAR AS line,
                   row_number() OVER ({part}ORDER BY {order}) - 1 AS n
            FROM {relation}
        ), _chunks AS (
            SELECT {by}n // {CHUNK} AS c, count(*) AS lines,
                   sha256(string_agg(line, chr(10) ORDER BY n)) AS d
            FROM _lines GROUP BY {by}c
        )
        SELECT {by}sum(lines)::BIGINT AS count, sha256(string_agg(d, chr(10) ORDER BY c)) AS digest
        FROM _chunks {"GROUP BY grp" if group else ""}
    """


def list_digest_stream(
    con: "duckdb.DuckDBPyConnection", relation: str, line: str, order: str
) -> tuple[int, str]:
    """``(count, digest)`` of the lines ``line`` of ``relation`` in ``order``, as
    :func:`list_digest_sql` gives them, in bounded memory for any number of lines.

    The lines come out of one ``ORDER BY`` (DuckDB's sort spills to disk) and are hashed
    chunk by chunk as they stream: a window ``row_number()`` over tens of millions of
    map lines (:func:`list_digest_sql`) ran out of a 2 GB cap at 15M rows.
    """
    # con.sql streams the sorted result (con.execute would collect all of it first); it
    # refuses to run while an earlier execute() on the connection is unread
    con.complete()
    reader = con.sql(f"SELECT ({line})::VARCHAR AS line FROM {relation} ORDER BY {order}").to_arrow_reader(CHUNK)
    count = 0
    chunk: list[str] = []
    chunks: list[str] = []
    for batch in reader:
        lines = batch.column(0).to_pylist()
        count += len(lines)
        while lines:
            room = CHUNK - len(chunk)
            chunk.extend(lines[:room])
            lines = lines[room:]
            if len(chunk) == CHUNK:
                chunks.append(hashlib.sha256("\n".join(chunk).encode()).hexdigest())
                chunk = []
    if chunk:
        chunks.append(hashlib.sha256("\n".join(chunk).encode()).hexdigest())
    return count, hashlib.sha256("\n".join(chunks).encode()).hexdigest()


def empty_digest() -> str:
    """The digest of the empty list (what :func:`list_digest_sql` cannot give: no row)."""
    return hashlib.sha256(b"").hexdigest()


def list_digest(lines: Iterable[str]) -> str:
    """The same digest in Python (tests and independent checks)."""
    chunk: list[str] = []
    digests: list[str] = []
    for item in lines:
        chunk.append(item)
        if len(chunk) == CHUNK:
            digests.append(hashlib.sha256("\n".join(chunk).encode()).hexdigest())
            chunk = []
    if chunk:
        digests.append(hashlib.sha256("\n".join(chunk).encode()).hexdigest())
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


# The two lists the ledger commits to, as (relation, line, order) for list_digest_sql.
ERASED_SEQS = ("seq::VARCHAR", "seq")
"""An erasure's line per erased event: its seq in decimal, ascending."""
KEY_MAP = (
    "coalesce(key_id, '') || ' ' || subject_key || ' ' || current_key",
    "key_id NULLS FIRST, subject_key, current_key",
)
"""A key-map line per row: ``key_id subject_key current_key`` (an absent key id as
the empty string), ordered by key id (absent first), then stored key, then current key."""
