"""Committing a prepared segment: the short serialized step of ingest.

One transaction: the delivery's rows, quarantine, findings and report in the
warehouse, and its leaves in the ledger (a delivery leaf, then a row leaf per
accepted row). A delivery is in the warehouse whole, or not at all; the same bytes
committed again return the stored report marked duplicate.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from origine import faults, ledger
from origine.canonical import ROW_LEAF_COLUMNS
from origine.errors import DeliveryConflict
from origine.ingest.report import DeliveryReport
from origine.warehouse import check_key, transaction


def existing_delivery(con: duckdb.DuckDBPyConnection, vendor: str, delivery_id: str) -> DeliveryReport | None:
    """The stored report for ``(vendor, delivery_id)``, if it was committed."""
    row = con.execute(
        "SELECT report FROM deliveries WHERE vendor = ? AND delivery_id = ?", [vendor, delivery_id]
    ).fetchone()
    return DeliveryReport.from_dict(json.loads(row[0])) if row else None


def duplicate_or_conflict(
    con: duckdb.DuckDBPyConnection, vendor: str, delivery_id: str, fingerprint: str, label: str
) -> DeliveryReport | None:
    """The stored report marked duplicate when the same bytes were committed; an error
    when the same id was committed with other bytes; ``None`` when new."""
    stored = existing_delivery(con, vendor, delivery_id)
    if stored is None:
        return None
    if stored.fingerprint != fingerprint:
        raise DeliveryConflict(
            f"delivery {vendor}/{delivery_id} was already ingested with different bytes "
            f"(fingerprint {stored.fingerprint[:12]}…, now {fingerprint[:12]}…): "
            "a delivery is immutable; give the new one its own delivery_id",
            file=label,
            column="delivery_id",
        )
    stored.duplicate = True
    return stored


def commit_delivery(
    con: duckdb.DuckDBPyConnection,
    report: DeliveryReport,
    *,
    label: str,
    signer: Any = None,
    scratch: Path | None = None,
) -> DeliveryReport:
    """Insert a prepared segment in one transaction; idempotent for the same bytes.

    The ledger append runs inside the same transaction, so a failure anywhere leaves
    the warehouse as it was. ``scratch`` holds the new tree nodes on their way in
    (see :func:`origine.ledger.append_events`).
    """
    assert report.segment is not None
    segment = Path(report.segment)
    with transaction(con):
        faults.point("commit.begin")
        check_key(con, report.key_id)
        stored = duplicate_or_conflict(con, report.vendor, report.delivery_id, report.fingerprint, label)
        if stored is not None:
            return stored
        con.execute(
            "INSERT INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                report.vendor, report.delivery_id, report.fingerprint, report.recipient,
                report.delivered_at, report.country, report.key_id, report.rows_read,
                report.rows_accepted, report.rows_quarantined, json.dumps(report.claims),
                json.dumps(report.to_dict(), sort_keys=True), datetime.now(timezone.utc),
            ],
        )
        for f in report.files:
            con.execute(
                "INSERT INTO delivery_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    report.vendor, report.delivery_id, f.path, f.sha256, json.dumps(f.format),
                    f.rows_read, f.rows_accepted, f.rows_quarantined, f.columns, f.ignored_columns,
                ],
            )
        con.execute("INSERT INTO delivery_rows SELECT * FROM read_parquet(?)", [str(segment / "rows.parquet")])
        con.execute("INSERT INTO quarantine SELECT * FROM read_parquet(?)", [str(segment / "quarantine.parquet")])
        for finding in report.findings:
            con.execute(
                "INSERT INTO findings VALUES (?, ?, ?, ?)",
                [report.vendor, report.delivery_id, finding["code"], json.dumps(finding, sort_keys=True)],
            )
        faults.point("commit.after_rows")
        head = _append_delivery(con, report, segment, signer=signer, scratch=scratch)
        faults.point("commit.after_ledger")
        report.ledger = {"tree_size": head.tree_size, "root_hash": head.root_hash}
        con.execute(
            "UPDATE deliveries SET report = ? WHERE vendor = ? AND delivery_id = ?",
            [json.dumps(report.to_dict(), sort_keys=True), report.vendor, report.delivery_id],
        )
        faults.point("commit.before_commit")
    faults.point("commit.after_commit")
    return report


def _append_delivery(
    con: duckdb.DuckDBPyConnection, report: DeliveryReport, segment: Path, *, signer: Any, scratch: Path | None
) -> Any:
    """Build the delivery's leaves (its delivery leaf is the next seq) and append them."""
    start = ledger.tree_size(con)
    leaves = segment / "leaves.parquet"
    try:
        ledger.write_events(con, ledger.delivery_leaves_queries(
            segment / "rows.parquet", delivery_seq=start, vendor=report.vendor, delivery_id=report.delivery_id,
            recipient=report.recipient, delivered_at=datetime.fromisoformat(report.delivered_at),
            key_id=report.key_id,
            files=[{"name": f.path, "rows": f.rows_read, "sha256": f.sha256} for f in report.files],
            claims=report.claims, row_columns=ROW_LEAF_COLUMNS,
        ), [], leaves)
        return ledger.append_events(
            con, leaves, reason=f"delivery {report.vendor}/{report.delivery_id}",
            signer=signer, scratch=scratch, at_size=start,
        )
    finally:
        leaves.unlink(missing_ok=True)
