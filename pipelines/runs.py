"""Running the pipeline's jobs in-process against the home's Dagster instance.

The CLI goes through Dagster rather than around it, so every CLI run is a real
run in the instance under ``$ORIGINE_HOME/dagster`` and shows in the UI.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from origine.errors import BadInput, DeliveryConflict, HashKeyError, OrigineError, storage_problem
from origine.home import PG_URL_ENV, Home, check_pg_url
from origine.ingest_report import DeliveryReport
from origine.manifest import partition_key, peek_identity
from origine.pids import process_id

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


# Every CLI run says which process runs it, so a later run can tell it died.
TAG_HOST = "origine/host"
TAG_PROCESS = "origine/process"


def process_tags() -> dict[str, str]:
    """Tags naming this process: host, pid and (on Linux) its start time, against pid reuse."""
    return {TAG_HOST: socket.gethostname(), TAG_PROCESS: process_id(os.getpid()) or str(os.getpid())}


def _alive(process: str) -> bool:
    pid = process.split(":", 1)[0]
    if not pid.isdigit():
        return True  # not ours to judge
    now = process_id(int(pid))
    return now is not None and (now == process or ":" not in process or ":" not in now)


def reclaim_dead_runs(instance: Any) -> list[str]:
    """Fail the runs of this host whose process is gone, and free their pool slots.

    A run killed outright (SIGKILL, OOM killer, power loss) never reports its end:
    it stays STARTED and keeps the slot of the ``warehouse`` pool (limit 1) it held
    during its commit, so every later ingest would wait for that slot forever.
    Returns the ids of the runs reclaimed.
    """
    import dagster as dg

    host = socket.gethostname()
    records = instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING],
            tags={TAG_HOST: host},
        )
    )
    reclaimed = []
    for record in records:
        run = record.dagster_run
        process = run.tags.get(TAG_PROCESS)
        if process is None or _alive(process):
            continue
        instance.report_run_failed(
            run, message=f"process {process.split(':')[0]} on {host} died during the run (killed?)"
        )
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        reclaimed.append(run.run_id)
    return reclaimed


def open_instance(home: Home) -> Any:
    """The home's Dagster instance, its SQLite storage created by one process at a time.

    Two runs starting together on a fresh home both create the storage's tables and
    the second fails (``table alembic_version already exists``): a file lock orders them.
    """
    import fcntl

    import dagster as dg

    with open(home.dagster / ".instance.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        instance = dg.DagsterInstance.get()
        # touch every storage so its schema exists before the lock is let go
        instance.get_runs(limit=1)
        instance.get_dynamic_partitions("deliveries")
        if instance.schedule_storage is not None:
            instance.schedule_storage.all_instigator_state()
    return instance


def ingest_via_dagster(home: Home, path: Path, *, progress: bool = False) -> DeliveryReport:
    """Run the ``ingest_delivery`` job for one delivery; return its committed report."""

    # imported here: the code location is heavy and only a run needs it
    from assets.partitions import deliveries_partitions
    from origine.intake import check_conflict
    from pipelines.definitions import build_definitions
    from pipelines.jobs import INGEST_JOB, delivery_run_config

    vendor, delivery_id = peek_identity(path)
    key = partition_key(vendor, delivery_id)
    # a re-delivery with other bytes is refused before any run: it would fail in the
    # committed delivery's partition and show that good partition as failed
    check_conflict(Path(path), home)
    instance = open_instance(home)
    reclaim_dead_runs(instance)
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
        tags={"origine/source": "cli", **process_tags()},
    )
    if not result.success:
        raise _run_error(result, path, home)
    return DeliveryReport.from_dict(result.output_for_node("warehouse_delivery"))


def _run_error(result: Any, path: Path, home: Home | None = None) -> OrigineError:
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
            storage = storage_problem(error.message, home.root if home else None)
            if storage is not None:
                return storage
            return OrigineError(f"internal error in step {event.step_key}: {error.cls_name}: {error.message.strip()}")
    return OrigineError(f"run {result.run_id} failed for {path}")
