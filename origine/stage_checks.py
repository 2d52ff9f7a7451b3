"""Which expectation suites guard which stage, and where their data lives.

Each stage validates what it adds, so a check costs what the run costs, not what the
warehouse holds: the segment (the heavy step's output) before it may reach the
ledger; after the commit, the delivery's row of ``deliveries`` and the ledger events
the commit appended (their ``seq`` range); after an audit, its verdicts and the
``targeted`` events it recorded. The whole warehouse is validated by the weekly
ledger check (:func:`validate_whole_ledger`). Suites live in ``expectations/``.

Great Expectations is loaded when one of these functions runs, not on import.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb

from origine import memory
from origine.warehouse import sql_text
from origine.validation import (
    ExpectationOutcome,
    SuiteResult,
    ValidationRequest,
    delivery_filters,
    validate,
    validate_delivery,
)

WHOLE_WAREHOUSE_SUITES = ("deliveries", "ledger_leaves")
"""The suites the weekly ledger check runs over whole tables."""


def validate_segment(segment: Path, *, context_root: Path | None) -> list[SuiteResult]:
    """The ``normalized_rows`` and ``quarantine`` suites over a prepared segment's Parquet."""
    results = []
    for suite, name in (("normalized_rows", "rows.parquet"), ("quarantine", "quarantine.parquet")):
        con = memory.bound(duckdb.connect())
        try:
            path = sql_text(segment / name)
            results.append(
                validate(
                    ":memory:", suite, query=f"SELECT * FROM read_parquet('{path}')",
                    connection=con, context_root=context_root,
                )
            )
        finally:
            con.close()
    return results


def appended_seq_range(tree_size: int | None, events: int) -> tuple[int, int] | None:
    """The ``seq`` range (first, last) of the ``events`` an append ended at ``tree_size``
    with (``seq`` counts from 0); ``None`` when it appended nothing."""
    if not events or tree_size is None:
        return None
    return tree_size - events, tree_size - 1


def validate_committed(
    warehouse: Path,
    vendor: str,
    delivery_id: str,
    *,
    appended: tuple[int, int] | None,
    context_root: Path | None,
) -> list[SuiteResult]:
    """The ``deliveries`` suite for one committed delivery, and ``ledger_leaves`` for the
    leaves its commit appended (``appended``, from :func:`appended_seq_range`; ``None``
    for a duplicate, which appended nothing, so only its delivery row is checked).

    The leaves are those in the ``seq`` range *and* of this delivery (its delivery leaf,
    first, and the row leaves naming it), so a leaf in the range that is another's, or
    one the commit lost, fails a blocking row-count check.
    """
    results = [validate_delivery(warehouse, "deliveries", vendor, delivery_id, context_root=context_root)]
    if appended is not None:
        first, last = appended
        # of_delivery: the delivery leaf a leaf is or names; another delivery's leaf
        # (or an event leaf) in the range falls outside the batch and fails the count
        leaves = validate(ValidationRequest(
            warehouse, "ledger_leaves", context_root=context_root,
            query=f"""SELECT *, CASE type WHEN 'delivery' THEN seq WHEN 'row' THEN delivery_seq END AS of_delivery
                      FROM ledger_leaves WHERE type <> 'delivery' OR (vendor = '{sql_text(vendor)}'
                                                                      AND delivery_id = '{sql_text(delivery_id)}')""",
            filters={"of_delivery": first}, seq_range=appended,
        ))
        results.append(_expect_rows(
            leaves, last - first + 1,
            why="The ledger holds, under the seq range this commit appended, exactly this "
                "delivery's leaves.",
        ))
    return results


def validate_audit(
    warehouse: Path, targets_parquet: Path, campaign: Mapping[str, Any], *, context_root: Path | None
) -> list[SuiteResult]:
    """An audit's checks: ``audit_verdicts`` over the targets file it wrote, and
    ``ledger_leaves`` over the ``targeted`` leaves of this campaign spec (``campaign``
    is the summary's ``campaign``: ``campaign_id`` and the spec's ``file_sha256``) —
    the same events whether this run appended them or an earlier audit of the same
    spec did, so a re-audit's checks read the same."""
    from origine import warehouse as warehouse_db

    path = sql_text(targets_parquet)
    campaign_id = str(campaign["campaign_id"])
    quoted_id = sql_text(campaign_id)
    con = memory.bound(duckdb.connect())
    try:
        verdicts = validate(
            ":memory:", "audit_verdicts", connection=con, context_root=context_root,
            query=f"SELECT '{quoted_id}' AS campaign_id, * FROM read_parquet('{path}')",
        )
    finally:
        con.close()
    filters = {"type": "targeted", "campaign_id": campaign_id, "file_sha256": str(campaign["file_sha256"])}
    with warehouse_db.session(warehouse, read_only=True) as con:
        # One pass over three columns finds the range; every expectation then reads only
        # the row groups holding it (the ledger is stored in seq order).
        first, last = con.execute(
            "SELECT min(seq), max(seq) FROM ledger_leaves "
            "WHERE type = ? AND campaign_id = ? AND file_sha256 = ?",
            [filters["type"], filters["campaign_id"], filters["file_sha256"]],
        ).fetchone()  # type: ignore[misc]
        events = validate(ValidationRequest(
            warehouse, "ledger_leaves", connection=con, filters=filters, context_root=context_root,
            seq_range=(int(first), int(last)) if first is not None else None,
        ))
    return [verdicts, events]


def validate_whole_ledger(warehouse: Path, *, context_root: Path | None) -> list[SuiteResult]:
    """:data:`WHOLE_WAREHOUSE_SUITES` over whole tables: every delivery and every ledger
    leaf, whichever run added them (the weekly ledger check)."""
    return [validate(warehouse, suite, context_root=context_root) for suite in WHOLE_WAREHOUSE_SUITES]


def _expect_rows(result: SuiteResult, expected: int, *, why: str) -> SuiteResult:
    """Add a blocking ``table_row_count_to_equal`` outcome to ``result``: the batch holds
    ``expected`` rows. The count is the batch's own (:attr:`SuiteResult.rows`): no query."""
    ok = result.rows == expected
    result.results.append(ExpectationOutcome(
        expectation_type="expect_table_row_count_to_equal", kwargs={"value": expected},
        severity="blocking", status="passed" if ok else "failed", success=ok,
        observed_value=result.rows, why=why, check=len(result.results) + 1,
        name="the batch is what this run appended",
    ))
    result.success = result.success and ok
    result.statistics["evaluated_expectations"] = len(result.results)
    result.statistics["successful_expectations"] = sum(o.success for o in result.results)
    return result


def failure_summary(results: list[SuiteResult]) -> list[str]:
    """``suite: expectation(column)`` for every blocking failure, for messages and the UI."""
    out = []
    for r in results:
        for o in r.blocking_failures:
            out.append(f"{r.suite}: {o.describe()}")
    return out
