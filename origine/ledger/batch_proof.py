"""Batch inclusion proofs: one proof for many leaves of an RFC 9162 tree.

A bundle cites millions of leaves; one audit path per leaf repeats the same upper
nodes millions of times and costs a lookup per node. The batch proof is instead the
set of tree nodes needed, besides the cited leaves themselves, to recompute the root
of the tree of ``size`` leaves: at each level, the sibling of every node the cited
leaves reach, when no cited leaf reaches that sibling. docs/bundle-format.md is the
reference (which nodes, in which order, how to verify in bounded memory).

Tree positions are those of :mod:`origine.ledger.tree`: node ``(level, idx)`` covers
leaves ``[idx * 2**level, min((idx + 1) * 2**level, size))``; at each level the
nodes are ``0 … ceil(size / 2**level) - 1``; the last one is *ragged* (covers fewer
than ``2**level`` leaves) when ``size`` is not a multiple of ``2**level``. A node is
``SHA-256(0x01 || left || right)`` of its two children, or its left child itself
when it has no right child (RFC 9162's split at the largest power of two gives
exactly this shape). Leaves are opaque here: only their hashes matter.

Computed set-wise: one DuckDB query per tree level over the cited indices (never a
query per node); perfect nodes come from ``ledger_nodes`` (immutable once written,
so a tree grown since by another writer proves the same), ragged ones are folded
from the O(log n) perfect nodes of ``size``'s right edge.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Iterable, Iterator

import duckdb

from origine.ledger.tree import nodes_at

_NODE = b"\x01"


def height(size: int) -> int:
    """Levels above the leaves in the tree of ``size`` leaves (0 for 0 or 1 leaf)."""
    return (size - 1).bit_length() if size > 1 else 0


def width(size: int, level: int) -> int:
    """How many nodes level ``level`` of the tree of ``size`` leaves has."""
    return (size + (1 << level) - 1) >> level


def ragged_nodes(con: duckdb.DuckDBPyConnection, size: int) -> dict[int, bytes]:
    """The hash of the ragged node at each level of the tree of ``size`` leaves that
    has one (level -> hash; its index is ``size >> level``), folded from the stored
    perfect nodes of the right edge."""
    bits = [j for j in range(size.bit_length()) if size >> j & 1]
    found = nodes_at(con, [(j, (size >> j) - 1) for j in bits])
    missing = [(j, (size >> j) - 1) for j in bits if (j, (size >> j) - 1) not in found]
    if missing:
        raise KeyError(missing[0])
    out: dict[int, bytes] = {}
    acc: bytes | None = None
    for level in range(1, height(size) + 1):
        j = level - 1
        if size >> j & 1:
            piece = found[(j, (size >> j) - 1)]
            acc = piece if acc is None else hashlib.sha256(_NODE + piece + acc).digest()
        if size & ((1 << level) - 1):
            assert acc is not None
            out[level] = acc
    return out


def compute(con: duckdb.DuckDBPyConnection, cited: str, size: int, table: str = "_batch_proof") -> int:
    """Fill the temporary table ``table(level, idx, hash)`` with the batch proof of the
    leaves whose indices are column ``seq`` of relation ``cited`` (distinct, each
    ``< size``), in the tree of ``size`` leaves; return its node count.

    ``KeyError((level, idx))`` names a node the store lacks.
    """
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} (level INTEGER, idx BIGINT, hash BLOB)")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _bp_need (level INTEGER, idx BIGINT)")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _bp_at AS SELECT DISTINCT seq::BIGINT AS idx FROM {cited}")
    try:
        for level in range(height(size)):
            # Siblings the cited leaves do not reach, within this level's width.
            con.execute(
                "INSERT INTO _bp_need SELECT ?, s FROM (SELECT DISTINCT xor(idx, 1) AS s FROM _bp_at) "
                "WHERE s < ? AND s NOT IN (SELECT idx FROM _bp_at)",
                [level, width(size, level)],
            )
            con.execute("CREATE OR REPLACE TEMP TABLE _bp_at AS SELECT DISTINCT idx >> 1 AS idx FROM _bp_at")
        ragged = ragged_nodes(con, size) if size else {}
        con.execute(
            f"INSERT INTO {table} SELECT w.level, w.idx, any_value(n.hash) FROM _bp_need w "
            "JOIN ledger_nodes n ON n.level = w.level AND n.idx = w.idx "
            "WHERE (w.idx + 1) << w.level <= ? GROUP BY ALL",
            [size],
        )
        rows = [(lv, size >> lv, h) for lv, h in ragged.items()]
        con.execute(
            f"INSERT INTO {table} SELECT w.level, w.idx, r.hash FROM _bp_need w JOIN "
            "(SELECT unnest(?::INTEGER[]) AS level, unnest(?::BIGINT[]) AS idx, unnest(?::BLOB[]) AS hash) r "
            "USING (level, idx)",
            [[r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]],
        )
        missing = con.execute(
            f"SELECT w.level, w.idx FROM _bp_need w ANTI JOIN {table} p USING (level, idx) "
            "ORDER BY w.level, w.idx LIMIT 1"
        ).fetchone()
        if missing:
            raise KeyError((int(missing[0]), int(missing[1])))
        return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
    finally:
        con.execute("DROP TABLE IF EXISTS _bp_need")
        con.execute("DROP TABLE IF EXISTS _bp_at")


def write_nodes(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> None:
    """Write a computed proof as text, one node per line ``<level> <idx> <hex hash>``,
    ordered by (level, idx) (docs/bundle-format.md)."""
    from origine.warehouse import sql_text  # origine.warehouse imports the ledger package

    target = sql_text(path)
    con.execute(
        f"COPY (SELECT level, idx, lower(hex(hash)) FROM {table} ORDER BY level, idx) "
        f"TO '{target}' (FORMAT CSV, DELIMITER ' ', HEADER false, QUOTE '')"
    )


class BatchProofError(ValueError):
    """A batch proof that does not fit its leaves (message says where)."""


def read_nodes(lines: Iterable[bytes | str], level: int) -> Iterator[tuple[int, bytes]]:
    """The nodes of ``level`` from a proof file's lines (``<level> <idx> <hex>``)."""
    for n, raw in enumerate(lines, 1):
        line = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
        line = line.rstrip("\r\n")
        if not line:
            continue
        parts = line.split(" ")
        try:
            lv, idx, digest = int(parts[0]), int(parts[1]), bytes.fromhex(parts[2])
            if len(parts) != 3 or len(digest) != 32:
                raise ValueError
        except (ValueError, IndexError):
            raise BatchProofError(f"proof node line {n} is not '<level> <idx> <64 hex digits>'") from None
        if lv == level:
            yield idx, digest
        elif lv > level:
            return


def root_from(
    leaves: Iterable[tuple[int, bytes]], nodes: Callable[[int], Iterable[tuple[int, bytes]]], size: int
) -> bytes:
    """The root recomputed from the cited leaves' hashes ``(index, leaf hash)`` in
    ascending index and the proof nodes, ``nodes(level)`` giving that level's
    ``(idx, hash)`` in ascending idx; a level-by-level merge, one generator per level,
    so memory is O(log size) whatever the counts.

    ``BatchProofError`` when the proof does not fit (a node missing, out of order,
    repeated, or left over).
    """
    if size <= 0:
        raise BatchProofError("no leaves to prove in an empty tree")
    stream: Iterator[tuple[int, bytes]] = iter(leaves)
    for level in range(height(size) + 1):
        merged = _merge(stream, iter(nodes(level)), level, width(size, level))
        if level == height(size):
            top = list(merged)
            if len(top) != 1 or top[0][0] != 0:
                raise BatchProofError("the proof does not reach the root")
            return top[0][1]
        stream = _parents(merged, level, width(size, level))
    raise AssertionError("unreachable")


def _merge(a: Iterator[tuple[int, bytes]], b: Iterator[tuple[int, bytes]], level: int,
           count: int) -> Iterator[tuple[int, bytes]]:
    """Both sorted streams of one level as one, strictly ascending, within the level."""
    last = -1
    x, y = next(a, None), next(b, None)
    while x is not None or y is not None:
        if y is None or (x is not None and x[0] <= y[0]):
            item, x = x, next(a, None)
        else:
            item, y = y, next(b, None)
        assert item is not None
        if item[0] <= last:
            raise BatchProofError(f"level {level}: node {item[0]} repeated or out of order")
        if item[0] >= count:
            raise BatchProofError(f"level {level}: node {item[0]} is outside a tree of this size")
        last = item[0]
        yield item


def _parents(nodes: Iterator[tuple[int, bytes]], level: int, count: int) -> Iterator[tuple[int, bytes]]:
    """The next level up from a level's sorted nodes (a lone last node is promoted)."""
    sha = hashlib.sha256
    pending: tuple[int, bytes] | None = None
    for idx, digest in nodes:
        if pending is None:
            if idx & 1:
                raise BatchProofError(f"level {level}: node {idx - 1} (left of {idx}) is missing")
            if idx == count - 1:
                yield idx >> 1, digest
            else:
                pending = (idx, digest)
            continue
        if idx != pending[0] + 1:
            raise BatchProofError(f"level {level}: node {pending[0] + 1} (right of {pending[0]}) is missing")
        yield idx >> 1, sha(_NODE + pending[1] + digest).digest()
        pending = None
    if pending is not None:
        raise BatchProofError(f"level {level}: node {pending[0] + 1} (right of {pending[0]}) is missing")
