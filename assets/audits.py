"""Campaign audits from ``$ORIGINE_HOME/campaigns`` and the nightly re-validation of consents.

Thin wiring: ``origine.campaign.scan_campaigns``, ``origine.export.audit_bundle`` and
``origine.consents.expiring_consents`` do the work. Metadata and logs carry counts,
codes and paths, never a number or a subject key.
"""

from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import dagster as dg
import duckdb

from origine import memory, warehouse
from origine.audit import DEFAULT_VALIDITY_DAYS, VERDICTS
from origine.campaign import scan_campaigns
from origine.consents import expiring_consents, write_list
from pipelines.resources import OrigineHome


class CampaignAuditConfig(dg.Config):
    """The campaign spec to audit, and how long a consent stays valid."""

    path: str
    validity_days: int = DEFAULT_VALIDITY_DAYS


@dg.op
def audit_campaign_op(context: dg.OpExecutionContext, config: CampaignAuditConfig, origine: OrigineHome) -> dict:
    """Audit one campaign (as ``origine audit``) into a signed bundle under ``bundles/<spec>/<run id>``.

    A spec from the home's ``campaigns/`` folder then moves to ``campaigns/audited/`` and
    the raw target and send-report files it named there are deleted (``origine.campaign_inbox``).
    """
    from origine.campaign_inbox import retire_campaign
    from origine.export import audit_bundle

    home = origine.get_home()
    spec = Path(config.path)
    out_dir = home.bundles / spec.stem / context.run_id
    result, manifest = audit_bundle(spec, home, origine.get_key(), out_dir, validity_days=config.validity_days)
    s = result.summary
    retired = retire_campaign(spec, home.campaigns, s["campaign"]["file_sha256"])
    metadata = {
        "campaign_id": s["campaign_id"],
        "targets": s["targets"],
        **{verdict: int(s["verdicts"].get(verdict, 0)) for verdict in VERDICTS},
        "reasons": dg.MetadataValue.json({k: v for k, v in s["reasons"].items() if v}),
        "findings": dg.MetadataValue.json(sorted({f["code"] for f in s["findings"]})),
        "tree_size": s["ledger"]["tree_size"],
        "root_hash": s["ledger"]["root_hash"],
        "bundle": dg.MetadataValue.path(str(out_dir)),
        "signer": manifest["signer"],
        "raw_files_deleted": len(retired.deleted),
        "raw_files_kept": len(retired.kept),
    }
    context.add_output_metadata(metadata)
    context.log.info(f"campaign {s['campaign_id']}: {s['targets']} targets audited; bundle {out_dir}")
    if retired.spec is not None:
        context.log.info(f"spec moved to {retired.spec}; {len(retired.deleted)} raw number file(s) deleted, "
                         f"{len(retired.kept)} kept for specs still waiting")
    return {"campaign_id": s["campaign_id"], "bundle": str(out_dir), "verdicts": dict(s["verdicts"])}


@dg.job(description="Audit a campaign spec into a signed bundle (as `origine audit`).")
def campaign_audit() -> None:
    """One campaign."""
    audit_campaign_op()


@dg.sensor(job=campaign_audit, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def campaigns_sensor(context: dg.SensorEvaluationContext, origine: OrigineHome):
    """Each new or changed campaign spec in ``campaigns/`` gets one audit run."""
    for found in scan_campaigns(origine.get_home().campaigns):
        yield dg.RunRequest(
            run_key=found.run_key,
            run_config={"ops": {"audit_campaign_op": {"config": {"path": str(found.path)}}}},
            tags={"origine/source": "campaigns"},
        )


class ExpiringConsentsConfig(dg.Config):
    """The window (days ahead), the consent validity the audit applies, and the day (default: now)."""

    within_days: int = 30
    validity_days: int = DEFAULT_VALIDITY_DAYS
    as_of: Optional[str] = None  # ISO 8601 with offset, to re-run a past night


@dg.op
def expiring_consents_op(
    context: dg.OpExecutionContext, config: ExpiringConsentsConfig, origine: OrigineHome
) -> dict:
    """List the subjects whose consent for a purpose expires within the window; counts as metadata."""
    home = origine.get_home()
    as_of = datetime.fromisoformat(config.as_of) if config.as_of else datetime.now(timezone.utc)
    window = {"as_of": as_of, "within_days": config.within_days, "validity_days": config.validity_days}
    if home.warehouse.exists():
        with warehouse.session(home.warehouse, read_only=True) as con:
            result = expiring_consents(con, **window)
    else:  # nothing ingested yet: an empty list
        result = expiring_consents(memory.bound(duckdb.connect()), **window)
    listing = write_list(result, home.reports)
    counts = result.counts()
    context.add_output_metadata({
        "consents_expiring": counts["consents_expiring"],
        "subjects_expiring": counts["subjects_expiring"],
        "within_days": counts["within_days"],
        "validity_days": counts["validity_days"],
        "by_purpose": dg.MetadataValue.json(counts["by_purpose"]),
        "list": dg.MetadataValue.path(str(listing)),
    })
    context.log.info(
        f"{counts['subjects_expiring']} subjects have a consent expiring within {config.within_days} days"
    )
    return counts


@dg.job(description="Nightly: consents that expire soon, per purpose (counts; the list of keys as Parquet).")
def consent_revalidation() -> None:
    """Expiring consents."""
    expiring_consents_op()


nightly_consents = dg.ScheduleDefinition(
    job=consent_revalidation, cron_schedule="0 3 * * *", execution_timezone="Europe/Paris",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
