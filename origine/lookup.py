""""Where did you get my number?" — everything the home holds about one number.

The answer (GDPR articles 14 and 15) names the subject key, never the number:
the events (collection, consents, opt-outs, transfers, deliveries, campaigns),
the custody chain, and, as a letter, the same in plain French and English.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb

from origine import phones
from origine.errors import BadInput
from origine.keys import HashKey

if TYPE_CHECKING:
    from origine.home import Home


@dataclass
class LookupAnswer:
    """What the ledger holds about one subject key."""

    subject_key: str
    events: list[dict[str, Any]] = field(default_factory=list)
    campaigns: list[str] = field(default_factory=list)
    custody: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"subject_key": self.subject_key, "events": self.events,
                "campaigns": self.campaigns, "custody": self.custody}


def subject_for(number: str, region: str, key: HashKey) -> str:
    """The subject key of a number; BadInput (without the number) when it is not valid."""
    result = phones.normalize(number, region)
    if result.reason is not None or result.e164 is None:
        raise BadInput(f"not a valid phone number ({result.reason}); give it in international "
                       "form (+33…) or set --country", column="NUMBER")
    return key.subject_key(result.e164)


def lookup_number(home: "Home", number: str, region: str) -> LookupAnswer:
    """Everything ``home`` holds about ``number`` (read only).

    Refuses (exit 2) a home that does not exist and a key other than the one the home's
    subject keys were made with: either would otherwise answer "nothing held" about a
    number the operator does hold.
    """
    from origine import warehouse

    home.require()
    key = home.load_key()
    subject = subject_for(number, region, key)
    if not home.warehouse.exists():  # a home where nothing was ingested yet holds nothing
        return LookupAnswer(subject)
    with warehouse.session(home.warehouse, read_only=True) as con:
        warehouse.check_key_readonly(con, key.key_id)
        return lookup(con, subject)


def lookup(con: duckdb.DuckDBPyConnection, subject_key: str) -> LookupAnswer:
    """Every live event about ``subject_key``, in ledger order, and what follows from them."""
    answer = LookupAnswer(subject_key)
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "ledger_events" not in tables:
        return answer
    rows = con.execute(
        """SELECT seq, type, "at", vendor, delivery_id, source, purpose, bundled, channel, origin,
                  party_from, party_to, campaign_id, evidence_kind, file, "row"
           FROM ledger_current WHERE subject_key = ? AND erased_at IS NULL ORDER BY seq""",
        [subject_key],
    ).fetchall()
    for (seq, type_, at, vendor, delivery_id, source, purpose, bundled, channel, origin,
         party_from, party_to, campaign_id, kind, file, row) in rows:
        event = {
            "seq": seq, "type": type_, "at": at.isoformat() if at else None, "vendor": vendor,
            "delivery": delivery_id, "source": source, "purposes": [purpose] if purpose else [],
            "bundled_consent": bool(bundled), "channel": channel, "origin": origin,
            "from": party_from, "to": party_to, "campaign": campaign_id,
            "evidence": {"kind": kind, "file": file, "row": row},
        }
        answer.events.append({k: v for k, v in event.items() if v not in (None, [], False)} | {"type": type_, "seq": seq})
        if type_ == "targeted" and campaign_id and campaign_id not in answer.campaigns:
            answer.campaigns.append(campaign_id)
        if type_ in ("transferred", "delivered"):
            answer.custody.append({"from": party_from, "to": party_to, "at": event["at"], "delivery": delivery_id})
    return answer


_TYPES_FR = {
    "collected": "collecte", "consent_granted": "consentement", "consent_withdrawn": "retrait du consentement",
    "opted_out": "opposition (STOP)", "transferred": "transmission", "delivered": "livraison",
    "targeted": "ciblage par une campagne",
}


def letter(answer: LookupAnswer, *, controller: str = "the data controller") -> str:
    """The answer as a plain-language letter, French then English."""
    fr: list[str] = [
        "Madame, Monsieur,",
        "",
        "Vous nous avez demandé d'où vient votre numéro de téléphone et ce que nous en avons fait",
        "(articles 14 et 15 du RGPD). Votre numéro n'est conservé que sous une forme chiffrée",
        f"(clé {answer.subject_key[:16]}…). Voici tout ce que nous détenons :",
        "",
    ]
    en: list[str] = [
        "Dear Sir or Madam,",
        "",
        "You asked where we got your phone number and what we did with it (GDPR articles 14",
        f"and 15). We keep your number only in keyed-hash form (key {answer.subject_key[:16]}…).",
        "This is everything we hold:",
        "",
    ]
    if not answer.events:
        fr.append("- Nous ne détenons aucune information sur ce numéro.")
        en.append("- We hold no information about this number.")
    for e in answer.events:
        when = (e.get("at") or "date inconnue / unknown date")[:10]
        who = e.get("vendor") or e.get("origin") or ""
        what_fr = _TYPES_FR.get(e["type"], e["type"])
        detail = ", ".join(filter(None, [
            e.get("source") and f"source: {e['source']}",
            e.get("purposes") and "finalité / purpose: " + ", ".join(e["purposes"]),
            e.get("bundled_consent") and "consentement groupé, sans finalité / bundled consent, no purpose",
            e.get("channel") and f"canal / channel: {e['channel']}",
            e.get("from") and e.get("to") and f"{e['from']} → {e['to']}",
            e.get("campaign") and f"campagne / campaign: {e['campaign']}",
        ]))
        fr.append(f"- {when} : {what_fr} ({who}) {detail}".rstrip())
        en.append(f"- {when}: {e['type'].replace('_', ' ')} ({who}) {detail}".rstrip())
    if answer.custody:
        chain = " → ".join([answer.custody[0]["from"] or "?"] + [h["to"] or "?" for h in answer.custody])
        fr += ["", f"Chaîne de transmission : {chain}"]
        en += ["", f"Chain of custody: {chain}"]
    fr += ["", "Vous pouvez vous opposer à tout moment en répondant STOP ou en nous écrivant.",
           f"Veuillez agréer nos salutations distinguées. — {controller}", ""]
    en += ["", "You may object at any time by replying STOP or writing to us.",
           f"Yours faithfully, {controller}", ""]
    return "\n".join(fr + ["-" * 72, ""] + en)
