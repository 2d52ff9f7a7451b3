"""The validation layer: Great Expectations 1.x suites run inside DuckDB.

A suite is a YAML file in ``expectations/`` (one per stage) that a compliance
officer can read and edit. :func:`validate` runs one against a table of the
warehouse, one delivery's rows of it, the ledger events one append added, or a
query (e.g. over a segment's Parquet files), and returns a :class:`SuiteResult`
that can be stored in an audit bundle (:meth:`SuiteResult.to_dict`).

Every expectation is pushed down to DuckDB as SQL: GX compiles each one to
aggregate queries over the batch and only counts and a handful of sample values
come back to Python. Nothing loads the table into pandas.

The package, one concern per module:

- :mod:`~origine.validation.request`: :class:`ValidationRequest` and :func:`validate`;
- :mod:`~origine.validation.suites`: reading suite files, building GX expectations;
- :mod:`~origine.validation.adapter`: GX on DuckDB (an execution engine, a datasource,
  regex metrics, ``unexpected_subject_rows``), and why each piece exists;
- :mod:`~origine.validation.run`: one suite over one batch, Data Docs;
- :mod:`~origine.validation.results`: results and their redaction.

Values never leak: results keep counts and percentages for every expectation but
sample values only from columns named ``subject_key`` (a pseudonymous HMAC);
everything else is removed from the GX result *before* it is stored or rendered
into Data Docs, and phone-like digit runs are masked in error messages.

Importing this package does not import Great Expectations (a second or more of
start-up): only running a check does. The GX-bound names (``DuckDBDatasource``,
``DuckDBExecutionEngine``, ``batch_query``, …) are loaded on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

from origine.validation.errors import SuiteError, ValidationError
from origine.validation.request import (
    ValidationRequest,
    delivery_filters,
    validate,
    validate_delivery,
)
from origine.validation.results import (
    DEFAULT_UNEXPECTED_SAMPLE,
    SUBJECT_KEY,
    ExpectationOutcome,
    Scalar,
    Severity,
    Status,
    SuiteResult,
    _looks_like_key,
    redact,
)
from origine.validation.suites import (
    EXPECTATIONS_DIR_ENV,
    Check,
    Suite,
    build_expectations,
    expectations_dir,
    load_purpose_codes,
    load_suite,
    suite_names,
)

__all__ = [
    "DuckDBDatasource",
    "DuckDBExecutionEngine",
    "ExpectationOutcome",
    "SuiteError",
    "SuiteResult",
    "ValidationError",
    "ValidationRequest",
    "delivery_filters",
    "load_purpose_codes",
    "load_suite",
    "suite_names",
    "validate",
    "validate_delivery",
]

# Names whose modules import Great Expectations: loaded when first used.
_LAZY = {
    "DuckDBDatasource": "origine.validation.adapter",
    "DuckDBExecutionEngine": "origine.validation.adapter",
    "UnexpectedSubjectRows": "origine.validation.adapter",
    "duckdb_regex": "origine.validation.adapter",
    "batch_query": "origine.validation.run",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
