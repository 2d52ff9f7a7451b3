"""The CLI: output contract, exit statuses, keys, and runs recorded in the Dagster instance."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner

from pipelines.cli import main
from origine.keys import DEMO_KEY
from tests.conftest import raw_forms, scan_tree_for
from tests.privacy import Scanner, assert_no_raw_number

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
    # nothing raw in the warehouse nor in the Dagster storage, in any written form
    assert_no_raw_number(Scanner(["+33612345678"]).scan_tree(home.root, exclude=["landing"]))


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
        [sys.executable, "-m", "pipelines.cli", "demo", "--home", str(demo_home), "--rows", "200", "--json"],
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
        [sys.executable, "-m", "pipelines.cli", "ingest", str(tmp_path), "--home", str(other)],
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


# ---------------------------------------------------------------- audit --out (issue 17, item 5)

TARGETS = ["+33612345678", "+33612345679"]


@pytest.fixture
def campaign_folder(home, key, make_delivery, tmp_path):
    """A delivery in the ledger and a campaign folder as a user keeps it: the spec beside
    its raw target list (``targets.csv``) and send report."""
    from tests.test_audit import GOOD_MESSAGE, SENT_AT, csv_bytes, ingest, national

    rows = [f"{national(n)},jeu,political.electoral,2024-01-02,proof" for n in TARGETS]
    ingest(make_delivery({"c.csv": csv_bytes("phone,source,consent_purposes,consent_at,consent_proof", rows)},
                         delivery_id="D-1", delivered_at="2024-02-01T00:00:00Z"), home, key)
    folder = tmp_path / "eu24"
    folder.mkdir()
    (folder / "targets.csv").write_bytes(csv_bytes("phone", [national(n) for n in TARGETS]))
    (folder / "report.csv").write_bytes(
        csv_bytes("phone,sent_at,stop_reply_at", [f"{national(TARGETS[0])},2024-06-07T18:00:00+02:00,"]))
    (folder / "campaign.yaml").write_text(yaml.safe_dump({
        "campaign_id": "EU24", "sponsor": "Parti A", "channel": "sms", "purpose": "political.electoral",
        "sender": "PARTI-A", "message": GOOD_MESSAGE, "sent_at": SENT_AT,
        "targets": {"deliveries": ["D-1"], "file": "targets.csv"}, "send_report": "report.csv",
    }))
    return folder


def _ledger_size(home) -> int:
    import duckdb

    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM ledger_events").fetchone()[0]
    finally:
        con.close()


def _snapshot(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("as_zip", [False, True])
def test_audit_refuses_the_campaigns_own_folder_before_the_ledger(home, key, campaign_folder, as_zip) -> None:
    """Issue 17 item 5: --out the campaign's folder signed the raw target list and send
    report into a bundle that verified, and overwrote the user's targets.csv."""
    before, size = _snapshot(campaign_folder), _ledger_size(home)
    args = ["audit", str(campaign_folder / "campaign.yaml"), "--out", str(campaign_folder), "--home", str(home.root)]
    code, out, err = run_cli(*args, *(["--zip"] if as_zip else []))
    assert code == 2, out + err
    assert "--out" in err and "not part of an origine bundle" in err
    assert _snapshot(campaign_folder) == before  # targets.csv untouched, no manifest signed
    assert _ledger_size(home) == size  # refused before anything was appended
    assert not campaign_folder.with_name("eu24.zip").exists()
    for n in TARGETS:
        assert all(f.decode() not in out + err for f in raw_forms(n))


def test_audit_out_dot_zip_writes_a_bundle_and_a_zip_beside_it(home, key, campaign_folder, tmp_path,
                                                               monkeypatch) -> None:
    """``--out . --zip`` crashed (``Path('.').with_name``) after the ledger append."""
    from origine.bundle import BUNDLE_FILES, verify_bundle

    here = tmp_path / "bundle-here"
    here.mkdir()
    monkeypatch.chdir(here)
    args = ["audit", str(campaign_folder / "campaign.yaml"), "--out", ".", "--zip", "--home", str(home.root)]
    code, out, err = run_cli(*args)
    assert code == 0, err
    archive = tmp_path / "bundle-here.zip"
    assert verify_bundle(here, home_keys=home.keys).ok and verify_bundle(archive, home_keys=home.keys).ok
    import zipfile

    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == sorted([*BUNDLE_FILES, "manifest.json"])
    # the same campaign again into its own bundle: replaced, nothing appended twice
    size = _ledger_size(home)
    (here / "targets.parquet.tmp").write_bytes(b"left by an interrupted audit")
    code, out, err = run_cli(*args)
    assert code == 0, err
    assert _ledger_size(home) == size
    assert not (here / "targets.parquet.tmp").exists()
    assert verify_bundle(here, home_keys=home.keys).ok and verify_bundle(archive, home_keys=home.keys).ok


def test_audit_refuses_another_campaigns_bundle_a_stray_file_and_a_foreign_zip(home, key, campaign_folder,
                                                                               tmp_path) -> None:
    spec = campaign_folder / "campaign.yaml"
    out = tmp_path / "out"
    code, _, err = run_cli("audit", str(spec), "--out", str(out), "--home", str(home.root))
    assert code == 0, err
    size = _ledger_size(home)
    other = tmp_path / "other.yaml"
    other.write_text(spec.read_text().replace("campaign_id: EU24", "campaign_id: EU25")
                     .replace("targets.csv", str(campaign_folder / "targets.csv"))
                     .replace("report.csv", str(campaign_folder / "report.csv")))
    before = _snapshot(out)
    code, _, err = run_cli("audit", str(other), "--out", str(out), "--home", str(home.root))
    assert code == 2 and "not a bundle of campaign EU25" in err
    assert _snapshot(out) == before and _ledger_size(home) == size
    (out / "notes.txt").write_text("mine")
    code, _, err = run_cli("audit", str(spec), "--out", str(out), "--home", str(home.root))
    assert code == 2 and "1 file(s) that are not part of an origine bundle" in err and "notes.txt" not in err
    assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    foreign_zip = tmp_path / "out.zip"
    foreign_zip.write_bytes(b"the user's own archive")
    code, _, err = run_cli("audit", str(spec), "--out", str(out), "--zip", "--home", str(home.root))
    assert code == 2 and "out.zip" in err
    assert foreign_zip.read_bytes() == b"the user's own archive" and _ledger_size(home) == size
    foreign_zip.unlink()
    # a file named like a bundle's but not a bundle of this campaign (no summary.json)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "targets.csv").write_bytes(b"phone\n0612345678\n")
    code, _, err = run_cli("audit", str(spec), "--out", str(fresh), "--home", str(home.root))
    assert code == 2 and (fresh / "targets.csv").read_bytes() == b"phone\n0612345678\n"
    assert _ledger_size(home) == size
