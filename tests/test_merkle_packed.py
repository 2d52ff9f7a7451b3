"""The packed-hash paths of the tree (issue 15, speed): ``Frontier.extend_packed``,
``merkle.pair_hashes``, ``NodeStore.put_packed``, the ledger's ``leaf_digests`` and
``ParquetNodeWriter``, and the append feeding the tree from the events file's Arrow
buffers. Each is held to a path that does not share its code: the one-leaf-at-a-time
frontier, and a reference written here from RFC 9162's definition of MTH.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from origine import merkle
from origine.ledger import append as ledger_append
from origine.ledger.events import leaf_digests
from origine.ledger.schema import SCHEMA
from origine.ledger.tree import ParquetNodeWriter
from origine.merkle import Frontier, MemoryNodeStore

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _leaf(i: int) -> bytes:
    return hashlib.sha256(b"\x00" + i.to_bytes(4, "big")).digest()


def _ref_mth(hashes: list[bytes]) -> bytes:
    """MTH over leaf hashes, straight from RFC 9162 §2.1.1's recursion."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return hashlib.sha256(b"\x01" + _ref_mth(hashes[:k]) + _ref_mth(hashes[k:])).digest()


class _Recorder:
    """A store that keeps every write, as the ledger's writer receives them."""

    def __init__(self, packed: bool) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        if packed:
            self.put_packed = self._put_packed

    def get(self, level: int, index: int) -> bytes:
        return self.nodes[(level, index)]

    def put_many(self, level: int, start_index: int, hashes: list[bytes]) -> None:
        for i, h in enumerate(hashes):
            assert (level, start_index + i) not in self.nodes, "a node written twice"
            self.nodes[(level, start_index + i)] = h

    def _put_packed(self, level: int, start_index: int, packed: bytes) -> None:
        assert isinstance(packed, bytes) and len(packed) % 32 == 0
        self.put_many(level, start_index, [packed[i : i + 32] for i in range(0, len(packed), 32)])


@SETTINGS
@given(
    start=st.integers(0, 300),
    count=st.integers(0, 300),
    chunk=st.sampled_from([1, 2, 3, 5, 8, 64, 1 << 16]),
    packed_store=st.booleans(),
    buffer=st.sampled_from(["bytes", "bytearray", "memoryview"]),
)
def test_extend_packed_is_the_frontier_path(
    start: int, count: int, chunk: int, packed_store: bool, buffer: str
) -> None:
    """From any size, in any chunking, appending packed hashes gives the frontier,
    root and new nodes that appending them one at a time gives, and the RFC's root."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(merkle, "_EXTEND_CHUNK", chunk)
        _check_extend_packed(start, count, packed_store, buffer)


def _check_extend_packed(start: int, count: int, packed_store: bool, buffer: str) -> None:
    hashes = [_leaf(i) for i in range(start + count)]
    one_by_one, by_leaf = Frontier(), _Recorder(packed=False)
    for h in hashes[:start]:
        one_by_one.append(h)
    packed_frontier = one_by_one.copy()
    for h in hashes[start:]:
        one_by_one.append(h, by_leaf)

    store = _Recorder(packed=packed_store)
    data = b"".join(hashes[start:])
    given_buffer = {"bytes": data, "bytearray": bytearray(data), "memoryview": memoryview(data)}[buffer]
    packed_frontier.extend_packed(given_buffer, store)

    assert packed_frontier == one_by_one
    assert packed_frontier.size == start + count
    assert packed_frontier.root() == (_ref_mth(hashes) if hashes else merkle.EMPTY_ROOT)
    assert store.nodes == by_leaf.nodes
    # exactly the nodes that became complete: those ending past the old size
    expected = {
        (level, idx)
        for level in range((start + count).bit_length())
        for idx in range((start + count) >> level)
        if (idx + 1) << level > start
    }
    assert set(store.nodes) == expected
    for level, idx in list(expected)[:40]:
        assert store.nodes[(level, idx)] == _ref_mth(hashes[idx << level : (idx + 1) << level])


def test_extend_packed_refuses_a_partial_hash() -> None:
    frontier = Frontier()
    with pytest.raises(ValueError, match="multiple of 32"):
        frontier.extend_packed(b"\x00" * 33)
    assert frontier.size == 0
    frontier.extend_packed(b"")
    assert frontier.root() == merkle.EMPTY_ROOT


@SETTINGS
@given(st.lists(st.binary(min_size=32, max_size=32), max_size=41))
def test_pair_hashes(hashes: list[bytes]) -> None:
    packed = b"".join(hashes)
    expected = b"".join(merkle.node_hash(a, b) for a, b in zip(hashes[0::2], hashes[1::2]))
    assert merkle.pair_hashes(packed) == expected
    assert merkle.pair_hashes(memoryview(packed)) == expected


def test_memory_store_put_packed() -> None:
    store = MemoryNodeStore()
    store.put_packed(0, 0, _leaf(0) + _leaf(1))
    assert store.get(0, 1) == _leaf(1)
    with pytest.raises(ValueError, match="32 bytes"):
        store.put_packed(0, 2, b"\x01" * 31)
    with pytest.raises(ValueError, match="overwrite"):
        store.put_packed(0, 1, _leaf(7))


binary_values = st.lists(st.binary(max_size=300), max_size=60)


@SETTINGS
@given(binary_values, st.integers(0, 5), st.booleans())
def test_leaf_digests_are_hashlib_per_value(values: list[bytes], cut: int, large: bool) -> None:
    """Hashing slices of the Arrow buffers is hashing each value, whatever the array's
    offset (a batch sliced from a bigger one) and offset width."""
    array = pa.array(values, pa.large_binary() if large else pa.binary())
    array = array.slice(min(cut, len(values)))
    expected = b"".join(hashlib.sha256(v).digest() for v in array.to_pylist())
    assert leaf_digests(array) == expected


def test_leaf_digests_refuse_nulls_and_other_types() -> None:
    with pytest.raises(ValueError, match="without its bytes"):
        leaf_digests(pa.array([b"a", None], pa.binary()))
    with pytest.raises(TypeError, match="binary"):
        leaf_digests(pa.array([1, 2]))
    assert leaf_digests(pa.array([], pa.binary())) == b""
    assert leaf_digests(pa.array([b""], pa.binary())) == merkle.EMPTY_ROOT


def test_parquet_node_writer_writes_packed_nodes_in_row_groups(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ParquetNodeWriter, "ROW_GROUP", 3)
    writer = ParquetNodeWriter(tmp_path / "nodes.parquet")
    writer.put_packed(0, 0, _leaf(0) * 4)  # level 0: the append inserts it from the events file
    writer.put_packed(1, 5, _leaf(1) + _leaf(2))
    writer.put_many(2, 7, [_leaf(3), _leaf(4)])
    writer.put_packed(3, 0, _leaf(5))
    with pytest.raises(ValueError, match="32 bytes"):
        writer.put_packed(1, 9, b"\x00" * 40)
    writer.close()
    table = pq.read_table(tmp_path / "nodes.parquet")
    assert writer.written == 5
    assert [(r["level"], r["idx"], r["hash"]) for r in table.to_pylist()] == [
        (1, 5, _leaf(1)), (1, 6, _leaf(2)), (2, 7, _leaf(3)), (2, 8, _leaf(4)), (3, 0, _leaf(5)),
    ]
    # DuckDB takes the fixed-size hashes into the BLOB column as they are
    con = duckdb.connect()
    con.execute(SCHEMA)
    con.execute("INSERT INTO ledger_nodes SELECT * FROM read_parquet(?)", [str(tmp_path / "nodes.parquet")])
    assert con.execute("SELECT hash FROM ledger_nodes WHERE level = 3").fetchone()[0] == _leaf(5)


def test_the_append_reads_packed_leaf_hashes_and_refuses_a_bad_one(tmp_path: Path) -> None:
    good = [_leaf(i) for i in range(70_000)]  # more than one read batch
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"leaf_hash": pa.array(good, pa.binary())}), path, row_group_size=30_000)
    assert b"".join(bytes(b) for b in ledger_append._leaf_hashes(path)) == b"".join(good)

    pq.write_table(pa.table({"leaf_hash": pa.array([_leaf(0), b"short"], pa.binary())}), path)
    with pytest.raises(pa.ArrowInvalid):
        list(ledger_append._leaf_hashes(path))
    pq.write_table(pa.table({"leaf_hash": pa.array([_leaf(0), None], pa.binary())}), path)
    with pytest.raises(ValueError, match="leaf hash"):
        list(ledger_append._leaf_hashes(path))


def test_hash_columns_are_stored_uncompressed(tmp_path: Path) -> None:
    """Random hashes never compress; DuckDB trying dictionary+FSST on them tripled the
    insert's CPU. The declaration survives a table rewrite from its own DDL."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute(SCHEMA)
    ddl = dict(con.execute("SELECT table_name, sql FROM duckdb_tables()").fetchall())
    assert "hash BLOB USING COMPRESSION Uncompressed" in ddl["ledger_nodes"]
    assert "leaf_hash BLOB USING COMPRESSION Uncompressed" in ddl["ledger_leaves"]
    con.execute("INSERT INTO ledger_nodes SELECT 1, i, sha256(i::VARCHAR)::BLOB FROM range(200000) t(i)")
    con.execute("CHECKPOINT")
    methods = {m for (m,) in con.execute(
        "SELECT DISTINCT compression FROM pragma_storage_info('ledger_nodes') "
        "WHERE column_name = 'hash' AND segment_type = 'BLOB'"
    ).fetchall()}
    assert methods == {"Uncompressed"}
