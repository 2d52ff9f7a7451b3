"""Data-subject requests (issue 18 item 2): lookup in quarantine, lookup --batch, erase on request."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from click.testing import CliRunner

from origine import ledger, warehouse
from origine.ingest import intake
from pipelines.cli import main

A, B, UK = "+33612345678", "+33698765432", "+447700900123"  # UK: a drama number, invalid, kept in quarantine


def _home_with_numbers(home, key, make_delivery) -> None:
    rows = ("phone,source,consent_purposes,consent_at\n"
            "06 12 34 56 78,jeu,propagande électorale,2024-01-02\n"
            "06 98 76 54 32,jeu,propagande électorale,2024-01-02\n"
            "+44 7700 900123,jeu,propagande électorale,2024-01-02\n")
    intake.commit(intake.prepare(make_delivery({"c.csv": rows.encode()}, delivery_id="D-1"), home, key), home,
                  label="test")


def test_a_number_held_only_in_quarantine_is_found(home, key, make_delivery) -> None:
    """Issue 18: `lookup "+44 7700 900123"` exited 2 although the home kept it (keyed) in quarantine."""
    _home_with_numbers(home, key, make_delivery)
    result = CliRunner().invoke(main, ["lookup", "+44 7700 900123", "--home", str(home.root), "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["subject_key"] == key.subject_key(UK) and answer["events"] == []
    assert answer["quarantined"] == [{"kind": "delivery", "vendor": "acme", "delivery": "D-1", "file": "c.csv",
                                      "row": 3, "reason": answer["quarantined"][0]["reason"], "column": "phone"}]
    assert "7700900123" not in result.stdout
    # an invalid number held nowhere is still refused as such (most likely mistyped)
    result = CliRunner().invoke(main, ["lookup", "+44 7700 900124", "--home", str(home.root)])
    assert result.exit_code == 2 and "not a valid phone number" in result.stderr and "900124" not in result.stderr


def test_lookup_batch_answers_each_row_by_position(home, key, make_delivery, tmp_path) -> None:
    _home_with_numbers(home, key, make_delivery)
    listing = tmp_path / "complaints.csv"
    listing.write_text("Téléphone;nom\n06 12 34 56 78;x\n+33 7 81 23 45 67;y\n12345;z\n+44 7700 900123;w\n"
                       "06 12 34 56 78;again\n", encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(main, ["lookup", "--batch", str(listing), "--home", str(home.root)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["row"], r["status"]) for r in rows] == [("1", "held"), ("2", "not_held"), ("3", "invalid"),
                                                       ("4", "held"), ("5", "held")]
    assert rows[0]["subject_key"] == key.subject_key(A) and int(rows[0]["events"]) > 0
    assert rows[3]["quarantined_rows"] == "1" and rows[2]["subject_key"] == ""
    as_json = tmp_path / "complaints.json"
    as_json.write_text(json.dumps(["0612345678", {"phone": "+44 7700 900123"}, None]))
    answers = json.loads(runner.invoke(main, ["lookup", "--batch", str(as_json), "--home", str(home.root),
                                              "--json"]).stdout)
    assert [(a["row"], a["status"]) for a in answers] == [(1, "held"), (2, "held"), (3, "invalid")]
    for output in (result.stdout, json.dumps(answers)):
        for digits in ("612345678", "781234567", "7700900123", "12345;"):
            assert digits not in output
    both = runner.invoke(main, ["lookup", "0612345678", "--batch", str(listing), "--home", str(home.root)])
    assert both.exit_code == 2


def test_erase_on_request(home, key, make_delivery, tmp_path) -> None:
    _home_with_numbers(home, key, make_delivery)
    runner = CliRunner()
    before = runner.invoke(main, ["ledger", "checkpoint", "--home", str(home.root)]).stdout
    (tmp_path / "old.note").write_text(before)
    # no reason, or a reason holding personal data: refused, nothing erased
    for args in ([], ["--reason", ""], ["--reason", "demande de M. X au 06 12 34 56 78"],
                 ["--reason", "mail from jean@example.fr"], ["--reason", "ref 1234567"]):
        result = runner.invoke(main, ["erase", "0612345678", "--home", str(home.root), *args])
        assert result.exit_code == 2, (args, result.output)
        assert "--reason" in result.stderr and "612345678" not in result.stderr
    assert json.loads(runner.invoke(main, ["lookup", "0612345678", "--home", str(home.root), "--json"]).stdout)["events"]
    result = runner.invoke(main, ["erase", "06 12 34 56 78", "--reason", "art. 17 request by mail, ref R-12",
                                  "--home", str(home.root), "--json"])
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    assert done["subjects"] == 1 and done["events"] == 1  # its row leaf (collected, consent, delivered)
    answer = json.loads(runner.invoke(main, ["lookup", "0612345678", "--home", str(home.root), "--json"]).stdout)
    assert answer["events"] == [] and answer["quarantined"] == []
    other = json.loads(runner.invoke(main, ["lookup", "0698765432", "--home", str(home.root), "--json"]).stdout)
    assert other["events"]  # nobody else erased
    # the quarantined number, through a batch file
    batch = tmp_path / "erase.csv"
    batch.write_text("phone\n+44 7700 900123\n")
    result = runner.invoke(main, ["erase", "--batch", str(batch), "--reason", "art. 17 request R-13",
                                  "--home", str(home.root), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["events"] == 0  # it had no events: its quarantined row goes
    result = runner.invoke(main, ["lookup", "+44 7700 900123", "--home", str(home.root)])
    assert result.exit_code == 2  # nothing held any more: an invalid number is refused again
    check = runner.invoke(main, ["ledger", "check", "--home", str(home.root), "--checkpoint",
                                 str(tmp_path / "old.note")])
    assert check.exit_code == 0, check.output
    con = warehouse.connect(home.warehouse, read_only=True)
    try:
        leaves = con.execute("SELECT origin, source, evidence_kind, \"row\", subject_key FROM ledger_events "
                             "WHERE type = 'erased' ORDER BY seq").fetchall()
        assert ledger.check_ledger(con).ok
        dump = " ".join(str(r) for r in con.execute("SELECT * FROM quarantine").fetchall())
    finally:
        con.close()
    assert leaves == [("request", "request: art. 17 request by mail, ref R-12", "request", 1, None),  # one row leaf
                      ("request", "request: art. 17 request R-13", "request", 0, None)]
    assert key.subject_key(UK) not in dump


# SQL that changes the stored leaves in place (an append goes through ledger.append_events)
_LEDGER_WRITE = re.compile(
    r"\b(?:UPDATE|INSERT\s+INTO|DELETE\s+FROM|ALTER\s+TABLE|DROP\s+TABLE(?:\s+IF\s+EXISTS)?|TRUNCATE)"
    r"\s+\"?ledger_(?:leaves|events|nodes)\b"
    r"|rewrite_table\(\s*\w+\s*,\s*[\"']ledger_(?:leaves|events|nodes)[\"']",
    re.IGNORECASE,
)


def test_only_the_ledger_package_writes_the_ledger() -> None:
    """docs/architecture.md: only origine/ledger/ writes the ledger. Retention's erasure
    of attributes (an UPDATE or a rewrite of the ledger table) lived in origine/retention.py."""
    root = Path(__file__).resolve().parents[1] / "origine"
    writers = sorted(
        str(path.relative_to(root.parent))
        for path in root.rglob("*.py")
        if "ledger" not in path.relative_to(root).parts[:-1] and _LEDGER_WRITE.search(path.read_text(encoding="utf-8"))
    )
    assert writers == []
    # the pattern does see the writes the ledger package makes
    assert _LEDGER_WRITE.search((root / "ledger" / "erasure.py").read_text(encoding="utf-8"))
