"""Every sensor: deliveries in ``landing/``, suppression files in ``suppressions/``,
campaign specs in ``campaigns/``; each new or changed item gets one run (its run key)."""

from pathlib import Path

import dagster as dg

from assets.audits import campaign_run_config, campaigns_partitions
from assets.partitions import deliveries_partitions
from assets.suppressions import link_as_stored, suppression_files_partitions, suppression_run_config
from origine.campaign import scan_campaigns
from origine.errors import BadInput, DeliveryConflict
from origine.home import Home
from origine.ingest.intake import check_conflict
from origine.landing import LandingItem, links_for_runs, scan_landing
from origine.links import input_digest, prune_dangling
from pipelines.jobs import INGEST_JOB, campaign_audit, delivery_run_config, suppressions_job
from pipelines.resources import OrigineHome
from pipelines.runs import file_partition_key


def _refused(context: dg.SensorEvaluationContext, item: LandingItem, path: Path, home: Home) -> bool:
    """True (and logged) when the item re-delivers a committed (vendor, delivery_id) with
    other bytes: no run is requested, so the committed partition stays as it is.

    Checked once per run key (the key changes when the files do): the files are hashed
    only for an id already committed, and never again for the same bytes. ``path`` is
    the one the run would be given (named as stored), which the error names.
    """
    if context.cursor and item.run_key in context.cursor.split("\n"):
        return True
    try:
        check_conflict(path, home)
    except DeliveryConflict as exc:
        context.log.warning(f"refused {item.name}: {exc}")
        seen = [k for k in (context.cursor or "").split("\n") if k][-999:]
        context.update_cursor("\n".join([*seen, item.run_key]))
        return True
    except BadInput:  # the run will report it, with its file, row and column
        return False
    return False


@dg.sensor(
    job_name=INGEST_JOB,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def landing_sensor(context: dg.SensorEvaluationContext, origine: OrigineHome) -> dg.SensorResult:
    """Registers each new delivery in the landing folder as a partition and requests its run."""
    home = origine.get_home()
    # Names as stored: a delivery named after a number keeps it out of the run key, the
    # run's config (a link so named) and the sensor's log.
    items, problems = scan_landing(home.landing, origine.get_key())
    for problem in problems:
        context.log.info(f"waiting on {problem.name}: {problem.message}")
    paths = links_for_runs(items, home.scratch / "landing-links", origine.get_key())
    items = [i for i in items if not _refused(context, i, paths[i.path], home)]
    new_keys = sorted(
        {i.partition_key for i in items}
        - set(context.instance.get_dynamic_partitions(deliveries_partitions.name))
    )
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=item.run_key,
                partition_key=item.partition_key,
                run_config=delivery_run_config(str(paths[item.path])),
                tags={"origine/source": "landing"},
            )
            for item in items
        ],
        dynamic_partitions_requests=[deliveries_partitions.build_add_request(new_keys)] if new_keys else [],
    )


@dg.sensor(job=suppressions_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def suppressions_sensor(context: dg.SensorEvaluationContext, origine: OrigineHome):
    """Each new or changed file in the suppressions folder gets one run, in the partition
    named by the file's name (registered here when new)."""
    home, key = origine.get_home(), origine.get_key()
    folder = home.suppressions
    paths = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    # Each run reads its file through a link named as the ledger stores the name, so a
    # number in a file's name reaches neither the partition key nor the run's config.
    links_folder = home.scratch / "suppression-files"
    prune_dangling(links_folder)
    links = {p: link_as_stored(p, links_folder, key) for p in paths}
    names = {p: file_partition_key(link.name) for p, link in links.items()}
    # Two files whose names differ only in how a number is written have one stored name:
    # each keeps a partition (and a run key) of its own, told apart by a keyed digest.
    shared = {n for n in names.values() if list(names.values()).count(n) > 1}
    names = {p: f"{n}~{input_digest(p, key)[:8]}" if n in shared else n for p, n in names.items()}
    known = set(context.instance.get_dynamic_partitions(suppression_files_partitions.name))
    new = sorted(set(names.values()) - known)
    if new:
        context.instance.add_dynamic_partitions(suppression_files_partitions.name, new)
    for path in paths:
        st = path.stat()
        yield dg.RunRequest(
            run_key=f"{names[path]}:{input_digest(path, key)}:{st.st_size}:{st.st_mtime_ns}",
            partition_key=names[path],
            run_config=suppression_run_config(str(links[path])),
            tags={"origine/source": "suppressions", "dagster/partition": names[path]},
        )


@dg.sensor(job=campaign_audit, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def campaigns_sensor(context: dg.SensorEvaluationContext, origine: OrigineHome):
    """Each new or changed campaign spec in ``campaigns/`` gets one audit run, in the
    partition named by the spec's stem (registered here when new)."""
    found = scan_campaigns(origine.get_home().campaigns)
    known = set(context.instance.get_dynamic_partitions(campaigns_partitions.name))
    new = sorted({f.path.stem for f in found} - known)
    if new:
        # added here rather than by a SensorResult so the sensor stays a plain generator of requests
        context.instance.add_dynamic_partitions(campaigns_partitions.name, new)
    for f in found:
        yield dg.RunRequest(
            run_key=f.run_key,
            partition_key=f.path.stem,
            run_config=campaign_run_config(str(f.path)),
            # the partition as a tag too, so executing the request's run config and tags
            # in process (tests, scripts) lands in the same partition
            tags={"origine/source": "campaigns", "dagster/partition": f.path.stem},
        )


# The ledger asset is eager: once a delivery commits, a suppression list or a campaign
# audit materializes, this sensor requests a ledger run (its checkpoint and its check).
ledger_automation = dg.AutomationConditionSensorDefinition(
    "ledger_automation",
    target=dg.AssetSelection.assets("ledger"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
)
