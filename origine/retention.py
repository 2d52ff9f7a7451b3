"""Retention: erase prospects' attributes after the retention period, keeping the tree.

The default rule (CNIL's for prospection): a subject's data is kept 3 years after
collection or last contact. Erasure clears every attribute of the subject's
events (the subject key included) and deletes its normalized rows, but keeps
each event's leaf hash, so tree heads recorded before stay verifiable. The
erasure is itself an ``erased`` event whose proof is the SHA-256 of the erased
sequence numbers; ``erasures`` lists them.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb

from origine import ledger, warehouse

CONTACT_TYPES = ("collected", "consent_granted", "delivered", "targeted", "opted_out", "consent_withdrawn")
_ATTRIBUTES = [name for name, _ in ledger.EVENT_COLUMNS if name != "type"]


@dataclass(frozen=True)
class RetentionResult:
    """What one retention run erased."""

    cutoff: str
    subjects: int
    events: int
    erasure_seq: int | None
    tree_size: int
    root_hash: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


def apply_retention(
    con: duckdb.DuckDBPyConnection,
    *,
    now: datetime | None = None,
    days: int = 3 * 365,
    signer: Any = None,
) -> RetentionResult:
    """Erase subjects whose last contact is older than ``days`` before ``now``."""
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
        seqs = [r[0] for r in con.execute(
            "SELECT seq FROM ledger_current_of('_expired') WHERE erased_at IS NULL ORDER BY seq"
        ).fetchall()]
        subjects = con.execute("SELECT count(*) FROM _expired").fetchall()[0][0]
        if not seqs:
            head = ledger.latest_head(con)
            return RetentionResult(cutoff.isoformat(), 0, 0, None,
                                   head.tree_size if head else 0, head.root_hash if head else None)
        digest = hashlib.sha256(",".join(map(str, seqs)).encode()).hexdigest()
        with tempfile.TemporaryDirectory(prefix="erasure-") as tmp:
            path = Path(tmp) / "erased.parquet"
            flat = ledger.flat_columns(
                type="'erased'", at="$1::TIMESTAMPTZ", origin="'retention'",
                source=f"'retention: {days} days after last contact'", proof="$2::VARCHAR",
                evidence_kind="'retention'", row=str(len(seqs)),
            )
            ledger.write_events(con, ledger.events_sql(f"SELECT {flat}, 0 AS ord"), [now, digest], path)
            head = ledger.append_events(con, path, reason="retention", signer=signer)
        erasure_seq = head.tree_size - 1
        con.execute(
            "INSERT INTO erasures SELECT ?, seq FROM ledger_current_of('_expired') WHERE erased_at IS NULL",
            [erasure_seq],
        )
        sets = ", ".join(f'"{c}" = NULL' for c in _ATTRIBUTES)
        con.execute(
            f"UPDATE ledger_events SET {sets}, erased_at = ? "
            "WHERE seq IN (SELECT event_seq FROM erasures WHERE erasure_seq = ?)",
            [now, erasure_seq],
        )
        for table in ("delivery_rows", "quarantine"):
            con.execute(f"DELETE FROM {table} WHERE subject_key IN (SELECT subject_key FROM _expired)")
        # the link between an erased subject's keys of older generations and today's
        con.execute("DELETE FROM subject_key_map WHERE current_key IN (SELECT subject_key FROM _expired)")
        con.execute("DROP TABLE _expired")
    return RetentionResult(cutoff.isoformat(), int(subjects), len(seqs), erasure_seq, head.tree_size, head.root_hash)
