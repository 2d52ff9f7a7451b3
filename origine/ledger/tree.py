"""The ledger's Merkle tree in DuckDB: ``ledger_nodes`` holds every complete node.

The tree is RFC 9162's (origine.merkle) over the leaves' hashes, whatever the leaves
say: node ``(level, idx)`` is the hash of the perfect subtree over leaves
``[idx * 2**level, (idx + 1) * 2**level)``; level 0 repeats the leaf hashes. A tree
of ``n`` leaves stores exactly ``n >> level`` nodes at each level, never changed
once written, so proofs and the root of any past size are read from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from origine import merkle

# A hash is 32 random bytes: DuckDB's string compression (dictionary + FSST) never
# shrinks them, but trying costs twice the rest of the insert (measured at 9.2M nodes:
# 3.6 s of CPU, 1.2 s uncompressed, for a file 5% larger, the level and idx columns
# still compressed).
NODES_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_nodes (
    level INTEGER NOT NULL,
    idx BIGINT NOT NULL,
    hash BLOB NOT NULL USING COMPRESSION uncompressed
);
"""


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
        # a file read once, at once: no compression, dictionary or statistics to compute
        self._writer = pq.ParquetWriter(
            path, _NODES_SCHEMA, compression="none", use_dictionary=False, write_statistics=False
        )
        self._pending: list[tuple[int, int, int, bytes]] = []
        self._buffered = 0
        self.written = 0

    def get(self, level: int, index: int) -> bytes:
        """Never read while appending (the frontier holds what extending needs)."""
        raise KeyError((level, index))

    def put_many(self, level: int, start_index: int, hashes: Sequence[bytes]) -> None:
        """Buffer consecutive nodes of one level; written a row group at a time."""
        self.put_packed(level, start_index, b"".join(hashes))

    def put_packed(self, level: int, start_index: int, packed: bytes) -> None:
        """:meth:`put_many` with the hashes back to back (32 bytes each)."""
        if level == 0:
            return
        if len(packed) % merkle.HASH_SIZE:
            raise ValueError("every node hash must be 32 bytes")
        count = len(packed) // merkle.HASH_SIZE
        self._pending.append((level, start_index, count, packed))
        self._buffered += count
        if self._buffered >= self.ROW_GROUP:
            self._write()

    def _write(self) -> None:
        if not self._pending:
            return
        levels = np.concatenate([np.full(n, lv, np.int32) for lv, _, n, _ in self._pending])
        indexes = np.concatenate([np.arange(start, start + n, dtype=np.int64) for _, start, n, _ in self._pending])
        # the packed hashes are the column's data buffer as they are: no object per node
        hashes = pa.FixedSizeBinaryArray.from_buffers(
            _HASH_TYPE, len(levels), [None, pa.py_buffer(b"".join(h for *_, h in self._pending))]
        )
        self._writer.write_batch(
            pa.RecordBatch.from_arrays([pa.array(levels), pa.array(indexes), hashes], schema=_NODES_SCHEMA)
        )
        self.written += len(levels)
        self._pending, self._buffered = [], 0

    def close(self) -> None:
        """Write what is buffered and close the file."""
        try:
            self._write()
        finally:
            self._writer.close()


_HASH_TYPE = pa.binary(merkle.HASH_SIZE)
_NODES_SCHEMA = pa.schema([("level", pa.int32()), ("idx", pa.int64()), ("hash", _HASH_TYPE)])


def inclusion_proofs(
    con: duckdb.DuckDBPyConnection, seqs: Sequence[int], size: int
) -> dict[int, list[bytes]]:
    """RFC 9162 inclusion proofs of leaves ``seqs`` in the tree of ``size`` leaves."""
    store = DuckDBNodeStore(con)
    return {s: merkle.inclusion_proof(s, size, store) for s in seqs}


def consistency(con: duckdb.DuckDBPyConnection, old_size: int, new_size: int) -> list[bytes]:
    """RFC 9162 consistency proof between two tree sizes of this ledger."""
    return merkle.consistency_proof(old_size, new_size, DuckDBNodeStore(con))


def subtree_nodes(size: int) -> list[tuple[int, int]]:
    """The nodes whose hashes fold into the root of the tree of ``size`` leaves
    (one perfect subtree per set bit of ``size``, largest first)."""
    out, position = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append((level, position >> level))
            position += 1 << level
    return out


def nodes_at(con: duckdb.DuckDBPyConnection, positions: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """The stored nodes at ``positions`` (those present), in one query: a lookup per
    node would scan the table once each."""
    wanted = sorted(set(positions))
    found: dict[tuple[int, int], bytes] = {}
    if wanted:
        for level, idx, digest in con.execute(
            "SELECT n.level, n.idx, any_value(n.hash) FROM ledger_nodes n "
            "JOIN (SELECT unnest(?::INTEGER[]) AS level, unnest(?::BIGINT[]) AS idx) w USING (level, idx) "
            "GROUP BY ALL",
            [[lv for lv, _ in wanted], [i for _, i in wanted]],
        ).fetchall():
            found[(int(level), int(idx))] = bytes(digest)
    return found


def stored_frontier(con: duckdb.DuckDBPyConnection, size: int) -> merkle.Frontier:
    """The frontier of the first ``size`` leaves rebuilt from the stored nodes
    (``KeyError`` naming a missing node)."""
    positions = [(j, (size >> j) - 1) for j in range(size.bit_length()) if size >> j & 1]
    found = nodes_at(con, positions)

    class _Found:
        def get(self, level: int, index: int) -> bytes:
            return found[(level, index)]

        def put_many(self, level: int, start_index: int, hashes: Sequence[bytes]) -> None:
            raise TypeError("read-only")

    return merkle.Frontier.from_store(size, _Found())


def roots_at(con: duckdb.DuckDBPyConnection, sizes: Sequence[int]) -> dict[int, bytes | None]:
    """The root of the tree at each size, from the stored nodes in one query
    (``None`` where a node it needs is missing)."""
    found = nodes_at(con, [node for size in sizes for node in subtree_nodes(size)])
    roots: dict[int, bytes | None] = {}
    for size in sizes:
        pieces = [found.get(node) for node in subtree_nodes(size)]
        if size == 0:
            roots[size] = merkle.EMPTY_ROOT
        elif any(p is None for p in pieces):
            roots[size] = None
        else:
            acc = pieces[-1]
            for left in reversed(pieces[:-1]):
                acc = merkle.node_hash(left, acc)  # type: ignore[arg-type]
            roots[size] = acc
    return roots
