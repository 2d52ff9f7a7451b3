"""Ingest assets: a delivery's segment (parallel) and its commit (serialized)."""


import time
from pathlib import Path
from typing import Any

import dagster as dg

from assets.partitions import deliveries_partitions
from origine import intake
from origine.ingest import DeliveryReport
from pipelines.resources import OrigineHome


class DeliveryConfig(dg.Config):
    """Where the delivery of this partition is (a folder or a .zip)."""

    path: str
    progress: bool = False


@dg.asset(
    partitions_def=deliveries_partitions,
    group_name="ingest",
    kinds={"parquet"},
)
def delivery_segment(
    context: dg.AssetExecutionContext, config: DeliveryConfig, origine: OrigineHome
) -> dg.Output[dict[str, Any]]:
    """One delivery read, normalized and key-hashed into an immutable Parquet segment.

    Every row is accounted for (accepted or quarantined with a reason); a
    re-delivery of the same bytes is reported as a duplicate and adds nothing.
    """
    started = time.monotonic()
    report = intake.prepare(
        Path(config.path), origine.get_home(), origine.get_key(), progress=config.progress
    )
    elapsed = max(time.monotonic() - started, 1e-9)
    context.log.info(
        f"{report.vendor}/{report.delivery_id}: read {report.rows_read}, "
        f"accepted {report.rows_accepted}, quarantined {report.rows_quarantined}"
        + (" (duplicate)" if report.duplicate else "")
    )
    return dg.Output(report.to_dict(), metadata=_metadata(report, elapsed))


@dg.asset_check(asset=delivery_segment, blocking=True, partitions_def=deliveries_partitions)
def rows_accounted_for(delivery_segment: dict[str, Any]) -> dg.AssetCheckResult:
    """rows_read = rows_accepted + rows_quarantined, per file and for the delivery."""
    report = DeliveryReport.from_dict(delivery_segment)
    return dg.AssetCheckResult(
        passed=report.balanced,
        metadata={
            "rows_read": report.rows_read,
            "rows_accepted": report.rows_accepted,
            "rows_quarantined": report.rows_quarantined,
        },
    )


@dg.asset(
    partitions_def=deliveries_partitions,
    group_name="ingest",
    kinds={"duckdb"},
    pool="warehouse",
)
def warehouse_delivery(
    context: dg.AssetExecutionContext, delivery_segment: dict[str, Any], origine: OrigineHome
) -> dg.Output[dict[str, Any]]:
    """The delivery committed to the warehouse in one transaction (all or nothing)."""
    report = DeliveryReport.from_dict(delivery_segment)
    committed = intake.commit(report, origine.get_home(), label=report.segment or report.delivery_id)
    return dg.Output(committed.to_dict(), metadata={"duplicate": committed.duplicate})


def _metadata(report: DeliveryReport, elapsed: float) -> dict[str, Any]:
    return {
        "vendor": report.vendor,
        "delivery_id": report.delivery_id,
        "fingerprint": report.fingerprint,
        "duplicate": report.duplicate,
        "rows_read": report.rows_read,
        "rows_accepted": report.rows_accepted,
        "rows_quarantined": report.rows_quarantined,
        "rows_per_second": round(report.rows_read / elapsed, 1),
        "quarantine_reasons": dg.MetadataValue.json(report.quarantine_reasons),
        "findings": dg.MetadataValue.json(report.findings),
    }
