"""The access letter (``origine lookup NUMBER --letter``): a GDPR article 15 answer an
operator can send, in French and English, as text and as printable HTML (A4)."""

from __future__ import annotations

import html
import re
import subprocess
from datetime import date
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from origine.ingest import intake
from pipelines.cli import main
from origine.letter import (Controller, LetterFacts, custody_chain, describe_event, parse_controller,
                            render_html, render_text)
from origine.errors import BadInput
from tests.conftest import raw_forms
from tests.test_report import ARTIFACTS, _chromium, check_golden, chromium_flags, screenshot

NUMBER = "+33612345678"
CONTROLLER = {"name": "Courtier Données SAS", "address": ["12 rue de la Paix", "75002 Paris"],
              "dpo_email": "dpo@courtier.example", "dpo_name": "Claire Martin, déléguée à la protection des données",
              "city": "Paris", "retention_days": 1095}


@pytest.fixture
def held(home, key, make_delivery, tmp_path):
    """The case of issue 18: a number bought from leadsfrance, in two rows of one delivery
    and again in a second delivery to the same party, consented on 12/03/2024 (Paris),
    then targeted by two campaigns (one whose spec the home keeps, one it does not)."""
    header = "phone;source;Finalités;Date consentement;acquired_from;consent_proof\n"
    row = "06 12 34 56 78;jeu-concours;propagande electorale;12/03/2024;leadsfrance;form-2024-03-12-a81\n"
    first = make_delivery({"a.csv": (header + row + row + "06 12 34 56 79;jeu;marketing;01/02/2024;leadsfrance;p\n").encode()},
                          vendor="courtier", delivery_id="CR-1", recipient="parti-b", timezone="Europe/Paris",
                          delivered_at="2024-05-02T10:30:00")
    second = make_delivery({"b.csv": (header + "0612345678;carte-fidelite;prospection commerciale;;leadsfrance;\n").encode()},
                           vendor="courtier", delivery_id="CR-2", recipient="parti-b", timezone="Europe/Paris",
                           delivered_at="2024-05-20T09:00:00")
    for path in (first, second):
        intake.commit(intake.prepare(path, home, key), home, label="x")
    spec = {"sponsor": "Parti B", "channel": "sms", "purpose": "political.electoral", "sender": "PARTI-B",
            "message": "Parti B vous invite à voter. STOP 36789", "timezone": "Europe/Paris",
            "targets": {"deliveries": ["CR-1"]}}
    kept = home.campaigns / "eu24.yaml"
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_text(yaml.safe_dump({**spec, "campaign_id": "EU24-SMS-B", "sent_at": "2024-06-07T18:00:00"}))
    other = tmp_path / "leg.yaml"
    other.write_text(yaml.safe_dump({**spec, "campaign_id": "LEG24-SMS-B", "sent_at": "2024-06-28T19:30:00"}))
    runner = CliRunner()
    for i, campaign in enumerate((kept, other)):
        result = runner.invoke(main, ["audit", str(campaign), "--out", str(tmp_path / f"bundle-{i}"),
                                      "--home", str(home.root)])
        assert result.exit_code == 0, result.output
    (home.root / "controller.yaml").write_text(yaml.safe_dump(CONTROLLER, allow_unicode=True))
    return home


def letter(home, *args: str, number: str = "0612345678") -> str:
    result = CliRunner().invoke(main, ["lookup", number, "--home", str(home.root), "--letter",
                                       "--date", "2026-11-27", *args])
    assert result.exit_code == 0, result.output + result.stderr
    return result.stdout


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_letter_matches_the_golden_file(held, lang) -> None:
    """End to end through the CLI with a fixed date; read tests/golden/letter.*.txt to judge it."""
    check_golden(f"letter.{lang}.txt", letter(held, "--lang", lang))


def test_what_issue_18_found_wrong_is_right(held) -> None:
    fr, en = letter(held, "--lang", "fr"), letter(held, "--lang", "en")
    lines = [line for line in fr.replace("\xa0", " ").splitlines() if line.startswith("- ")]
    plain, en = " ".join(fr.replace("\xa0", " ").split()), " ".join(en.split())  # unwrapped
    # local dates, not shifted to UTC, in French order; never truncated
    assert "12/03/2024 : consentement pour la finalité « Propagande et communication électorales »" in plain
    assert "12 Mar 2024: consent for the purpose \"Electoral canvassing\"" in en
    assert "2024-03-11" not in fr and "incon\n" not in fr and "date incon " not in fr
    # the same delivery once, in date order
    assert len(lines) == len(set(lines))
    dates = [tuple(reversed(m.group(1).split("/"))) for line in lines if (m := re.match(r"- (\d\d/\d\d/\d{4})", line))]
    assert dates == sorted(dates) and len(dates) >= 4
    # custody without repeats; consent proof; purposes by label; campaigns with sponsor, no "()"
    assert "leadsfrance → courtier → parti-b" in fr and "parti-b → parti-b" not in fr
    assert plain.count("livré par courtier à parti-b (livraison CR-1)") == 1  # two rows, one fact
    assert "preuve : form-2024-03-12-a81" in plain and "proof: form-2024-03-12-a81" in en
    assert "political.electoral" not in fr and "marketing.commercial" not in en
    assert "campagne EU24-SMS-B de Parti B" in plain and "campaign LEG24-SMS-B, purpose" in en
    assert "07/06/2024 à 18:00" in plain and "28 Jun 2024 at 19:30" in en
    assert "()" not in fr and "()" not in en
    # pseudonymisation, not encryption; retention; rights; CNIL; controller and DPO; date
    assert "pseudonymisé" in fr and "chiffr" not in fr and "pseudonymised" in en and "encrypt" not in en
    assert "3 ans après notre dernier contact" in plain and "3 years after our last contact" in en
    for word in ("Rectification", "Effacement", "Opposition", "Limitation", "CNIL", "3 place de Fontenoy",
                 "www.cnil.fr/plaintes", "dpo@courtier.example", "Courtier Données SAS", "Paris, le 27 novembre 2026"):
        assert word in plain, word
    for word in ("Rectification", "Erasure", "Objection", "Restriction", "lodge a complaint", "27 November 2026"):
        assert word in en, word
    assert "nous ne détenons aucune" not in plain.lower()
    for text in (fr, en, letter(held, "--html")):
        assert not [f for f in raw_forms(NUMBER) if f.decode() in text]


def test_an_unknown_number_gets_one_consistent_answer(held) -> None:
    fr = letter(held, number="+33 7 81 23 45 67").replace("\xa0", " ")
    en = letter(held, "--lang", "en", number="+33 7 81 23 45 67")
    assert "Nous ne détenons aucune donnée sur le numéro que vous nous avez indiqué" in fr
    assert "We hold no data about the number you gave us" in en
    for said in ("pseudonymisé", "conservons ces données", "Chaîne", "Ce que nous savons"):
        assert said not in fr, said
    assert "pseudonymised" not in en and "keep these data" not in en
    assert "CNIL" in fr and "Effacement" in fr  # the rights still apply
    assert "781234567" not in fr + en


def test_controller_file_is_required_checked_and_unknown_keys_refused(held) -> None:
    runner = CliRunner()
    path = held.root / "controller.yaml"
    for doc, named in (({**CONTROLLER, "signature": "x"}, "signature"), ({"name": "X", "address": "a"}, "dpo_email"),
                       ({**CONTROLLER, "retention_days": "3 ans"}, "retention_days")):
        path.write_text(yaml.safe_dump(doc))
        result = runner.invoke(main, ["lookup", "0612345678", "--home", str(held.root), "--letter"])
        assert result.exit_code == 2 and named in result.stderr and "controller.yaml" in result.stderr, result.stderr
        assert "612345678" not in result.stderr and result.stdout == ""
    path.unlink()
    result = runner.invoke(main, ["lookup", "0612345678", "--home", str(held.root), "--letter"])
    assert result.exit_code == 2 and "controller.yaml" in result.stderr and "dpo_email" in result.stderr
    with pytest.raises(BadInput):
        parse_controller(["not", "a", "mapping"])


def test_facts_of_other_kinds_read_as_sentences() -> None:
    opted = {"type": "opted_out", "at": "2024-06-07T16:03:00+00:00", "channel": "sms", "origin": "stop-reply",
             "seq": 1}
    assert describe_event(opted, "Europe/Paris", "fr") == "07/06/2024 à 18:03 : opposition (SMS), réponse STOP."
    assert describe_event(opted, "Europe/Paris", "en") == "7 Jun 2024 at 18:03: opt-out (SMS), STOP reply."
    reply = dict(opted, origin="campaign:EU24-SMS-01")
    assert describe_event(reply, "Europe/Paris", "fr").endswith("opposition (SMS), réponse STOP à la campagne EU24-SMS-01.")
    other = {"type": "some_new_fact", "seq": 2}
    assert describe_event(other, "Europe/Paris", "en") == "date unknown: some new fact."
    bundled = {"type": "consent_granted", "at": "2024-01-01T00:00:00+01:00", "bundled_consent": True, "seq": 3}
    assert "counts as consent for no purpose" in describe_event(bundled, "Europe/Paris", "en")


parties = st.sampled_from(["leadsfrance", "courtier", "parti-b", "promo-sarl", "x"])


@given(st.lists(st.tuples(st.sampled_from(["transferred", "delivered"]), parties, parties,
                          st.one_of(st.none(), st.integers(1_600_000_000, 1_800_000_000))), max_size=12))
@settings(max_examples=100, deadline=None)
def test_custody_chain_names_each_party_once_in_hop_order(hops) -> None:
    from datetime import datetime, timezone

    events = [{"type": t, "from": a, "to": b, "seq": i,
               "at": datetime.fromtimestamp(ts, timezone.utc).isoformat() if ts else None}
              for i, (t, a, b, ts) in enumerate(hops)]
    chain = custody_chain(events)
    assert len(chain) == len(set(chain))
    assert set(chain) == {p for _, a, b, _ in hops for p in (a, b)}
    if hops:  # the first party is where the earliest hop came from
        first = min(events, key=lambda e: (e["at"] is None, e["at"] or "", e["seq"]))
        assert chain[0] == first["from"]


def _facts() -> LetterFacts:
    controller = Controller(name="Exemple SAS", address=("1 rue A", "75001 Paris"), dpo_email="dpo@exemple.fr")
    events = tuple({"type": "consent_granted", "at": f"2024-03-{d:02d}T23:00:00+00:00", "purposes": ["political.electoral"],
                    "vendor": "courtier", "delivery": f"CR-{d}", "proof": f"form-{d}", "seq": d} for d in range(1, 29))
    return LetterFacts(controller=controller, subject_ref="ab" * 8, zone="Europe/Paris", events=events,
                       custody=("leadsfrance", "courtier", "parti-b"))


def test_text_and_html_say_the_same() -> None:
    """Both forms come from one document: each fact (an instant at 23:00 UTC is the next
    day in Paris) and the chain appear in both, unwrapped in the HTML."""
    facts = _facts()
    text = render_text(facts, "fr", date(2026, 11, 27))
    page = render_html(facts, "fr", date(2026, 11, 27))
    items = re.findall(r"<li>(.*?)</li>", page)
    assert len(items) == 28 + 6  # 28 consents, 6 rights
    assert items[0].startswith("02/03/2024\xa0: consentement pour la finalité «\xa0Propagande")
    for item in items:
        assert " ".join(html.unescape(item).split()) in " ".join(text.split()), item
    assert "leadsfrance → courtier → parti-b" in text and "leadsfrance → courtier → parti-b" in page
    assert "@page{size:A4" in page and '<html lang="fr">' in page


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_html_letter_prints_on_a4_in_chromium(held, lang, tmp_path) -> None:
    """Headless Chromium prints the HTML letter: A4 pages (595 x 842 points), a sane count;
    a screenshot of it is kept in build/test-artifacts."""
    chromium = _chromium()
    page = tmp_path / f"letter-{lang}.html"
    page.write_text(letter(held, "--html", "--lang", lang), encoding="utf-8")
    pdf = tmp_path / f"letter-{lang}.pdf"
    subprocess.run([chromium, *chromium_flags(tmp_path / "profile"), "--no-pdf-header-footer",
                    f"--print-to-pdf={pdf}", page.as_uri()], capture_output=True, timeout=120, check=True)
    data = pdf.read_bytes()
    boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", data)
    pages = len(re.findall(rb"/Type\s*/Page\b", data))
    assert boxes and all(abs(float(w) - 595.3) < 1.5 and abs(float(h) - 841.9) < 1.5 for w, h in boxes), boxes
    assert 1 <= pages <= 3, pages
    (ARTIFACTS).mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"letter-{lang}.pdf").write_bytes(data)
    screenshot(chromium, page, 900, 1800, ARTIFACTS / f"letter-{lang}.png", tmp_path)


def test_origine_config_sets_the_controller_key_by_key(home, key) -> None:
    runner = CliRunner()
    args = ["--home", str(home.root)]
    result = runner.invoke(main, ["config", "set", "name", "Courtier", "Données", "SAS", *args])
    assert result.exit_code == 0 and "still to set before a letter can be written: address, dpo_email" in result.stdout
    assert runner.invoke(main, ["config", "show", *args]).exit_code == 2  # not usable yet, and says why
    for name, *values in (["address", "12 rue de la Paix", "75002 Paris"], ["dpo_email", "dpo@courtier.example"],
                          ["retention_days", "730"]):
        result = runner.invoke(main, ["config", "set", name, *values, *args])
        assert result.exit_code == 0, result.output
    assert result.stdout == "retention_days set\n"
    shown = runner.invoke(main, ["config", "show", *args])
    assert shown.exit_code == 0
    doc = yaml.safe_load(shown.stdout)
    assert doc["name"] == "Courtier Données SAS" and doc["address"] == ["12 rue de la Paix", "75002 Paris"]
    assert doc["retention_days"] == 730
    for bad in (["colour", "blue"], ["retention_days", "two", "years"], ["retention_days", "0"]):
        result = runner.invoke(main, ["config", "set", *bad, *args])
        assert result.exit_code == 2 and bad[0] in result.stderr, (bad, result.output)
    assert yaml.safe_load((home.root / "controller.yaml").read_text())["retention_days"] == 730  # unchanged


def test_an_answer_with_more_than_events_is_never_called_empty() -> None:
    """If the lookup answer gains a field (numbers held only in quarantine), the letter must
    not tell the person "we hold nothing"."""
    from dataclasses import dataclass, field

    from origine.letter import facts_from
    from origine.lookup import LookupAnswer

    @dataclass
    class Wider(LookupAnswer):
        quarantine: list = field(default_factory=list)

        def to_dict(self):
            return {**super().to_dict(), "quarantine": self.quarantine}

    controller = Controller(name="X", address=("a",), dpo_email="d@x")
    facts = facts_from(Wider("ab" * 32, quarantine=[{"file": "a.csv", "row": 3}]), controller)
    text = " ".join(render_text(facts, "en", date(2026, 11, 27)).split())
    assert "We hold no data" not in text and "quarantine (1)" in text and "pseudonymised" in text
    empty = " ".join(render_text(facts_from(Wider("ab" * 32), controller), "en", date(2026, 11, 27)).split())
    assert "We hold no data" in empty
