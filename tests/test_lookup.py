""""Where did you get my number?": origine lookup answers without printing the number."""

from __future__ import annotations

import json

from click.testing import CliRunner

from origine.ingest import intake
from pipelines.cli import main


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
    (home.root / "controller.yaml").write_text("name: Exemple SAS\naddress: [1 rue A, 75001 Paris]\ndpo_email: dpo@exemple.fr\n")
    letter = runner.invoke(main, ["lookup", "0612345678", "--home", str(home.root), "--letter"]).stdout
    english = runner.invoke(main, ["lookup", "0612345678", "--home", str(home.root), "--letter", "--lang", "en"]).stdout
    assert "Madame, Monsieur" in letter and "Dear Sir or Madam" in english
    assert "promo-sarl → selfcontact → party-a" in letter
    for output in (result.stdout, letter):
        assert "612345678" not in output


def test_unknown_number_is_empty_and_invalid_exits_2(home, key) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["lookup", "+33 7 81 23 45 67", "--home", str(home.root), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["events"] == []
    result = runner.invoke(main, ["lookup", "12345", "--home", str(home.root)])
    assert result.exit_code == 2 and "not a valid phone number" in result.stderr and "12345" not in result.stderr


def test_wrong_key_and_missing_home_are_refused_not_answered_empty(home, key, make_delivery, monkeypatch,
                                                                   tmp_path) -> None:
    """Issue 17 item 17: with another ORIGINE_HASH_KEY, or a mistyped --home, lookup said
    "we hold nothing on this number" (exit 0) about a number the home holds."""
    intake.commit(intake.prepare(make_delivery({"a.csv": b"phone\n0612345678\n"}), home, key), home, label="x")
    runner = CliRunner()
    ok = runner.invoke(main, ["lookup", "0612345678", "--home", str(home.root), "--json"])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["events"]
    monkeypatch.setenv("ORIGINE_HASH_KEY", "ab" * 32)
    for extra in ([], ["--json"], ["--letter"]):
        wrong = runner.invoke(main, ["lookup", "0612345678", "--home", str(home.root), *extra])
        assert wrong.exit_code == 2, wrong.output
        assert "key" in wrong.stderr and wrong.stdout == ""
        assert "ab" * 32 not in wrong.stderr and "612345678" not in wrong.stderr
    monkeypatch.setenv("ORIGINE_HASH_KEY", key.secret.hex())
    not_a_home = tmp_path / "some-folder"
    not_a_home.mkdir()
    for missing in (tmp_path / "hmoe", not_a_home):
        result = runner.invoke(main, ["lookup", "0612345678", "--home", str(missing), "--json"])
        assert result.exit_code == 2, result.output
        assert "no origine home" in result.stderr and result.stdout == ""
        assert not missing.exists() or list(missing.iterdir()) == []  # nothing created there
    # a home where nothing was ingested yet truthfully holds nothing
    from origine.home import Home

    fresh = Home(tmp_path / "fresh").ensure()
    result = runner.invoke(main, ["lookup", "0612345678", "--home", str(fresh.root), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["events"] == []
