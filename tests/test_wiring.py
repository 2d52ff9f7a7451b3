"""The Dagster wiring: definitions load, assets materialize, the sensor requests runs."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest

from assets.ingest import delivery_segment, rows_accounted_for, warehouse_delivery
from assets.partitions import deliveries_partitions
from pipelines.definitions import build_definitions
from pipelines.jobs import delivery_run_config
from pipelines.resources import OrigineHome
from pipelines.sensors import landing_sensor
from tests.conftest import TEST_KEY_HEX

pytestmark = pytest.mark.slow


def test_definitions_load(home, key) -> None:
    defs = build_definitions()
    assert defs.resolve_job_def("ingest_delivery") is not None
    assert defs.resolve_sensor_def("landing_sensor") is not None
    # as the webserver and daemon load the code location: a job and a graph of one name
    # (the campaign_audit job and its asset's step) passed materialize but not this
    dg.Definitions.validate_loadable(defs)


def test_materialize_a_delivery_partition(home, key, make_delivery) -> None:
    d = make_delivery({"a.csv": b"phone\n0612345678\nbad\n"}, delivery_id="M-1")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(deliveries_partitions.name, ["acme/M-1"])
        result = dg.materialize(
            [delivery_segment, warehouse_delivery, rows_accounted_for],
            partition_key="acme/M-1",
            instance=instance,
            resources={"origine": OrigineHome(home=str(home.root), hash_key=TEST_KEY_HEX)},
            run_config=delivery_run_config(str(d)),
        )
        assert result.success
        committed = result.output_for_node("warehouse_delivery")
        assert (committed["rows_accepted"], committed["rows_quarantined"]) == (1, 1)
        [check] = result.get_asset_check_evaluations()
        assert check.passed and check.metadata["rows_read"].value == 2


def test_landing_sensor_registers_partitions_and_requests_runs(home, key, make_delivery) -> None:
    d = make_delivery({"a.csv": b"phone\n0612345678\n"}, delivery_id="L-1")
    shutil.copytree(d, home.landing / "incoming-L-1")
    (home.landing / "half-copied").mkdir()  # no manifest yet: waited on, not run
    with dg.instance_for_test() as instance:
        ctx = dg.build_sensor_context(
            instance=instance, resources={"origine": OrigineHome(home=str(home.root), hash_key=TEST_KEY_HEX)}
        )
        result = landing_sensor(ctx)
        assert [r.partition_key for r in result.run_requests] == ["acme/L-1"]
        assert result.dynamic_partitions_requests[0].partition_keys == ["acme/L-1"]
        run_config = result.run_requests[0].run_config
        assert run_config["ops"]["delivery_segment"]["config"]["path"].endswith("incoming-L-1")


def test_schedules_and_operations_jobs(home, key, make_delivery, tmp_path) -> None:
    from origine.ingest import intake

    defs = build_definitions()
    assert defs.resolve_schedule_def("ledger_maintenance_schedule").cron_schedule == "30 2 * * *"
    assert defs.resolve_schedule_def("ledger_check_schedule").cron_schedule == "0 4 * * 0"
    path = make_delivery({"a.csv": b"phone\n0612345678\n"})
    intake.commit(intake.prepare(path, home, key), home, label="x")
    with dg.instance_for_test() as instance:
        for job in ("ledger_maintenance", "ledger_check"):
            result = defs.resolve_job_def(job).execute_in_process(instance=instance)
            assert result.success
        stop = home.suppressions / "stop.csv"
        stop.write_text("phone;channel;at;origin\n0612345678;sms;2024-05-01;stop-reply\n")
        ctx = dg.build_sensor_context(
            instance=instance, resources={"origine": OrigineHome(home=str(home.root), hash_key=TEST_KEY_HEX)})
        from pipelines.sensors import suppressions_sensor

        [request] = list(suppressions_sensor(ctx))
        assert request.partition_key == "stop.csv"
        assert instance.get_dynamic_partitions("suppression_files") == ["stop.csv"]
        result = defs.resolve_job_def("suppressions_job").execute_in_process(
            instance=instance, run_config=request.run_config, partition_key=request.partition_key
        )
        assert result.success
        assert result.output_for_node("suppression_list")["rows_accepted"] == 1
