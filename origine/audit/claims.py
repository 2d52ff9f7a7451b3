"""The vendor claims of the campaign's own deliveries (row count, consent purposes and
rate, sources), checked against the delivered rows.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pyarrow as pa

from origine.audit.findings import scrub
from origine.purposes import BUNDLED, default_purposes


CLAIM_MISMATCH = "CLAIM_MISMATCH"

# |claimed - measured| up to this is a matching consent rate (half a percentage point).
CONSENT_RATE_TOLERANCE = 0.005


def _claimed_purposes(value: Any) -> list[str]:
    items = value if isinstance(value, list) else str(value).split("|") if value is not None else []
    pmap = default_purposes()
    out = []
    for item in items:
        word = str(item).strip()
        if not word:
            continue
        code = pmap.lookup(word)
        out.append(code if code and code != BUNDLED else word)
    return sorted(set(out))


def claimed_rate(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip().replace(",", ".")
        percent = text.endswith("%")
        try:
            number = float(text.rstrip("%").strip())
        except ValueError:
            return None
        return number / 100 if percent else (number / 100 if number > 1 else number)
    if isinstance(value, (int, float)):
        return float(value) / 100 if value > 1 else float(value)
    return None


def check_claims(con: duckdb.DuckDBPyConnection, deliveries: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Every claim of the campaign's own ``deliveries`` (those it targets; for a campaign
    given only a target file, the deliveries its targets came from), against the rows.

    A delivery the campaign did not target is not its business: a number it shares with
    a targeted one must not bring that delivery's claims (and mismatches) into the audit.
    """
    if not deliveries:
        return []
    con.register("_used", pa.table({"vendor": [v for v, _ in deliveries], "delivery_id": [d for _, d in deliveries]},
                                   schema=pa.schema([("vendor", pa.string()), ("delivery_id", pa.string())])))
    try:
        meta = con.execute(
            "SELECT vendor, delivery_id, rows_read, rows_accepted, claims FROM deliveries JOIN _used USING (vendor, delivery_id)"
        ).fetchall()
        wanted: list[dict[str, Any]] = []
        for vendor, delivery_id, rows_read, rows_accepted, claims_json in meta:
            claims = json.loads(claims_json) if claims_json else {}
            if claims:
                purposes = _claimed_purposes(claims.get("consent_purposes")) if "consent_purposes" in claims else []
                wanted.append({"vendor": vendor, "delivery_id": delivery_id, "rows_read": int(rows_read),
                               "rows_accepted": int(rows_accepted), "claims": claims, "purposes": purposes})
    finally:
        con.unregister("_used")
    if not wanted:
        return []
    con.register("_claimed", pa.table(
        {"vendor": [w["vendor"] for w in wanted], "delivery_id": [w["delivery_id"] for w in wanted],
         "purposes": pa.array([w["purposes"] for w in wanted], pa.list_(pa.string()))}))
    try:
        present_by = {
            (v, d): list(p or [])
            for v, d, p in con.execute(
                """
                SELECT vendor, delivery_id, list(DISTINCT p ORDER BY p) FROM (
                    SELECT r.vendor, r.delivery_id, unnest(r.consent_purposes) AS p
                    FROM delivery_rows r JOIN _claimed c USING (vendor, delivery_id)
                ) GROUP BY vendor, delivery_id
                """
            ).fetchall()
        }
        measured = {
            (v, d): (int(n), int(consented), present_by.get((v, d), []), list(sources or []))
            for v, d, n, consented, sources in con.execute(
                """
                SELECT r.vendor, r.delivery_id, count(*),
                       count(*) FILTER (WHERE CASE WHEN len(c.purposes) > 0
                                                   THEN list_has_all(r.consent_purposes, c.purposes)
                                                   ELSE len(r.consent_purposes) > 0 END),
                       list(DISTINCT r.source ORDER BY r.source) FILTER (WHERE r.source IS NOT NULL)
                FROM delivery_rows r JOIN _claimed c USING (vendor, delivery_id)
                GROUP BY r.vendor, r.delivery_id
                """
            ).fetchall()
        }
    finally:
        con.unregister("_claimed")
    out: list[dict[str, Any]] = []
    order = ["row_count", "consent_purposes", "consent_rate", "sources"]
    for w in sorted(wanted, key=lambda w: (w["vendor"], w["delivery_id"])):
        n, consented, present, sources = measured.get((w["vendor"], w["delivery_id"]), (0, 0, [], []))
        claims = w["claims"]
        names = [c for c in order if c in claims] + sorted(c for c in claims if c not in order)
        for name in names:
            claimed = claims[name]
            value: Any = None
            ok: bool | None = None
            if name == "row_count":
                value = w["rows_read"]
                ok = isinstance(claimed, int) and not isinstance(claimed, bool) and claimed == value
            elif name == "consent_purposes":
                value = present
                ok = set(w["purposes"]) <= set(present) and bool(w["purposes"])
                claimed = w["purposes"]
            elif name == "consent_rate":
                rate = claimed_rate(claimed)
                value = round(consented / n, 4) if n else None
                ok = rate is not None and value is not None and abs(rate - value) <= CONSENT_RATE_TOLERANCE
            elif name == "sources":
                items = claimed if isinstance(claimed, list) else [claimed]
                claimed = sorted({str(s).strip() for s in items if s is not None and str(s).strip()})
                value = sources
                ok = set(claimed) == set(sources)
            out.append({"vendor": w["vendor"], "delivery_id": w["delivery_id"], "claim": name,
                        "claimed": _scrub_json(claimed), "measured": _scrub_json(value), "ok": ok})
    return out


def _scrub_json(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [_scrub_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _scrub_json(v) for k, v in value.items()}
    return value
