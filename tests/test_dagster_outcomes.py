"""Dagster shows what happened (issue 18 item 6): a refused re-delivery makes no run and leaves
the good partition green; a bad input fails its step with origine's one line first; the run's
findings are a table."""

from __future__ import annotations

import dagster as dg
import pytest

from assets.ingest import delivery_segment, rows_accounted_for, warehouse_delivery
from assets.partitions import deliveries_partitions
from pipelines import runs
from origine.errors import BadInput, DeliveryConflict
from pipelines.jobs import delivery_run_config
from pipelines.resources import OrigineHome
from pipelines.sensors import landing_sensor
from tests.conftest import TEST_KEY_HEX

pytestmark = pytest.mark.slow

GOOD = b"phone\n0612345678\n0698765432\n"
OTHER = b"phone\n0612345678\n0698765433\n"


def _statuses(instance) -> list[str]:
    return [r.dagster_run.status.value for r in instance.get_run_records()]


def test_a_refused_redelivery_makes_no_run_and_the_partition_stays_green(home, key, make_delivery) -> None:
    runs.activate(home)
    good = make_delivery({"a.csv": GOOD}, delivery_id="RD-1")
    assert runs.ingest_via_dagster(home, good).rows_accepted == 2
    instance = runs.open_instance(home)
    before = _statuses(instance)
    assert before == ["SUCCESS"]
    materialized = instance.get_latest_materialization_event(dg.AssetKey("warehouse_delivery"))
    assert materialized is not None and materialized.dagster_event.partition == "acme/RD-1"
    again = make_delivery({"a.csv": OTHER}, delivery_id="RD-1")
    with pytest.raises(DeliveryConflict, match="already ingested with different bytes"):
        runs.ingest_via_dagster(home, again)
    # no run was made: the partition's latest materialization is still the good one
    assert _statuses(instance) == before
    latest = instance.get_latest_materialization_event(dg.AssetKey("warehouse_delivery"))
    assert latest.run_id == materialized.run_id
    # the same bytes again are a duplicate run, not a conflict
    assert runs.ingest_via_dagster(home, make_delivery({"a.csv": GOOD}, delivery_id="RD-1")).duplicate

    # the landing sensor requests no run for it either (and says why in its log)
    conflicting = home.landing / "rd-1-again"
    conflicting.mkdir(parents=True)
    for f in again.iterdir():
        (conflicting / f.name).write_bytes(f.read_bytes())
    fresh = home.landing / "rd-2"
    fresh.mkdir()
    new = make_delivery({"a.csv": GOOD}, delivery_id="RD-2")
    for f in new.iterdir():
        (fresh / f.name).write_bytes(f.read_bytes())
    resources = {"origine": OrigineHome(home=str(home.root), hash_key=TEST_KEY_HEX)}
    context = dg.build_sensor_context(instance=instance, resources=resources)
    result = landing_sensor(context)
    assert [r.partition_key for r in result.run_requests] == ["acme/RD-2"]
    assert context.cursor and "acme/RD-1@rd-1-again" in context.cursor
    # the next tick does not hash it again
    context2 = dg.build_sensor_context(instance=instance, resources=resources, cursor=context.cursor)
    assert [r.partition_key for r in landing_sensor(context2).run_requests] == ["acme/RD-2"]


def test_bad_input_fails_the_step_with_origines_message_first(home, key, make_delivery) -> None:
    runs.activate(home)
    bad = make_delivery({"a.csv": GOOD}, delivery_id="BAD-1", declare={"a.csv": {"rows": 5}})
    with pytest.raises(BadInput) as caught:
        runs.ingest_via_dagster(home, bad)
    message = str(caught.value)
    instance = runs.open_instance(home)
    [record] = instance.get_run_records()
    failures = [e for e in instance.all_logs(record.dagster_run.run_id)
                if e.dagster_event is not None and e.dagster_event.is_step_failure]
    assert failures
    data = failures[0].dagster_event.step_failure_data
    assert data.error.cls_name == "Failure"  # not DagsterExecutionStepExecutionError
    # the run read the delivery through a link named as stored (tests/test_delivery_file_names_privacy.py):
    # its path aside, the stored line is the one the user sees, which names the path as given
    stored_path, stored_line = data.user_failure_data.description.split(": ", 1)
    assert message == f"{bad}/a.csv: {stored_line}"
    assert stored_path.startswith(str(home.scratch)) and stored_path.endswith("/delivery-1/a.csv")
    assert "612345678" not in data.user_failure_data.description


def test_findings_and_quarantine_reasons_are_tables(home, key, make_delivery) -> None:
    d = make_delivery({"a.csv": b"phone;religion\n0612345678;x\nbad;y\n"}, delivery_id="TAB-1")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(deliveries_partitions.name, ["acme/TAB-1"])
        result = dg.materialize(
            [delivery_segment, warehouse_delivery, rows_accounted_for],
            partition_key="acme/TAB-1", instance=instance,
            resources={"origine": OrigineHome(home=str(home.root), hash_key=TEST_KEY_HEX)},
            run_config=delivery_run_config(str(d)),
        )
        assert result.success
        [segment] = [e.materialization.metadata for e in result.get_asset_materialization_events()
                     if e.materialization.asset_key.path[-1] == "delivery_segment"]
    findings = segment["findings"]
    assert isinstance(findings, dg.TableMetadataValue)
    rows = {r.data["code"]: r.data["details"] for r in findings.records}
    assert "file: a.csv" in rows["SPECIAL_CATEGORY_COLUMN"] and "religion" in rows["SPECIAL_CATEGORY_COLUMN"]
    reasons = segment["quarantine_reasons"]
    assert isinstance(reasons, dg.TableMetadataValue)
    assert [(r.data["reason"], r.data["rows"]) for r in reasons.records] == [("PHONE_UNPARSEABLE", 1)]
