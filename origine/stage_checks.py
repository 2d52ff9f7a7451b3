"""Which expectation suites guard which stage, and where their data lives.

The segment (the heavy step's output) is validated before it may reach the
ledger; the warehouse tables after the commit. Suites live in ``expectations/``.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from origine import memory
from origine.validation import SuiteResult, validate, validate_delivery


def validate_segment(segment: Path, *, context_root: Path | None) -> list[SuiteResult]:
    """The ``normalized_rows`` and ``quarantine`` suites over a prepared segment's Parquet."""
    results = []
    for suite, name in (("normalized_rows", "rows.parquet"), ("quarantine", "quarantine.parquet")):
        con = memory.bound(duckdb.connect())
        try:
            path = str(segment / name).replace("'", "''")
            results.append(
                validate(
                    ":memory:", suite, query=f"SELECT * FROM read_parquet('{path}')",
                    connection=con, context_root=context_root,
                )
            )
        finally:
            con.close()
    return results


def validate_committed(
    warehouse: Path, vendor: str, delivery_id: str, *, context_root: Path | None
) -> list[SuiteResult]:
    """The ``deliveries`` suite for one committed delivery, and ``ledger_events`` for its events."""
    return [
        validate_delivery(warehouse, suite, vendor, delivery_id, context_root=context_root)
        for suite in ("deliveries", "ledger_events")
    ]


def failure_summary(results: list[SuiteResult]) -> list[str]:
    """``suite: expectation(column)`` for every blocking failure, for messages and the UI."""
    out = []
    for r in results:
        for o in r.blocking_failures:
            out.append(f"{r.suite}: {o.describe()}")
    return out
