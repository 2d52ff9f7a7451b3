"""No raw number anywhere, end to end: every command through the CLI, in subprocesses, on a
real Dagster instance, then every file of the home (but ``landing/``), every bundle and
every captured stdout and stderr scanned for every written form of every number used.

One home goes through: ingest of four deliveries (a ``;``-separated cp1252 CSV with
French headers, an XLSX whose numbers lost their leading zero, a zipped gzipped JSON
Lines file, a Parquet file) and of one whose header row is data (exit 2); suppress;
an audit into a bundle and its zip; the campaigns sensor's audit job on the home's own
Dagster instance; lookup (JSON, letter, an unknown number); ledger check and head;
verify. Numbers that only ever sit in a phone column must appear nowhere. Numbers,
an e-mail and an IP address written inside vendor free text (``source``,
``consent_proof``, ``acquired_from``, the manifest's ``recipient`` and ``claims``,
an unknown purpose word) are checked one field at a time.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from origine.home import Home
from tests.privacy import Hit, Scanner, assert_no_raw_number
from tests.processes import REPO, cli_argv, cli_env

pytestmark = pytest.mark.slow

# Numbers that only ever appear where a number belongs: phone columns, suppression
# lists, target files, send reports, lookup's argument, a header row that is data.
SUBJECTS = {
    "+33612345678": "06 12 34 56 78",     # fr.csv; suppressed; targeted; STOP reply; looked up
    "+33781234567": "+33 7 81 23 45 67",  # fr.csv
    "+33698765432": "06.98.76.54.32",     # fr.csv; targeted
    "+33612345670": "612345670",          # fr.csv, leading zero lost
    "+33145454545": "01-45-45-45-45",     # fr.csv, a landline (WRONG_LINE_TYPE for SMS)
    "+33655443322": "0655443322",         # parquet
    "+212661234567": "661234567",         # xlsx, a number cell, leading zero lost (country MA)
    "+212661234568": "0661-234568",       # xlsx
    "+221771234567": "+221771234567",     # jsonl.gz in a zip (country SN)
    "+221771234568": "77 123 45 68",      # jsonl.gz in a zip
    "+33699887766": "+33 6 99 88 77 66",  # suppression only
    "+33655667788": "06 55 66 77 88",     # campaign target file only (never delivered)
    "+33610203040": "+33 6 10 20 30 40",  # looked up, held nowhere
    "+33611223344": "0611223344",         # headerless CSV: its header row is data
    "+33611223345": "0611223345",         # headerless CSV
    "+33611112222": "06 11 11 22 22",     # phone of the free-text delivery
}

# One number per free-text field; each is written as a vendor would, inside text.
FREE_TEXT = {
    "source": ("+33611223399", "parrainage par 06 11 22 33 99"),
    "consent_proof": ("+33611223398", "SMS de 0611223398"),
    "acquired_from": ("+33611223397", "lead-06-11-22-33-97"),
    "recipient": ("+33611223396", "party 06.11.22.33.96"),
    "unknown_purpose": ("+33633445566", "word 0633445566"),
    "claims": ("+33611223395", "fichier 0033 6 11 22 33 95"),
}
EMAIL, IP = "jean.dupont@example.org", "82.64.1.10"


@dataclass
class Flow:
    """What the flow left behind: the home, the bundles, and every command's output."""

    home: Home
    bundles: Path
    inputs: list[Path]  # what the user gave: deliveries, suppressions, the campaign's folder
    outputs: list[tuple[str, int, str, str]] = field(default_factory=list)  # (label, status, stdout, stderr)

    def status(self, label: str) -> int:
        return next(s for lbl, s, _, _ in self.outputs if lbl == label)

    def out(self, label: str) -> str:
        return next(o for lbl, _, o, _ in self.outputs if lbl == label)

    def scan(self, scanner: Scanner) -> list[Hit]:
        """Every file of the home but landing/, every bundle, every captured output."""
        hits = scanner.scan_tree(self.home.root, exclude=["landing"])
        hits += scanner.scan_tree(self.bundles)
        for label, _, out, err in self.outputs:
            hits += scanner.scan_text(out, f"stdout of {label}") + scanner.scan_text(err, f"stderr of {label}")
        return hits


def _manifest(folder: Path, **doc: Any) -> None:
    base = {"vendor": "acme", "recipient": "party-a", "delivered_at": "2024-02-01T09:00:00+01:00",
            "country": "FR", "timezone": "Europe/Paris"}
    (folder / "manifest.yaml").write_text(yaml.safe_dump({**base, **doc}, allow_unicode=True), encoding="utf-8")


def _deliveries(root: Path) -> dict[str, Path]:
    s = SUBJECTS
    out: dict[str, Path] = {}

    fr = root / "fr"
    fr.mkdir(parents=True)
    rows = [
        (s["+33612345678"], "jeu-concours-ete", "propagande électorale", "02/01/2024 10:00", "form-v3", ""),
        (s["+33781234567"], "jeu-concours-ete", "prospection commerciale", "02/01/2024", "form-v3", "promo-sarl"),
        (s["+33698765432"], "carte-fidelite", "propagande électorale|partenaires", "03/01/2024", "", "promo-sarl"),
        (s["+33612345670"], "carte-fidelite", "sondages", "", "form-v2", ""),
        (s["+33145454545"], "annuaire", "propagande électorale", "04/01/2024", "form-v3", ""),
        ("6,12346E+08", "annuaire", "", "", "", ""),
    ]
    text = "Téléphone;Source;Finalités;Date consentement;Preuve;acquired_from;Religion\n"
    text += "".join(";".join(r) + ";catholique\n" for r in rows)
    (fr / "contacts.csv").write_bytes(text.encode("cp1252"))
    _manifest(fr, delivery_id="FR-1", vendor="selfcontact", files=[{"path": "contacts.csv"}],
              claims={"row_count": 6, "consent_purposes": ["political.electoral"]})
    out["fr"] = fr

    ma = root / "ma"
    ma.mkdir()
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["phone", "source", "consent_purposes", "consent_at"])
    ws.append([int(s["+212661234567"]), "salon-auto", "prospection commerciale", "2024-01-05"])
    ws.append([s["+212661234568"], "salon-auto", "propagande électorale", "2024-01-05"])
    wb.save(ma / "leads.xlsx")
    _manifest(ma, delivery_id="MA-1", vendor="atlas-data", country="MA", files=[{"path": "leads.xlsx"}])
    out["ma"] = ma

    sn = root / "sn"
    sn.mkdir()
    lines = [{"phone": s["+221771234567"], "source": "whatsapp-form", "consent_purposes": ["political.electoral"],
              "consent_at": "2024-01-06"},
             {"phone": s["+221771234568"], "source": "whatsapp-form", "consent_purposes": "sondages",
              "consent_at": "2024-01-06"}]
    (sn / "contacts.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(x) + "\n" for x in lines).encode()))
    _manifest(sn, delivery_id="SN-1", vendor="dakar-leads", country="SN", files=[{"path": "contacts.jsonl.gz"}])
    archive = root / "sn.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(sn.iterdir()):
            zf.write(p, f"sn/{p.name}")
    out["sn"] = archive

    pqd = root / "parquet"
    pqd.mkdir()
    pq.write_table(pa.table({"phone": [s["+33655443322"]], "source": ["formulaire-devis"],
                             "consent_purposes": ["propagande électorale"], "consent_at": ["2024-01-07"]}),
                   pqd / "c.parquet")
    _manifest(pqd, delivery_id="PQ-1", vendor="acme", files=[{"path": "c.parquet"}])
    out["parquet"] = pqd

    bad = root / "headerless"
    bad.mkdir()
    (bad / "c.csv").write_text(f"{s['+33611223344']};jeu\n{s['+33611223345']};jeu\n")
    _manifest(bad, delivery_id="BAD-1", files=[{"path": "c.csv"}])
    out["headerless"] = bad

    ft = root / "free-text"
    ft.mkdir()
    f = {k: v[1] for k, v in FREE_TEXT.items()}
    (ft / "c.csv").write_text(
        "phone,source,consent_purposes,consent_at,consent_proof,acquired_from\n"
        f"{s['+33611112222']},{f['source']} / {EMAIL},propagande électorale|{f['unknown_purpose']},2024-01-08,"
        f"{f['consent_proof']} IP {IP},{f['acquired_from']}\n", encoding="utf-8")
    _manifest(ft, delivery_id="FT-1", vendor="loose-vendor", recipient=f["recipient"], files=[{"path": "c.csv"}],
              claims={"row_count": 1, "sources": [f["claims"]]})
    out["free-text"] = ft
    return out


def _run(flow: Flow, label: str, *args: str, env: dict[str, str]) -> None:
    proc = subprocess.run(cli_argv(*args), env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    flow.outputs.append((label, proc.returncode, proc.stdout, proc.stderr))


_SENSOR_AUDIT = """
import sys
import dagster as dg
from pipelines.definitions import build_definitions
from pipelines.resources import OrigineHome
from pipelines.sensors import campaigns_sensor
home, key = sys.argv[1], sys.argv[2]
defs = build_definitions()
resources = {"origine": OrigineHome(home=home, hash_key=key)}
with dg.DagsterInstance.get() as instance:  # the home's own instance ($DAGSTER_HOME)
    for request in campaigns_sensor(dg.build_sensor_context(instance=instance, resources=resources)):
        result = defs.resolve_job_def("campaign_audit").execute_in_process(
            instance=instance, run_config=request.run_config, tags=request.tags)
        print("campaign audit run", result.run_id, "success" if result.success else "FAILED")
"""


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Flow:
    tmp = tmp_path_factory.mktemp("privacy-e2e")
    home = Home(tmp / "home").ensure()
    # who signs lookup's letter (a controller's phone number is not personal data: none here)
    (home.root / "controller.yaml").write_text(
        "name: Exemple Data SAS\naddress: [12 rue de la Paix, 75002 Paris]\ndpo_email: dpo@exemple.fr\n")
    env = cli_env(home)
    env["DAGSTER_HOME"] = str(home.dagster)
    f = Flow(home, tmp / "bundles", [tmp / "in", tmp / "campaign"])
    d = _deliveries(tmp / "in")
    _run(f, "ingest", "ingest", str(d["fr"]), str(d["ma"]), str(d["sn"]), str(d["parquet"]), "--json", env=env)
    _run(f, "ingest free text", "ingest", str(d["free-text"]), env=env)
    _run(f, "ingest headerless", "ingest", str(d["headerless"]), env=env)

    stops = tmp / "in" / "stops.csv"
    stops.write_text("phone,channel,at,origin\n"
                     f"{SUBJECTS['+33612345678']},sms,2024-05-01T10:00:00+02:00,stop-reply\n"
                     f"{SUBJECTS['+33699887766']},all,2024-05-02,do-not-call\n")
    _run(f, "suppress", "suppress", str(stops), "--json", env=env)

    spec = {"campaign_id": "EU24-E2E", "sponsor": "Parti A", "channel": "sms", "purpose": "political.electoral",
            "sender": "PARTI-A", "message": "Parti A: votez le 9 juin. STOP 36789",
            "sent_at": "2024-06-07T18:00:00+02:00", "targeting": {"age": "18-35"},
            "targets": {"deliveries": ["FR-1", "FT-1", "PQ-1"], "file": "targets.csv"},
            "send_report": "report.csv"}
    targets = "phone\n" + "".join(SUBJECTS[n] + "\n" for n in ("+33612345678", "+33698765432", "+33655667788"))
    report = ("phone,sent_at,stop_reply_at\n"
              f"{SUBJECTS['+33612345678']},2024-06-07T18:00:00+02:00,2024-06-07T18:05:00+02:00\n"
              f"{SUBJECTS['+33698765432']},2024-06-07T18:00:00+02:00,\n")
    campaign = tmp / "campaign"
    campaign.mkdir()
    (campaign / "targets.csv").write_text(targets)
    (campaign / "report.csv").write_text(report)
    (campaign / "campaign.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    _run(f, "audit", "audit", str(campaign / "campaign.yaml"), "--out", str(f.bundles / "EU24"), "--zip",
         "--json", env=env)
    _run(f, "audit text", "audit", str(campaign / "campaign.yaml"), "--out", str(f.bundles / "EU24-again"), env=env)
    _run(f, "verify", "verify", str(f.bundles / "EU24.zip"), env=env)

    # the campaigns sensor's audit, on the home's own Dagster instance (raw files then deleted)
    for name in ("targets.csv", "report.csv"):
        (home.campaigns / name).write_text((campaign / name).read_text())
    (home.campaigns / "eu24-sensor.yaml").write_text(
        yaml.safe_dump({**spec, "campaign_id": "EU24-SENSOR"}, allow_unicode=True), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", _SENSOR_AUDIT, str(home.root), env["ORIGINE_HASH_KEY"]],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    f.outputs.append(("campaigns sensor", proc.returncode, proc.stdout, proc.stderr))

    _run(f, "lookup json", "lookup", SUBJECTS["+33612345678"], "--json", env=env)
    _run(f, "lookup letter", "lookup", SUBJECTS["+33612345678"], "--letter", env=env)
    _run(f, "lookup text", "lookup", SUBJECTS["+33698765432"], env=env)
    _run(f, "lookup ma", "lookup", SUBJECTS["+212661234568"], "--country", "MA", "--json", env=env)
    _run(f, "lookup free text", "lookup", SUBJECTS["+33611112222"], "--letter", env=env)
    _run(f, "lookup unknown", "lookup", SUBJECTS["+33610203040"], "--json", env=env)
    _run(f, "ledger check", "ledger", "check", "--json", env=env)
    _run(f, "ledger head", "ledger", "head", env=env)
    return f


def test_every_command_did_its_job(flow: Flow) -> None:
    """The scan means something only if the flow really ran."""
    for label in ("ingest", "ingest free text", "suppress", "audit", "audit text", "verify", "campaigns sensor",
                  "lookup json", "lookup letter", "lookup text", "lookup ma", "lookup free text",
                  "lookup unknown", "ledger check", "ledger head"):
        assert flow.status(label) == 0, (label, [o for o in flow.outputs if o[0] == label])
    assert flow.status("ingest headerless") == 2
    reports = json.loads(flow.out("ingest"))
    assert [(r["delivery_id"], r["rows_accepted"]) for r in reports] == [
        ("FR-1", 5), ("MA-1", 2), ("SN-1", 2), ("PQ-1", 1)]
    assert json.loads(flow.out("audit"))["targets"] >= 6
    assert "bundle verified" in flow.out("verify")
    assert "success" in flow.out("campaigns sensor")
    assert json.loads(flow.out("lookup json"))["events"]
    assert json.loads(flow.out("lookup ma"))["events"]
    assert json.loads(flow.out("lookup unknown"))["events"] == []
    assert json.loads(flow.out("ledger check"))["ok"] is True
    # the Dagster instance of the home holds the runs, and the scan reads its storage's rows
    in_dagster = Scanner([], extra=["selfcontact/FR-1"]).scan_tree(flow.home.dagster)
    assert any(h.where.endswith((".db::runs", ".db::run_tags", ".db::event_logs")) for h in in_dagster), in_dagster
    assert (flow.bundles / "EU24" / "manifest.json").is_file() and (flow.bundles / "EU24.zip").is_file()
    assert any((flow.home.bundles / "eu24-sensor").iterdir())


def test_the_scanner_finds_every_number_in_the_inputs(flow: Flow) -> None:
    """The needles match the numbers as they were written (cp1252 CSV, XLSX cells, gzipped
    JSON Lines in a zip, Parquet, free text), so a leak of any of them would be found."""
    scanner = Scanner([*SUBJECTS, *(n for n, _ in FREE_TEXT.values())], extra=[EMAIL, IP])
    found = {h.number for root in flow.inputs for h in scanner.scan_tree(root)}
    assert found == set(SUBJECTS) - {"+33610203040"} | {n for n, _ in FREE_TEXT.values()} | {EMAIL, IP}


def test_no_number_of_a_phone_column_anywhere(flow: Flow) -> None:
    """Every written form of every number used as a number, in every file of the home but
    landing/ (Dagster's run and event storage included), every bundle, every output."""
    assert_no_raw_number(flow.scan(Scanner(SUBJECTS)))


_ITEM3 = "issue 17 item 3: vendor free text is stored and exported verbatim (free-text scrubber)"
_ITEM2 = "issue 17 items 2/3: UNKNOWN_PURPOSE quotes the cell (free-text scrubber)"


@pytest.mark.parametrize("field_name", sorted(FREE_TEXT))
def test_no_number_written_in_free_text_anywhere(flow: Flow, field_name: str) -> None:
    number, _ = FREE_TEXT[field_name]
    assert_no_raw_number(flow.scan(Scanner([number])))


@pytest.mark.parametrize("value", [EMAIL, IP])
def test_no_email_or_ip_written_in_free_text_anywhere(flow: Flow, value: str) -> None:
    assert_no_raw_number(flow.scan(Scanner([], extra=[value])))
