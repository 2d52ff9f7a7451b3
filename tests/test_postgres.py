"""The Dagster instance: SQLite by default, PostgreSQL when ``$ORIGINE_DAGSTER_PG_URL`` is set.

The PostgreSQL test starts a real server (``tests/postgres_server.py``) and is skipped,
saying why, when none can be started; ``.ci/run`` installs one and sets
``ORIGINE_TEST_REQUIRE_POSTGRES=1`` so that in CI a skip becomes a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from origine.home import PG_URL_ENV, Home
from tests import postgres_server


@pytest.fixture(scope="module")
def postgres():
    try:
        server = postgres_server.start()
    except postgres_server.Unavailable as exc:
        if os.environ.get("ORIGINE_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"ORIGINE_TEST_REQUIRE_POSTGRES=1 but no PostgreSQL server could be started: {exc}")
        pytest.skip(f"no PostgreSQL server could be started: {exc}")
    yield server
    server.stop()


def _config(home: Home) -> dict:
    return yaml.safe_load((home.dagster / "dagster.yaml").read_text())


def test_dagster_yaml_sqlite_by_default_postgres_when_configured(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(PG_URL_ENV, raising=False)
    home = Home(tmp_path / "home").ensure()
    assert "storage" not in _config(home)  # Dagster's SQLite default under DAGSTER_HOME

    secret_url = "postgresql+psycopg2://origine:s3cret@db.internal:5432/dagster"
    monkeypatch.setenv(PG_URL_ENV, secret_url)
    home.ensure()
    config = _config(home)
    assert config["storage"] == {"postgres": {"postgres_url": {"env": PG_URL_ENV}}}
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert "s3cret" not in (home.dagster / "dagster.yaml").read_text()  # the secret stays in the env

    monkeypatch.delenv(PG_URL_ENV)
    home.ensure()  # no silent fall-back to an empty SQLite instance
    assert "storage" in _config(home)

    own = "telemetry:\n  enabled: false\n"  # an operator's own file is left alone
    (home.dagster / "dagster.yaml").write_text(own)
    monkeypatch.setenv(PG_URL_ENV, secret_url)
    home.ensure()
    assert (home.dagster / "dagster.yaml").read_text() == own


def test_dead_daemon_runs_are_failed_and_their_pool_slots_freed(tmp_path: Path, monkeypatch) -> None:
    """A daemon-launched run killed outright carries no process tag for the CLI to
    reclaim: the instance's run monitoring fails it and frees the slot it held.
    Homes whose origine-written file predates this get it on the next start."""
    import dagster as dg

    monkeypatch.delenv(PG_URL_ENV, raising=False)
    home = Home(tmp_path / "home").ensure()
    old = (home.dagster / "dagster.yaml").read_text().split("run_monitoring:")[0]
    (home.dagster / "dagster.yaml").write_text(old)
    home.ensure()
    monitoring = _config(home)["run_monitoring"]
    assert monitoring["enabled"] and monitoring["free_slots_after_run_end_seconds"] > 0
    assert 0 < monitoring["max_runtime_seconds"] and monitoring["max_resume_run_attempts"] == 0
    monkeypatch.setenv("DAGSTER_HOME", str(home.dagster))
    with dg.DagsterInstance.get() as instance:  # Dagster accepts the settings as written
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_runtime_seconds == monitoring["max_runtime_seconds"]
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 60


def test_bare_postgresql_url_needs_a_driver(monkeypatch) -> None:
    from origine.errors import OrigineError
    from origine.home import check_pg_url

    check_pg_url("postgresql+psycopg2://u:pw@h/db")
    try:
        import psycopg  # noqa: F401  (SQLAlchemy 2.1's default driver for postgresql://)
    except ImportError:
        with pytest.raises(OrigineError, match=r"postgresql\+psycopg2://") as info:
            check_pg_url("postgresql://u:s3cret@h/db")
        assert "s3cret" not in str(info.value)


@pytest.mark.slow
def test_ingest_run_recorded_in_postgres(postgres, tmp_path: Path, monkeypatch, key, make_delivery) -> None:
    import dagster as dg
    import psycopg2
    from dagster_postgres import PostgresRunStorage

    from pipelines import runs

    home = Home(tmp_path / "home")
    monkeypatch.setenv("ORIGINE_HOME", str(home.root))
    monkeypatch.setenv("DAGSTER_HOME", str(home.dagster))
    monkeypatch.setenv(PG_URL_ENV, postgres.url)
    runs.activate(home)
    delivery = make_delivery({"a.csv": b"phone\n0612345678\n0698765432\nbad\n"}, delivery_id="PG-1")

    report = runs.ingest_via_dagster(home, delivery)
    assert (report.rows_accepted, report.rows_quarantined) == (2, 1)

    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        [run] = instance.get_runs(dg.RunsFilter(job_name="ingest_delivery"))
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["dagster/partition"] == "acme/PG-1"
        assert instance.get_dynamic_partitions("deliveries") == ["acme/PG-1"]
    # Straight from the server: the run and its materializations are in PostgreSQL ...
    with psycopg2.connect(postgres.dsn) as con, con.cursor() as cur:
        cur.execute("SELECT pipeline_name, status, partition FROM runs")
        assert cur.fetchall() == [("ingest_delivery", "SUCCESS", "acme/PG-1")]
        cur.execute(
            "SELECT asset_key FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' ORDER BY id"
        )
        assert [k for (k,) in cur.fetchall()] == ['["delivery_segment"]', '["warehouse_delivery"]']
    con.close()
    # ... and no SQLite run or event storage was created beside it.
    assert not list(home.dagster.rglob("*.db"))
