"""Consents about to expire: who must be asked again before a consent stops counting.

The rule is the audit's (``origine/audit/rules.py``): for a (subject, purpose), the consent
in force at an instant is the latest specific (not bundled) ``consent_granted`` event
at or before it, provided no ``consent_withdrawn`` for that purpose came at or after
it; erased events count for nothing. A consent granted at ``g`` is valid while
``g >= t - validity_days``, i.e. until ``g + validity_days``. It *expires within N
days* of ``as_of`` when ``as_of <= g + validity_days < as_of + N days``.

Opt-outs are per channel, not per purpose, and are not applied here (the audit applies
them for the campaign's channel).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from origine.audit import DEFAULT_VALIDITY_DAYS
from origine.audit.outputs import arrow_table  # one Arrow table across DuckDB versions

_EXPIRING_SQL = """
WITH per AS (
    SELECT subject_key, purpose,
           max("at") FILTER (WHERE type = 'consent_granted' AND NOT coalesce(bundled, false)) AS g,
           max("at") FILTER (WHERE type = 'consent_withdrawn') AS w
    FROM ledger_current
    WHERE erased_at IS NULL
      AND type IN ('consent_granted', 'consent_withdrawn')
      AND purpose IS NOT NULL
      AND "at" <= $as_of
    GROUP BY subject_key, purpose
)
SELECT subject_key, purpose, g AS granted_at, g + to_days($validity) AS expires_at
FROM per
WHERE g IS NOT NULL AND (w IS NULL OR g > w)
  AND g + to_days($validity) >= $as_of
  AND g + to_days($validity) < $as_of + to_days($within)
ORDER BY purpose, expires_at, subject_key
"""


@dataclass(frozen=True)
class ExpiringConsents:
    """Consents valid at ``as_of`` that expire within ``within_days``: the list and its counts."""

    as_of: datetime
    within_days: int
    validity_days: int
    table: pa.Table  # subject_key, purpose, granted_at, expires_at (keys, never numbers)
    by_purpose: dict[str, int] = field(default_factory=dict)

    @property
    def consents(self) -> int:
        """(subject, purpose) pairs expiring."""
        return self.table.num_rows

    @property
    def subjects(self) -> int:
        """Distinct subjects with at least one consent expiring."""
        return len(set(self.table.column("subject_key").to_pylist())) if self.table.num_rows else 0

    def counts(self) -> dict[str, Any]:
        """Counts only (what goes into run metadata and logs)."""
        return {
            "as_of": self.as_of.isoformat(),
            "within_days": self.within_days,
            "validity_days": self.validity_days,
            "consents_expiring": self.consents,
            "subjects_expiring": self.subjects,
            "by_purpose": dict(self.by_purpose),
        }


def expiring_consents(
    con: duckdb.DuckDBPyConnection,
    *,
    as_of: datetime,
    within_days: int = 30,
    validity_days: int = DEFAULT_VALIDITY_DAYS,
) -> ExpiringConsents:
    """Consents in force at ``as_of`` (timezone-aware) whose validity ends within ``within_days``."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    if within_days <= 0 or validity_days <= 0:
        raise ValueError("within_days and validity_days must be positive")
    has_ledger = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'ledger_leaves'"
    ).fetchone()[0]
    if not has_ledger:
        table = pa.table({"subject_key": pa.array([], pa.string()), "purpose": pa.array([], pa.string()),
                          "granted_at": pa.array([], pa.timestamp("us", tz="UTC")),
                          "expires_at": pa.array([], pa.timestamp("us", tz="UTC"))})
    else:
        con.execute("SET TimeZone = 'UTC'")
        table = arrow_table(con.execute(
            _EXPIRING_SQL, {"as_of": as_of, "within": within_days, "validity": validity_days}
        ))
    by_purpose: dict[str, int] = {}
    for purpose in table.column("purpose").to_pylist():
        by_purpose[purpose] = by_purpose.get(purpose, 0) + 1
    return ExpiringConsents(as_of, within_days, validity_days, table, dict(sorted(by_purpose.items())))


def write_list(result: ExpiringConsents, folder: Path) -> Path:
    """Write the list as Parquet (written aside, then renamed) and return its path."""
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"expiring-consents-{result.as_of.strftime('%Y-%m-%d')}.parquet"
    partial = target.with_name("." + target.name + ".partial")
    pq.write_table(result.table, partial)
    partial.replace(target)
    return target
