"""The one way into the ledger: :func:`append_events`.

Every writer (the ingest commit, suppressions, the audit's targeting, retention, key
rotation) builds its leaves as an events file (origine.ledger.events) and hands it
here, inside its own transaction: the events are numbered and stored, the tree is
extended, and a checkpoint signed with the operator's key is recorded. A failure
anywhere leaves the ledger as it was.

Before extending, the latest checkpoint is verified against the signing key and the
stored tree: a log must never sign a tree inconsistent with one it signed before, so
an append onto a history rewritten in the database is refused instead of signing it.
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from origine import faults, merkle, signing
from origine.errors import OrigineError
from origine.ledger.checkpoint import (
    TreeHead,
    current_frontier,
    latest_head,
    record_head,
    resolve_signer,
    verify_checkpoint,
)
from origine.ledger.events import _COLS
from origine.ledger.schema import install
from origine.ledger.tree import ParquetNodeWriter, stored_frontier


def tree_size(con: duckdb.DuckDBPyConnection) -> int:
    """Number of leaves in the ledger (the tree's size)."""
    return int(con.execute("SELECT count(*) FROM ledger_leaves").fetchone()[0])  # type: ignore[index]


def verified_frontier(con: duckdb.DuckDBPyConnection, signer: signing.Signer) -> merkle.Frontier:
    """The frontier the next append extends, once it agrees with the latest signed
    checkpoint (signature, size, root) and with the stored tree; ``OrigineError``
    (naming ``origine ledger check``) otherwise."""
    frontier = current_frontier(con)
    start = tree_size(con)
    head = latest_head(con)
    problem = None
    if frontier.size != start:
        problem = f"the ledger holds {start} leaves but its last tree head covers {frontier.size}"
    elif head is None:
        if start:
            problem = f"the ledger holds {start} leaves and no checkpoint"
    else:
        try:
            checkpoint = verify_checkpoint(head.checkpoint, signer.public)
        except ValueError as exc:
            problem = f"its latest checkpoint does not verify ({exc})"
        else:
            if (checkpoint.size, checkpoint.root) != (frontier.size, frontier.root()):
                problem = "its latest checkpoint and tree frontier disagree"
            else:
                try:
                    stored = stored_frontier(con, start)
                except KeyError as exc:
                    problem = f"tree node {exc.args[0]} is missing"
                else:
                    if stored != frontier:
                        problem = "its stored tree nodes and frontier disagree"
    if problem:
        raise OrigineError(f"refusing to append to the ledger: {problem}; run `origine ledger check`")
    return frontier


def append_events(
    con: duckdb.DuckDBPyConnection,
    events_parquet: Path,
    *,
    reason: str,
    signer: signing.Signer | None = None,
    scratch: Path | None = None,
    at_size: int | None = None,
) -> TreeHead:
    """Append prepared leaves (in file order), extend the tree, record a signed checkpoint.

    ``at_size``: the tree size the leaves were built for (a delivery's row leaves name
    their delivery leaf's seq); refused if the ledger is not at that size.

    Runs inside the caller's transaction: on any failure nothing is appended. Each
    table gets one ``INSERT … SELECT`` from a file, so memory stays bounded whatever
    the number of events (see :class:`ParquetNodeWriter`); the new tree nodes are
    written to a temporary file under ``scratch`` (default: the system's).
    ``signer`` defaults to the operator key of the home the warehouse file is in.
    """
    install(con)
    signer = resolve_signer(con, signer)
    frontier = verified_frontier(con, signer)
    start = frontier.size
    if at_size is not None and at_size != start:
        raise OrigineError(f"refusing to append: leaves built for a ledger of {at_size} leaves, it holds {start}")
    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True)
    # named like a segment's partial folder, so a run killed here leaves something
    # `intake.sweep_dead_partials` recognises and removes
    with tempfile.TemporaryDirectory(prefix=f"nodes.partial-{os.getpid()}-", dir=scratch) as tmp:
        nodes = ParquetNodeWriter(Path(tmp) / "nodes.parquet")

        def extend_tree() -> None:
            try:
                faults.point("commit.in_tree")
                for packed in _leaf_hashes(events_parquet):
                    frontier.extend_packed(packed, nodes)
            finally:
                nodes.close()

        # The tree is hashed in Python while DuckDB inserts the events (it releases
        # the GIL): the serialized step takes the longer of the two, not their sum.
        with ThreadPoolExecutor(1, thread_name_prefix="merkle") as pool:
            tree = pool.submit(extend_tree)
            try:
                con.execute(
                    f"INSERT INTO ledger_leaves (seq, {_COLS}, leaf_hash, erased_at) "
                    f"SELECT ? + file_row_number, {_COLS}, leaf_hash, NULL "
                    "FROM read_parquet(?, file_row_number = true)",
                    [start, str(events_parquet)],
                )
                # Level 0 repeats the leaves' hashes: the check compares the
                # two to name the first leaf edited, deleted or moved.
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


def _leaf_hashes(events_parquet: Path) -> Iterator[memoryview]:
    """The events' leaf hashes in order, a batch at a time, packed (32 bytes each):
    the column's data buffer as it is, not a ``bytes`` object per leaf."""
    # pre_buffer (pyarrow's default) reads the whole column ahead: ~1 GB at 27M events.
    pfile = pq.ParquetFile(events_parquet, pre_buffer=False)
    for batch in pfile.iter_batches(batch_size=65536, columns=["leaf_hash"]):
        column = batch.column(0)
        if column.null_count:
            raise ValueError("an event without its leaf hash")
        # the cast refuses (ArrowInvalid) a value that is not 32 bytes long
        fixed = column.cast(pa.binary(merkle.HASH_SIZE))
        size = merkle.HASH_SIZE
        yield memoryview(fixed.buffers()[1])[fixed.offset * size : (fixed.offset + len(fixed)) * size]
