""""Where did you get my number?": origine lookup answers without printing the number."""

from __future__ import annotations

import json

from click.testing import CliRunner

from origine import intake
from origine.cli import main


def test_lookup_answers_with_events_custody_and_a_letter(home, key, make_delivery) -> None:
    path = make_delivery(
        {"a.csv": "phone;source;Finalités;Date consentement;acquired_from\n"
                  "06 12 34 56 78;jeu-concours;prospection commerciale;01/02/2023;promo-sarl\n".encode()},
        vendor="selfcontact", delivery_id="SC-1",
    )
    intake.commit(intake.prepare(path, home, key), home, label="x")
    runner = CliRunner()
    result = runner.invoke(main, ["lookup", "+33 6 12 34 56 78", "--home", str(home.root), "--json"])
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["subject_key"] == key.subject_key("+33612345678")
    assert [e["type"] for e in answer["events"]] == ["collected", "transferred", "consent_granted", "delivered"]
    assert answer["events"][0]["source"] == "jeu-concours"
    assert [(h["from"], h["to"]) for h in answer["custody"]] == [("promo-sarl", "selfcontact"), ("selfcontact", "party-a")]
    letter = runner.invoke(main, ["lookup", "0612345678", "--home", str(home.root), "--letter"]).stdout
    assert "Madame, Monsieur" in letter and "Dear Sir or Madam" in letter
    assert "promo-sarl → selfcontact → party-a" in letter
    for output in (result.stdout, letter):
        assert "612345678" not in output


def test_unknown_number_is_empty_and_invalid_exits_2(home, key) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["lookup", "+33 7 81 23 45 67", "--home", str(home.root), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["events"] == []
    result = runner.invoke(main, ["lookup", "12345", "--home", str(home.root)])
    assert result.exit_code == 2 and "not a valid phone number" in result.stderr and "12345" not in result.stderr
