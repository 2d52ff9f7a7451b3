"""The Dagster asset graph shows the pipeline: lineage from a delivery to the ledger and
the campaign audits, and the ledger's materialization and check on a real home."""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest

from assets.ledger import ledger_asset, ledger_consistent
from origine.ingest import intake
from pipelines.definitions import build_definitions
from pipelines.resources import OrigineHome
from tests.conftest import TEST_KEY_HEX

pytestmark = pytest.mark.slow


def _key(name: str) -> dg.AssetKey:
    return dg.AssetKey(name)


def test_lineage_from_delivery_to_ledger(home, key) -> None:
    graph = build_definitions().resolve_asset_graph()
    assert _key("delivery_segment") in graph.get(_key("warehouse_delivery")).parent_keys
    assert _key("warehouse_delivery") in graph.get(_key("ledger")).parent_keys
    assert _key("suppression_list") in graph.get(_key("ledger")).parent_keys
    assert graph.get(_key("suppression_list")).partitions_def.name == "suppression_files"
    checks = {c.name for c in graph.get(_key("ledger")).check_keys}
    assert "ledger_consistent" in checks


def test_lineage_of_campaign_audits(home, key) -> None:
    graph = build_definitions().resolve_asset_graph()
    assert _key("campaign_audit") in graph.get(_key("ledger")).parent_keys
    assert graph.get(_key("campaign_bundle")).parent_keys == {_key("campaign_audit")}
    assert {c.name for c in graph.get(_key("campaign_bundle")).check_keys} == {"bundle_verifies"}
    for name in ("campaign_audit", "campaign_bundle"):
        assert graph.get(_key(name)).partitions_def.name == "campaigns"


def test_a_running_sensor_requests_the_ledger_runs(home, key) -> None:
    defs = build_definitions()
    sensor = defs.resolve_sensor_def("ledger_automation")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.asset_selection.resolve(defs.resolve_asset_graph()) == {_key("ledger")}


def test_a_committed_delivery_requests_a_ledger_run(home, key, make_delivery) -> None:
    """The ledger's automation condition fires once warehouse_delivery materializes."""
    from assets.ingest import delivery_segment, warehouse_delivery
    from assets.partitions import deliveries_partitions
    from pipelines.jobs import delivery_run_config

    path = make_delivery({"a.csv": b"phone\n0612345678\n"}, delivery_id="A-1")
    defs = build_definitions()
    with dg.instance_for_test() as instance:
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert first.get_requested_partitions(_key("ledger")) == set()
        instance.add_dynamic_partitions(deliveries_partitions.name, ["acme/A-1"])
        assert dg.materialize(
            [delivery_segment, warehouse_delivery], partition_key="acme/A-1", instance=instance,
            resources={"origine": OrigineHome(home=str(home.root), hash_key=TEST_KEY_HEX)},
            run_config=delivery_run_config(str(path)),
        ).success
        after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        assert after.get_requested_partitions(_key("ledger")) == {None}


def _materialize_ledger(home, instance) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [ledger_asset, ledger_consistent],
        instance=instance,
        resources={"origine": OrigineHome(home=str(home.root))},
        raise_on_error=False,
    )


def test_ledger_materialization_carries_the_checkpoint_and_its_check_passes(home, key, make_delivery) -> None:
    with dg.instance_for_test() as instance:
        for n, delivery_id in enumerate(["G-1", "G-2"]):
            path = make_delivery({"a.csv": f"phone\n061234567{n}\n".encode()}, delivery_id=delivery_id)
            intake.commit(intake.prepare(path, home, key), home, label=delivery_id)
            result = _materialize_ledger(home, instance)
            assert result.success
            [mat] = result.asset_materializations_for_node("ledger")
            meta = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
            lines = meta["checkpoint"].split("\n")
            assert lines[0] == meta["origin"] and int(lines[1]) == meta["tree_size"] > 0
            assert len(meta["root_hash"]) == 64
            # the second materialization keeps the first's checkpoint, and the check proves it extends it
            assert bool(meta["previous_checkpoint"]) == (n == 1)
            [check] = result.get_asset_check_evaluations()
            assert check.passed, check.description
            assert check.metadata["checkpoints_checked"].value == 2 + n


def test_ledger_check_fails_when_the_warehouse_was_tampered(home, key, make_delivery) -> None:
    path = make_delivery({"a.csv": b"phone\n0612345678\n"}, delivery_id="T-1")
    intake.commit(intake.prepare(path, home, key), home, label="T-1")
    with dg.instance_for_test() as instance:
        assert _materialize_ledger(home, instance).success
        con = duckdb.connect(str(home.warehouse))
        # the latest head claims another root: its signature no longer verifies
        note = con.execute("SELECT checkpoint FROM tree_heads ORDER BY tree_size DESC LIMIT 1").fetchone()[0]
        origin, size, root, rest = note.split("\n", 3)
        forged = root[:-2] + ("A=" if root[-2:] != "A=" else "B=")
        con.execute("UPDATE tree_heads SET checkpoint = ? WHERE checkpoint = ?",
                    ["\n".join([origin, size, forged, rest]), note])
        con.close()
        result = dg.materialize(
            [ledger_consistent], instance=instance,
            resources={"origine": OrigineHome(home=str(home.root))},
            selection=dg.AssetSelection.checks(ledger_consistent), raise_on_error=False,
        )
        [check] = result.get_asset_check_evaluations()
        assert not check.passed
        assert "does not verify" in check.description


@pytest.mark.parametrize("node, problem", [
    ((2, 0), "another root"),       # the root of the 4-leaf tree the head signs
    ((1, 1), "consistency proof"),  # the proof from size 2 (the first checkpoint) to size 4
])
def test_ledger_check_fails_when_history_was_rewritten(home, key, make_delivery, node, problem) -> None:
    """A node of the stored tree rewritten: the signed head still verifies, but the stored
    tree no longer has its root, or no longer extends the checkpoint Dagster kept."""
    with dg.instance_for_test() as instance:
        for n in range(2):
            path = make_delivery({"a.csv": f"phone\n061234567{n}\n".encode()}, delivery_id=f"H-{n}")
            intake.commit(intake.prepare(path, home, key), home, label=f"H-{n}")
            assert _materialize_ledger(home, instance).success
        con = duckdb.connect(str(home.warehouse))
        assert con.execute("SELECT count(*) FROM ledger_events").fetchone()[0] == 4  # 2 events a delivery
        con.execute("UPDATE ledger_nodes SET hash = ? WHERE level = ? AND idx = ?", [b"\x00" * 32, *node])
        con.close()
        result = dg.materialize(
            [ledger_consistent], instance=instance,
            resources={"origine": OrigineHome(home=str(home.root))},
            selection=dg.AssetSelection.checks(ledger_consistent), raise_on_error=False,
        )
        [check] = result.get_asset_check_evaluations()
        assert not check.passed
        assert problem in check.description, check.description
