"""Validation results, safe to store: counts and subject keys, never another value.

Great Expectations returns sample values with its results (``partial_unexpected_list``,
``observed_value``, the rows an ``UnexpectedRowsExpectation`` found, exception texts
that quote a cell). :func:`sanitize_gx_result` strips them from GX's own result
*before* it is stored or rendered into Data Docs; :class:`SuiteResult` and
:class:`ExpectationOutcome` keep counts, percentages and at most a few subject keys
(pseudonymous HMACs, only when hash-shaped: a malformed "key" may be the raw number
that escaped pseudonymization); phone-like digit runs are masked in every message
(:func:`redact`), GX's log records included (:func:`redact_gx_logs`).

Nothing here imports Great Expectations: results are read and rendered without it.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

Severity = Literal["blocking", "warning"]
Status = Literal["passed", "failed", "error"]
Scalar = str | int | float | bool | None
SEVERITIES: tuple[Severity, ...] = ("blocking", "warning")

SUBJECT_KEY = "subject_key"
"""The only column whose values may appear in results: pseudonymous HMAC keys."""

DEFAULT_UNEXPECTED_SAMPLE = 5


@cache
def gx_version() -> str:
    """The installed Great Expectations version, read without importing it."""
    try:
        return metadata.version("great_expectations")
    except metadata.PackageNotFoundError:  # pragma: no cover - GX is a dependency
        return "unknown"

_PHONE_LIKE = re.compile(r"\+?\d(?:[\s.\-()/]*\d){5,}")
_HASH_SHAPED = re.compile(r"[0-9a-fA-F]{32,}")
_SCHEMA_EXPECTATIONS = {
    "expect_table_columns_to_match_set",
    "expect_table_columns_to_match_ordered_list",
    "expect_table_column_count_to_equal",
    "expect_table_column_count_to_be_between",
    "expect_table_row_count_to_equal",
    "expect_table_row_count_to_be_between",
    "expect_column_to_exist",
}
_VALUE_KEYS = (
    "partial_unexpected_list",
    "partial_unexpected_counts",
    "partial_unexpected_index_list",
    "unexpected_list",
    "unexpected_index_list",
    "unexpected_index_query",
    "unexpected_rows",
    "details",
)
QUERY_EXPECTATIONS = {"unexpected_rows_expectation", "unexpected_subject_rows"}
_CONFIG_KEYS_DROPPED = {"batch_id", "result_format", "catch_exceptions"}


def redact(text: str) -> str:
    """Mask phone-like digit runs (6+ digits) in free text such as an error message."""
    return _PHONE_LIKE.sub("<redacted>", text)


class _RedactingFilter(logging.Filter):
    """Masks phone-like digit runs in GX's log records (it logs SQL errors, and a
    DuckDB conversion error quotes the value it could not convert)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True

_REDACTING_FILTER = _RedactingFilter()


def redact_gx_logs() -> None:
    """Attach the filter to every GX logger (filters are not inherited by child loggers)."""
    for name, item in list(logging.root.manager.loggerDict.items()):
        if name.startswith("great_expectations") and isinstance(item, logging.Logger):
            if _REDACTING_FILTER not in item.filters:
                item.addFilter(_REDACTING_FILTER)


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result, safe to store: no raw value but subject keys."""

    expectation_type: str
    kwargs: dict[str, Any]
    severity: Severity
    status: Status
    success: bool
    observed_value: Any = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    unexpected_subject_keys: list[str] = field(default_factory=list)
    error: str | None = None
    details: dict[str, Any] | None = None
    why: str | None = None
    check: int | None = None
    name: str | None = None

    @property
    def column(self) -> str | None:
        return self.kwargs.get("column")

    @property
    def is_error(self) -> bool:
        return self.status == "error"

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))

    def describe(self) -> str:
        """One line for logs and reports."""
        target = self.kwargs.get("column") or self.kwargs.get("column_list") or ""
        head = f"[{self.severity}] {self.expectation_type}" + (f" {target}" if target else "")
        if self.status == "error":
            return f"{head}: ERROR {self.error}"
        if self.unexpected_count is not None:
            pct = f" ({self.unexpected_percent:.4g}%)" if self.unexpected_percent is not None else ""
            return f"{head}: {self.status}, {self.unexpected_count} unexpected{pct}"
        return f"{head}: {self.status}, observed {self.observed_value!r}"


@dataclass
class SuiteResult:
    """The outcome of one suite on one batch.

    ``success`` is GX's: every expectation passed, warnings included. Gate on
    :attr:`blocking_failures` (failed blocking expectations, and every expectation
    that could not be evaluated) to decide whether a stage may proceed.
    """

    suite: str
    success: bool
    results: list[ExpectationOutcome]
    table: str | None = None
    query: str | None = None
    filters: dict[str, Scalar] = field(default_factory=dict)
    seq_range: tuple[int, int] | None = None
    """The ledger ``seq`` range (first, last, inclusive) the batch was restricted to."""
    rows: int | None = None
    """Rows in the batch (0 for a delivery that has none: every check then passes)."""
    run_id: str = ""
    run_time: str = ""
    data_docs_path: Path | None = None
    gx_version: str = field(default_factory=gx_version)
    statistics: dict[str, Any] = field(default_factory=dict)
    gx_result: Any = field(default=None, repr=False, compare=False)
    """GX's ExpectationSuiteValidationResult, already stripped of raw values."""

    @property
    def blocking_failures(self) -> list[ExpectationOutcome]:
        """Failed blocking expectations plus every error (an unevaluated check blocks)."""
        return [r for r in self.results if r.is_error or (not r.success and r.severity == "blocking")]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        """Failed warning-level expectations (errors are in :attr:`blocking_failures`)."""
        return [r for r in self.results if not r.success and not r.is_error and r.severity == "warning"]

    @property
    def errors(self) -> list[ExpectationOutcome]:
        return [r for r in self.results if r.is_error]

    @property
    def passed(self) -> bool:
        """True when nothing blocks (warnings may have failed)."""
        return not self.blocking_failures

    def outcome(self, expectation_type: str, column: str | None = None) -> ExpectationOutcome:
        """The single outcome of that type (on that column); handy in tests and reports."""
        found = [
            r
            for r in self.results
            if r.expectation_type == expectation_type and (column is None or r.column == column)
        ]
        if len(found) != 1:
            raise KeyError(f"{len(found)} outcomes for {expectation_type} {column or ''}".strip())
        return found[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable summary for the audit bundle."""
        return _jsonable(
            {
                "suite": self.suite,
                "success": self.success,
                "passed": self.passed,
                "table": self.table,
                "query": self.query,
                "filters": self.filters,
                "seq_range": list(self.seq_range) if self.seq_range else None,
                "rows": self.rows,
                "run_id": self.run_id,
                "run_time": self.run_time,
                "gx_version": self.gx_version,
                "statistics": self.statistics,
                "data_docs_path": str(self.data_docs_path) if self.data_docs_path else None,
                "blocking_failures": len(self.blocking_failures),
                "warnings": len(self.warnings),
                "errors": len(self.errors),
                "results": [r.to_dict() for r in self.results],
            }
        )


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "value") and isinstance(getattr(value, "value"), str):  # enums
        return value.value
    return str(value)


def exception_text(info: Mapping[str, Any] | None) -> str | None:
    """The exception GX caught for an expectation, or ``None``.

    GX 1.x stores either ``{"raised_exception": bool, "exception_message": …}`` or,
    when a metric failed, ``{metric_id: {"raised_exception": …, …}, …}``.
    """
    if not info:
        return None
    entries = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, Mapping)]
    messages = []
    for entry in entries:
        if entry.get("raised_exception"):
            msg = entry.get("exception_message") or "exception without message"
            messages.append(" ".join(str(msg).split()))
    if not messages:
        return None
    return redact("; ".join(dict.fromkeys(messages)))[:2000]


def column_of(kwargs: Mapping[str, Any]) -> str | None:
    """The column an expectation is about (``None`` for table-level ones)."""
    return kwargs.get("column")


def _looks_like_key(value: object) -> bool:
    """A hash-shaped value (32+ hex characters): safe to show. A malformed "subject
    key" may be the raw phone number that escaped pseudonymization, so it is not."""
    return isinstance(value, str) and _HASH_SHAPED.fullmatch(value) is not None


def _subject_key_samples(result: Mapping[str, Any], column: str | None, limit: int) -> list[str]:
    values: list[Any] = []
    if column == SUBJECT_KEY:
        values = list(result.get("partial_unexpected_list") or [])
    details = result.get("details") or {}
    rows = details.get("unexpected_rows") if isinstance(details, Mapping) else None
    if isinstance(rows, list):
        values += [row.get(SUBJECT_KEY) for row in rows if isinstance(row, Mapping)]
    keys = [v for v in values if _looks_like_key(v)]
    return list(dict.fromkeys(keys))[:limit]


def _safe_observed(expectation_type: str, column: str | None, observed: Any) -> Any:
    if observed is None or isinstance(observed, (bool, int, float)):
        return observed
    if expectation_type in _SCHEMA_EXPECTATIONS or column == SUBJECT_KEY:
        return observed
    return "<redacted>"


def sanitize_gx_result(evr: Any, limit: int) -> None:
    """Strip raw values from a GX ExpectationValidationResult in place, before it is
    stored or rendered: only subject keys survive, at most ``limit`` of them."""
    config = evr.expectation_config
    etype = config.type
    column = column_of(config.kwargs)
    result = evr.result or {}
    samples = _subject_key_samples(result, column, limit)
    for key in _VALUE_KEYS:
        if key == "details" and etype in _SCHEMA_EXPECTATIONS:
            continue  # column names (missing / unexpected), not data
        result.pop(key, None)
    if column == SUBJECT_KEY and samples:
        result["partial_unexpected_list"] = samples
    if samples and etype in QUERY_EXPECTATIONS:
        result["details"] = {"unexpected_rows": [{SUBJECT_KEY: k} for k in samples]}
    if "observed_value" in result:
        result["observed_value"] = _safe_observed(etype, column, result["observed_value"])
    evr.result = result
    if evr.exception_info:
        for entry in [evr.exception_info, *evr.exception_info.values()]:
            if isinstance(entry, dict):
                for k in ("exception_message", "exception_traceback"):
                    if isinstance(entry.get(k), str):
                        entry[k] = redact(entry[k])


def outcome_of(evr: Any, limit: int) -> ExpectationOutcome:
    """A sanitized GX ``ExpectationValidationResult`` as an :class:`ExpectationOutcome`."""
    config = evr.expectation_config
    meta = config.meta or {}
    kwargs = {k: v for k, v in dict(config.kwargs).items() if k not in _CONFIG_KEYS_DROPPED}
    etype = config.type
    result = evr.result or {}
    column = column_of(kwargs)
    error = exception_text(evr.exception_info)
    observed = result.get("observed_value")
    unexpected_count = result.get("unexpected_count")
    unexpected_percent = result.get("unexpected_percent")
    if etype in QUERY_EXPECTATIONS and isinstance(observed, int):
        unexpected_count = observed
    if result.get("element_count") == 0 and unexpected_count is None:
        unexpected_count = 0  # an empty batch (e.g. a delivery with no such rows)
    severity: Severity = meta.get("severity", "blocking")
    if severity not in SEVERITIES:
        severity = "blocking"
    return ExpectationOutcome(
        expectation_type=etype,
        kwargs=_jsonable(kwargs),
        severity=severity,
        status="error" if error else ("passed" if evr.success else "failed"),
        success=bool(evr.success) and not error,
        observed_value=_jsonable(_safe_observed(etype, column, observed)),
        unexpected_count=unexpected_count,
        unexpected_percent=unexpected_percent,
        unexpected_subject_keys=_subject_key_samples(result, column, limit),
        error=error,
        details=_jsonable(result.get("details")) if etype in _SCHEMA_EXPECTATIONS else None,
        why=config.notes if isinstance(config.notes, str) else None,
        check=meta.get("check"),
        name=meta.get("name"),
    )
