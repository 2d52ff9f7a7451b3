"""report.html for people: French and English, local time, every verdict and reason
explained, findings in sentences, claims as a table, charts readable for 3 and for 3
million targets, re-rendered and compared by ``origine verify``; checked in headless
Chromium at desktop and phone widths (screenshots kept in build/test-artifacts)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from origine import bundle, i18n
from origine.ingest import intake
from origine.audit import REASONS, RULES, VERDICTS
from pipelines.cli import main
from origine.export import audit_bundle
from origine.report import finding_sentence, lang_of, render_report

GOLDEN = Path(__file__).parent / "golden"
ARTIFACTS = Path(os.environ.get("ORIGINE_TEST_ARTIFACTS") or Path(__file__).resolve().parent.parent / "build" / "test-artifacts")
FINDING_CODES = ("NO_SENDER_ID", "NO_OPT_OUT_IN_MESSAGE", "SPECIAL_CATEGORY_TARGETING", "CONTACTED_AFTER_STOP",
                 "CLAIM_MISMATCH")


def summary_doc(targets: int = 3_000_000) -> dict[str, Any]:
    """A summary as audit writes it, with every reason and finding, at any scale."""
    nc, unv = targets * 2 // 3, targets // 6
    reasons = {code: max(1, targets // (i + 3)) if targets else 0 for i, code in enumerate(REASONS)}
    reasons["WRONG_LINE_TYPE"] = 1 if targets else 0  # 1 in 3 million must still show
    return {
        "campaign_id": "EU24-SMS-01",
        "campaign": {"campaign_id": "EU24-SMS-01", "sponsor": "Parti A", "channel": "sms",
                     "purpose": "political.electoral", "sent_at": "2024-06-07T16:00:00Z", "file": "campaign.yaml",
                     "file_sha256": "ab" * 32, "targeted_deliveries": ["SC-2024-06-05-001", "ov/OV-7"],
                     "validity_days": 1095, "timezone": "Europe/Paris", "country": "FR"},
        "targets": targets,
        "verdicts": {"compliant": targets - nc - unv, "non_compliant": nc, "unverifiable": unv},
        "reasons": reasons,
        "rules": dict(RULES),
        "sources": {"jeu-concours": {"compliant": 10, "non_compliant": 1_234_567, "unverifiable": 0},
                    "carte-fidelite": {"compliant": 0, "non_compliant": 5, "unverifiable": 2}},
        "vendors": {"selfcontact": {"compliant": targets - nc - unv, "non_compliant": nc, "unverifiable": unv}},
        "findings": [
            {"code": "NO_SENDER_ID", "detail": "the message names neither the sender nor the sponsor"},
            {"code": "NO_OPT_OUT_IN_MESSAGE", "detail": "no STOP code, opt-out or unsubscribe link in the message"},
            {"code": "SPECIAL_CATEGORY_TARGETING", "criterion": "religion", "category": "religion",
             "matched_in": "criterion"},
            {"code": "CONTACTED_AFTER_STOP", "numbers": 1204, "after_stop_reply": 1200, "after_ledger_opt_out": 4,
             "subject_keys": ["5f" * 32]},
            {"code": "CLAIM_MISMATCH", "vendor": "selfcontact", "delivery_id": "SC-2024-06-05-001",
             "claim": "consent_purposes", "claimed": ["political.electoral"],
             "measured": ["marketing.commercial", "research.polling", "service.transactional", "transfer.third_party"]},
        ],
        "claims": [
            {"vendor": "selfcontact", "delivery_id": "SC-2024-06-05-001", "claim": "row_count", "claimed": 3000000,
             "measured": 2999998, "ok": False},
            {"vendor": "selfcontact", "delivery_id": "SC-2024-06-05-001", "claim": "consent_purposes",
             "claimed": ["political.electoral"],
             "measured": ["marketing.commercial", "research.polling", "service.transactional", "transfer.third_party"],
             "ok": False},
            {"vendor": "selfcontact", "delivery_id": "SC-2024-06-05-001", "claim": "consent_rate", "claimed": "98%",
             "measured": 0.4123, "ok": False},
            {"vendor": "selfcontact", "delivery_id": "SC-2024-06-05-001", "claim": "sources",
             "claimed": ["jeu-concours"], "measured": ["carte-fidelite", "jeu-concours"], "ok": False},
            {"vendor": "ov", "delivery_id": "OV-7", "claim": "opt_in_method", "claimed": "double opt-in",
             "measured": None, "ok": None},
        ],
        "target_file": None,
        "send_report": {"file": "report.csv", "rows": 3000001, "numbers": 2999990, "not_targeted": 12,
                        "unusable_rows": 3},
        "targeted_events": targets,
        "ledger": {"tree_size": 123456789, "root_hash": "0f" * 32},
    }


VALIDATIONS = [{"suite": "audit_verdicts", "passed": True, "rows": 3000000},
               {"suite": "ledger_leaves", "passed": False, "rows": 123456789}]


class _Text(HTMLParser):
    """The text a reader sees, one line per block element."""

    BLOCKS = {"p", "h1", "h2", "dt", "dd", "tr", "figcaption", "div", "li"}

    def __init__(self) -> None:
        super().__init__()
        self.out: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("style", "title"):
            self.skip += 1
        if tag in self.BLOCKS:
            self.out.append("\n")
        if tag == "td":
            self.out.append(" | ")
        if tag == "span":
            self.out.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title"):
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(data)


def visible_text(page: str) -> str:
    parser = _Text()
    parser.feed(page)
    lines = (re.sub(r"[ \t]+", " ", line).strip() for line in "".join(parser.out).split("\n"))
    return "\n".join(line for line in lines if line) + "\n"


def check_golden(name: str, text: str) -> None:
    """Compare with tests/golden/NAME; ORIGINE_UPDATE_GOLDEN=1 rewrites it (then read the diff)."""
    path = GOLDEN / name
    if os.environ.get("ORIGINE_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == text, f"{name} differs (ORIGINE_UPDATE_GOLDEN=1 to accept)"


# ---------------------------------------------------------------- the page's content


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_key_content_matches_the_golden_file(lang) -> None:
    page = render_report(summary_doc(), VALIDATIONS, lang)
    check_golden(f"report.{lang}.txt", visible_text(page))


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_every_verdict_reason_and_finding_is_explained_in_words(lang) -> None:
    summary = summary_doc()
    page = render_report(summary, VALIDATIONS, lang)
    text = visible_text(page).replace("\xa0", " ")  # French no-break spaces before ":" and in « »
    for code in RULES:  # a reason code added to the rules without words fails here
        spec = i18n.entry("reasons", code, lang)
        assert spec and spec["label"] and spec["text"], code
        assert f'id="reason-{code}"' in page and spec["label"] in text, code
    for verdict in VERDICTS:
        spec = i18n.entry("verdicts", verdict, lang)
        assert spec["label"] in text and spec["text"] in text
    for finding in summary["findings"]:
        title, sentence = finding_sentence(finding, lang)
        assert title in text and sentence in text and finding["code"] not in (title, sentence)
        assert "{" not in sentence
    # never a Python repr, a raw key=value or a subject key
    assert "['" not in page and "=political" not in page and "5f" * 32 not in page
    assert "Propagande et communication électorales" in text if lang == "fr" else "Electoral canvassing" in text


def test_findings_say_which_delivery_and_which_criterion() -> None:
    summary = summary_doc()
    mismatch = finding_sentence(summary["findings"][4], "fr")[1]
    assert "SC-2024-06-05-001" in mismatch and "selfcontact" in mismatch
    assert "Propagande et communication électorales" in mismatch and "Sondages et enquêtes" in mismatch
    special = finding_sentence(summary["findings"][2], "en")[1]
    assert '"religion"' in special and "the criterion's name" in special
    after = finding_sentence(summary["findings"][3], "en")[1]
    assert after.startswith("1,204 recipients") and "1,200 after a STOP reply" in after


def test_times_are_local_and_numbers_have_separators() -> None:
    fr = visible_text(render_report(summary_doc(), VALIDATIONS, "fr"))
    en = visible_text(render_report(summary_doc(), VALIDATIONS, "en"))
    # 16:00 UTC is 18:00 in Paris in June
    assert "7 juin 2024 à 18:00, heure de Paris (Europe/Paris)" in fr
    assert "7 June 2024 at 18:00, Paris time (Europe/Paris)" in en
    assert "3\u202f000\u202f000 destinataires" in fr and "3,000,000 distinct recipients" in en
    assert "2\u202f000\u202f000 · 66,7\u202f%" in fr and "2,000,000 · 66.7%" in en
    # one in three million is a visible bar and not "0 %"
    assert "1 · < 0,1\u202f%" in fr and "1 · < 0.1%" in en
    assert "98%" in en and "41.23%" in en  # claimed and measured consent rates, as rates


def test_language_defaults_to_the_campaigns_country_and_the_zone_to_its_own() -> None:
    doc = summary_doc()
    assert lang_of(render_report(doc, VALIDATIONS)) == "fr"
    doc["campaign"].update(country="GB", timezone="UTC")  # an unset zone reads UTC in the spec
    page = render_report(doc, VALIDATIONS)
    assert lang_of(page) == "en" and "7 June 2024 at 17:00, London time (Europe/London)" in visible_text(page)
    del doc["campaign"]["country"], doc["campaign"]["timezone"]  # a summary from before these fields
    assert lang_of(render_report(doc, VALIDATIONS)) == "fr"


@given(counts=st.lists(st.integers(0, 10**9), min_size=3, max_size=3),
       reasons=st.lists(st.integers(0, 10**9), min_size=len(REASONS), max_size=len(REASONS)),
       lang=st.sampled_from(["fr", "en"]))
@settings(max_examples=60, deadline=None)
def test_bars_stay_in_bounds_and_show_every_non_zero_count(counts, reasons, lang) -> None:
    doc = summary_doc(0)
    doc["verdicts"] = dict(zip(VERDICTS, counts))
    doc["targets"] = total = sum(counts)
    doc["reasons"] = {r: min(n, total) for r, n in zip(REASONS, reasons)}
    page = render_report(doc, [], lang)
    assert render_report(doc, [], lang) == page  # deterministic
    widths = [int(w) for w in re.findall(r'<rect width="(\d+)" height="20" fill="#(?!ececec)', page)]
    shown = [n for n in [*counts, *doc["reasons"].values()] if n] if total else []
    assert len(widths) == len(counts) + len([n for n in doc["reasons"].values() if n])
    assert all(0 <= w <= 1000 for w in widths)
    assert len([w for w in widths if w]) == len(shown)  # every non-zero count draws a bar
    for n in shown:
        assert f"{i18n.number(n, lang)} · " in page


# ---------------------------------------------------------------- through the audit


@pytest.fixture
def two_deliveries(home, key, make_delivery, tmp_path):
    """D-1 (targeted, honest claims) and D-2 (not targeted, a false row count, sharing a number)."""
    rows = ("phone,source,consent_purposes,consent_at,consent_proof\n"
            "0612345678,jeu,political.electoral,2024-01-02,proof-1\n"
            "0612345679,jeu,marketing.commercial,2024-01-02,proof-2\n"
            "0145454545,jeu,political.electoral,2024-01-02,proof-4\n").encode()
    d1 = make_delivery({"c.csv": rows}, delivery_id="D-1", delivered_at="2024-02-01T00:00:00Z",
                       claims={"row_count": 3, "consent_purposes": ["political.electoral"]})
    d2 = make_delivery({"c.csv": b"phone,source\n0612345678,fichier\n"}, delivery_id="D-2", vendor="other",
                       delivered_at="2024-02-01T00:00:00Z", claims={"row_count": 99})
    for path in (d1, d2):
        intake.commit(intake.prepare(path, home, key), home, label="x")
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(yaml.safe_dump({
        "campaign_id": "EU24", "sponsor": "Parti A", "channel": "sms", "purpose": "political.electoral",
        "sender": "PARTI-A", "message": "Votez le 9 juin. STOP 36789", "timezone": "Europe/Paris",
        "sent_at": "2024-06-07T18:00:00", "targeting": {"religion": "catholique"},
        "targets": {"deliveries": ["D-1"]},
    }))
    return home, campaign


def test_claims_of_a_delivery_the_campaign_did_not_target_are_not_listed(two_deliveries, tmp_path) -> None:
    """Issue 18: report.html listed a CLAIM_MISMATCH of a delivery the campaign did not target
    (one of its numbers was also in the targeted delivery)."""
    home, campaign = two_deliveries
    result = CliRunner().invoke(main, ["audit", str(campaign), "--out", str(tmp_path / "b"), "--home", str(home.root)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert {(c["vendor"], c["delivery_id"]) for c in summary["claims"]} == {("acme", "D-1")}
    assert not [f for f in summary["findings"] if f["code"] == "CLAIM_MISMATCH"]
    assert "D-2" not in (tmp_path / "b" / "report.html").read_text()
    # the CLI says which criterion a finding is about, in a sentence
    assert 'finding SPECIAL_CATEGORY_TARGETING: The targeting criterion "religion"' in result.output


def test_cli_lang_and_verify_rerenders_the_report(two_deliveries, tmp_path) -> None:
    home, campaign = two_deliveries
    runner = CliRunner()
    for lang, title in (("en", "Audit of campaign EU24"), ("fr", "Audit de la campagne EU24")):
        out = tmp_path / lang
        result = runner.invoke(main, ["audit", str(campaign), "--out", str(out), "--home", str(home.root),
                                      "--lang", lang])
        assert result.exit_code == 0, result.output
        page = (out / "report.html").read_text()
        assert lang_of(page) == lang and title in page
        assert "18:00" in page  # sent_at written without a zone, read and shown in Europe/Paris
        check = bundle.verify_bundle(out, home_keys=home.keys)
        assert check.ok and check.checked["report"] == 1, check.problems
    assert runner.invoke(main, ["audit", str(campaign), "--out", str(tmp_path / "x"), "--home", str(home.root),
                                "--lang", "de"]).exit_code == 2


def _resign(out: Path, home) -> None:
    from origine.signing import load_signer

    bundle.sign_bundle(out, load_signer(home.keys))


@pytest.mark.parametrize("change", ["report says more", "summary changed", "language switched"])
def test_a_report_out_of_step_with_the_summary_fails_verify_even_resigned(two_deliveries, tmp_path, change) -> None:
    """The operator's own signature does not make a report true: verify renders it again."""
    home, campaign = two_deliveries
    out = tmp_path / "b"
    audit_bundle(campaign, home, home.load_key(), out)
    assert bundle.verify_bundle(out, home_keys=home.keys).ok
    report, summary = out / "report.html", out / "summary.json"
    if change == "report says more":
        report.write_text(report.read_text().replace("Parti A", "Parti B"))
    elif change == "summary changed":
        doc = json.loads(summary.read_text())
        doc["campaign"]["sponsor"] = "Parti B"
        summary.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    else:
        report.write_text(report.read_text().replace('<html lang="fr">', '<html lang="en">'))
    _resign(out, home)
    result = bundle.verify_bundle(out, home_keys=home.keys)
    assert not result.ok and "report.html does not match summary.json" in result.problems[0]
    cli = CliRunner().invoke(main, ["verify", str(out), "--home", str(home.root)])
    assert cli.exit_code == 1 and "report.html" in cli.stdout


# ---------------------------------------------------------------- in a real browser


def _chromium() -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    return chromium


def chromium_flags(profile: Path) -> list[str]:
    """Headless, offline, no first-run noise; a profile of the test's own."""
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", f"--user-data-dir={profile}"]


# Chromium's headless window is at least 500 pixels wide: the page is laid out in an
# iframe of the wanted width (its own viewport, media queries included) inside a frame page.
_MEASURE = ("<script>addEventListener('load',()=>{const d=document.documentElement;"
            "parent.postMessage(JSON.stringify({scroll:d.scrollWidth,client:d.clientWidth,inner:innerWidth,"
            "widest:Math.max(...[...document.querySelectorAll('body *')].map(e=>e.getBoundingClientRect().right))}),'*')})"
            "</script>")


def _framed(page: Path, width: int, height: int, tmp_path: Path, probe: bool) -> Path:
    inner = tmp_path / f"{page.stem}-{width}{'-probe' if probe else ''}.html"
    text = page.read_text(encoding="utf-8")
    inner.write_text(text.replace("</body>", _MEASURE + "</body>") if probe else text, encoding="utf-8")
    frame = tmp_path / f"frame-{inner.name}"
    frame.write_text(
        f'<!doctype html><html><body style="margin:0;background:#888">'
        f'<iframe src="{inner.name}" style="border:0;display:block;background:#fff;width:{width}px;height:{height}px"></iframe>'
        "<script>addEventListener('message',e=>document.body.setAttribute('data-measure',e.data))</script>"
        "</body></html>", encoding="utf-8")
    return frame


def measure(chromium: str, page: Path, width: int, tmp_path: Path) -> dict[str, float]:
    """The page's scroll width against its viewport's, laid out ``width`` CSS pixels wide."""
    frame = _framed(page, width, 900, tmp_path, probe=True)
    dom = subprocess.run([chromium, *chromium_flags(tmp_path / "profile"), f"--window-size={max(width, 500)},900",
                          "--virtual-time-budget=5000", "--dump-dom", frame.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-500:]
    found = re.search(r"data-measure=\"([^\"]+)\"", dom.stdout)
    assert found, dom.stdout[-500:]
    return json.loads(found.group(1).replace("&quot;", '"'))


def screenshot(chromium: str, page: Path, width: int, height: int, shot: Path, tmp_path: Path) -> None:
    """A PNG of the page laid out ``width`` pixels wide (grey beyond, at phone width)."""
    shot.parent.mkdir(parents=True, exist_ok=True)
    frame = _framed(page, width, height, tmp_path, probe=False)
    subprocess.run([chromium, *chromium_flags(tmp_path / "profile"), f"--window-size={max(width, 500)},{height}",
                    "--virtual-time-budget=3000", f"--screenshot={shot}", frame.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one


@pytest.mark.parametrize("scale", [3, 3_000_000])
def test_report_reads_well_at_desktop_and_phone_widths(scale, tmp_path) -> None:
    """Headless Chromium: no horizontal scroll at 1280 and 390 CSS pixels, every reason code
    of the rules in the explanations; screenshots in build/test-artifacts to look at."""
    chromium = _chromium()
    doc = summary_doc(scale)
    for lang in ("fr", "en"):
        page = tmp_path / f"report-{scale}-{lang}.html"
        page.write_text(render_report(doc, VALIDATIONS, lang), encoding="utf-8")
        dom = subprocess.run([chromium, *chromium_flags(tmp_path / "profile"), "--dump-dom", page.as_uri()],
                             capture_output=True, text=True, timeout=120)
        assert dom.returncode == 0, dom.stderr[-500:]
        for code in RULES:
            assert f'id="reason-{code}"' in dom.stdout and i18n.entry("reasons", code, lang)["label"] in dom.stdout
        for width in (1280, 390):
            m = measure(chromium, page, width, tmp_path)
            assert m["inner"] == width, m  # the viewport really is that wide
            assert m["scroll"] <= m["client"] and m["widest"] <= m["client"] + 0.5, (width, m)
            screenshot(chromium, page, width, 2400 if width == 390 else 1500,
                       ARTIFACTS / f"report-{scale}-{lang}-{width}.png", tmp_path)


def test_a_real_bundles_report_in_the_browser(two_deliveries, tmp_path) -> None:
    chromium = _chromium()
    home, campaign = two_deliveries
    out = tmp_path / "b"
    audit_bundle(campaign, home, home.load_key(), out, lang="en")
    for width in (1280, 390):
        m = measure(chromium, out / "report.html", width, tmp_path)
        assert m["scroll"] <= m["client"], (width, m)
        screenshot(chromium, out / "report.html", width, 1800, ARTIFACTS / f"report-bundle-en-{width}.png", tmp_path)


def test_the_scroll_check_catches_a_page_wider_than_the_phone(tmp_path) -> None:
    """The measurement itself: a page with a 600-pixel table scrolls at 390 and not at 1280."""
    chromium = _chromium()
    page = tmp_path / "wide.html"
    page.write_text('<!doctype html><html><body><table style="width:600px"><tr><td>x</td></tr></table></body></html>')
    narrow, wide = measure(chromium, page, 390, tmp_path), measure(chromium, page, 1280, tmp_path)
    assert narrow["inner"] == 390 and narrow["scroll"] > narrow["client"]
    assert wide["scroll"] <= wide["client"]
