"""Retention: erase prospects' attributes after the retention period, keeping the tree.

The default rule (CNIL's for prospection): a subject's data is kept 3 years after
collection or last contact. Erasure clears every attribute of the subject's
events (the subject key included) and deletes its normalized rows, but keeps
each event's leaf hash, so tree heads recorded before stay verifiable. The
erasure is itself an ``erased`` leaf committing to what it erased: its ``row`` is
how many events, its ``proof`` the list digest (origine.ledger.digests) of their
sequence numbers; ``erasures`` lists them, and ``origine ledger check`` compares the
two. When it removes rows of the subject key map, a ``key_map`` leaf commits to the
map it leaves.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb

from origine import ledger, warehouse
from origine.ledger import digests
from origine.ledger.erasure import IN_PLACE_MAX

CONTACT_TYPES = ("collected", "consent_granted", "delivered", "targeted", "opted_out", "consent_withdrawn")




def apply_retention(
    con: duckdb.DuckDBPyConnection,
    *,
    now: datetime | None = None,
    days: int = 3 * 365,
    signer: Any = None,
) -> RetentionResult:
    """Erase subjects whose last contact is older than ``days`` before ``now``.

    ``signer`` signs the checkpoint (default: the home's operator key)."""
    ledger.install(con)
    now = now or datetime.now(timezone.utc)
    cutoff = now - timedelta(days=days)
    types = ", ".join(f"'{t}'" for t in CONTACT_TYPES)
    with warehouse.transaction(con):
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _expired AS
                SELECT subject_key FROM ledger_current
                WHERE erased_at IS NULL AND subject_key IS NOT NULL
                GROUP BY subject_key
                HAVING max("at") FILTER (WHERE type IN ({types})) < ?""",
            [cutoff],
        )
        done = erase_listed(con, now=now, origin="retention", source=f"retention: {days} days after last contact",
                            evidence_kind="retention", signer=signer)
    # the daily run keeps lookup's index fresh (a derived table, rebuilt when its tail grew)
    from origine import subject_index

    subject_index.refresh(con)
    return RetentionResult(**done.__dict__, cutoff=cutoff.isoformat())


@dataclass(frozen=True)
class Erased:
    """What :func:`erase_listed` erased (never the numbers) and the ledger head after it:
    the result of an erasure on request too."""

    subjects: int
    events: int
    erasure_seq: int | None
    tree_size: int
    root_hash: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class RetentionResult(Erased):
    """What one retention run erased, and the last-contact cutoff it applied."""

    cutoff: str = ""


def erase_listed(
    con: duckdb.DuckDBPyConnection,
    *,
    now: datetime,
    origin: str,
    source: str,
    evidence_kind: str,
    signer: Any = None,
    always_record: bool = False,
) -> Erased:
    """Erase the subjects the temp table ``_expired`` (``subject_key``) lists, inside the
    caller's transaction: one ``erased`` leaf (``origin``, ``source``, ``evidence_kind``)
    committing to the events it erases, their attributes cleared, their normalized and
    quarantined rows and key-map rows deleted. Retention and erasure on request
    (origine.erasure) both come here.

    With nothing to erase, nothing is appended unless ``always_record`` (a request is
    recorded as honoured even when the home held only quarantined rows, or nothing).
    """
    ledger.install(con)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _erased AS "
        # leaves, once each (a row leaf states several events of its subject)
        "SELECT DISTINCT seq FROM ledger_current_of('_expired') WHERE erased_at IS NULL"
    )
    events, digest = _count_and_digest(con)
    subjects = con.execute("SELECT count(*) FROM _expired").fetchall()[0][0]
    if not events and not always_record:
        head = ledger.latest_head(con)
        con.execute("DROP TABLE _expired")
        con.execute("DROP TABLE _erased")
        return Erased(0, 0, None, head.tree_size if head else 0, head.root_hash if head else None)
    kept_map = "(SELECT * FROM subject_key_map WHERE current_key NOT IN (SELECT subject_key FROM _expired))"
    pruned = con.execute("SELECT count(*) FROM subject_key_map WHERE current_key IN "
                         "(SELECT subject_key FROM _expired)").fetchall()[0][0]
    map_count, map_digest = _digest(con, kept_map, digests.KEY_MAP)
    with tempfile.TemporaryDirectory(prefix="erasure-") as tmp:
        path = Path(tmp) / "erased.parquet"
        # write_events passes each query the parameters it names, renumbered: the
        # key-map leaf names a prefix ($1-$3) so its numbers stay right
        flat = ledger.flat_columns(
            type="'erased'", at="$1::TIMESTAMPTZ", origin="$2::VARCHAR", evidence_kind="$3::VARCHAR",
            proof="$4::VARCHAR", source="$5::VARCHAR", row=str(events),
        )
        queries = [ledger.events_sql(f"SELECT {flat}, 0 AS ord")]
        if pruned:  # the link between erased subjects' keys of older generations and today's goes
            key_map = ledger.flat_columns(
                type="'key_map'", at="$1::TIMESTAMPTZ", origin="$2::VARCHAR", proof=f"'{map_digest}'",  # hex
                evidence_kind="$3::VARCHAR", row=str(map_count),
            )
            queries.append(ledger.events_sql(f"SELECT {key_map}, 1 AS ord"))
        ledger.write_events(con, queries, [now, origin, evidence_kind, digest, source], path)
        head = ledger.append_events(con, path, reason=origin, signer=signer)
    erasure_seq = head.tree_size - len(queries)
    con.execute("INSERT INTO erasures SELECT ?, seq FROM _erased", [erasure_seq])
    if events:
        # this module's IN_PLACE_MAX, read at each call, so a test can lower it here
        ledger.erase_attributes(con, events, now, in_place_max=IN_PLACE_MAX)
    for table in ("delivery_rows", "quarantine"):
        con.execute(f"DELETE FROM {table} WHERE subject_key IN (SELECT subject_key FROM _expired)")
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "suppression_quarantine" in tables:  # rows of suppression files refused
        con.execute("DELETE FROM suppression_quarantine WHERE subject_key IN (SELECT subject_key FROM _expired)")
    con.execute("DELETE FROM subject_key_map WHERE current_key IN (SELECT subject_key FROM _expired)")
    con.execute("DROP TABLE _expired")
    con.execute("DROP TABLE _erased")
    return Erased(int(subjects), events, erasure_seq, head.tree_size, head.root_hash)


def _count_and_digest(con: duckdb.DuckDBPyConnection) -> tuple[int, str]:
    """How many events ``_erased`` lists, and the list digest of their sequence
    numbers (the erasure's proof), set-wise in DuckDB."""
    return _digest(con, "_erased", digests.ERASED_SEQS)


def _digest(con: duckdb.DuckDBPyConnection, relation: str, lines: tuple[str, str]) -> tuple[int, str]:
    count, digest = digests.list_digest_stream(con, relation, *lines)
    return int(count or 0), digest or digests.empty_digest()
