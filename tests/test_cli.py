"""The CLI: output contract, exit statuses, keys, and runs recorded in the Dagster instance."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg
import pytest
from click.testing import CliRunner

from origine.cli import main
from origine.keys import DEMO_KEY
from tests.conftest import raw_forms, scan_tree_for

pytestmark = pytest.mark.slow


def run_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_ingest_json_output_and_runs_in_the_instance(home, key, make_delivery) -> None:
    d = make_delivery({"a.csv": b"phone;Religion\n0612345678;x\nn/a;y\n"}, delivery_id="C-1")
    code, out, err = run_cli("ingest", str(d), "--home", str(home.root), "--json")
    assert code == 0, err
    [summary] = json.loads(out)
    assert summary == {
        "delivery_id": "C-1",
        "vendor": "acme",
        "rows_read": 2,
        "rows_accepted": 1,
        "rows_quarantined": 1,
        "quarantine_reasons": {"PHONE_UNPARSEABLE": 1},
        "duplicate": False,
        "findings": [
            {"code": "SPECIAL_CATEGORY_COLUMN", "file": "a.csv", "column": "Religion", "category": "religion"}
        ],
    }
    # the run is a real run of the home's Dagster instance (visible in the UI)
    with dg.DagsterInstance.from_config(str(home.dagster)) as instance:
        runs = instance.get_runs()
        assert [r.job_name for r in runs] == ["ingest_delivery"]
        assert runs[0].status == dg.DagsterRunStatus.SUCCESS
        assert instance.get_dynamic_partitions("deliveries") == ["acme/C-1"]
    # again: duplicate, nothing added
    code, out, _ = run_cli("ingest", str(d), "--home", str(home.root), "--json")
    assert code == 0 and json.loads(out)[0]["duplicate"] is True
    # nothing raw in the warehouse nor in the Dagster storage
    assert scan_tree_for(home.root, raw_forms("+33612345678")) == []


def test_bad_input_exits_2_naming_file_row_and_column(home, key, make_delivery) -> None:
    d = make_delivery({"a.csv": b'phone,source\n0612345678,"open\n'})
    code, out, err = run_cli("ingest", str(d), "--home", str(home.root))
    assert code == 2
    assert "a.csv" in err and "row 1" in err
    d = make_delivery({"b.csv": b"name\nx\n"})
    code, _, err = run_cli("ingest", str(d), "--home", str(home.root))
    assert code == 2 and "b.csv" in err and "column 'phone'" in err
    assert "0612345678" not in err


def test_conflicting_redelivery_exits_2(home, key, make_delivery) -> None:
    run_cli("ingest", str(make_delivery({"a.csv": b"phone\n0612345678\n"}, delivery_id="S")), "--home", str(home.root))
    code, _, err = run_cli(
        "ingest", str(make_delivery({"a.csv": b"phone\n0612345679\n"}, delivery_id="S")), "--home", str(home.root)
    )
    assert code == 2 and "different bytes" in err


def test_no_key_and_demo_key_are_refused(home, make_delivery, monkeypatch) -> None:
    d = make_delivery({"a.csv": b"phone\n0612345678\n"})
    monkeypatch.delenv("ORIGINE_HASH_KEY", raising=False)
    monkeypatch.delenv("ORIGINE_HASH_KEY_FILE", raising=False)
    code, _, err = run_cli("ingest", str(d), "--home", str(home.root))
    assert code == 2 and "ORIGINE_HASH_KEY" in err
    monkeypatch.setenv("ORIGINE_HASH_KEY", DEMO_KEY.decode())
    code, _, err = run_cli("ingest", str(d), "--home", str(home.root))
    assert code == 2 and "demo key" in err
    assert DEMO_KEY.decode() not in err


def test_key_is_never_printed(home, key, make_delivery, monkeypatch) -> None:
    d = make_delivery({"a.csv": b"phone\n0612345678\n"})
    code, out, err = run_cli("ingest", str(d), "--home", str(home.root), "--json")
    secret = os.environ["ORIGINE_HASH_KEY"]
    assert secret not in out + err
    assert scan_tree_for(home.root, [secret.encode(), bytes.fromhex(secret)]) == []


def test_demo_runs_end_to_end_in_a_subprocess(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORIGINE_", "DAGSTER_"))}
    demo_home = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "origine.cli", "demo", "--home", str(demo_home), "--rows", "200", "--json"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    reports = json.loads(proc.stdout)
    assert [r["vendor"] for r in reports] == ["selfcontact", "atlas-data", "dakar-leads"]
    for r in reports:
        assert r["rows_read"] == r["rows_accepted"] + r["rows_quarantined"]
    # the demo home refuses to run with the demo key in other commands unless it is a demo home
    other = tmp_path / "prod"
    env["ORIGINE_HASH_KEY"] = DEMO_KEY.decode()
    proc = subprocess.run(
        [sys.executable, "-m", "origine.cli", "ingest", str(tmp_path), "--home", str(other)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 2 and "demo key" in proc.stderr


def test_blocking_expectation_stops_before_the_ledger(home, key, make_delivery) -> None:
    d = make_delivery({"a.csv": b"phone,consent_purposes,consent_at\n0612345678,sondages,01/01/1850\n"})
    code, out, err = run_cli("ingest", str(d), "--home", str(home.root))
    assert code == 2, err
    assert "segment_expectations" in err and "consent_at" in err and "column_values_to_be_between" in err
    import duckdb

    con = duckdb.connect(str(home.warehouse), read_only=True)
    assert con.execute("SELECT count(*) FROM ledger_events").fetchall() == [(0,)]
    assert con.execute("SELECT count(*) FROM deliveries").fetchall() == [(0,)]
    con.close()
    # the failing expectation is on the record in the Dagster instance (the UI shows it)
    with dg.DagsterInstance.from_config(str(home.dagster)) as instance:
        [run] = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.FAILURE
