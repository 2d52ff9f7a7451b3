"""File names are stored scrubbed: a suppression file or a campaign's send report / target
file named after a phone number put that number in the ledger, the warehouse, the audit
summary and the command's output. Run through the CLI in subprocesses on a real home."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from origine.ingest import intake
from origine.freetext import tel_token
from tests.privacy import Scanner, assert_no_raw_number
from tests.processes import run_cli

STOP_NUMBER = "+33611223399"  # in the suppression file's name
REPORT_NUMBER = "+33622334455"  # in the send report's name
TARGET_NUMBER = "+33633445566"  # in the target file's name
A, B = "+33612345678", "+33698765432"


def _deliver(home, key, make_delivery) -> None:
    rows = "phone,source,consent_purposes,consent_at,consent_proof\n"
    rows += "06 12 34 56 78,jeu,propagande électorale,2024-01-02,form-1\n"
    rows += "06 98 76 54 32,jeu,propagande électorale,2024-01-02,form-2\n"
    path = make_delivery({"contacts.csv": rows.encode()}, delivery_id="D-1")
    intake.commit(intake.prepare(path, home, key), home, label="test")


def _campaign(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "0622334455.csv").write_text(
        "phone;sent_at;reponse;date reponse\n"
        "06 12 34 56 78;07/06/2024 18:00;STOP;07/06/2024 18:03\n", encoding="utf-8")
    (folder / "cible 06 33 44 55 66.csv").write_text("phone\n06 98 76 54 32\n", encoding="utf-8")
    doc = {"campaign_id": "EU24-SMS-01", "sponsor": "Parti A", "channel": "sms",
           "purpose": "political.electoral", "sender": "PARTI-A",
           "message": "Parti A vous invite à voter. STOP au 36789", "sent_at": "2024-06-07T18:00:00+02:00",
           "timezone": "Europe/Paris", "targets": {"deliveries": ["D-1"], "file": "cible 06 33 44 55 66.csv"},
           "send_report": "0622334455.csv"}
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def test_numbers_in_file_names_are_not_stored(home, key, make_delivery, tmp_path) -> None:
    _deliver(home, key, make_delivery)
    stop = tmp_path / "stop-0611223399.csv"
    stop.write_text("phone;channel;at;origin\n06 12 34 56 78;sms;2024-06-07 18:03;stop-reply\n", encoding="utf-8")
    suppressed = run_cli(home, "suppress", str(stop), "--json")
    assert suppressed.returncode == 0, suppressed.stderr
    [report] = json.loads(suppressed.stdout)
    assert report["file"] == f"stop-{tel_token(STOP_NUMBER, key)}.csv"

    spec = _campaign(tmp_path / "campaign")
    audited = run_cli(home, "audit", str(spec), "--out", str(tmp_path / "out"), "--json")
    assert audited.returncode == 0, audited.stderr
    summary = json.loads(audited.stdout)
    assert summary["send_report"]["file"] == f"{tel_token(REPORT_NUMBER, key)}.csv"
    assert summary["target_file"]["file"] == f"cible {tel_token(TARGET_NUMBER, key)}.csv"
    assert summary["send_report"]["opted_out_recorded"] == 1

    scanner = Scanner([STOP_NUMBER, REPORT_NUMBER, TARGET_NUMBER, A, B])
    hits = scanner.scan_tree(home.root, exclude=["landing"]) + scanner.scan_tree(tmp_path / "out")
    for name, result in (("suppress", suppressed), ("audit", audited)):
        hits += scanner.scan_text(result.stdout + result.stderr, f"{name} output")
    assert_no_raw_number(hits)

    # the tokens did reach the stores (the scan above saw the names, not nothing)
    import duckdb

    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        files = {r[0] for r in con.execute("SELECT DISTINCT file FROM ledger_events").fetchall()}
        supp = {r[0] for r in con.execute("SELECT file FROM suppression_files").fetchall()}
    finally:
        con.close()
    assert f"stop-{tel_token(STOP_NUMBER, key)}.csv" in files
    assert f"{tel_token(REPORT_NUMBER, key)}.csv" in files
    assert supp == {f"stop-{tel_token(STOP_NUMBER, key)}.csv"}


def test_errors_still_name_the_file_as_given(home, key, tmp_path) -> None:
    """The user's own terminal: a bad file is named as they typed it."""
    bad = tmp_path / "stop-0611223399.csv"
    bad.write_text("numero;canal\n06 12 34 56 78;sms\n", encoding="utf-8")
    result = run_cli(home, "suppress", str(bad))
    assert result.returncode == 2
    assert "stop-0611223399.csv" in result.stderr
