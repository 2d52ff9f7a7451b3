"""Ingest assets: a delivery's segment (parallel) and its commit (serialized)."""


import time
from pathlib import Path
from typing import Any

import dagster as dg

from assets.partitions import deliveries_partitions
from assets.privacy import errors_scrubbed
# origine.stage_checks is imported inside the check steps: it loads Great Expectations, most of
# this code location's import time, which the run process and the other steps never need.
from origine.errors import BadInput
from origine.ingest import DeliveryReport, intake
from origine.manifest import names_region
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
    key = origine.get_key()
    try:
        # A data file (or the folder, the zip) may be named after a number: the error
        # Dagster stores names it as stored (pipelines.runs names it as given again).
        with errors_scrubbed(key, names_region(Path(config.path))):
            report = intake.prepare(Path(config.path), origine.get_home(), key, progress=config.progress)
    except BadInput as exc:
        # origine's one line first (not Dagster's wrapper and a stack trace); bad input
        # does not get better on retry. The cause keeps the domain error for the CLI.
        raise dg.Failure(description=str(exc), allow_retries=False,
                         metadata={"error": type(exc).__name__}) from exc
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


@dg.asset_check(asset=delivery_segment, blocking=True, partitions_def=deliveries_partitions)
def segment_expectations(
    delivery_segment: dict[str, Any], origine: OrigineHome
) -> dg.AssetCheckResult:
    """Great Expectations suites `normalized_rows` and `quarantine` over the segment.

    Blocking: a delivery that breaks a blocking expectation never reaches the ledger.
    """
    from origine import stage_checks

    report = DeliveryReport.from_dict(delivery_segment)
    if report.duplicate or not report.segment:
        return dg.AssetCheckResult(passed=True, metadata={"skipped": "duplicate: nothing new to check"})
    home = origine.get_home()
    results = stage_checks.validate_segment(Path(report.segment), context_root=home.gx)
    return _gx_result(results)


def _gx_result(results: list[Any]) -> dg.AssetCheckResult:
    from origine import stage_checks

    failures = stage_checks.failure_summary(results)
    metadata: dict[str, Any] = {
        "suites": ", ".join(r.suite for r in results),
        "failed_expectations": dg.MetadataValue.json(failures),
        "warnings": dg.MetadataValue.json(
            [f"{r.suite}: {o.describe()}" for r in results for o in r.warnings]
        ),
        "results": dg.MetadataValue.json([r.to_dict() for r in results]),
    }
    docs = next((r.data_docs_path for r in results if r.data_docs_path), None)
    if docs:
        metadata["data_docs"] = dg.MetadataValue.path(str(docs))
    return dg.AssetCheckResult(
        passed=not failures,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(failures) if failures else "all blocking expectations hold",
        metadata=metadata,
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
    started = time.monotonic()
    committed = intake.commit(report, origine.get_home(), label=report.segment or report.delivery_id)
    elapsed = time.monotonic() - started
    tree = committed.ledger or {}
    context.log.info(
        f"{committed.vendor}/{committed.delivery_id}: "
        + ("duplicate, nothing appended" if committed.duplicate else f"{committed.events} events appended")
        + f"; tree size {tree.get('tree_size')}"
    )
    return dg.Output(committed.to_dict(), metadata={
        "duplicate": committed.duplicate,
        "rows_accepted": committed.rows_accepted,
        "rows_quarantined": committed.rows_quarantined,
        "events_appended": 0 if committed.duplicate else committed.events,
        "tree_size": tree.get("tree_size"),
        "root_hash": tree.get("root_hash"),
        "commit_seconds": round(elapsed, 3),
    })


@dg.asset_check(asset=warehouse_delivery, blocking=False, partitions_def=deliveries_partitions)
def warehouse_expectations(
    warehouse_delivery: dict[str, Any], origine: OrigineHome
) -> dg.AssetCheckResult:
    """Great Expectations suites `deliveries` and `ledger_leaves` after the commit, over
    what this commit added: its delivery row and the events it appended (the weekly
    `ledger_check` job validates the whole ledger)."""
    from origine import stage_checks

    report = DeliveryReport.from_dict(warehouse_delivery)
    home = origine.get_home()
    appended = None if report.duplicate else stage_checks.appended_seq_range(
        (report.ledger or {}).get("tree_size"), report.events
    )
    results = stage_checks.validate_committed(
        home.warehouse, report.vendor, report.delivery_id, appended=appended, context_root=home.gx
    )
    return _gx_result(results)


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
        "seconds": round(elapsed, 3),
        "quarantine_reasons": quarantine_table(report.quarantine_reasons),
        "findings": findings_table(report.findings),
    }


def findings_table(findings: list[dict[str, Any]]) -> dg.TableMetadataValue:
    """The delivery's findings as a table for the Dagster UI: code, then what it is about."""
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({"code": str(f.get("code", "")),
                            "details": "; ".join(f"{k}: {_plain(v)}" for k, v in f.items() if k != "code")})
            for f in findings
        ],
        schema=dg.TableSchema(columns=[dg.TableColumn("code", "string"), dg.TableColumn("details", "string")]),
    )


def quarantine_table(reasons: dict[str, int]) -> dg.TableMetadataValue:
    """Quarantined rows per reason, as a table."""
    return dg.MetadataValue.table(
        records=[dg.TableRecord({"reason": r, "rows": int(n)}) for r, n in sorted(reasons.items())],
        schema=dg.TableSchema(columns=[dg.TableColumn("reason", "string"), dg.TableColumn("rows", "int")]),
    )


def _plain(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items())
    return str(value)
