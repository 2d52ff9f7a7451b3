"""STOP replies honoured (issue 18 item 1): reply texts, the send report's opt-outs, suppress --timezone."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from origine import ledger, warehouse
from origine.ingest import intake
from pipelines.cli import main
from origine.freetext import email_token, tel_token
from origine.replies import POLITE, RESUBSCRIBE, STRONG_STOP, WEAK_STOP, classify_reply
from tests.privacy import Scanner, assert_no_raw_number

A, B = "+33612345678", "+33698765432"


@pytest.mark.parametrize("text", [
    "Stop", "STOP", "stop.", "STOP SMS", "Stop sms merci", "arrêt svp", "ARRET", "Arrêt", "arret!", "stop 36789",
    "STOP 36789", "Non merci STOP", "non, stop", "STOPALL", "Désabonner", "DESABONNER", "désabonnez-moi",
    "UNSUBSCRIBE", "unsubscribe please", "OPTOUT", "opt-out", "opt out", "END", "end", "Quit", "CANCEL",
    "cancel please", "REVOKE", "QUIT 36789", "  stop  ", "Arrêtez",
])
def test_stop_replies(text: str) -> None:
    assert classify_reply(text) == "stop"


@pytest.mark.parametrize("text", [
    "je ne veux pas que ça s'arrête", "stopper", "Ne stoppez pas", "s'arrêter", "arrêter de fumer",
    "the end of the world", "I cancelled my plans yesterday", "quit smoking", "Parti A : non-stop jusqu'au 9 juin",
    "Merci !", "Qui êtes-vous ?", "", "   ", "36789", "d'accord", "START STOPPING", None,
])
def test_not_stop_replies(text: str | None) -> None:
    assert classify_reply(text) != "stop"


@pytest.mark.parametrize("text", ["START", "start", "Unstop", "UNSTOP 36789", "start please"])
def test_resubscribe_replies(text: str) -> None:
    assert classify_reply(text) == "start"


def test_stop_wins_over_start() -> None:
    assert classify_reply("START STOP") == "stop"
    assert classify_reply("start the party") is None  # not a lone keyword


_KEYWORDS = STRONG_STOP | WEAK_STOP | RESUBSCRIBE | {"opt", "out", "nonstop"}
_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyzéèàçù", min_size=1, max_size=10)


@settings(max_examples=300, deadline=None)
@given(st.lists(_word, max_size=8))
def test_no_keyword_no_stop(words: list[str]) -> None:
    from origine.purposes import fold

    words = [w for w in words if fold(w) not in _KEYWORDS]
    assert classify_reply(" ".join(words)) is None


@settings(max_examples=300, deadline=None)
@given(st.lists(_word, max_size=6), st.lists(_word, max_size=6),
       st.sampled_from(["STOP", "Stop", "stop", "ARRÊT", "arret", "STOP SMS", "Désabonner", "UNSUBSCRIBE"]),
       st.sampled_from([" ", ", ", ". ", " - ", "\n"]))
def test_a_strong_stop_word_anywhere_is_a_stop(before: list[str], after: list[str], keyword: str, sep: str) -> None:
    assert classify_reply(sep.join([*before, keyword, *after])) == "stop"


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(WEAK_STOP)), st.lists(st.sampled_from(sorted(POLITE)), max_size=3),
       st.lists(_word.filter(lambda w: w not in POLITE and w not in _KEYWORDS), min_size=1, max_size=3))
def test_weak_words_only_alone(keyword: str, polite: list[str], other: list[str]) -> None:
    assert classify_reply(" ".join([keyword.upper(), *polite])) == "stop"
    from origine.purposes import fold

    if all(fold(w) not in POLITE | _KEYWORDS for w in other):
        assert classify_reply(" ".join([*other, keyword])) is None


# ---------------------------------------------------------------- end to end through the CLI


def _deliver(home, key, make_delivery) -> None:
    rows = "phone,source,consent_purposes,consent_at,consent_proof\n"
    rows += "06 12 34 56 78,jeu,propagande électorale,2024-01-02,form-1\n"
    rows += "06 98 76 54 32,jeu,propagande électorale,2024-01-02,form-2\n"
    path = make_delivery({"contacts.csv": rows.encode()}, delivery_id="D-1")
    intake.commit(intake.prepare(path, home, key), home, label="test")


def _spec(folder: Path, campaign_id: str, sent_at: str, report: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"campaign_id": campaign_id, "sponsor": "Parti A", "channel": "sms", "purpose": "political.electoral",
           "sender": "PARTI-A", "message": "Parti A vous invite à voter. STOP au 36789", "sent_at": sent_at,
           "timezone": "Europe/Paris", "targets": {"deliveries": ["D-1"]}}
    if report is not None:
        (folder / "report.csv").write_text(report, encoding="utf-8")
        doc["send_report"] = "report.csv"
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def _verdicts(out: Path, key) -> dict[str, tuple[str, str]]:
    rows = csv.DictReader(io.StringIO((out / "targets.csv").read_text()))
    by_key = {r["subject_key"]: (r["verdict"], r["reasons"]) for r in rows}
    return {n: by_key[key.subject_key(n)] for n in (A, B)}


def test_a_stop_reply_makes_the_next_campaigns_target_opted_out(home, key, make_delivery, tmp_path) -> None:
    """Issue 18: a send report's STOP wrote nothing; the next day's campaign rated the number compliant."""
    _deliver(home, key, make_delivery)
    runner = CliRunner()
    # the reply column only: a French reply text, naive times in the campaign's zone (Paris)
    first = _spec(tmp_path / "c1", "EU24-SMS-01", "2024-06-07T18:00:00+02:00",
                  "phone;sent_at;reponse;date reponse\n"
                  "06 12 34 56 78;07/06/2024 18:00;Non merci STOP;07/06/2024 18:03\n"
                  "06 98 76 54 32;07/06/2024 18:00;je ne veux pas que ça s'arrête;07/06/2024 18:04\n")
    result = runner.invoke(main, ["audit", str(first), "--out", str(tmp_path / "out1"), "--home", str(home.root),
                                  "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["send_report"]["stop_replies"] == 1 and summary["send_report"]["opted_out_recorded"] == 1
    assert _verdicts(tmp_path / "out1", key) == {A: ("compliant", ""), B: ("compliant", "")}
    con = warehouse.connect(home.warehouse, read_only=True)
    try:
        leaves = con.execute("SELECT subject_key, channel, origin, \"at\", evidence_kind, file, \"row\" "
                             "FROM ledger_events WHERE type = 'opted_out'").fetchall()
        assert ledger.check_ledger(con).ok
    finally:
        con.close()
    assert len(leaves) == 1
    subject, channel, origin, at, kind, file, row = leaves[0]
    assert (subject, channel, origin, kind, file, row) == (key.subject_key(A), "sms", "campaign:EU24-SMS-01",
                                                            "send_report", "report.csv", 1)
    assert at.isoformat().startswith("2024-06-07T16:03:00")  # 18:03 Paris time
    # the same audit again appends nothing twice
    again = runner.invoke(main, ["audit", str(first), "--out", str(tmp_path / "out1"), "--home", str(home.root),
                                 "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["send_report"]["opted_out_recorded"] == 0
    # the next day's campaign: A opted out, and its send report shows A texted after the STOP
    second = _spec(tmp_path / "c2", "EU24-SMS-02", "2024-06-08T10:00:00+02:00",
                   "phone,sent_at\n0612345678,2024-06-08 10:00\n0698765432,2024-06-08 10:00\n")
    result = runner.invoke(main, ["audit", str(second), "--out", str(tmp_path / "out2"), "--home", str(home.root)])
    assert result.exit_code == 0, result.output
    assert "finding CONTACTED_AFTER_STOP" in result.stdout
    assert _verdicts(tmp_path / "out2", key) == {A: ("non_compliant", "OPTED_OUT"), B: ("compliant", "")}
    summary = json.loads((tmp_path / "out2" / "summary.json").read_text())
    found = [f for f in summary["findings"] if f["code"] == "CONTACTED_AFTER_STOP"]
    assert found[0]["after_ledger_opt_out"] == 1 and found[0]["subject_keys"] == [key.subject_key(A)]
    for output in (result.stdout, (tmp_path / "out2" / "summary.json").read_text()):
        assert "612345678" not in output


def test_a_resubscribe_creates_no_consent_and_lifts_no_opt_out(home, key, make_delivery, tmp_path) -> None:
    _deliver(home, key, make_delivery)
    runner = CliRunner()
    first = _spec(tmp_path / "c1", "C-1", "2024-06-07T18:00:00+02:00",
                  "phone,sent_at,stop_reply_at,reply\n"
                  "0612345678,2024-06-07 18:00,2024-06-07 18:05,\n"
                  "0612345678,2024-06-07 18:00,,START\n")
    result = runner.invoke(main, ["audit", str(first), "--out", str(tmp_path / "o1"), "--home", str(home.root),
                                  "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["send_report"]["resubscribe_replies"] == 1
    second = _spec(tmp_path / "c2", "C-2", "2024-06-09T10:00:00+02:00")
    assert runner.invoke(main, ["audit", str(second), "--out", str(tmp_path / "o2"),
                                "--home", str(home.root)]).exit_code == 0
    assert _verdicts(tmp_path / "o2", key)[A] == ("non_compliant", "OPTED_OUT")
    con = warehouse.connect(home.warehouse, read_only=True)
    try:
        granted = con.execute("SELECT count(*) FROM ledger_events WHERE type = 'consent_granted'").fetchone()[0]
    finally:
        con.close()
    assert granted == 2  # the two delivered consents, nothing from START


def test_an_edited_spec_under_an_audited_campaign_id_is_refused(home, key, make_delivery, tmp_path) -> None:
    """Issue 18 item 7: re-auditing an edited spec with the same campaign_id appended duplicate targets."""
    _deliver(home, key, make_delivery)
    runner = CliRunner()
    spec = _spec(tmp_path / "c", "EU24-SMS-01", "2024-06-07T18:00:00+02:00")
    assert runner.invoke(main, ["audit", str(spec), "--out", str(tmp_path / "o"), "--home", str(home.root)]).exit_code == 0
    spec.write_text(spec.read_text().replace("2024-06-07T18:00:00+02:00", "2024-06-08T18:00:00+02:00"))
    result = runner.invoke(main, ["audit", str(spec), "--out", str(tmp_path / "o2"), "--home", str(home.root)])
    assert result.exit_code == 2
    assert "campaign 'EU24-SMS-01' was already audited from a different spec" in result.stderr
    assert not (tmp_path / "o2").exists()
    con = warehouse.connect(home.warehouse, read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM ledger_events WHERE type = 'targeted'").fetchone()[0] == 2
    finally:
        con.close()


def test_suppress_reads_naive_times_in_its_timezone(home, key, tmp_path) -> None:
    """Issue 18: "07/06/2024 18:03" from a French STOP list was read as UTC."""
    path = tmp_path / "stop.csv"
    path.write_text("phone;at\n06 12 34 56 78;07/06/2024 18:03\n")
    runner = CliRunner()
    result = runner.invoke(main, ["suppress", str(path), "--channel", "sms", "--origin", "stop-reply",
                                  "--home", str(home.root)])
    assert result.exit_code == 0, result.output
    other = tmp_path / "stop-ny.csv"
    other.write_text("phone;at\n06 98 76 54 32;07/06/2024 18:03\n")
    result = runner.invoke(main, ["suppress", str(other), "--channel", "sms", "--timezone", "America/New_York",
                                  "--home", str(home.root)])
    assert result.exit_code == 0, result.output
    con = warehouse.connect(home.warehouse, read_only=True)
    try:
        at = dict(con.execute("SELECT subject_key, strftime(\"at\" AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M') "
                              "FROM ledger_events WHERE type = 'opted_out'").fetchall())
    finally:
        con.close()
    assert at == {key.subject_key(A): "2024-06-07 16:03", key.subject_key(B): "2024-06-07 22:03"}
    bad = runner.invoke(main, ["suppress", str(path), "--timezone", "Paris", "--home", str(home.root)])
    assert bad.exit_code == 2 and "--timezone" in bad.stderr
    assert "Europe/Paris" in runner.invoke(main, ["suppress", "--help"]).stdout


def test_suppress_scrubs_the_free_text_origin(home, key, tmp_path) -> None:
    """The ``origin`` column was stored in the ledger as written: a DPO's note carried a
    caller's number and an e-mail address into every export of the ledger."""
    caller, dpo = "+33611223399", "dpo@example.org"
    path = tmp_path / "dpo.csv"
    path.write_text(
        "phone;channel;at;origin\n"
        "06 12 34 56 78;sms;2024-06-07 18:03;appel de 06 11 22 33 99 / dpo@example.org\n"
        # a channel written as free text is refused (quarantined), never stored
        "06 98 76 54 32;rappeler le 06 11 22 33 99;2024-06-07 18:03;dpo-request\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["suppress", str(path), "--json", "--home", str(home.root)])
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.stdout)
    assert report["rows_accepted"] == 1 and report["quarantine_reasons"] == {"INVALID_CHANNEL": 1}
    con = warehouse.connect(home.warehouse, read_only=True)
    try:
        origins = [r[0] for r in con.execute(
            "SELECT origin FROM ledger_events WHERE type = 'opted_out'"
        ).fetchall()]
    finally:
        con.close()
    assert origins == [f"appel de {tel_token(caller, key)} / {email_token(dpo, key)}"]
    scanner = Scanner([caller], extra=[dpo, "rappeler"])
    assert_no_raw_number(scanner.scan_tree(home.root) + scanner.scan_text(result.output, "CLI output"))
