"""Run metadata shown in the Dagster UI: rows/s, quarantine counts, tree size and root; no numbers in logs."""

from __future__ import annotations

import dagster as dg
import pytest

from assets.ingest import delivery_segment, rows_accounted_for, warehouse_delivery
from pipelines.jobs import delivery_run_config
from assets.partitions import deliveries_partitions
from origine import ledger, warehouse
from pipelines.resources import OrigineHome
from tests.conftest import TEST_KEY_HEX, raw_forms

pytestmark = pytest.mark.slow


def test_ingest_run_metadata_and_logs(home, key, make_delivery) -> None:
    numbers = ["+33612345678", "+33698765432"]
    d = make_delivery({"a.csv": b"phone\n0612345678\n0698765432\nbad\n"}, delivery_id="OBS-1")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(deliveries_partitions.name, ["acme/OBS-1"])
        result = dg.materialize(
            [delivery_segment, warehouse_delivery, rows_accounted_for],
            partition_key="acme/OBS-1", instance=instance,
            resources={"origine": OrigineHome(home=str(home.root), hash_key=TEST_KEY_HEX)},
            run_config=delivery_run_config(str(d)),
        )
        assert result.success
        materializations = [e.materialization for e in result.get_asset_materialization_events()]
        by_asset = {m.asset_key.path[-1]: m.metadata for m in materializations}
        segment, commit = by_asset["delivery_segment"], by_asset["warehouse_delivery"]
        assert segment["rows_read"].value == 3 and segment["rows_quarantined"].value == 1
        assert segment["rows_per_second"].value > 0 and segment["quarantine_reasons"].value
        with warehouse.session(home.warehouse, read_only=True) as con:
            head = ledger.latest_head(con)
        assert commit["tree_size"].value == head.tree_size > 0
        assert commit["root_hash"].value == head.root_hash
        assert commit["events_appended"].value > 0 and commit["duplicate"].value is False
        logs = " ".join(str(e.message) for e in instance.all_logs(result.run_id))
        for e164 in numbers:
            assert key.subject_key(e164) not in logs
            assert not any(form.decode() in logs for form in raw_forms(e164))
