"""The verdict rules: what the ledger says of each target, and the verdict and reasons
it gives at the campaign's send time (the rule table is the package docstring).

All SQL over DuckDB, on a connection holding the targets (``_targets``,
``_target_keys``) and either the ledger (the verifier's cited leaves:
:func:`collect_events`) or the audit's snapshot of the targets' events
(:func:`aggregate_events`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, Sequence

import duckdb


class Send(Protocol):
    """What the rules read of a campaign: a :class:`~origine.campaign.Campaign`, or the
    bundle verifier's :class:`SendFacts` read back from a bundle's summary."""

    @property
    def sent_at(self) -> datetime: ...

    @property
    def channel(self) -> str: ...

    @property
    def purpose(self) -> str: ...


@dataclass(frozen=True)
class SendFacts:
    """A send as the rules need it, without the rest of a campaign spec."""

    sent_at: datetime
    channel: str
    purpose: str


DEFAULT_VALIDITY_DAYS = 1095

TRANSFER_PURPOSE = "transfer.third_party"

COMPLIANT = "compliant"

NON_COMPLIANT = "non_compliant"

UNVERIFIABLE = "unverifiable"

VERDICTS = (COMPLIANT, NON_COMPLIANT, UNVERIFIABLE)

# Reason code -> verdict it forces; the order is the order reasons are listed in.
RULES: dict[str, str] = {
    "NO_PROVENANCE": NON_COMPLIANT,
    "INVALID_NUMBER": NON_COMPLIANT,
    "PURPOSE_NOT_CONSENTED": NON_COMPLIANT,
    "CONSENT_AFTER_SEND": NON_COMPLIANT,
    "CONSENT_UNDATED": UNVERIFIABLE,
    "CONSENT_EXPIRED": NON_COMPLIANT,
    "OPTED_OUT": NON_COMPLIANT,
    "WRONG_LINE_TYPE": NON_COMPLIANT,
    "TRANSFER_NOT_CONSENTED": NON_COMPLIANT,
    "NO_CONSENT_PROOF": UNVERIFIABLE,
}

REASONS = tuple(RULES)

SMS_LINE_TYPES = ("mobile", "fixed_line_or_mobile")

VOICE_BAD_LINE_TYPES = ("pager", "unknown")


def target_events_sql(keys: str) -> str:
    """The targets' live events (one semi-join scan of ``ledger_events`` on the keys in
    table ``keys``, through the rotation map), with the columns the verdicts read."""
    # Apart from the aggregate, not in one statement: with the type filters beside it,
    # DuckDB 2.0 plans the map join of a rotated ledger badly (47M events, 1M targets:
    # 22 s, against 7 s so).
    return f"""
        SELECT subject_key, vendor, delivery_id, type, "at", purpose, bundled, channel, proof, source
        FROM ledger_current_of('{keys}')
        WHERE erased_at IS NULL
    """


def collect_events(con: duckdb.DuckDBPyConnection, campaign: Send) -> None:
    """``_per`` from the ledger on ``con`` for the keys in ``_target_keys`` (the
    verifier's path: its DuckDB holds the cited leaves; the audit reads the same
    events into its snapshot instead, :func:`_snapshot`)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _target_events AS {target_events_sql('_target_keys')}")
    aggregate_events(con, campaign, "_target_events")
    con.execute("DROP TABLE _target_events")


def aggregate_events(con: duckdb.DuckDBPyConnection, campaign: Send, events: str) -> None:
    """``_per``: what the ledger says of each target, per (subject, vendor, delivery).

    ``events`` is a relation of the targets' events (:func:`target_events_sql`'s
    columns), aggregated per (subject key, vendor, delivery id): events from a delivery
    share its evidence, and events of other origins (suppression lists, DPO requests)
    form their own group.
    """
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _per AS
        SELECT subject_key, vendor, delivery_id,
               bool_or(type = 'delivered' AND "at" <= $ts) AS delivered_before,
               string_agg(replace(source, chr(31), ' '), chr(31)) FILTER (WHERE type = 'collected' AND source IS NOT NULL) AS sources,
               bool_or(type = 'transferred') AS transferred,
               max("at") FILTER (WHERE type = 'consent_granted' AND purpose = $purpose AND "at" <= $ts) AS g,
               max("at") FILTER (WHERE type = 'consent_granted' AND purpose = $purpose AND "at" <= $ts
                                   AND proof IS NOT NULL) AS g_proof,
               min("at") FILTER (WHERE type = 'consent_granted' AND purpose = $purpose AND "at" > $ts) AS g_after,
               bool_or(type = 'consent_granted' AND purpose = $purpose AND "at" IS NULL) AS g_undated,
               max("at") FILTER (WHERE type = 'consent_withdrawn' AND purpose = $purpose AND "at" <= $ts) AS w,
               max("at") FILTER (WHERE type = 'consent_granted' AND purpose = $transfer AND "at" <= $ts) AS tg,
               max("at") FILTER (WHERE type = 'consent_withdrawn' AND purpose = $transfer AND "at" <= $ts) AS tw,
               bool_or(type = 'opted_out' AND "at" <= $ts) AS opted_out
        FROM {events}
        WHERE (type IN ('collected', 'transferred', 'delivered')
               OR (type = 'opted_out' AND channel IN ($channel, 'all'))
               OR (type = 'consent_granted' AND purpose IN ($purpose, $transfer) AND NOT coalesce(bundled, false))
               OR (type = 'consent_withdrawn' AND purpose IN ($purpose, $transfer)))
        GROUP BY subject_key, vendor, delivery_id
        """,
        {"ts": campaign.sent_at, "channel": campaign.channel, "purpose": campaign.purpose,
         "transfer": TRANSFER_PURPOSE},
    )


def evaluate(con: duckdb.DuckDBPyConnection, campaign: Send, validity_days: int) -> None:
    """``_verdicts``: every target with its reasons, verdict and provenance.

    Per subject: the latest grant for the purpose at or before the send counts when
    no withdrawal came at or after it (so does a consent's proof, judged on the
    latest grant that has one); a delivery is provenance when it was delivered by
    the send; its collection sources and transfers count from then on.
    """
    if campaign.channel == "sms":
        wrong_line = f"coalesce(t.line_type, 'unknown') NOT IN {_sql_tuple(SMS_LINE_TYPES)}"
    elif campaign.channel == "voice":
        wrong_line = f"coalesce(t.line_type, 'unknown') IN {_sql_tuple(VOICE_BAD_LINE_TYPES)}"
    else:
        wrong_line = "false"
    non_compliant = _sql_list([r for r, v in RULES.items() if v == NON_COMPLIANT])
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _verdicts AS
        WITH s AS (
            SELECT subject_key,
                   bool_or(delivered_before) AS known,
                   -- lists travel as unit-separated text: far cheaper to aggregate than lists
                   string_agg(sources, chr(31)) FILTER (WHERE delivered_before) AS sources_text,
                   string_agg(vendor || '/' || delivery_id, chr(31)) FILTER (WHERE delivered_before) AS deliveries_text,
                   bool_or(transferred AND delivered_before) AS transferred,
                   max(g) AS g, max(g_proof) AS g_proof, min(g_after) AS g_after, bool_or(g_undated) AS g_undated,
                   max(w) AS w, max(tg) AS tg, max(tw) AS tw, bool_or(opted_out) AS opted_out
            FROM _per GROUP BY subject_key
        ), c AS (
            SELECT *,
                   list_sort(list_distinct(string_split(sources_text, chr(31)))) AS sources,
                   list_sort(list_distinct(string_split(deliveries_text, chr(31)))) AS delivery_ids,
                   CASE WHEN g IS NOT NULL AND (w IS NULL OR g > w) THEN g END AS valid_at,
                   g IS NOT NULL AND w IS NOT NULL AND w >= g AS withdrawn,
                   g_proof IS NOT NULL AND (w IS NULL OR g_proof > w) AND g_proof >= $ts - to_days($days) AS proof,
                   tg IS NOT NULL AND (tw IS NULL OR tg > tw) AS transfer_consented
            FROM s
        ), j AS (
            SELECT t.subject_key, t.invalid, t.line_type,
                   coalesce(c.known, false) AS known, c.sources, c.delivery_ids,
                   list_sort(list_distinct(list_transform(c.delivery_ids, lambda d: split_part(d, '/', 1))))
                       AS vendors,
                   coalesce(c.transferred, false) AS transferred,
                   c.valid_at IS NOT NULL AS consented,
                   CASE WHEN c.valid_at >= $ts - to_days($days) THEN c.valid_at END AS fresh_at,
                   c.valid_at, c.g_after AS first_after,
                   coalesce(c.withdrawn, false) AS withdrawn,
                   coalesce(c.g_undated, false) AS undated,
                   coalesce(c.proof, false) AS proof,
                   coalesce(c.transfer_consented, false) AS transfer_consented,
                   coalesce(c.opted_out, false) AS opted_out,
                   {wrong_line} AND NOT t.invalid AS wrong_line
            FROM _targets t LEFT JOIN c ON c.subject_key = t.subject_key
        ), r AS (
            SELECT *, list_filter([
                CASE WHEN NOT known THEN 'NO_PROVENANCE' END,
                CASE WHEN invalid THEN 'INVALID_NUMBER' END,
                CASE WHEN NOT consented AND NOT withdrawn AND first_after IS NULL AND NOT undated
                     THEN 'PURPOSE_NOT_CONSENTED' END,
                CASE WHEN NOT consented AND NOT withdrawn AND first_after IS NOT NULL THEN 'CONSENT_AFTER_SEND' END,
                CASE WHEN NOT consented AND NOT withdrawn AND undated THEN 'CONSENT_UNDATED' END,
                CASE WHEN consented AND fresh_at IS NULL THEN 'CONSENT_EXPIRED' END,
                CASE WHEN opted_out OR withdrawn THEN 'OPTED_OUT' END,
                CASE WHEN wrong_line THEN 'WRONG_LINE_TYPE' END,
                CASE WHEN transferred AND NOT transfer_consented THEN 'TRANSFER_NOT_CONSENTED' END,
                CASE WHEN fresh_at IS NOT NULL AND NOT proof THEN 'NO_CONSENT_PROOF' END
            ], lambda x: x IS NOT NULL) AS reasons
            FROM j
        )
        SELECT subject_key,
               CASE WHEN len(list_intersect(reasons, {non_compliant})) > 0 THEN '{NON_COMPLIANT}'
                    WHEN len(reasons) > 0 THEN '{UNVERIFIABLE}' ELSE '{COMPLIANT}' END AS verdict,
               reasons,
               coalesce(sources, []::VARCHAR[]) AS sources,
               coalesce(vendors, []::VARCHAR[]) AS vendors,
               coalesce(delivery_ids, []::VARCHAR[]) AS delivery_ids,
               coalesce(fresh_at, valid_at, first_after) AS consent_at,
               line_type
        FROM r
        """,
        {"ts": campaign.sent_at, "days": validity_days},
    )


def _sql_tuple(values: Sequence[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _sql_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"
