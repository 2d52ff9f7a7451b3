"""Running the pipeline's jobs in-process against the home's Dagster instance.

The CLI goes through Dagster rather than around it, so every CLI run is a real
run in the instance under ``$ORIGINE_HOME/dagster`` and shows in the UI.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from origine.errors import BadInput, DeliveryConflict, HashKeyError, OrigineError, storage_problem
from origine.home import PG_URL_ENV, Home, check_pg_url
from origine.links import link_named
from origine.ingest import DeliveryReport
from origine.manifest import partition_key, peek_manifest
from origine.pids import process_id

if TYPE_CHECKING:  # origine.audit loads the audit's stack: only an audit run needs it
    from origine.audit import AuditResult
    from origine.keys import HashKey

def _error_classes() -> dict[str, type[OrigineError]]:
    """Every error class a run may report to the user, by name: ``OrigineError`` and its
    subclasses (the run is in this process, so each class that was raised is loaded)."""
    found: dict[str, type[OrigineError]] = {}
    todo: list[type[OrigineError]] = [OrigineError, BadInput, DeliveryConflict, HashKeyError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.__name__, cls)
        todo.extend(cls.__subclasses__())
    return found


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
    """Run the ``ingest_delivery`` job for one delivery; return its committed report.

    The run sees the delivery through a link named by its scrubbed name (as the ledger
    stores names) in a folder of its own, as :func:`suppress_via_dagster` does: a folder or
    zip named after a number would otherwise put it in Dagster's storage (run config). Its
    data files are stored under their scrubbed names by the domain, and its errors by
    the asset; an error names the delivery and its files as the user gave them, as before.
    """
    import shutil

    # imported here: the code location is heavy and only a run needs it
    from assets.partitions import deliveries_partitions
    from origine.ingest.intake import check_conflict
    from origine.manifest import stored_name
    from pipelines.jobs import INGEST_JOB, delivery_run_config

    given = Path(path)
    manifest = peek_manifest(given)
    key = partition_key(manifest.vendor, manifest.delivery_id)
    # a re-delivery with other bytes is refused before any run: it would fail in the
    # committed delivery's partition and show that good partition as failed
    check_conflict(given, home)
    hash_key = home.load_key()
    target = given.resolve()
    folder = _link_folder(home)
    try:
        link = link_named(target, stored_name(target.name, hash_key, manifest.country), folder, hash_key)
        run_config = delivery_run_config(str(link))
        run_config["ops"]["delivery_segment"]["config"]["progress"] = progress
        result = _execute(home, INGEST_JOB, deliveries_partitions.name, key, run_config)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if not result.success:
        # each data file as the run named it (label/path), before the delivery's own path
        paths: list[tuple[Path | str, Path | str]] = [(f"{link}/{f.path}", f"{given}/{f.path}") for f in manifest.files]
        paths.append((link, given))
        raise _as_given(_run_error(result, given, home), paths, manifest.country, hash_key)
    return DeliveryReport.from_dict(result.output_for_node("warehouse_delivery"))


def _link_folder(home: Home) -> Path:
    """A folder of this run's own for the link it reads its input through, named like the
    extracted zips (``link-<pid>-<host>-<random>``) so that, left by a killed run, the next
    ingest on this host removes it (:func:`origine.ingest.intake.sweep_dead_partials`)."""
    import tempfile

    from origine.manifest import LINK_PREFIX, host_tag

    home.scratch.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{LINK_PREFIX}{os.getpid()}-{host_tag()}-", dir=home.scratch))


def _execute(home: Home, job_name: str, partitions: str, key: str, run_config: dict[str, Any], *,
             checks: bool = True) -> Any:
    """Run ``job_name`` in-process in partition ``key`` of the dynamic ``partitions`` (registered
    when new, as the sensors do), tagged as a CLI run of this process; its result.

    ``checks=False`` leaves the asset checks out of the run (the assets still materialize).
    """
    from pipelines.definitions import build_definitions

    instance = open_instance(home)
    reclaim_dead_runs(instance)
    if not instance.has_dynamic_partition(partitions, key):
        instance.add_dynamic_partitions(partitions, [key])
    # The run's events go to the instance (and the UI); the terminal gets the summary.
    run_config["loggers"] = {"console": {"config": {"log_level": "CRITICAL"}}}
    job = build_definitions().resolve_job_def(job_name)
    if not checks:
        job = job.get_subset(asset_selection=set(job.asset_layer.selected_asset_keys), asset_check_selection=set())
    return job.execute_in_process(
        run_config=run_config,
        instance=instance,
        partition_key=key,
        raise_on_error=False,
        tags={"origine/source": "cli", **process_tags()},
    )


def file_partition_key(name: str) -> str:
    """A file's name as a dynamic partition key: ``...`` is Dagster's range syntax (a static
    partition refuses it) and control characters break the UI; both are legal in a file name."""
    key = "".join(c if c.isprintable() else "_" for c in name).replace("...", "._.")
    return key or "_"


def suppress_via_dagster(home: Home, path: Path, *, key: HashKey, country: str = "FR", origin: str | None = None,
                         channel: str | None = None, tz: str = "Europe/Paris") -> dict[str, Any]:
    """Run the ``suppressions_job`` (the ``suppression_list`` asset) for one file; return its
    report's summary (what ``SuppressionReport.summary`` gives).

    The run sees the file through a link named by its scrubbed name (as the ledger stores it)
    in a folder of its own: a file named after a number ("stop-0611223399.csv") would
    otherwise put the number in Dagster's storage (run config, partition key, error events).
    An error names the file as the user gave it, as before.
    """
    import shutil

    from assets.suppressions import suppression_files_partitions, suppression_run_config
    from origine.freetext import scrub_text
    from pipelines.jobs import SUPPRESSIONS_JOB

    given = Path(path)
    name = scrub_text(given.name, key, country).text
    folder = _link_folder(home)
    try:
        # named as the ledger will store it: the domain scrubs the name it reads, and a token it leaves as is
        link = link_named(given, name, folder, key)
        name = link.name  # shortened if the tokens made it too long for the file system
        run_config = suppression_run_config(str(link))
        run_config["ops"]["suppression_list"]["config"].update(
            {"country": country, "origin": origin, "channel": channel, "timezone": tz})
        result = _execute(home, SUPPRESSIONS_JOB, suppression_files_partitions.name, file_partition_key(name),
                          run_config)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if not result.success:
        raise _as_given(_run_error(result, given, home), [(link, given)], country, key)
    return result.output_for_node("suppression_list")


def audit_via_dagster(home: Home, campaign: Path, out_dir: Path, *, key: HashKey, validity_days: int,
                      as_zip: bool = False, lang: str | None = None,
                      since: Path | None = None) -> tuple[AuditResult, dict[str, Any]]:
    """Run the ``campaign_audit`` job (the ``campaign_audit`` and ``campaign_bundle`` assets) for
    one spec, in the partition named by its stem, the bundle written to ``out_dir``; return
    the audit's result and the bundle's manifest, read back from the bundle the run wrote.

    The spec stays where it is (a spec of the inbox is not retired), and the run leaves out
    the ``bundle_verifies`` check: `origine verify` is the user's step, as before. An error
    names the files as the user gave them (the run stored their names scrubbed).
    """
    from assets.audits import CAMPAIGN_BUNDLE, campaign_run_config, campaigns_partitions
    from origine.audit import AuditResult
    from origine.bundle import MANIFEST
    from pipelines.jobs import CAMPAIGN_AUDIT_JOB

    run_config = campaign_run_config(str(campaign))
    run_config["ops"]["audit_campaign"]["config"].update({
        "out": str(out_dir), "zip": as_zip, "lang": lang, "since": str(since) if since is not None else None,
        "validity_days": validity_days, "retire": False,
    })
    result = _execute(home, CAMPAIGN_AUDIT_JOB, campaigns_partitions.name, file_partition_key(Path(campaign).stem),
                      run_config, checks=False)
    if not result.success:
        raise _as_given(_run_error(result, campaign, home), *_campaign_paths(campaign, out_dir, since), key)
    [bundle] = [m for m in result.get_asset_materialization_events() if m.asset_key == CAMPAIGN_BUNDLE]
    folder = Path(bundle.materialization.metadata["bundle"].value)
    summary_path = folder / "summary.json"
    audited = AuditResult(
        summary=json.loads(summary_path.read_text(encoding="utf-8")), out_dir=folder, summary_path=summary_path,
        targets_csv=folder / "targets.csv", targets_parquet=folder / "targets.parquet",
    )
    return audited, json.loads((folder / MANIFEST).read_text(encoding="utf-8"))


def _campaign_paths(campaign: Path, out_dir: Path, since: Path | None) -> tuple[list[tuple[Path, Path]], str]:
    """The paths an audit's error may name (the spec, the files it names, --out and --since),
    and the region their numbers are read in (the campaign's country)."""
    from origine.campaign import load_campaign

    paths = [Path(campaign), Path(out_dir), *([since] if since is not None else [])]
    try:
        spec = load_campaign(Path(campaign))
    except OrigineError:
        return [(p, p) for p in paths], "FR"
    return [(p, p) for p in [*paths, spec.target_file, spec.send_report] if p is not None], spec.country


def _as_given(exc: OrigineError, paths: Sequence[tuple[Path | str, Path | str]], region: str,
              key: HashKey) -> OrigineError:
    """``exc`` naming each path as the user gave it, where the run named it (``(as run, as
    given)`` pairs) in the form Dagster stored: scrubbed (``assets.privacy``)."""
    from origine.freetext import scrub_text

    text = str(exc)
    for ran, given in paths:
        for form in {str(ran), scrub_text(str(ran), key, region).text}:
            if form != str(given):
                text = text.replace(form, str(given))
    return exc if text == str(exc) else type(exc)(text)


def _run_error(result: Any, path: Path, home: Home | None = None) -> OrigineError:
    """The domain error behind a failed run, rebuilt from the run's events."""
    # A blocking check stops the run before the ledger: name what failed.
    for check in result.get_asset_check_evaluations():
        if not check.passed:
            failed = check.metadata.get("failed_expectations")
            detail = "; ".join(failed.value) if failed is not None else check.description or ""
            return BadInput(f"blocking check {check.check_name} failed: {detail}", file=str(path))
    errors = _error_classes()
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        error = event.step_failure_data.error
        # Dagster wraps user errors; the domain error is the innermost cause.
        while error is not None and error.cause is not None and error.cls_name not in errors:
            error = error.cause
        if error is not None and error.cls_name in errors:
            message = error.message.split(": ", 1)[1] if ": " in error.message else error.message
            exc = errors[error.cls_name](message.strip())
            if isinstance(exc, BadInput):
                exc.message = message.strip()
            return exc
        if error is not None:
            storage = storage_problem(error.message, home.root if home else None)
            if storage is not None:
                return storage
            return OrigineError(f"internal error in step {event.step_key}: {error.cls_name}: {error.message.strip()}")
    return OrigineError(f"run {result.run_id} failed for {path}")
