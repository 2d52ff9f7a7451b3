"""The steps of the op jobs (retention, ledger check, expiring consents):
thin wiring over the ``origine`` domain, which does the work.

Metadata and logs carry counts, codes and paths, never a number or a subject key.
"""

from datetime import datetime, timezone
from typing import Optional

import dagster as dg
import duckdb

from origine import ledger, memory, warehouse
from origine.audit import DEFAULT_VALIDITY_DAYS
from origine.consents import expiring_consents, write_list
from origine.errors import OrigineError
from origine.retention import apply_retention
from origine.signing import load_signer
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
    """Great Expectations suites `deliveries` and `ledger_leaves` over whole tables.

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
