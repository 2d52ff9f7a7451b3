"""Every job of the pipeline: the partitioned ingest asset job, and the op jobs.

Job names are what run keys, schedules, sensors and the CLI refer to: keep them stable.
"""

import dagster as dg

from assets.audits import campaign_audit as campaign_audit_assets
from assets.audits import campaigns_partitions
from assets.ingest import delivery_segment, warehouse_delivery
from assets.partitions import deliveries_partitions
from assets.suppressions import suppression_files_partitions, suppression_list
from pipelines.executor import origine_executor
from pipelines.ops import (
    apply_retention_op,
    check_ledger_op,
    expiring_consents_op,
    validate_ledger_op,
)

INGEST_JOB = "ingest_delivery"
SUPPRESSIONS_JOB = "suppressions_job"
CAMPAIGN_AUDIT_JOB = "campaign_audit"


def delivery_run_config(path: str) -> dict:
    """Run config pointing the ingest job at one delivery."""
    return {"ops": {"delivery_segment": {"config": {"path": path}}}}


ingest_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.assets(delivery_segment, warehouse_delivery),
    partitions_def=deliveries_partitions,
    description="Ingest one delivery: read, normalize, key-hash, check, commit.",
    # multiprocess by default; in_process, or celery with origine[celery] (docs/deployment.md)
    executor_def=origine_executor,
)


@dg.job(description="Daily: apply retention and record a signed tree head.")
def ledger_maintenance() -> None:
    """Retention and a signed head."""
    apply_retention_op()


@dg.job(description="Weekly: verify the whole ledger and its tree heads; validate every delivery and event.")
def ledger_check() -> None:
    """Full ledger check, and the expectation suites over the whole warehouse."""
    check_ledger_op()
    validate_ledger_op()


suppressions_job = dg.define_asset_job(
    SUPPRESSIONS_JOB,
    selection=dg.AssetSelection.assets(suppression_list),
    partitions_def=suppression_files_partitions,
    description="Ingest a suppression file (STOP replies, DPO requests, do-not-call lists), one partition per file.",
)


campaign_audit = dg.define_asset_job(
    CAMPAIGN_AUDIT_JOB,
    selection=dg.AssetSelection.assets(campaign_audit_assets),
    partitions_def=campaigns_partitions,
    description="Audit a campaign spec into a signed bundle (as `origine audit`), one partition per spec.",
)


@dg.job(description="Nightly: consents that expire soon, per purpose (counts; the list of keys as Parquet).")
def consent_revalidation() -> None:
    """Expiring consents."""
    expiring_consents_op()
