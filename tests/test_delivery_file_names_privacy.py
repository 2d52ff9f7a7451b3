"""A delivery's file names are stored scrubbed, like suppression files' and send reports'.

A delivery whose data file is named after a number (the manifest lists
``contacts-0622334455.csv``; a zip member or a file in a sub-folder so named) put that
number in the ledger's delivery leaf (``files[].name``), the warehouse (``delivery_files``,
``delivery_rows.file``, ``quarantine.file``, findings), the ingest report, the run's
metadata and outputs in Dagster's storage, and the bundles citing the delivery; a
delivery folder or zip so named put it in the run's config (and the landing sensor's run
key). Real deliveries through the CLI (subprocesses) and through the landing sensor (the
home's own Dagster instance, the requested runs executed), then every file of the home
and of the outputs scanned for every written form of every number.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

import dagster as dg
import duckdb
import phonenumbers
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from origine.errors import BadInput
from origine.freetext import tel_token
from origine.keys import HashKey
from origine.landing import scan_landing
from origine.manifest import open_delivery, stored_name
from pipelines.definitions import build_definitions
from pipelines.resources import OrigineHome
from pipelines.sensors import landing_sensor
from tests.conftest import TEST_KEY_HEX
from tests.privacy import Scanner, assert_no_raw_number, written_forms
from tests.processes import run_cli

pytestmark = pytest.mark.slow

FILE_NUMBER = "+33622334455"  # contacts-0622334455.csv
DIR_NUMBER = "+33633445566"  # a sub-folder of the delivery: "06 33 44 55 66/extra.csv"
FOLDER_NUMBER = "+33644556677"  # the delivery folder: livraison-0644556677
ZIP_NUMBER = "+33655667788"  # the zip delivery: 0655667788.zip
MEMBER_NUMBER = "+33666778899"  # its member: "export 06 66 77 88 99.csv"
BAD_NUMBER = "+33677889900"  # a delivery that fails: erreur-0677889900
WAIT_NUMBER = "+33699887766"  # a landing entry whose manifest does not parse
CONFLICT_NUMBER = "+33611998877"  # a landing entry re-delivering D-1 with other bytes: encore-0611998877
A, B, C = "+33612345678", "+33698765432", "+33611223344"
NAME_NUMBERS = [FILE_NUMBER, DIR_NUMBER, FOLDER_NUMBER, ZIP_NUMBER, MEMBER_NUMBER, BAD_NUMBER, WAIT_NUMBER,
                CONFLICT_NUMBER]

CONTACTS = (
    "phone,source,consent_purposes,consent_at,religion\n"
    "06 12 34 56 78,jeu,propagande électorale,2024-01-02,x\n"
    "06 98 76 54 32,jeu,propagande électorale,pas une date,x\n"  # UNREADABLE_DATE cites the file
    "n/a,jeu,,,x\n"  # quarantined: the quarantine cites the file
).encode()
EXTRA = "phone,source,consent_purposes,consent_at\n06 11 22 33 44,jeu,propagande électorale,2024-01-03\n".encode()


def _manifest(delivery_id: str, files: dict[str, bytes], *, rows: dict[str, int] | None = None) -> bytes:
    doc = {
        "delivery_id": delivery_id, "vendor": "acme", "recipient": "party-a",
        "delivered_at": "2024-06-05T09:00:00+02:00", "country": "FR", "timezone": "Europe/Paris",
        "files": [{"path": name, "sha256": hashlib.sha256(data).hexdigest(),
                   "rows": (rows or {}).get(name, data.count(b"\n") - 1)} for name, data in files.items()],
    }
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False).encode()


def _folder(path: Path, delivery_id: str, files: dict[str, bytes], **kw) -> Path:
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    (path / "manifest.yaml").write_bytes(_manifest(delivery_id, files, **kw))
    return path


def _zip(path: Path, delivery_id: str, files: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.yaml", _manifest(delivery_id, files))
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def _deliveries(parent: Path) -> tuple[Path, Path]:
    folder = _folder(parent / "livraison-0644556677", "D-1",
                     {"contacts-0622334455.csv": CONTACTS, "06 33 44 55 66/extra.csv": EXTRA})
    archive = _zip(parent / "0655667788.zip", "D-2", {"export 06 66 77 88 99.csv": CONTACTS})
    return folder, archive


def _stored(key) -> dict[str, str]:
    return {
        "contacts-0622334455.csv": f"contacts-{tel_token(FILE_NUMBER, key)}.csv",
        "06 33 44 55 66/extra.csv": f"{tel_token(DIR_NUMBER, key)}/extra.csv",
        "export 06 66 77 88 99.csv": f"export {tel_token(MEMBER_NUMBER, key)}.csv",
    }


def _warehouse_names(home) -> dict[str, set]:
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        def names(sql: str) -> set:
            return {r[0] for r in con.execute(sql).fetchall()}

        return {
            "delivery_files": names("SELECT path FROM delivery_files"),
            "sha256": names("SELECT sha256 FROM delivery_files"),
            "delivery_rows": names("SELECT DISTINCT file FROM delivery_rows"),
            "quarantine": names("SELECT DISTINCT file FROM quarantine"),
            "ledger_events": names("SELECT DISTINCT file FROM ledger_events WHERE file IS NOT NULL"),
            "findings": names("SELECT detail->>'file' FROM findings WHERE detail->>'file' IS NOT NULL"),
            "report_files": names("SELECT unnest(json_extract_string(report, '$.files[*].path')) FROM deliveries"),
            "leaf_files": names("SELECT f.name FROM (SELECT unnest(files) AS f FROM ledger_leaves "
                                "WHERE \"type\" = 'delivery')"),
        }
    finally:
        con.close()


def _assert_stored_as_tokens(home, key) -> None:
    """The tokens are where the names were: the scan saw the names, not nothing."""
    stored = _stored(key)
    found = _warehouse_names(home)
    assert found["delivery_files"] == set(stored.values())
    assert found["leaf_files"] == set(stored.values())
    assert found["report_files"] == set(stored.values())
    assert found["delivery_rows"] == set(stored.values())
    assert set(stored.values()) <= found["ledger_events"]  # with the campaign's spec, in the CLI test
    assert found["quarantine"] == {stored["contacts-0622334455.csv"], stored["export 06 66 77 88 99.csv"]}
    assert stored["contacts-0622334455.csv"] in found["findings"]
    # the SHA-256 stored is each file's own, as the manifest declares it
    assert found["sha256"] == {hashlib.sha256(CONTACTS).hexdigest(), hashlib.sha256(EXTRA).hexdigest()}


def _campaign(folder: Path) -> Path:
    folder.mkdir(parents=True)
    doc = {"campaign_id": "EU24-SMS-02", "sponsor": "Parti A", "channel": "sms",
           "purpose": "political.electoral", "sender": "PARTI-A",
           "message": "Parti A vous invite à voter. STOP au 36789", "sent_at": "2024-06-07T18:00:00+02:00",
           "timezone": "Europe/Paris", "targets": {"deliveries": ["D-1", "D-2"]}}
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def test_cli_stores_a_delivery_file_named_after_a_number_scrubbed(home, key, tmp_path) -> None:
    folder, archive = _deliveries(tmp_path / "deliveries")
    ingested = run_cli(home, "ingest", str(folder), str(archive), "--json")
    assert ingested.returncode == 0, ingested.stderr
    summaries = json.loads(ingested.stdout)
    assert [s["rows_accepted"] for s in summaries] == [3, 2]
    unreadable = [f for s in summaries for f in s["findings"] if f["code"] == "UNREADABLE_DATE"]
    assert {f["file"] for f in unreadable} == {_stored(key)["contacts-0622334455.csv"],
                                               _stored(key)["export 06 66 77 88 99.csv"]}

    # the same bytes again: a duplicate, read from the stored report
    again = run_cli(home, "ingest", str(folder), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)[0]["duplicate"] is True

    # a delivery that fails names its file as given on the terminal, and only there
    bad = _folder(tmp_path / "deliveries" / "erreur-0677889900", "D-3",
                  {"contacts-0622334455.csv": CONTACTS}, rows={"contacts-0622334455.csv": 7})
    failed = run_cli(home, "ingest", str(bad))
    assert failed.returncode == 2, failed.stderr
    assert f"{bad}/contacts-0622334455.csv" in failed.stderr
    assert "manifest declares 7 rows" in failed.stderr

    quarantine = run_cli(home, "quarantine", "acme", "D-1")
    assert quarantine.returncode == 0, quarantine.stderr
    spec = _campaign(tmp_path / "campaign")
    out = tmp_path / "out"
    audited = run_cli(home, "audit", str(spec), "--out", str(out), "--json")
    assert audited.returncode == 0, audited.stderr
    [bundle] = {p.parent for p in out.rglob("manifest.json")}
    verified = run_cli(home, "verify", str(bundle), "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr

    scanner = Scanner([*NAME_NUMBERS, A, B, C])
    hits = scanner.scan_tree(home.root, exclude=["landing"]) + scanner.scan_tree(out)
    for name, result in (("ingest", ingested), ("ingest again", again), ("quarantine", quarantine),
                         ("audit", audited), ("verify", verified)):
        hits += scanner.scan_text(result.stdout + result.stderr, f"{name} output")
    hits += scanner.scan_text(failed.stdout, "failed ingest's output")
    assert_no_raw_number(hits)

    _assert_stored_as_tokens(home, key)
    assert _stored(key)["contacts-0622334455.csv"] in quarantine.stdout
    # the bundle cites the delivery leaf, its files under their stored names
    cited = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in bundle.rglob("*") if p.is_file())
    assert _stored(key)["contacts-0622334455.csv"] in cited
    # Dagster's storage: the run read the delivery through a link named as stored
    with dg.DagsterInstance.get() as instance:
        paths = [r.dagster_run.run_config["ops"]["delivery_segment"]["config"]["path"]
                 for r in instance.get_run_records(filters=dg.RunsFilter(job_name="ingest_delivery"))]
    assert any(p.endswith(f"livraison-{tel_token(FOLDER_NUMBER, key)}") for p in paths)
    assert any(p.endswith(f"{tel_token(ZIP_NUMBER, key)}.zip") for p in paths)


def test_landing_sensor_stores_a_delivery_named_after_a_number_scrubbed(home, key, capfd) -> None:
    folder, archive = _deliveries(home.landing)
    waiting = home.landing / "attente-0699887766"
    waiting.mkdir()
    (waiting / "manifest.yaml").write_text("delivery_id: [not, an, id]\n", encoding="utf-8")

    defs = build_definitions()
    resources = {"origine": OrigineHome(home=str(home.root), hash_key=TEST_KEY_HEX)}
    with dg.DagsterInstance.get() as instance:  # the home's own instance ($DAGSTER_HOME)
        ctx = dg.build_sensor_context(instance=instance, resources=resources)
        result = landing_sensor(ctx)
        requests = {r.partition_key: r for r in result.run_requests}
        assert set(requests) == {"acme/D-1", "acme/D-2"}
        for request in requests.values():
            instance.add_dynamic_partitions("deliveries", [request.partition_key])
            run = defs.resolve_job_def("ingest_delivery").execute_in_process(
                instance=instance, run_config=request.run_config, partition_key=request.partition_key,
                tags=request.tags,
            )
            assert run.success
        # the same deliveries again: the same run keys (nothing new to run); D-1 again with
        # other bytes is refused, and the sensor's log names it as stored
        _folder(home.landing / "encore-0611998877", "D-1", {"contacts-0622334455.csv": EXTRA})
        capfd.readouterr()
        again = landing_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        log = "\n".join(capfd.readouterr())  # a sensor's log, as the tick shows it
        assert {r.partition_key: r.run_key for r in again.run_requests} == {
            k: r.run_key for k, r in requests.items()}
    assert f"refused encore-{tel_token(CONFLICT_NUMBER, key)}" in log
    assert f"waiting on attente-{tel_token(WAIT_NUMBER, key)}" in log

    scanner = Scanner([*NAME_NUMBERS, A, B, C])
    hits = scanner.scan_tree(home.root, exclude=["landing"])
    hits += scanner.scan_text(repr([(r.run_key, r.run_config, r.tags) for r in requests.values()]), "run requests")
    # what the sensor logs of a landing entry it waits on
    _, problems = scan_landing(home.landing, key)
    hits += scanner.scan_text(repr([(p.name, p.message) for p in problems]), "landing problems")
    hits += scanner.scan_text(log, "the sensor's log")
    assert_no_raw_number(hits)

    _assert_stored_as_tokens(home, key)
    configs = {k: r.run_config["ops"]["delivery_segment"]["config"]["path"] for k, r in requests.items()}
    assert configs["acme/D-1"].endswith(f"livraison-{tel_token(FOLDER_NUMBER, key)}")
    assert configs["acme/D-2"].endswith(f"{tel_token(ZIP_NUMBER, key)}.zip")
    assert [p.name for p in problems] == [f"attente-{tel_token(WAIT_NUMBER, key)}"]


def test_two_files_stored_under_one_name_are_refused(key, tmp_path) -> None:
    """Two spellings of one number name two files the same once scrubbed: the rows of the
    second would cite the first (a row leaf names its file by position in the delivery leaf)."""
    files = {"0622334455.csv": EXTRA, "06 22 33 44 55.csv": CONTACTS}
    folder = _folder(tmp_path / "twice", "D-9", files)
    with open_delivery(folder) as delivery:
        with pytest.raises(BadInput, match=r"files\[2\].*same name"):
            delivery.stored_names(key)


def test_a_killed_runs_link_folder_is_swept_and_its_target_kept(home, tmp_path) -> None:
    """A CLI run killed before its clean-up leaves its link (which points at the path as
    given, number included); the next ingest on this host removes a dead pid's folder,
    never what the link points at, and keeps a live run's and another host's."""
    import os
    import subprocess
    import sys

    from origine.ingest import intake
    from origine.manifest import host_tag

    given = tmp_path / "livraison-0644556677"
    given.mkdir()
    (given / "manifest.yaml").write_text("x")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its pid names no process
    dead = home.scratch / f"link-{child.pid}-{host_tag()}-x1y2z3"
    live = home.scratch / f"link-{os.getpid()}-{host_tag()}-a1b2c3"
    elsewhere = home.scratch / f"link-{child.pid}-otherhost{host_tag()}-q1w2e3"
    for folder in (dead, live, elsewhere):
        folder.mkdir(parents=True)
        (folder / "livraison-[tel:0123456789ab]").symlink_to(given)
    assert intake.sweep_dead_partials(home.scratch) == [dead]
    assert not dead.exists() and live.exists() and elsewhere.exists()
    assert (given / "manifest.yaml").read_text() == "x"


_KEY = HashKey(bytes.fromhex(TEST_KEY_HEX))
_AROUND = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéè"


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.text(alphabet=_AROUND + "-_ /", max_size=12).map(lambda s: s if not s or s[-1] in "-_ /" else s + "-"),
    number=st.sampled_from([A, FILE_NUMBER, "+212612345678", "+221771234567", "+14155550123"]),
    form=st.integers(min_value=0),
    suffix=st.sampled_from(["", ".csv", ".csv.gz", "/contacts.csv", "_v2.xlsx", " (1).jsonl"]),
)
def test_a_stored_name_holds_no_written_form_of_its_number(prefix: str, number: str, form: int, suffix: str) -> None:
    """Whatever surrounds it and however it is written, a number in a file's name is
    stored as its token (read in its own region, as the delivery's manifest says)."""
    forms = written_forms(number)
    written = forms[form % len(forms)]
    region = phonenumbers.region_code_for_number(phonenumbers.parse(number))
    stored = stored_name(prefix + written + suffix, _KEY, region)
    assert_no_raw_number(Scanner([number]).scan_text(stored, repr(prefix + written + suffix)))
    # "77.123.45.67" reads as an IP address, " (1)" as the number's last group: another
    # token, still none of the number's forms; the rest of the name as it was
    token = r"\[(?:tel|ip):[0-9a-f]{12}\]"
    rest = "" if suffix.startswith(" (") else re.escape(suffix) + "$"
    assert re.match(re.escape(prefix) + token + rest, stored), stored
    if "." not in written and not suffix.startswith(" ("):
        assert stored == prefix + tel_token(number, _KEY) + suffix
