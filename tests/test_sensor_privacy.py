"""The suppressions sensor keeps a number in a file's name out of Dagster's storage.

A file dropped in ``suppressions/`` named after a number ("stop-0611223399.csv") became
the partition key, the run key, the run's config and its tags: the raw number sat in the
Dagster instance's database. The CLI already ran such a file through a link named as
the ledger stores it; the sensor now does the same. A real instance on the home's
Dagster folder, the request run as the daemon would, then every file of the home scanned.
"""

from __future__ import annotations

import dagster as dg

from origine.freetext import tel_token
from origine.ingest import intake
from pipelines.definitions import build_definitions
from pipelines.resources import OrigineHome
from pipelines.sensors import suppressions_sensor
from tests.conftest import TEST_KEY_HEX
from tests.privacy import Scanner, assert_no_raw_number

STOP_NUMBER = "+33611223399"
SUBSCRIBER = "+33612345678"


def _home_with(home, key, make_delivery, numbers: bytes, stops: dict[str, str]) -> None:
    """A committed delivery of ``numbers`` and the suppression files ``stops`` (name: rows)."""
    path = make_delivery({"a.csv": b"phone\n" + numbers})
    intake.commit(intake.prepare(path, home, key), home, label="x")
    for name, rows in stops.items():
        (home.suppressions / name).write_text("phone;channel;at;origin\n" + rows, encoding="utf-8")


def _sensor_context(instance: dg.DagsterInstance, home) -> dg.SensorEvaluationContext:
    return dg.build_sensor_context(
        instance=instance, resources={"origine": OrigineHome(home=str(home.root), hash_key=TEST_KEY_HEX)})


def test_sensor_runs_a_file_named_after_a_number_without_storing_it(home, key, make_delivery) -> None:
    _home_with(home, key, make_delivery, b"0612345678\n", {
        "stop-0611223399.csv": "06 12 34 56 78;sms;2024-05-01;stop-reply\n",
        "dpo.csv": "06 12 34 56 78;all;2024-05-02;dpo-request\n",
    })

    stored = f"stop-{tel_token(STOP_NUMBER, key)}.csv"
    defs = build_definitions()
    with dg.DagsterInstance.get() as instance:  # the home's own instance ($DAGSTER_HOME)
        ctx = _sensor_context(instance, home)
        requests = {r.partition_key: r for r in suppressions_sensor(ctx)}
        assert set(requests) == {"dpo.csv", stored}
        assert set(instance.get_dynamic_partitions("suppression_files")) == {"dpo.csv", stored}
        for request in requests.values():
            result = defs.resolve_job_def("suppressions_job").execute_in_process(
                instance=instance, run_config=request.run_config, partition_key=request.partition_key,
                tags=request.tags,
            )
            assert result.success
            assert result.output_for_node("suppression_list")["rows_accepted"] == 1
        # the same files again: the same run keys (nothing new to run)
        again = {r.partition_key: r.run_key for r in suppressions_sensor(ctx)}
        assert again == {k: r.run_key for k, r in requests.items()}

    scanner = Scanner([STOP_NUMBER, SUBSCRIBER])
    hits = scanner.scan_tree(home.root, exclude=["landing", "suppressions"])
    hits += scanner.scan_text(repr([(r.run_key, r.run_config, r.tags) for r in requests.values()]), "run requests")
    assert_no_raw_number(hits)


def test_sensor_and_cli_read_naive_times_in_the_same_zone(home, key, make_delivery) -> None:
    """A French STOP list's "07/06/2024 18:03" is Paris time whichever way the file comes in:
    the sensor's runs read it as UTC (two hours later) while `origine suppress` read Paris."""
    from assets.suppressions import SuppressionConfig
    from pipelines.cli import main

    cli_default = next(p.default for p in main.commands["suppress"].params if p.name == "tz")
    assert SuppressionConfig(path="x").timezone == cli_default

    _home_with(home, key, make_delivery, b"0612345678\n",
               {"stop.csv": "06 12 34 56 78;sms;07/06/2024 18:03;stop-reply\n"})
    with dg.DagsterInstance.get() as instance:
        ctx = _sensor_context(instance, home)
        [request] = list(suppressions_sensor(ctx))
        result = build_definitions().resolve_job_def("suppressions_job").execute_in_process(
            instance=instance, run_config=request.run_config, partition_key=request.partition_key)
        assert result.success
    import duckdb

    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        [(at,)] = con.execute("SELECT strftime(\"at\", '%Y-%m-%d %H:%M') FROM ledger_events "
                              "WHERE type = 'opted_out'").fetchall()
    finally:
        con.close()
    assert at == "2024-06-07 16:03"


def test_two_files_named_after_one_number_are_each_ingested(home, key, make_delivery) -> None:
    """Found in review: ``stop-0611223399.csv`` and ``stop-06.11.22.33.99.csv`` have one stored
    name; they shared one link and one partition, so one file was ingested twice (the second
    time as a duplicate) and the other's opt-out never recorded."""
    _home_with(home, key, make_delivery, b"0612345678\n0698765432\n", {
        "stop-0611223399.csv": "06 12 34 56 78;sms;2024-05-01;stop-reply\n",
        "stop-06.11.22.33.99.csv": "06 98 76 54 32;sms;2024-05-01;stop-reply\n",
    })
    defs = build_definitions()
    with dg.DagsterInstance.get() as instance:
        ctx = _sensor_context(instance, home)
        requests = list(suppressions_sensor(ctx))
        assert len({r.partition_key for r in requests}) == 2
        assert len({r.run_config["ops"]["suppression_list"]["config"]["path"] for r in requests}) == 2
        for request in requests:
            result = defs.resolve_job_def("suppressions_job").execute_in_process(
                instance=instance, run_config=request.run_config, partition_key=request.partition_key)
            assert result.success
            assert result.output_for_node("suppression_list")["rows_accepted"] == 1
    import duckdb

    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        [(opted,)] = con.execute(
            "SELECT count(DISTINCT subject_key) FROM ledger_events WHERE type = 'opted_out'").fetchall()
    finally:
        con.close()
    assert opted == 2
    hits = Scanner([STOP_NUMBER, SUBSCRIBER, "+33698765432"]).scan_text(
        repr([(r.run_key, r.partition_key, r.run_config, r.tags) for r in requests]), "run requests")
    assert_no_raw_number(hits)
