""""Where did you get my number?" — everything the home holds about one number.

The answer (GDPR articles 14 and 15) names the subject key, never the number:
the events (collection, consents, opt-outs, transfers, deliveries, campaigns),
the custody chain; :mod:`origine.letter` writes the same as a letter to send.
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
                  party_from, party_to, campaign_id, evidence_kind, file, "row", proof
           FROM ledger_current WHERE subject_key = ? AND erased_at IS NULL ORDER BY seq""",
        [subject_key],
    ).fetchall()
    for (seq, type_, at, vendor, delivery_id, source, purpose, bundled, channel, origin,
         party_from, party_to, campaign_id, kind, file, row, proof) in rows:
        event = {
            "seq": seq, "type": type_, "at": at.isoformat() if at else None, "vendor": vendor,
            "delivery": delivery_id, "source": source, "purposes": [purpose] if purpose else [],
            "bundled_consent": bool(bundled), "channel": channel, "origin": origin,
            "from": party_from, "to": party_to, "campaign": campaign_id, "proof": proof,
            "evidence": {"kind": kind, "file": file, "row": row},
        }
        answer.events.append({k: v for k, v in event.items() if v not in (None, [], False)} | {"type": type_, "seq": seq})
        if type_ == "targeted" and campaign_id and campaign_id not in answer.campaigns:
            answer.campaigns.append(campaign_id)
        if type_ in ("transferred", "delivered"):
            answer.custody.append({"from": party_from, "to": party_to, "at": event["at"], "delivery": delivery_id})
    return answer

