"""The landing sensor: deliveries dropped in ``$ORIGINE_HOME/landing`` get a partition and a run."""


import dagster as dg

from assets.partitions import deliveries_partitions
from origine.landing import scan_landing
from pipelines.resources import OrigineHome

INGEST_JOB = "ingest_delivery"


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
    items, problems = scan_landing(origine.get_home().landing)
    for problem in problems:
        context.log.info(f"waiting on {problem.path.name}: {problem.message}")
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
