"""A send list a party can act on, and a vendor's rejected rows (issue 18 item 4)."""

from __future__ import annotations

import csv
import io

import yaml
from click.testing import CliRunner

from origine.ingest import intake
from pipelines.cli import main
from tests.privacy import Scanner


def _deliver(home, key, make_delivery):
    rows = ("phone,source,consent_purposes,consent_at,consent_proof\n"
            "06 12 34 56 78,jeu,propagande électorale,2024-01-02,form-1\n"
            "06 98 76 54 32,jeu,prospection commerciale,2024-01-02,form-2\n"
            "12345,jeu,propagande électorale,2024-01-02,form-3\n"
            "+44 7700 900123,jeu,propagande électorale,2024-01-02,form-4\n")
    intake.commit(intake.prepare(make_delivery({"c.csv": rows.encode()}, delivery_id="D-1"), home, key), home,
                  label="test")


def _spec(tmp_path, targets: str) -> str:
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "targets.csv").write_text(targets, encoding="utf-8")
    doc = {"campaign_id": "C-1", "sponsor": "Parti A", "channel": "sms", "purpose": "political.electoral",
           "sender": "PARTI-A", "message": "Parti A : votez. STOP au 36789", "sent_at": "2024-06-07T18:00:00+02:00",
           "targets": {"file": "targets.csv"}}
    (folder / "campaign.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return str(folder / "campaign.yaml")


def test_send_list_row_by_row_with_the_partys_ids(home, key, make_delivery, tmp_path) -> None:
    _deliver(home, key, make_delivery)
    spec = _spec(tmp_path, "Ref;Téléphone;Nom\nA-1;06 12 34 56 78;x\n=cmd;06 98 76 54 32;y\nA-3;;z\n"
                           "0611223344;06 12 34 56 78;w\nA-5;n/a;v\nA-6;+44 7700 900123;u\n")
    out = tmp_path / "send.csv"
    result = CliRunner().invoke(main, ["audit", spec, "--out", str(tmp_path / "bundle"), "--home", str(home.root),
                                       "--send-list", str(out)])
    assert result.exit_code == 0, result.output
    assert f"send list {out}: 6 rows" in result.stdout
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["row"], r["id"], r["verdict"]) for r in rows] == [
        ("1", "A-1", "compliant"),
        ("2", "'=cmd", "non_compliant"),  # a spreadsheet would run it: quoted
        ("3", "A-3", "skipped"),
        ("4", "", "compliant"),  # an id that is a phone number is not copied
        ("5", "A-5", "non_compliant"),
        ("6", "A-6", "non_compliant"),
    ]
    assert rows[1]["reasons"] == "PURPOSE_NOT_CONSENTED" and rows[2]["reasons"] == "PHONE_MISSING"
    assert "INVALID_NUMBER" in rows[4]["reasons"].split("|") and "INVALID_NUMBER" in rows[5]["reasons"].split("|")
    found = Scanner(["+33612345678", "+33698765432", "+33611223344", "+447700900123"]).scan_bytes(out.read_bytes(), "send.csv")
    assert not found


def test_send_list_without_an_id_column_and_refused_without_a_target_file(home, key, make_delivery,
                                                                          tmp_path) -> None:
    _deliver(home, key, make_delivery)
    spec = _spec(tmp_path, "phone\n0612345678\n0698765432\n")
    out = tmp_path / "send.csv"
    runner = CliRunner()
    assert runner.invoke(main, ["audit", spec, "--out", str(tmp_path / "b"), "--home", str(home.root),
                                "--send-list", str(out)]).exit_code == 0
    assert out.read_text() == "row,verdict,reasons\n1,compliant,\n2,non_compliant,PURPOSE_NOT_CONSENTED\n"
    only_deliveries = tmp_path / "d.yaml"
    doc = yaml.safe_load(open(spec))
    doc.update(campaign_id="C-2", targets={"deliveries": ["D-1"]})
    only_deliveries.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    result = runner.invoke(main, ["audit", str(only_deliveries), "--out", str(tmp_path / "b2"),
                                  "--home", str(home.root), "--send-list", str(tmp_path / "s2.csv")])
    assert result.exit_code == 2 and "targets.file" in result.stderr
    assert not (tmp_path / "b2").exists()


def test_quarantine_export_for_the_vendor(home, key, make_delivery, tmp_path) -> None:
    _deliver(home, key, make_delivery)
    runner = CliRunner()
    result = runner.invoke(main, ["quarantine", "acme", "D-1", "--home", str(home.root)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["file"], r["row"], r["column"]) for r in rows] == [("c.csv", "3", "phone"), ("c.csv", "4", "phone")]
    assert all(r["reason"].startswith("PHONE_") for r in rows)
    out = tmp_path / "q.csv"
    assert runner.invoke(main, ["quarantine", "acme", "D-1", "--home", str(home.root), "--csv", str(out)]).exit_code == 0
    assert out.read_text() == result.stdout
    missing = runner.invoke(main, ["quarantine", "acme", "D-9", "--home", str(home.root)])
    assert missing.exit_code == 2 and "no delivery acme/D-9" in missing.stderr
