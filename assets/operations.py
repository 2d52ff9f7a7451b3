"""Scheduled operations: retention and signed tree heads daily, a full ledger check weekly
(the tree, every head, and the Great Expectations suites over every delivery and event),
and suppression files picked up from ``$ORIGINE_HOME/suppressions``."""

from pathlib import Path

import dagster as dg

from origine import ledger, warehouse
from origine.errors import OrigineError
from origine.retention import apply_retention
from origine.signing import load_signer
from origine.suppressions import ingest_suppressions
from pipelines.resources import OrigineHome


class RetentionConfig(dg.Config):
    """Retention period, in days after the last contact (3 years by default)."""

    days: int = 3 * 365


@dg.op
def apply_retention_op(context: dg.OpExecutionContext, config: RetentionConfig, origine: OrigineHome) -> dict:
    """Erase subjects past retention and record a signed tree head."""
    home = origine.get_home()
    signer = load_signer(home.keys)
    with warehouse.session(home.warehouse) as con:
        result = apply_retention(con, days=config.days, signer=signer)
        with warehouse.transaction(con):
            head = ledger.record_head(con, ledger.current_frontier(con), reason="daily", signer=signer)
    context.add_output_metadata({"erased_events": result.events, "erased_subjects": result.subjects,
                                 "tree_size": head.tree_size, "root_hash": head.root_hash})
    return result.to_dict()


@dg.op
def check_ledger_op(context: dg.OpExecutionContext, origine: OrigineHome) -> dict:
    """Verify every event, the tree and every recorded head; fail the run if anything is off."""
    with warehouse.session(origine.get_home().warehouse) as con:
        result = ledger.check_ledger(con)
    context.add_output_metadata({"events": result.events, "heads": result.heads, "ok": result.ok})
    if not result.ok:
        raise OrigineError(result.describe())
    return {"events": result.events, "heads": result.heads}


@dg.op
def validate_ledger_op(context: dg.OpExecutionContext, origine: OrigineHome) -> dict:
    """Great Expectations suites `deliveries` and `ledger_events` over whole tables.

    Each ingest and audit validates only what it added (its delivery, its events), so a
    check costs what its run costs; this validates everything, whichever run added it,
    and fails the run on any blocking failure.
    """
    from origine import stage_checks  # loads Great Expectations

    home = origine.get_home()
    results = stage_checks.validate_whole_ledger(home.warehouse, context_root=home.gx)
    failures = stage_checks.failure_summary(results)
    context.add_output_metadata({
        "rows": dg.MetadataValue.json({r.suite: r.rows for r in results}),
        "failed_expectations": dg.MetadataValue.json(failures),
        "warnings": dg.MetadataValue.json([f"{r.suite}: {o.describe()}" for r in results for o in r.warnings]),
        "results": dg.MetadataValue.json([r.to_dict() for r in results]),
    })
    if failures:
        raise OrigineError("; ".join(failures))
    return {r.suite: r.rows for r in results}


class SuppressionConfig(dg.Config):
    """A suppression file to ingest."""

    path: str
    country: str = "FR"


@dg.op
def ingest_suppressions_op(context: dg.OpExecutionContext, config: SuppressionConfig, origine: OrigineHome) -> dict:
    """Ingest one suppression file as opt-out / withdrawal events."""
    home = origine.get_home()
    report = ingest_suppressions(Path(config.path), warehouse_path=home.warehouse, key=origine.get_key(),
                                 region=config.country, signer=load_signer(home.keys))
    context.add_output_metadata({"rows_read": report.rows_read, "rows_accepted": report.rows_accepted,
                                 "rows_quarantined": report.rows_quarantined, "duplicate": report.duplicate})
    return report.summary()


@dg.job(description="Daily: apply retention and record a signed tree head.")
def ledger_maintenance() -> None:
    """Retention and a signed head."""
    apply_retention_op()


@dg.job(description="Weekly: verify the whole ledger and its tree heads; validate every delivery and event.")
def ledger_check() -> None:
    """Full ledger check, and the expectation suites over the whole warehouse."""
    check_ledger_op()
    validate_ledger_op()


@dg.job(description="Ingest a suppression file (STOP replies, DPO requests, do-not-call lists).")
def suppressions_job() -> None:
    """One suppression file."""
    ingest_suppressions_op()


daily_maintenance = dg.ScheduleDefinition(
    job=ledger_maintenance, cron_schedule="30 2 * * *", execution_timezone="Europe/Paris",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
weekly_check = dg.ScheduleDefinition(
    job=ledger_check, cron_schedule="0 4 * * 0", execution_timezone="Europe/Paris",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


@dg.sensor(job=suppressions_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def suppressions_sensor(context: dg.SensorEvaluationContext, origine: OrigineHome):
    """Each new or changed file in the suppressions folder gets one run."""
    folder = origine.get_home().suppressions
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        st = path.stat()
        yield dg.RunRequest(
            run_key=f"{path.name}:{st.st_size}:{st.st_mtime_ns}",
            run_config={"ops": {"ingest_suppressions_op": {"config": {"path": str(path)}}}},
        )
