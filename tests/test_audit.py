"""The campaign audit: one test per reason code and per finding, determinism, privacy."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from origine import ledger, phones, warehouse
from origine.ingest import intake
from origine.audit import RULES, AuditResult, audit, has_opt_out, names_sender
from origine.campaign import load_campaign
from origine.errors import BadInput
from origine.home import Home
from origine.keys import HashKey
from tests.conftest import raw_forms, scan_tree_for

SENT_AT = "2024-06-07T18:00:00+02:00"
GOOD_MESSAGE = "Parti A vous invite à voter le 9 juin. STOP au 36789"
A, B, C, D = "+33612345678", "+33612345679", "+33612345670", "+33612345671"
LANDLINE = "+33145454545"


def ingest(path: Path, home: Home, key: HashKey) -> None:
    report = intake.prepare(path, home, key)
    intake.commit(report, home, label=str(path))


def national(e164: str) -> str:
    return "0" + e164[3:]


def csv_bytes(header: str, rows: list[str]) -> bytes:
    return (header + "\n" + "".join(r + "\n" for r in rows)).encode()


@pytest.fixture
def campaign(tmp_path: Path):
    """Write a campaign YAML (and its files) and return its path."""
    counter = {"n": 0}

    def write(targets: Any = None, *, files: dict[str, bytes] | None = None, **fields: Any) -> Path:
        counter["n"] += 1
        folder = tmp_path / f"campaign-{counter['n']}"
        folder.mkdir()
        for name, data in (files or {}).items():
            (folder / name).write_bytes(data)
        doc: dict[str, Any] = {
            # one id per spec: the ledger refuses another spec under an audited campaign's id
            "campaign_id": f"EU24-SMS-{counter['n']:02d}",
            "sponsor": "Parti A",
            "channel": "sms",
            "purpose": "political.electoral",
            "sender": "PARTI-A",
            "message": GOOD_MESSAGE,
            "sent_at": SENT_AT,
            "targeting": {"age": "18-35", "region": "Île-de-France"},
            "targets": targets if targets is not None else {"deliveries": ["D-1"]},
        }
        doc.update(fields)
        doc = {k: v for k, v in doc.items() if v is not None}
        path = folder / "campaign.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
        return path

    return write


def run(path: Path, home: Home, key: HashKey, tmp_path: Path, name: str = "out", **kw: Any) -> AuditResult:
    return audit(path, home, key, tmp_path / name, **kw)


def targets_by_key(result: AuditResult) -> dict[str | None, dict[str, Any]]:
    rows = pq.read_table(result.targets_parquet).to_pylist()
    return {r["subject_key"]: r for r in rows}


def verdict_of(result: AuditResult, key: HashKey, e164: str) -> tuple[str, list[str]]:
    row = targets_by_key(result)[key.subject_key(e164)]
    return row["verdict"], row["reasons"]


def deliver(home, key, make_delivery, rows: list[str], header: str = "phone,source,consent_purposes,consent_at,consent_proof",
            **fields: Any) -> None:
    ingest(make_delivery({"contacts.csv": csv_bytes(header, rows)}, **fields), home, key)


def add_events(home: Home, events: list[dict[str, Any]]) -> None:
    """Append hand-made events (suppression list, DPO request) to the ledger."""
    con = warehouse.connect(home.warehouse)
    try:
        selects = []
        params: list[Any] = []
        for i, ev in enumerate(events):
            parts = []
            for name, sql_type in ledger.LEAF_COLUMNS:
                if name in ev:
                    params.append(ev[name])
                    parts.append(f'CAST(? AS {sql_type}) AS "{name}"')
                else:
                    parts.append(f'CAST(NULL AS {sql_type}) AS "{name}"')
            selects.append(f"SELECT {', '.join(parts)}, {i} AS ord")
        out = home.scratch / "manual-events.parquet"
        ledger.write_events(con, ledger.events_sql(" UNION ALL ".join(selects)), params, out)
        with warehouse.transaction(con):
            ledger.append_events(con, out, reason="test events")
        out.unlink()
    finally:
        con.close()


def suppression(key: HashKey, e164: str, at: str, channel: str = "sms", **extra: Any) -> dict[str, Any]:
    return {"type": "opted_out", "subject_key": key.subject_key(e164), "key_id": key.key_id,
            "at": datetime.fromisoformat(at), "channel": channel, "origin": "stop-reply",
            "evidence_kind": "suppression", "file": "stop.csv", "file_sha256": "0" * 64, "row": 1, **extra}


# ---------------------------------------------------------------- reason codes


def test_compliant_target(home, key, make_delivery, campaign, tmp_path) -> None:
    deliver(home, key, make_delivery, [f"{national(A)},jeu-ete,propagande électorale,2024-01-02,ref-1"])
    result = run(campaign(), home, key, tmp_path)
    row = targets_by_key(result)[key.subject_key(A)]
    assert (row["verdict"], row["reasons"]) == ("compliant", [])
    assert row["sources"] == ["jeu-ete"] and row["vendors"] == ["acme"] and row["delivery_ids"] == ["acme/D-1"]
    assert row["consent_at"] == datetime(2024, 1, 2, tzinfo=timezone.utc)
    assert row["line_type"] == "mobile"
    assert result.summary["verdicts"] == {"compliant": 1, "non_compliant": 0, "unverifiable": 0}
    assert result.summary["findings"] == []


def test_no_provenance_for_a_file_target_never_delivered(home, key, make_delivery, campaign, tmp_path) -> None:
    deliver(home, key, make_delivery, [f"{national(A)},s,electoral,2024-01-02,p"])
    path = campaign({"file": "numbers.csv"}, files={"numbers.csv": csv_bytes("phone", [national(A), national(B)])})
    result = run(path, home, key, tmp_path)
    assert verdict_of(result, key, A) == ("compliant", [])
    assert verdict_of(result, key, B) == ("non_compliant", ["NO_PROVENANCE", "PURPOSE_NOT_CONSENTED"])
    assert targets_by_key(result)[key.subject_key(B)]["line_type"] == "mobile"


def test_no_provenance_when_delivered_after_the_send(home, key, make_delivery, campaign, tmp_path) -> None:
    deliver(home, key, make_delivery, [f"{national(A)},s,electoral,2024-01-02,p"], delivered_at="2024-06-10T09:00:00Z")
    result = run(campaign(), home, key, tmp_path)
    verdict, reasons = verdict_of(result, key, A)
    assert verdict == "non_compliant" and reasons == ["NO_PROVENANCE"]
    assert targets_by_key(result)[key.subject_key(A)]["vendors"] == []


def test_invalid_number_in_target_file(home, key, make_delivery, campaign, tmp_path) -> None:
    deliver(home, key, make_delivery, [f"{national(A)},s,electoral,2024-01-02,p"])
    assert not phones.normalize("0000", "FR").valid
    files = {"numbers.csv": csv_bytes("Téléphone", [national(A), "0000", "n/a", ""])}
    result = run(campaign({"file": "numbers.csv"}, files=files), home, key, tmp_path)
    assert result.summary["targets"] == 3
    assert result.summary["target_file"] == {
        "file": "numbers.csv", "rows": 3, "blank_rows": 0, "invalid_numbers": 2, "unparseable_numbers": 1,
    }
    rows = pq.read_table(result.targets_parquet).to_pylist()
    invalid = [r for r in rows if "INVALID_NUMBER" in r["reasons"]]
    assert len(invalid) == 2 and all(r["verdict"] == "non_compliant" for r in invalid)
    assert {r["subject_key"] for r in invalid} == {key.subject_key("+330000"), None}
    assert all("WRONG_LINE_TYPE" not in r["reasons"] for r in invalid)
    assert result.summary["reasons"]["INVALID_NUMBER"] == 2


def test_purpose_not_consented_bundled_or_other_purpose(home, key, make_delivery, campaign, tmp_path) -> None:
    deliver(home, key, make_delivery, [
        f"{national(A)},s,prospection commerciale,2024-01-02,p",
        f"{national(B)},s,j'accepte de partager mes données,2024-01-02,p",
        f"{national(C)},s,,,",
    ])
    result = run(campaign(), home, key, tmp_path)
    for number in (A, B, C):
        assert verdict_of(result, key, number) == ("non_compliant", ["PURPOSE_NOT_CONSENTED"])


def test_consent_after_send(home, key, make_delivery, campaign, tmp_path) -> None:
    deliver(home, key, make_delivery, [f"{national(A)},s,electoral,2024-06-08,p"])
    result = run(campaign(), home, key, tmp_path)
    assert verdict_of(result, key, A) == ("non_compliant", ["CONSENT_AFTER_SEND"])
    assert targets_by_key(result)[key.subject_key(A)]["consent_at"] == datetime(2024, 6, 8, tzinfo=timezone.utc)


def test_consent_undated_is_unverifiable(home, key, make_delivery, campaign, tmp_path) -> None:
    deliver(home, key, make_delivery, [f"{national(A)},s,electoral,,p"])
    result = run(campaign(), home, key, tmp_path)
    assert verdict_of(result, key, A) == ("unverifiable", ["CONSENT_UNDATED"])


def test_consent_expired_with_configurable_window(home, key, make_delivery, campaign, tmp_path) -> None:
    deliver(home, key, make_delivery, [f"{national(A)},s,electoral,2020-01-01,p"])
    path = campaign()
    assert verdict_of(run(path, home, key, tmp_path), key, A) == ("non_compliant", ["CONSENT_EXPIRED"])
    longer = run(path, home, key, tmp_path, "out-10y", validity_days=3650)
    assert verdict_of(longer, key, A) == ("compliant", [])
    assert longer.summary["campaign"]["validity_days"] == 3650


def test_opted_out_vendor_flag_before_the_send(home, key, make_delivery, campaign, tmp_path) -> None:
    header = "phone,consent_purposes,consent_at,consent_proof,opted_out_at"
    deliver(home, key, make_delivery, [
        f"{national(A)},electoral,2024-01-02,p,2024-05-01",
        f"{national(B)},electoral,2024-01-02,p,2024-06-20",  # after the send: does not count
    ], header=header)
    result = run(campaign(), home, key, tmp_path)
    assert verdict_of(result, key, A) == ("non_compliant", ["OPTED_OUT"])
    assert verdict_of(result, key, B) == ("compliant", [])


def test_opted_out_by_suppression_per_channel_and_withdrawal(home, key, make_delivery, campaign, tmp_path) -> None:
    deliver(home, key, make_delivery, [f"{national(n)},s,electoral,2024-01-02,p" for n in (A, B, C, D)])
    add_events(home, [
        suppression(key, A, "2024-03-01T00:00:00+00:00", channel="sms"),
        suppression(key, B, "2024-03-01T00:00:00+00:00", channel="voice"),  # another channel
        {"type": "consent_withdrawn", "subject_key": key.subject_key(C), "key_id": key.key_id,
         "at": datetime(2024, 4, 1, tzinfo=timezone.utc), "purpose": "political.electoral",
         "origin": "dpo-request", "evidence_kind": "dpo", "file": "dpo.csv", "file_sha256": "1" * 64, "row": 1},
        {"type": "consent_withdrawn", "subject_key": key.subject_key(D), "key_id": key.key_id,
         "at": datetime(2024, 4, 1, tzinfo=timezone.utc), "purpose": "marketing.commercial",
         "origin": "dpo-request", "evidence_kind": "dpo", "file": "dpo.csv", "file_sha256": "1" * 64, "row": 2},
    ])
    result = run(campaign(), home, key, tmp_path)
    assert verdict_of(result, key, A) == ("non_compliant", ["OPTED_OUT"])
    assert verdict_of(result, key, B) == ("compliant", [])
    assert verdict_of(result, key, C) == ("non_compliant", ["OPTED_OUT"])
    assert verdict_of(result, key, D) == ("compliant", [])
    voice = run(campaign(channel="voice"), home, key, tmp_path, "voice")
    assert verdict_of(voice, key, B) == ("non_compliant", ["OPTED_OUT"])
    assert verdict_of(voice, key, A) == ("compliant", [])


def test_wrong_line_type_for_sms_not_for_voice(home, key, make_delivery, campaign, tmp_path) -> None:
    deliver(home, key, make_delivery, [f"{national(LANDLINE)},s,electoral,2024-01-02,p"])
    sms = run(campaign(), home, key, tmp_path)
    assert verdict_of(sms, key, LANDLINE) == ("non_compliant", ["WRONG_LINE_TYPE"])
    assert targets_by_key(sms)[key.subject_key(LANDLINE)]["line_type"] == "fixed_line"
    voice = run(campaign(channel="voice"), home, key, tmp_path, "voice")
    assert verdict_of(voice, key, LANDLINE) == ("compliant", [])


def test_transfer_not_consented(home, key, make_delivery, campaign, tmp_path) -> None:
    header = "phone,consent_purposes,consent_at,consent_proof,acquired_from"
    deliver(home, key, make_delivery, [
        f"{national(A)},electoral,2024-01-02,p,databroker-x",
        f"{national(B)},electoral|partenaires,2024-01-02,p,databroker-x",
        f"{national(C)},electoral,2024-01-02,p,",
    ], header=header)
    result = run(campaign(), home, key, tmp_path)
    assert verdict_of(result, key, A) == ("non_compliant", ["TRANSFER_NOT_CONSENTED"])
    assert verdict_of(result, key, B) == ("compliant", [])
    assert verdict_of(result, key, C) == ("compliant", [])


def test_no_consent_proof_is_unverifiable_unless_non_compliant(home, key, make_delivery, campaign, tmp_path) -> None:
    deliver(home, key, make_delivery, [
        f"{national(A)},s,electoral,2024-01-02,",
        f"{national(LANDLINE)},s,electoral,2024-01-02,",
    ])
    result = run(campaign(), home, key, tmp_path)
    assert verdict_of(result, key, A) == ("unverifiable", ["NO_CONSENT_PROOF"])
    assert verdict_of(result, key, LANDLINE) == ("non_compliant", ["WRONG_LINE_TYPE", "NO_CONSENT_PROOF"])
    assert result.summary["reasons"]["NO_CONSENT_PROOF"] == 2


def test_every_reason_applies_at_once(home, key, make_delivery, campaign, tmp_path) -> None:
    header = "phone,consent_purposes,consent_at,acquired_from,opted_out_at"
    deliver(home, key, make_delivery, [f"{national(LANDLINE)},electoral,2019-01-01,x,2024-01-01"], header=header)
    result = run(campaign(), home, key, tmp_path)
    assert verdict_of(result, key, LANDLINE) == (
        "non_compliant", ["CONSENT_EXPIRED", "OPTED_OUT", "WRONG_LINE_TYPE", "TRANSFER_NOT_CONSENTED"]
    )


def test_rule_table_covers_every_code() -> None:
    assert set(RULES.values()) == {"non_compliant", "unverifiable"}
    assert {r for r, v in RULES.items() if v == "unverifiable"} == {"NO_CONSENT_PROOF", "CONSENT_UNDATED"}


# ---------------------------------------------------------------- two vendors, one number


def test_same_number_from_two_vendors_with_different_consents(home, key, make_delivery, campaign, tmp_path) -> None:
    deliver(home, key, make_delivery, [f"{national(A)},petition-2023,electoral,2024-01-02,ref-e"],
            vendor="alpha", delivery_id="AL-1")
    deliver(home, key, make_delivery, [f"{national(A)},carte-fidelite,marketing,2023-05-01,ref-m"],
            vendor="beta", delivery_id="BE-1")
    electoral = run(campaign({"deliveries": ["alpha/AL-1", "BE-1"]}), home, key, tmp_path)
    row = targets_by_key(electoral)[key.subject_key(A)]
    assert (row["verdict"], row["reasons"]) == ("compliant", [])
    assert row["vendors"] == ["alpha", "beta"]
    assert row["sources"] == ["carte-fidelite", "petition-2023"]
    assert row["delivery_ids"] == ["alpha/AL-1", "beta/BE-1"]
    assert electoral.summary["targets"] == 1
    marketing = run(campaign({"deliveries": ["BE-1"]}, purpose="marketing.commercial", campaign_id="PROMO"),
                    home, key, tmp_path, "promo")
    assert verdict_of(marketing, key, A) == ("compliant", [])
    fundraising = run(campaign({"deliveries": ["BE-1"]}, purpose="political.fundraising", campaign_id="DONS"),
                      home, key, tmp_path, "dons")
    assert verdict_of(fundraising, key, A) == ("non_compliant", ["PURPOSE_NOT_CONSENTED"])


# ---------------------------------------------------------------- campaign findings


def codes(result: AuditResult) -> list[str]:
    return [f["code"] for f in result.summary["findings"]]


def test_no_sender_id(home, key, make_delivery, campaign, tmp_path) -> None:
    deliver(home, key, make_delivery, [f"{national(A)},s,electoral,2024-01-02,p"])
    assert "NO_SENDER_ID" in codes(run(campaign(sender=""), home, key, tmp_path, "a"))
    anonymous = campaign(message="Votez le 9 juin ! STOP au 36789")
    assert "NO_SENDER_ID" in codes(run(anonymous, home, key, tmp_path, "b"))
    assert "NO_SENDER_ID" not in codes(run(campaign(), home, key, tmp_path, "c"))
    assert names_sender("PARTI-A: votez ! STOP 36789", ["parti a"])
    assert not names_sender("Partie annulée", ["Parti A"])


@pytest.mark.parametrize(
    "message,ok",
    [
        ("Votez Parti A. STOP 36789", True),
        ("Votez Parti A. STOP au 36xxx", True),
        ("Votez Parti A. Stop SMS", True),
        ("Parti A. Répondez STOP pour ne plus recevoir", True),
        ("Parti A: se désinscrire https://parti-a.fr/desinscription", True),
        ("Party A. Unsubscribe: https://party-a.example/unsubscribe", True),
        ("Party A. Reply STOP to opt out", True),
        ("Parti A. Pour vous désabonner: parti-a.fr", True),
        ("Votez Parti A le 9 juin !", False),
        ("Parti A: ne vous arrêtez pas, votez !", False),
        ("Parti A: non-stop jusqu'au 9 juin", False),
    ],
)
def test_opt_out_wording(message: str, ok: bool) -> None:
    assert has_opt_out(message) is ok


def test_no_opt_out_in_message(home, key, make_delivery, campaign, tmp_path) -> None:
    deliver(home, key, make_delivery, [f"{national(A)},s,electoral,2024-01-02,p"])
    result = run(campaign(message="Parti A vous invite à voter le 9 juin."), home, key, tmp_path)
    assert codes(result) == ["NO_OPT_OUT_IN_MESSAGE"]
    # the verdicts do not depend on the message
    assert verdict_of(result, key, A) == ("compliant", [])


def test_special_category_targeting_on_keys_and_values(home, key, make_delivery, campaign, tmp_path) -> None:
    deliver(home, key, make_delivery, [f"{national(A)},s,electoral,2024-01-02,p"])
    mapping = campaign(targeting={"religion": "any", "quartier": ["Nord", "musulman"], "age": "18-35"})
    found = [f for f in run(mapping, home, key, tmp_path, "m").summary["findings"]
             if f["code"] == "SPECIAL_CATEGORY_TARGETING"]
    assert [(f["criterion"], f["category"], f["matched_in"]) for f in found] == [
        ("religion", "religion", "criterion"), ("quartier", "religion", "value"),
    ]
    listed = campaign(targeting=["électeurs 18-35 ans", "Intention de vote: gauche", "Santé fragile"])
    found = [f for f in run(listed, home, key, tmp_path, "l").summary["findings"]
             if f["code"] == "SPECIAL_CATEGORY_TARGETING"]
    assert {f["category"] for f in found} == {"political_opinion", "health"}
    clean = run(campaign(), home, key, tmp_path, "c")
    assert "SPECIAL_CATEGORY_TARGETING" not in codes(clean)


def test_contacted_after_stop(home, key, make_delivery, campaign, tmp_path) -> None:
    header = "phone,consent_purposes,consent_at,consent_proof,opted_out_at"
    deliver(home, key, make_delivery, [
        f"{national(A)},electoral,2024-01-02,p,",
        f"{national(B)},electoral,2024-01-02,p,",
        f"{national(C)},electoral,2024-01-02,p,2024-06-01",
    ], header=header)
    report = csv_bytes("phone;sent_at;stop_reply_at", [
        f"{national(A)};2024-06-07T18:00:00+02:00;",
        f"{national(B)};2024-06-07T18:00:00+02:00;2024-06-07T18:05:00+02:00",
        f"{national(B)};2024-06-08T10:00:00+02:00;",  # sent again after the STOP
        f"{national(C)};2024-06-07T18:00:00+02:00;",  # opted out in the ledger before
    ])
    result = run(campaign(send_report="report.csv", files={"report.csv": report}), home, key, tmp_path)
    found = [f for f in result.summary["findings"] if f["code"] == "CONTACTED_AFTER_STOP"]
    assert len(found) == 1
    assert found[0]["numbers"] == 2 and found[0]["after_stop_reply"] == 1 and found[0]["after_ledger_opt_out"] == 1
    assert sorted(found[0]["subject_keys"]) == sorted([key.subject_key(B), key.subject_key(C)])
    assert result.summary["send_report"] == {"file": "report.csv", "rows": 4, "unusable_rows": 0,
                                             "numbers": 3, "not_targeted": 0, "stop_replies": 1,
                                             "resubscribe_replies": 0, "opted_out_recorded": 1}
    clean = csv_bytes("phone,sent_at,stop_reply_at", [f"{national(A)},2024-06-07 18:00,2024-06-07 18:05"])
    again = run(campaign(send_report="r.csv", files={"r.csv": clean}), home, key, tmp_path, "clean")
    assert "CONTACTED_AFTER_STOP" not in codes(again)


def test_claims_against_measured(home, key, make_delivery, campaign, tmp_path) -> None:
    claims = {"row_count": 3, "consent_purposes": ["propagande électorale"], "consent_rate": 1.0,
              "sources": ["jeu-ete"], "quality": "premium"}
    deliver(home, key, make_delivery, [
        f"{national(A)},jeu-ete,electoral,2024-01-02,p",
        f"{national(B)},carte-fidelite,marketing,2024-01-02,p",
    ], claims=claims)
    result = run(campaign(), home, key, tmp_path)
    by_claim = {c["claim"]: c for c in result.summary["claims"]}
    assert list(by_claim) == ["row_count", "consent_purposes", "consent_rate", "sources", "quality"]
    assert by_claim["row_count"] == {"vendor": "acme", "delivery_id": "D-1", "claim": "row_count",
                                     "claimed": 3, "measured": 2, "ok": False}
    assert by_claim["consent_purposes"]["ok"] is True
    assert by_claim["consent_purposes"]["measured"] == ["marketing.commercial", "political.electoral"]
    assert (by_claim["consent_rate"]["claimed"], by_claim["consent_rate"]["measured"]) == (1.0, 0.5)
    assert by_claim["consent_rate"]["ok"] is False
    assert by_claim["sources"]["measured"] == ["carte-fidelite", "jeu-ete"] and by_claim["sources"]["ok"] is False
    assert by_claim["quality"]["ok"] is None
    mismatches = [f for f in result.summary["findings"] if f["code"] == "CLAIM_MISMATCH"]
    assert [f["claim"] for f in mismatches] == ["row_count", "consent_rate", "sources"]
    assert mismatches[0]["claimed"] == 3 and mismatches[0]["measured"] == 2


def test_claims_that_hold_are_no_finding(home, key, make_delivery, campaign, tmp_path) -> None:
    claims = {"row_count": 1, "consent_purposes": ["political.electoral"], "consent_rate": "100%",
              "sources": "jeu-ete"}
    deliver(home, key, make_delivery, [f"{national(A)},jeu-ete,electoral,2024-01-02,p"], claims=claims)
    result = run(campaign(), home, key, tmp_path)
    assert all(c["ok"] for c in result.summary["claims"]) and len(result.summary["claims"]) == 4
    assert "CLAIM_MISMATCH" not in codes(result)


# ---------------------------------------------------------------- ledger, determinism, privacy


def test_targeted_events_appended_once_and_verdicts_identical(home, key, make_delivery, campaign, tmp_path) -> None:
    deliver(home, key, make_delivery, [
        f"{national(A)},=HYPERLINK(\"x\"),electoral,2024-01-02,p",
        f"{national(B)},s,marketing,2024-01-02,p",
        f"{national(LANDLINE)},s,electoral,2024-01-02,",
    ])
    path = campaign({"deliveries": ["D-1"], "file": "n.csv"}, files={"n.csv": csv_bytes("phone", [national(C), "0000", "n/a"])})
    first = run(path, home, key, tmp_path, "one")
    second = run(path, home, key, tmp_path, "two")
    assert first.appended == 5 and second.appended == 0
    for name in ("summary.json", "targets.csv", "targets.parquet"):
        assert (first.out_dir / name).read_bytes() == (second.out_dir / name).read_bytes(), name
    con = warehouse.connect(home.warehouse)
    try:
        events = con.execute(
            "SELECT subject_key, \"at\", channel, campaign_id, purpose, evidence_kind, file, file_sha256, key_id "
            "FROM ledger_events WHERE type = 'targeted' ORDER BY seq"
        ).fetchall()
        assert ledger.check_ledger(con).ok
    finally:
        con.close()
    assert len(events) == 5
    assert [e[0] for e in events] == sorted(e[0] for e in events)
    spec = load_campaign(path)
    assert {e[1:] for e in events} == {(
        spec.sent_at, "sms", "EU24-SMS-01", "political.electoral", "campaign", "campaign.yaml", spec.sha256, key.key_id,
    )}
    assert first.summary["targeted_events"] == 5
    # a delivery leaf and 3 row leaves (ledger format v2), then the 5 targeted leaves
    assert first.summary["ledger"]["tree_size"] == 1 + 3 + 5
    # the CSV cannot inject formulas into a spreadsheet
    rows = list(csv.DictReader(io.StringIO(first.targets_csv.read_text())))
    injected = [r for r in rows if "HYPERLINK" in r["sources"]]
    assert injected and injected[0]["sources"].startswith("'=")
    assert [r["subject_key"] for r in rows[:-1]] == sorted(r["subject_key"] for r in rows[:-1])
    assert rows[-1]["subject_key"] == "" and rows[-1]["reasons"] == "NO_PROVENANCE|INVALID_NUMBER|PURPOSE_NOT_CONSENTED"
    keys = pq.read_table(first.targets_parquet).column("subject_key").to_pylist()
    assert keys[:-1] == sorted(keys[:-1]) and keys[-1] is None and len(keys) == 6
    # an edited spec under an audited campaign's id is refused, naming the campaign (issue 18 item 7)
    path.write_text(path.read_text() + "# edited\n")
    with pytest.raises(BadInput, match="campaign 'EU24-SMS-01' was already audited from a different spec"):
        run(path, home, key, tmp_path, "three")


def test_summary_shape(home, key, make_delivery, campaign, tmp_path) -> None:
    deliver(home, key, make_delivery, [f"{national(A)},s,electoral,2024-01-02,p", f"{national(B)},t,,,"])
    result = run(campaign(), home, key, tmp_path)
    summary = json.loads(result.summary_path.read_text())
    assert summary == result.summary
    assert {"campaign_id", "targets", "verdicts", "reasons", "findings", "claims", "ledger"} <= set(summary)
    assert summary["targets"] == 2 and summary["verdicts"]["non_compliant"] == 1
    assert summary["sources"] == {"s": {"compliant": 1, "non_compliant": 0, "unverifiable": 0},
                                  "t": {"compliant": 0, "non_compliant": 1, "unverifiable": 0}}
    assert len(summary["ledger"]["root_hash"]) == 64
    assert result.fails_on(["non_compliant"]) and not result.fails_on(["unverifiable"])


def test_no_raw_number_in_outputs(home, key, make_delivery, campaign, tmp_path) -> None:
    numbers = [A, B, C, LANDLINE]
    deliver(home, key, make_delivery, [f"{national(n)},s,electoral,2024-01-02,p" for n in numbers[:2]])
    files = {"n.csv": csv_bytes("phone", [national(C), national(LANDLINE), "0000"]),
             "r.csv": csv_bytes("phone,sent_at,stop_reply_at", [f"{national(A)},2024-06-07,2024-06-06"])}
    path = campaign({"deliveries": ["D-1"], "file": "n.csv"}, send_report="r.csv", files=files,
                    targeting=["religion: appelez le 06 12 34 56 70"])
    result = run(path, home, key, tmp_path)
    assert "SPECIAL_CATEGORY_TARGETING" in codes(result)  # the criterion is echoed, its number masked
    needles = [form for n in numbers for form in raw_forms(n)] + [b"330000", b"06 12 34 56 70"]
    assert scan_tree_for(result.out_dir, needles) == []
    assert scan_tree_for(home.root, needles) == []


# ---------------------------------------------------------------- bad specs


@pytest.mark.parametrize(
    "fields,column",
    [
        ({"campaign_id": None}, "campaign_id"),
        ({"campaign_id": "../x"}, "campaign_id"),
        ({"channel": "fax"}, "channel"),
        ({"purpose": "propagande électorale"}, "purpose"),
        ({"sent_at": "demain"}, "sent_at"),
        ({"sent_at": None}, "sent_at"),
        ({"targets": {}}, "targets"),
        ({"targets": {"deliveries": ["a/b/c"]}}, "targets.deliveries[1]"),
        ({"targets": {"file": "missing.csv"}}, "targets.file"),
        ({"targets": {"deliveries": ["NOPE-1"]}}, "targets.deliveries[1]"),
        ({"targeting": 3}, "targeting"),
        ({"send_report": "missing.csv"}, "send_report"),
        ({"country": "XX"}, "country"),
    ],
)
def test_bad_spec_names_file_and_field(home, key, make_delivery, campaign, tmp_path, fields, column) -> None:
    deliver(home, key, make_delivery, [f"{national(A)},s,electoral,2024-01-02,p"])
    targets = fields.pop("targets", None)
    path = campaign(targets, **fields) if targets is not None else campaign(**fields)
    with pytest.raises(BadInput) as err:
        run(path, home, key, tmp_path)
    assert err.value.column == column and str(path) in str(err.value)
    assert err.value.exit_code == 2


def test_target_file_without_phone_column(home, key, make_delivery, campaign, tmp_path) -> None:
    path = campaign({"file": "n.csv"}, files={"n.csv": b"nom;ville\nx;y\n"})
    with pytest.raises(BadInput) as err:
        run(path, home, key, tmp_path)
    assert err.value.column == "phone" and "n.csv" in str(err.value)


def test_bad_date_in_send_report_names_row_and_column(home, key, make_delivery, campaign, tmp_path) -> None:
    deliver(home, key, make_delivery, [f"{national(A)},s,electoral,2024-01-02,p"])
    report = csv_bytes("phone,sent_at,stop_reply_at", [f"{national(A)},2024-06-07,", f"{national(B)},hier,"])
    with pytest.raises(BadInput) as err:
        run(campaign(send_report="r.csv", files={"r.csv": report}), home, key, tmp_path)
    assert (err.value.row, err.value.column) == (2, "sent_at")
    assert national(B) not in str(err.value)


def test_ambiguous_delivery_id_needs_its_vendor(home, key, make_delivery, campaign, tmp_path) -> None:
    deliver(home, key, make_delivery, [f"{national(A)},s,electoral,2024-01-02,p"], vendor="alpha", delivery_id="X")
    deliver(home, key, make_delivery, [f"{national(B)},s,electoral,2024-01-02,p"], vendor="beta", delivery_id="X")
    with pytest.raises(BadInput, match="several vendors"):
        run(campaign({"deliveries": ["X"]}), home, key, tmp_path)
    result = run(campaign({"deliveries": ["beta/X"]}), home, key, tmp_path)
    assert set(targets_by_key(result)) == {key.subject_key(B)}
