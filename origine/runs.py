"""Running the pipeline's jobs in-process against the home's Dagster instance.

The CLI goes through Dagster rather than around it, so every CLI run is a real
run in the instance under ``$ORIGINE_HOME/dagster`` and shows in the UI.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from origine.errors import BadInput, DeliveryConflict, HashKeyError, OrigineError
from origine.home import PG_URL_ENV, Home, check_pg_url
from origine.ingest import DeliveryReport
from origine.manifest import partition_key, peek_identity

_ERRORS: dict[str, type[OrigineError]] = {
    "BadInput": BadInput,
    "DeliveryConflict": DeliveryConflict,
    "HashKeyError": HashKeyError,
    "OrigineError": OrigineError,
}


def activate(home: Home, *, demo: bool = False) -> None:
    """Point this process (and the Dagster code it loads) at ``home``.

    With ``$ORIGINE_DAGSTER_PG_URL`` set, the instance is on PostgreSQL (see ``Home.ensure``).
    """
    if os.environ.get(PG_URL_ENV):
        check_pg_url(os.environ[PG_URL_ENV])
    home.ensure(demo=demo)
    os.environ["ORIGINE_HOME"] = str(home.root)
    os.environ["DAGSTER_HOME"] = str(home.dagster)


def ingest_via_dagster(home: Home, path: Path, *, progress: bool = False) -> DeliveryReport:
    """Run the ``ingest_delivery`` job for one delivery; return its committed report."""
    import dagster as dg

    from assets.landing import INGEST_JOB, delivery_run_config
    from assets.partitions import deliveries_partitions
    from pipelines.definitions import build_definitions

    vendor, delivery_id = peek_identity(path)
    key = partition_key(vendor, delivery_id)
    instance = dg.DagsterInstance.get()
    if not instance.has_dynamic_partition(deliveries_partitions.name, key):
        instance.add_dynamic_partitions(deliveries_partitions.name, [key])
    run_config = delivery_run_config(str(Path(path).resolve()))
    run_config["ops"]["delivery_segment"]["config"]["progress"] = progress
    # The run's events go to the instance (and the UI); the terminal gets the summary.
    run_config["loggers"] = {"console": {"config": {"log_level": "CRITICAL"}}}
    job = build_definitions().resolve_job_def(INGEST_JOB)
    result = job.execute_in_process(
        run_config=run_config,
        instance=instance,
        partition_key=key,
        raise_on_error=False,
        tags={"origine/source": "cli"},
    )
    if not result.success:
        raise _run_error(result, path)
    return DeliveryReport.from_dict(result.output_for_node("warehouse_delivery"))


def _run_error(result: Any, path: Path) -> OrigineError:
    """The domain error behind a failed run, rebuilt from the run's events."""
    # A blocking check stops the run before the ledger: name what failed.
    for check in result.get_asset_check_evaluations():
        if not check.passed:
            failed = check.metadata.get("failed_expectations")
            detail = "; ".join(failed.value) if failed is not None else check.description or ""
            return BadInput(f"blocking check {check.check_name} failed: {detail}", file=str(path))
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        error = event.step_failure_data.error
        # Dagster wraps user errors; the domain error is the innermost cause.
        while error is not None and error.cause is not None and error.cls_name not in _ERRORS:
            error = error.cause
        if error is not None and error.cls_name in _ERRORS:
            message = error.message.split(": ", 1)[1] if ": " in error.message else error.message
            exc = _ERRORS[error.cls_name](message.strip())
            if isinstance(exc, BadInput):
                exc.message = message.strip()
            return exc
        if error is not None:
            return OrigineError(f"internal error in step {event.step_key}: {error.cls_name}: {error.message.strip()}")
    return OrigineError(f"run {result.run_id} failed for {path}")
