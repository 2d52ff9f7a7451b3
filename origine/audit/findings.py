"""Campaign findings: the message (sender named, opt-out offered), the targeting
(special categories of data), and numbers contacted after a STOP or an opt-out.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import duckdb

from origine.campaign import Campaign
from origine.purposes import fold
from origine.special_categories import special_category


# Campaign findings.
NO_SENDER_ID = "NO_SENDER_ID"

NO_OPT_OUT_IN_MESSAGE = "NO_OPT_OUT_IN_MESSAGE"

SPECIAL_CATEGORY_TARGETING = "SPECIAL_CATEGORY_TARGETING"

CONTACTED_AFTER_STOP = "CONTACTED_AFTER_STOP"

# Subject keys listed in a finding, at most (the count is always complete).
MAX_KEYS_IN_FINDING = 100

_DIGIT_RUN = re.compile(r"\d[\d .\-()/]{5,}\d")


def _words(text: str) -> str:
    """Folded words (case, accents, punctuation ignored), space-padded for whole-word search."""
    return " " + " ".join(fold(text).replace(".", " ").split()) + " "


_OPT_OUT = re.compile(
    r"\bstop\s+(?:(?:au|to|at|a|on|par sms au|sms au)\s+)?\d(?:\s?[\dx]){3,}\b"  # STOP 36789, STOP au 36xxx
    r"|\bstop\s+sms\b"  # Stop SMS
    r"|\b(?:repondez|repondre|repondant|envoyez|envoyer|tapez|reply|text|send|txt)\s+stop\b"
    r"|\b(?:unsubscribe|unsubscribing|desinscription|desinscrire|desinscrivez|desabonnement|desabonner"
    r"|desabonnez|opt\s?out|optout)\b"
)


def has_opt_out(message: str) -> bool:
    """True when the message carries a STOP code or an opt-out / unsubscribe link (fr, en)."""
    return bool(_OPT_OUT.search(_words(message)))


def names_sender(message: str, names: Sequence[str]) -> bool:
    """True when the message names one of ``names`` (whole words, folded)."""
    words = _words(message)
    return any(_words(n).strip() and _words(n) in words for n in names)


def message_findings(campaign: Campaign) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not campaign.sender.strip():
        out.append({"code": NO_SENDER_ID, "detail": "the campaign declares no sender"})
    elif not names_sender(campaign.message, [campaign.sender, campaign.sponsor]):
        out.append({"code": NO_SENDER_ID, "detail": "the message names neither the sender nor the sponsor"})
    if not has_opt_out(campaign.message):
        out.append({"code": NO_OPT_OUT_IN_MESSAGE,
                    "detail": "no STOP code, opt-out or unsubscribe link in the message"})
    return out


def targeting_findings(campaign: Campaign) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    for criterion in campaign.targeting:
        hits = [("criterion", special_category(criterion.name))]
        hits += [("value", special_category(v)) for v in criterion.values]
        for where, category in hits:
            if category and (criterion.name, category, where) not in seen:
                seen.add((criterion.name, category, where))
                out.append({"code": SPECIAL_CATEGORY_TARGETING, "criterion": scrub(criterion.name),
                            "category": category, "matched_in": where})
    return out


def scrub(text: str) -> str:
    """``text`` with any run of digits long enough to be a phone number masked."""
    return _DIGIT_RUN.sub("[digits]", text)


def send_report_stats(con: duckdb.DuckDBPyConnection, campaign: Campaign) -> dict[str, Any]:
    numbers, not_targeted = con.execute(
        """SELECT count(DISTINCT subject_key),
                  count(DISTINCT subject_key) FILTER (WHERE subject_key NOT IN
                      (SELECT subject_key FROM _targets WHERE subject_key IS NOT NULL))
           FROM _report_rows"""
    ).fetchone()  # type: ignore[misc]
    return {"numbers": int(numbers), "not_targeted": int(not_targeted)}


# The send report's numbers' opt-outs (the campaign's channel or all) and consents
# and withdrawals for its purpose (parameters $channel, $purpose): ``_ev``.
REPORT_EVENTS_SQL = """
    SELECT type, subject_key, "at", purpose FROM ledger_current_of('_report_rows')
    WHERE erased_at IS NULL
      AND ((type = 'opted_out' AND channel IN ($channel, 'all'))
           OR (type = 'consent_granted' AND purpose = $purpose AND NOT coalesce(bundled, false))
           OR (type = 'consent_withdrawn' AND purpose = $purpose))
"""


def stops_after(con: duckdb.DuckDBPyConnection, campaign: Campaign) -> dict[str, Any] | None:
    """The CONTACTED_AFTER_STOP finding from ``_report_rows`` and their events ``_ev``:
    numbers sent to after their STOP reply or an opt-out (or withdrawal) in the ledger."""
    rows = con.execute(
        """
        WITH stops AS (
            SELECT subject_key, min(stop_reply_at) AS stop_at FROM _report_rows GROUP BY subject_key
        ), per_send AS (
            SELECT r.subject_key, r.sent_at, s.stop_at,
                   (SELECT min("at") FROM _ev e WHERE e.subject_key = r.subject_key AND e.type = 'opted_out'
                        AND e."at" <= r.sent_at) AS opted_out_at,
                   (SELECT max("at") FROM _ev e WHERE e.subject_key = r.subject_key
                        AND e.type = 'consent_withdrawn' AND e.purpose = $purpose AND e."at" <= r.sent_at) AS withdrawn_at,
                   (SELECT max("at") FROM _ev e WHERE e.subject_key = r.subject_key
                        AND e.type = 'consent_granted' AND e.purpose = $purpose AND e."at" <= r.sent_at) AS granted_at
            FROM _report_rows r JOIN stops s USING (subject_key)
        ), flagged AS (
            SELECT subject_key,
                   bool_or(stop_at IS NOT NULL AND sent_at > stop_at) AS after_stop,
                   bool_or(opted_out_at IS NOT NULL
                           OR (withdrawn_at IS NOT NULL AND (granted_at IS NULL OR withdrawn_at >= granted_at))) AS after_optout
            FROM per_send GROUP BY subject_key
        )
        SELECT subject_key, after_stop, after_optout FROM flagged
        WHERE after_stop OR after_optout ORDER BY subject_key
        """,
        {"purpose": campaign.purpose},
    ).fetchall()
    if not rows:
        return None
    return {
        "code": CONTACTED_AFTER_STOP,
        "numbers": len(rows),
        "after_stop_reply": sum(1 for r in rows if r[1]),
        "after_ledger_opt_out": sum(1 for r in rows if r[2]),
        "subject_keys": [r[0] for r in rows[:MAX_KEYS_IN_FINDING]],
    }
