"""The landing sensor: deliveries dropped in ``$ORIGINE_HOME/landing`` get a partition and a run."""


import dagster as dg

from assets.partitions import deliveries_partitions
from origine.errors import BadInput, DeliveryConflict
from origine.home import Home
from origine.intake import check_conflict
from origine.landing import LandingItem, scan_landing
from pipelines.resources import OrigineHome

INGEST_JOB = "ingest_delivery"


def _refused(context: dg.SensorEvaluationContext, item: LandingItem, home: Home) -> bool:
    """True (and logged) when the item re-delivers a committed (vendor, delivery_id) with
    other bytes: no run is requested, so the committed partition stays as it is.

    Checked once per run key (the key changes when the files do): the files are hashed
    only for an id already committed, and never again for the same bytes.
    """
    if context.cursor and item.run_key in context.cursor.split("\n"):
        return True
    try:
        check_conflict(item.path, home)
    except DeliveryConflict as exc:
        context.log.warning(f"refused {item.path.name}: {exc}")
        seen = [k for k in (context.cursor or "").split("\n") if k][-999:]
        context.update_cursor("\n".join([*seen, item.run_key]))
        return True
    except BadInput:  # the run will report it, with its file, row and column
        return False
    return False


def delivery_run_config(path: str) -> dict:
    """Run config pointing the ingest job at one delivery."""
    return {"ops": {"delivery_segment": {"config": {"path": path}}}}


@dg.sensor(
    job_name=INGEST_JOB,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def landing_sensor(context: dg.SensorEvaluationContext, origine: OrigineHome) -> dg.SensorResult:
    """Registers each new delivery in the landing folder as a partition and requests its run."""
    home = origine.get_home()
    items, problems = scan_landing(home.landing)
    for problem in problems:
        context.log.info(f"waiting on {problem.path.name}: {problem.message}")
    items = [i for i in items if not _refused(context, i, home)]
    new_keys = sorted(
        {i.partition_key for i in items}
        - set(context.instance.get_dynamic_partitions(deliveries_partitions.name))
    )
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=item.run_key,
                partition_key=item.partition_key,
                run_config=delivery_run_config(str(item.path)),
                tags={"origine/source": "landing"},
            )
            for item in items
        ],
        dynamic_partitions_requests=[deliveries_partitions.build_add_request(new_keys)] if new_keys else [],
    )
