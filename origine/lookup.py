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
    # rows refused at intake (delivery or suppression file) that were kept under this key
    quarantined: list[dict[str, Any]] = field(default_factory=list)

    @property
    def held(self) -> bool:
        """True when the home holds anything under this key (events or quarantined rows)."""
        return bool(self.events or self.quarantined)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"subject_key": self.subject_key, "events": self.events,
                "campaigns": self.campaigns, "custody": self.custody, "quarantined": self.quarantined}


def subject_for(number: str, region: str, key: HashKey) -> str:
    """The subject key of a number; BadInput (without the number) when it is not valid."""
    key_, reason = parsed_subject(number, region, key)
    if reason is not None or key_ is None:
        raise BadInput(f"not a valid phone number ({reason}); give it in international "
                       "form (+33…) or set --country", column="NUMBER")
    return key_


def parsed_subject(number: str, region: str, key: HashKey) -> tuple[str | None, str | None]:
    """``(subject key, reason)``: the key of any number that parses, even an invalid one
    (intake keeps invalid numbers in quarantine under it), and why it is not valid."""
    result = phones.normalize(number, region)
    return (key.subject_key(result.e164) if result.e164 else None), result.reason


def lookup_number(home: "Home", number: str, region: str) -> LookupAnswer:
    """Everything ``home`` holds about ``number`` (read only).

    Refuses (exit 2) a home that does not exist and a key other than the one the home's
    subject keys were made with: either would otherwise answer "nothing held" about a
    number the operator does hold.
    """
    from origine import warehouse

    home.require()
    key = home.load_key()
    subject, reason = parsed_subject(number, region, key)
    if subject is None:
        subject_for(number, region, key)  # raises, saying why
    assert subject is not None
    if not home.warehouse.exists():  # a home where nothing was ingested yet holds nothing
        answer = LookupAnswer(subject)
    else:
        with warehouse.session(home.warehouse, read_only=True) as con:
            warehouse.check_key_readonly(con, key.key_id)
            answer = lookup(con, subject)
    if reason is not None and not answer.held:
        # an invalid number is answered only when the home holds it (in quarantine):
        # otherwise the number was most likely mistyped, and "nothing held" would mislead
        subject_for(number, region, key)
    return answer


def lookup(con: duckdb.DuckDBPyConnection, subject_key: str) -> LookupAnswer:
    """Every live event about ``subject_key``, in ledger order, and what follows from them."""
    from origine.ledger import require_current

    require_current(con)  # a home of an older format is refused, not read as holding nothing
    answer = LookupAnswer(subject_key)
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "quarantine" in tables:
        answer.quarantined.extend(
            {"kind": "delivery", "vendor": v, "delivery": d, "file": f, "row": r, "reason": why, "column": c}
            for v, d, f, r, why, c in con.execute(
                'SELECT vendor, delivery_id, file, "row", reason, "column" FROM quarantine '
                "WHERE subject_key = ? ORDER BY vendor, delivery_id, file, \"row\"", [subject_key]).fetchall())
    if {"suppression_quarantine", "suppression_files"} <= tables:
        answer.quarantined.extend(
            {"kind": "suppression", "file": f, "row": r, "reason": why, "column": c}
            for f, r, why, c in con.execute(
                'SELECT s.file, q."row", q.reason, q."column" FROM suppression_quarantine q '
                "JOIN suppression_files s ON s.sha256 = q.file_sha256 WHERE q.subject_key = ? "
                'ORDER BY s.file, q."row"', [subject_key]).fetchall())
    if "ledger_leaves" not in tables:
        return answer
    for (seq, type_, at, vendor, delivery_id, source, purpose, bundled, channel, origin,
         party_from, party_to, campaign_id, kind, file, row, proof) in _current_events(con, subject_key):
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



_EVENT_FIELDS = """seq, type, "at", vendor, delivery_id, source, purpose, bundled, channel, origin,
                  party_from, party_to, campaign_id, evidence_kind, file, "row", proof"""


def _current_events(con: duckdb.DuckDBPyConnection, subject_key: str) -> list[tuple[Any, ...]]:
    """The live events of ``subject_key`` under the current key generation, in ledger order.

    The same rows as ``ledger_current WHERE subject_key = ?``, without its map join:
    the stored keys that rotation maps to ``subject_key`` are read from the (small)
    map first, then the events table is filtered on those keys alone (through the
    view, DuckDB joins the map to every event: ~2 s at 47M events).
    """
    from origine.subject_index import events_for, is_mapped_away, mapped_keys

    mapped = set(mapped_keys(con, subject_key))
    stored = [subject_key, *{s for _, s in mapped}]
    rows = events_for(con, stored, _EVENT_FIELDS)  # the index, then the events appended since
    current = con.execute("SELECT value FROM meta WHERE name = 'key_id'").fetchall()
    current_id = current[0][0] if current else None
    away: dict[Any, bool] = {}

    def ours(key_id: Any, stored_key: str) -> bool:
        if (key_id, stored_key) in mapped:
            return True
        if stored_key != subject_key:
            return False
        if key_id == current_id:  # today's keys are never mapped
            return True
        # an older generation's key equal to today's: its events are another subject's if mapped
        if key_id not in away:
            away[key_id] = is_mapped_away(con, key_id, stored_key)
        return not away[key_id]

    return [r[2:] for r in rows if ours(r[0], r[1])]


# ---------------------------------------------------------------- a list of numbers


@dataclass(frozen=True)
class BatchNumber:
    """One input row of a batch: its position (1-based data row) and, when it parses, its key."""

    row: int
    subject_key: str | None
    invalid_reason: str | None


def read_batch(path: "Path", region: str, key: HashKey) -> list[BatchNumber]:
    """The numbers of a batch file, one per input row, keyed at once (the numbers are dropped).

    A JSON file (``.json``) is a list of numbers or of objects with a ``phone`` (or
    ``number``) field; any other file is read like a delivery file (CSV of any common
    delimiter, XLSX…) with a ``phone`` column. Rows are referenced by position: the
    n-th number of the file is row n, whatever its header.
    """
    import json
    from pathlib import Path

    from origine.documents import read_bounded
    from origine.freetext import describe_columns
    from origine.profiles import default_profile
    from origine.readers import open_records

    path = Path(path)
    values: list[Any] = []
    if path.suffix.lower() == ".json":
        try:
            doc = json.loads(read_bounded(path, what="batch file"))
        except (ValueError, UnicodeDecodeError):
            raise BadInput("not JSON (a list of numbers, or of objects with a phone field)", file=str(path)) from None
        if not isinstance(doc, list):
            raise BadInput("a JSON batch is a list of numbers, or of objects with a phone field", file=str(path))
        for i, item in enumerate(doc, 1):
            if isinstance(item, dict):
                item = item.get("phone", item.get("number"))
            if item is not None and not isinstance(item, (str, int)):
                raise BadInput("not a number (a string, or an object with a phone field)", file=str(path), row=i)
            values.append(item)
    else:
        if not path.is_file():
            raise BadInput("no such batch file", file=str(path))
        shape, records = open_records(path, str(path))
        column: str | None = None
        for record in records:
            if column is None:
                mapping = default_profile("campaign").map_columns(shape.columns, str(path))
                if "phone" not in mapping:
                    raise BadInput(f"required column missing (found: {describe_columns(shape.columns)})",
                                   file=str(path), column="phone")
                column = mapping["phone"]
            values.append(None if record.values is None else record.values.get(column))
    out = []
    for i, value in enumerate(values, 1):
        subject, reason = parsed_subject("" if value is None else str(value), region, key)
        out.append(BatchNumber(i, subject, reason))
    return out


def lookup_batch(home: "Home", path: "Path", region: str) -> list[dict[str, Any]]:
    """One answer per input row of ``path`` (see :func:`read_batch`), never the number.

    ``status`` is ``held`` (with the answer), ``not_held``, or ``invalid`` (a value that
    is no phone number, and nothing held under it).
    """
    from origine import warehouse

    home.require()
    key = home.load_key()
    numbers = read_batch(path, region, key)
    answers: dict[str, LookupAnswer] = {}
    if home.warehouse.exists():
        with warehouse.session(home.warehouse, read_only=True) as con:
            warehouse.check_key_readonly(con, key.key_id)
            for n in numbers:
                if n.subject_key is not None and n.subject_key not in answers:
                    answers[n.subject_key] = lookup(con, n.subject_key)
    out: list[dict[str, Any]] = []
    for n in numbers:
        answer = answers.get(n.subject_key) if n.subject_key else None
        if answer is not None and answer.held:
            out.append({"row": n.row, "status": "held", **answer.to_dict()})
        elif n.invalid_reason is not None:
            out.append({"row": n.row, "status": "invalid", "reason": n.invalid_reason})
        else:
            out.append({"row": n.row, "status": "not_held", "subject_key": n.subject_key})
    return out
