"""The validation layer: Great Expectations 1.x suites run inside DuckDB.

A suite is a YAML file in ``expectations/`` (one per stage) that a compliance
officer can read and edit; :func:`load_suite` turns it into GX expectation
objects and :func:`validate` runs it against a table of the warehouse, or one
delivery's rows of it, and returns a :class:`SuiteResult` that can be stored in
an audit bundle (:meth:`SuiteResult.to_dict`).

Every expectation is pushed down to DuckDB as SQL: GX compiles each one to
aggregate queries over the batch (a table or a ``SELECT … WHERE …``) and only
counts and a handful of sample values come back to Python. Nothing loads the
table into pandas.

Two things stop GX 1.x from working on DuckDB through ``duckdb_engine`` out of
the box. Both are fixed here through GX's and SQLAlchemy's extension points
(subclasses and registrations), not by patching GX code:

1. **Results read after the connection closed.** ``SqlAlchemyExecutionEngine
   .execute_query`` runs ``with engine.connect() as c: result = c.execute(q)``
   and the caller fetches ``result`` afterwards. Closing the SQLAlchemy
   connection rolls back its implicit transaction; ``duckdb_engine`` runs that
   ROLLBACK on the same DuckDB connection that holds the pending result, which
   discards it, so ``fetchall()`` returns ``[]`` and every metric fails with
   ``IndexError: list index out of range`` (hidden in ``exception_info``; the
   expectation merely reports ``success=False``). GX already solves this for
   sqlite, SQL Server, BigQuery and Databricks by keeping one connection open
   for the engine's lifetime (``_PERSISTED_CONNECTION_DIALECTS``) but has no
   way to opt DuckDB in. :class:`DuckDBExecutionEngine` overrides the public
   ``get_connection`` to do the same: one connection per validation, closed by
   :meth:`DuckDBExecutionEngine.close`. A side benefit: every metric of a run
   reads the same transaction snapshot.

2. **"Regex is not supported for dialect duckdb".** GX maps dialects to regex
   SQL in a closed if-chain (``great_expectations.expectations.metrics.util
   .get_dialect_regex_expression``) that knows postgres, mysql, sqlite, … but
   not DuckDB, and the ``column_values.(not_)match_regex(_list)`` metrics raise
   ``NotImplementedError`` when it returns ``None``. GX looks metric providers
   up by execution-engine class first (``registry.get_metric_provider``), so we
   register DuckDB providers for those metrics *for our engine class only*;
   they emit DuckDB's ``regexp_matches(value, pattern)``, which has the same
   search semantics as GX's pandas (``str.contains``) and postgres (``~``)
   implementations. Every other engine keeps GX's own providers.

Values never leak: results keep counts and percentages for every
expectation but sample values only from columns named ``subject_key`` (a
pseudonymous HMAC); everything else is removed from the GX result *before* it
is stored or rendered into Data Docs, and phone-like digit runs are masked in
error messages.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import math
import os
import re
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Literal

import duckdb
import duckdb_engine
import sqlalchemy as sa
import yaml

import great_expectations as gx
from great_expectations.compatibility import pydantic
from great_expectations.core.expectation_suite import ExpectationSuite
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)
from great_expectations.datasource.fluent.sql_datasource import SQLDatasource
from great_expectations.execution_engine import SqlAlchemyExecutionEngine
from great_expectations.expectations.core.unexpected_rows_expectation import (
    UnexpectedRowsExpectation,
)
from great_expectations.expectations.expectation import Expectation
from great_expectations.expectations.metadata_types import FailureSeverity
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    column_condition_partial,
)
from great_expectations.expectations.registry import get_expectation_impl

from origine import memory
from origine.documents import load_yaml, read_bounded
from origine.errors import BadInput, OrigineError

logger = logging.getLogger(__name__)

__all__ = [
    "DuckDBDatasource",
    "DuckDBExecutionEngine",
    "ExpectationOutcome",
    "SuiteError",
    "SuiteResult",
    "ValidationError",
    "delivery_filters",
    "load_purpose_codes",
    "load_suite",
    "suite_names",
    "validate",
    "validate_delivery",
]

Severity = Literal["blocking", "warning"]
Status = Literal["passed", "failed", "error"]
Scalar = str | int | float | bool | None

SUBJECT_KEY = "subject_key"
"""The only column whose values may appear in results: pseudonymous HMAC keys."""

DEFAULT_UNEXPECTED_SAMPLE = 5
EXPECTATIONS_DIR_ENV = "ORIGINE_EXPECTATIONS_DIR"
_GX_SEVERITY: dict[str, FailureSeverity] = {
    "blocking": FailureSeverity.CRITICAL,
    "warning": FailureSeverity.WARNING,
}
_DOCS_SITE = "origine"


class ValidationError(OrigineError):
    """Validation could not run (missing table, locked file, bad suite, an expectation
    that raised with ``raise_on_error``). Messages never carry raw data values."""

    exit_code = 2


class SuiteError(ValidationError):
    """A suite file is malformed: names the file and the check."""


# --------------------------------------------------------------------------------------
# GX adapter for DuckDB (see the module docstring for why each piece exists)
# --------------------------------------------------------------------------------------


class DuckDBExecutionEngine(SqlAlchemyExecutionEngine):
    """``SqlAlchemyExecutionEngine`` that keeps one connection open while it validates.

    GX fetches query results after leaving ``with engine.connect()``; closing a
    ``duckdb_engine`` connection rolls back on the DuckDB connection that holds the
    pending result and empties it. GX keeps a persistent connection for dialects
    that need one (sqlite, mssql, …); this opts DuckDB into the same behaviour.
    """

    @contextmanager
    def get_connection(self) -> Iterator[sa.Connection]:
        if self._connection is None or self._connection.closed:
            self._connection = self.engine.connect()
        try:
            yield self._connection
        except Exception:
            # DuckDB aborts the transaction on any error ("Current transaction is
            # aborted"); roll back so the next metric starts a fresh one.
            if self._connection.in_transaction():
                self._connection.rollback()
            raise

    def close(self) -> None:
        """Close the persistent connection and dispose of the engine's pool."""
        connection, self._connection = self._connection, None
        try:
            if connection is not None and not connection.closed:
                connection.close()
        finally:
            super().close()


class DuckDBDatasource(SQLDatasource):
    """A GX fluent datasource for one DuckDB file, run by :class:`DuckDBExecutionEngine`.

    Registered with GX (as ``context.data_sources.add_origine_duckdb``) by the
    ``MetaDatasource`` metaclass when this module is imported. Connections are
    plain ``duckdb.connect(database, read_only=…)`` wrapped for SQLAlchemy, so they
    share the database instance with other plain DuckDB connections of the process
    (``duckdb_engine``'s own ``connect`` adds a ``custom_user_agent`` setting, which
    DuckDB refuses next to an already open connection "with a different
    configuration").
    """

    type: Literal["origine_duckdb"] = "origine_duckdb"  # type: ignore[assignment]
    connection_string: str = "duckdb://"  # display only; the engine uses `database`
    database: str
    read_only: bool = True

    _shared_connection: Any = pydantic.PrivateAttr(None)  # an open DuckDBPyConnection

    def use_connection(self, connection: duckdb.DuckDBPyConnection | None) -> None:
        """Serve queries from cursors of an already open DuckDB connection."""
        self._shared_connection = connection

    def _create_engine(self) -> sa.Engine:
        database, read_only, shared = self.database, self.read_only, self._shared_connection

        def creator() -> duckdb_engine.ConnectionWrapper:
            if shared is not None:
                # cursor() is a new connection to the same database instance.
                conn = shared.cursor()
            else:
                conn = memory.bound(duckdb.connect(database, read_only=read_only))
            # Connection-local: no progress bar drawn on the terminal by long scans.
            conn.execute("SET enable_progress_bar = false")
            return duckdb_engine.ConnectionWrapper(conn)

        return sa.create_engine("duckdb://", creator=creator, poolclass=sa.pool.QueuePool)

    @property
    def execution_engine_type(self) -> type[DuckDBExecutionEngine]:
        return DuckDBExecutionEngine

    def get_execution_engine(self) -> DuckDBExecutionEngine:
        if self._execution_engine is None:
            self._execution_engine = DuckDBExecutionEngine(
                engine=self.get_engine(), create_temp_table=False
            )
        return self._execution_engine

    def close(self) -> None:
        """Release every DuckDB connection this datasource opened."""
        engine = self._execution_engine
        self._execution_engine = None
        if engine is not None:
            engine.close()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def duckdb_regex(column: sa.ColumnElement[Any], regex: str) -> sa.ColumnElement[bool]:
    """DuckDB's regex *search* (not full match), the semantics GX uses on every engine."""
    return sa.func.regexp_matches(column, sa.literal(regex, sa.String))


# Defining these classes registers them (GX's MetaMetricProvider) as the providers of
# GX's regex metrics for DuckDBExecutionEngine only; same metric names and value keys
# as GX's own, so every regex expectation works unchanged.
class _DuckDBColumnValuesMatchRegex(ColumnMapMetricProvider):
    condition_metric_name = "column_values.match_regex"
    condition_value_keys = ("regex",)

    @column_condition_partial(engine=DuckDBExecutionEngine)
    def _duckdb(cls, column: Any, regex: str, **kwargs: Any) -> Any:
        return duckdb_regex(column, regex)


class _DuckDBColumnValuesNotMatchRegex(ColumnMapMetricProvider):
    condition_metric_name = "column_values.not_match_regex"
    condition_value_keys = ("regex",)

    @column_condition_partial(engine=DuckDBExecutionEngine)
    def _duckdb(cls, column: Any, regex: str, **kwargs: Any) -> Any:
        return sa.not_(duckdb_regex(column, regex))


def _regex_list_condition(column: Any, regex_list: Sequence[str], match_on: str, positive: bool) -> Any:
    if match_on not in ("any", "all"):
        raise ValueError("match_on must be 'any' or 'all'")
    if not regex_list:
        raise ValueError("At least one regex must be supplied in the regex_list.")
    terms = [duckdb_regex(column, r) if positive else sa.not_(duckdb_regex(column, r)) for r in regex_list]
    return sa.or_(*terms) if match_on == "any" else sa.and_(*terms)


class _DuckDBColumnValuesMatchRegexList(ColumnMapMetricProvider):
    condition_metric_name = "column_values.match_regex_list"
    condition_value_keys = ("regex_list", "match_on")
    default_kwarg_values = {"match_on": "any"}

    @column_condition_partial(engine=DuckDBExecutionEngine)
    def _duckdb(cls, column: Any, regex_list: Sequence[str], match_on: str = "any", **kwargs: Any) -> Any:
        return _regex_list_condition(column, regex_list, match_on, positive=True)


class _DuckDBColumnValuesNotMatchRegexList(ColumnMapMetricProvider):
    condition_metric_name = "column_values.not_match_regex_list"
    condition_value_keys = ("regex_list",)

    @column_condition_partial(engine=DuckDBExecutionEngine)
    def _duckdb(cls, column: Any, regex_list: Sequence[str], **kwargs: Any) -> Any:
        # GX: no value may match any of the patterns.
        return _regex_list_condition(column, regex_list, "all", positive=False)


class UnexpectedSubjectRows(UnexpectedRowsExpectation):
    """GX's ``UnexpectedRowsExpectation`` that also reports a few offending subject keys.

    GX returns the rows its query found only with ``result_format: COMPLETE``, which
    would also make every map expectation return *all* its unexpected values. This
    keeps the rows GX fetched anyway (up to 200) but only their ``subject_key``
    values, as many as ``meta["subject_key_sample"]`` (set by :func:`build_expectations`).
    """

    def _validate(
        self,
        metrics: dict,
        runtime_configuration: dict | None = None,
        execution_engine: Any = None,
    ) -> Any:
        outcome = super()._validate(metrics, runtime_configuration, execution_engine)
        limit = int((self.meta or {}).get("subject_key_sample", DEFAULT_UNEXPECTED_SAMPLE))
        rows = metrics.get("unexpected_rows_query.table") or []
        keys = [row.get(SUBJECT_KEY) for row in rows if isinstance(row, Mapping)]
        keys = list(dict.fromkeys(k for k in keys if _looks_like_key(k)))[:limit]
        if isinstance(outcome, dict) and isinstance(outcome.get("result"), dict) and keys:
            outcome["result"]["details"] = {"unexpected_rows": [{SUBJECT_KEY: k} for k in keys]}
        return outcome


# --------------------------------------------------------------------------------------
# Suites: YAML a compliance officer edits -> GX expectation objects
# --------------------------------------------------------------------------------------

_CHECK_KEYS_OURS = {"expect", "severity", "why", "name", "query"}
_PARAM = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WHOLE_PARAM = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class Check:
    """One check of a suite file, as written (before parameters are substituted)."""

    index: int
    expect: str
    severity: Severity
    why: str | None
    name: str | None
    args: Mapping[str, Any]


@dataclass(frozen=True)
class Suite:
    """A parsed suite file."""

    name: str
    table: str | None
    description: str | None
    parameters: Mapping[str, Any]
    checks: tuple[Check, ...]
    path: Path | None = None


def expectations_dir() -> Path:
    """Where suite files live: ``$ORIGINE_EXPECTATIONS_DIR`` or the repository's ``expectations/``."""
    env = os.environ.get(EXPECTATIONS_DIR_ENV)
    return Path(env) if env else Path(__file__).resolve().parent.parent / "expectations"


def suite_names(suites_dir: Path | None = None) -> list[str]:
    """Names of the suites found in ``suites_dir`` (the file stems), sorted."""
    folder = suites_dir or expectations_dir()
    return sorted(p.stem for p in folder.glob("*.yml"))


def _suite_path(suite: str | Path, suites_dir: Path | None) -> Path:
    candidate = Path(suite)
    if candidate.suffix in (".yml", ".yaml") and candidate.exists():
        return candidate
    folder = suites_dir or expectations_dir()
    for ext in (".yml", ".yaml"):
        path = folder / f"{suite}{ext}"
        if path.exists():
            return path
    raise SuiteError(f"no suite named {str(suite)!r} in {folder} (have: {', '.join(suite_names(folder)) or 'none'})")


def load_suite(suite: str | Path, *, suites_dir: Path | None = None) -> Suite:
    """Read and check a suite file (by name in ``suites_dir`` or by path)."""
    path = _suite_path(suite, suites_dir)
    try:  # strict: no YAML aliases, no key given twice, bounded size
        doc = load_yaml(read_bounded(path, what="suite"), label=str(path), what="suite")
    except BadInput as exc:
        raise SuiteError(str(exc)) from None
    if not isinstance(doc, Mapping):
        raise SuiteError(f"{path}: expected a mapping with `suite` and `checks`")
    name = str(doc.get("suite") or path.stem)
    raw_checks = doc.get("checks")
    if not isinstance(raw_checks, list) or not raw_checks:
        raise SuiteError(f"{path}: `checks` must be a non-empty list")
    params = doc.get("parameters") or {}
    if not isinstance(params, Mapping):
        raise SuiteError(f"{path}: `parameters` must be a mapping")
    checks = []
    for i, raw in enumerate(raw_checks, start=1):
        where = f"{path}, check {i}"
        if not isinstance(raw, Mapping) or "expect" not in raw:
            raise SuiteError(f"{where}: each check needs `expect: <expectation>`")
        severity = raw.get("severity", "blocking")
        if severity not in _GX_SEVERITY:
            raise SuiteError(f"{where}: severity must be `blocking` or `warning`, not {severity!r}")
        args = {k: v for k, v in raw.items() if k not in _CHECK_KEYS_OURS}
        if "query" in raw:
            args["unexpected_rows_query"] = raw["query"]
        checks.append(
            Check(
                index=i,
                expect=_expectation_type(str(raw["expect"])),
                severity=severity,
                why=" ".join(str(raw["why"]).split()) if raw.get("why") else None,
                name=str(raw["name"]) if raw.get("name") else None,
                args=args,
            )
        )
    parsed = Suite(
        name=name,
        table=str(doc["table"]) if doc.get("table") else None,
        description=" ".join(str(doc["description"]).split()) if doc.get("description") else None,
        parameters=dict(params),
        checks=tuple(checks),
        path=path,
    )
    build_expectations(parsed, parsed.parameters)  # fail now on unknown types or bad arguments
    return parsed


def _expectation_type(expect: str) -> str:
    expect = expect.strip()
    if expect in ("unexpected_rows", "unexpected_rows_expectation", "unexpected_subject_rows"):
        return "unexpected_subject_rows"
    return expect if expect.startswith("expect_") else f"expect_{expect}"


def _sql_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise SuiteError(f"cannot put {value!r} in SQL")
        return repr(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return "[" + ", ".join(_sql_literal(v) for v in items) + "]"
    text = str(value)
    return "'" + text.replace("'", "''") + "'"


def _substitute(value: Any, params: Mapping[str, Any], *, sql: bool, where: str) -> Any:
    if isinstance(value, str):
        whole = _WHOLE_PARAM.match(value)
        if whole:
            name = whole.group(1)
            if name not in params:
                raise SuiteError(f"{where}: unknown parameter ${name}")
            return _substitute(params[name], {}, sql=False, where=where)  # dates -> ISO text

        def repl(m: re.Match[str]) -> str:
            if m.group(1) not in params:
                raise SuiteError(f"{where}: unknown parameter ${{{m.group(1)}}}")
            v = params[m.group(1)]
            return _sql_literal(v) if sql else str(v)

        return _PARAM.sub(repl, value)
    if isinstance(value, list):
        return [_substitute(v, params, sql=sql, where=where) for v in value]
    if isinstance(value, Mapping):
        return {k: _substitute(v, params, sql=sql, where=where) for k, v in value.items()}
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    return value


def build_expectations(
    suite: Suite, params: Mapping[str, Any], *, sample: int = DEFAULT_UNEXPECTED_SAMPLE
) -> list[Expectation]:
    """GX expectation objects for a suite, parameters substituted, severity in ``meta``."""
    built: list[Expectation] = []
    for check in suite.checks:
        where = f"{suite.path or suite.name}, check {check.index} ({check.expect})"
        try:
            cls = get_expectation_impl(check.expect)
        except Exception:
            raise SuiteError(f"{where}: unknown expectation {check.expect!r}") from None
        kwargs = {
            k: _substitute(v, params, sql=(k == "unexpected_rows_query"), where=where)
            for k, v in check.args.items()
        }
        meta: dict[str, Any] = {"severity": check.severity, "check": check.index}
        if check.expect == "unexpected_subject_rows":
            meta["subject_key_sample"] = sample
        if check.name:
            meta["name"] = check.name
        try:
            built.append(
                cls(
                    **kwargs,
                    meta=meta,
                    notes=check.why,
                    severity=_GX_SEVERITY[check.severity],
                )
            )
        except Exception as exc:  # pydantic errors name the argument
            raise SuiteError(f"{where}: {' '.join(str(exc).split())}") from None
    return built


# --------------------------------------------------------------------------------------
# Purpose taxonomy
# --------------------------------------------------------------------------------------


def load_purpose_codes(path: Path | None = None) -> list[str] | None:
    """Purpose codes from ``origine/data/purposes.yaml`` (or ``path``); ``None`` if absent.

    Accepts ``purposes:`` as a mapping of code -> details or a list of codes (or of
    ``{code: …}`` items), at the top level or under a ``purposes`` key.
    """
    try:
        if path is not None:
            text = path.read_text(encoding="utf-8")
        else:
            text = resources.files("origine.data").joinpath("purposes.yaml").read_text("utf-8")
    except (FileNotFoundError, ModuleNotFoundError, OSError):
        return None
    doc = yaml.safe_load(text)
    node = doc.get("purposes", doc) if isinstance(doc, Mapping) else doc
    if isinstance(node, Mapping):
        codes = [str(k) for k in node]
    elif isinstance(node, list):
        codes = [str(item.get("code") if isinstance(item, Mapping) else item) for item in node]
    else:
        raise ValidationError(f"{path or 'origine/data/purposes.yaml'}: cannot find the purpose codes")
    return sorted(set(codes))


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------

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
_QUERY_EXPECTATIONS = {"unexpected_rows_expectation", "unexpected_subject_rows"}
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


def _redact_gx_logs() -> None:
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
    rows: int | None = None
    """Rows in the batch (0 for a delivery that has none: every check then passes)."""
    run_id: str = ""
    run_time: str = ""
    data_docs_path: Path | None = None
    gx_version: str = gx.__version__
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


def _exception_text(info: Mapping[str, Any] | None) -> str | None:
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


def _column_of(kwargs: Mapping[str, Any]) -> str | None:
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


def _sanitize_gx_result(evr: Any, limit: int) -> None:
    """Strip raw values from a GX ExpectationValidationResult in place, before it is
    stored or rendered: only subject keys survive, at most ``limit`` of them."""
    config = evr.expectation_config
    etype = config.type
    column = _column_of(config.kwargs)
    result = evr.result or {}
    samples = _subject_key_samples(result, column, limit)
    for key in _VALUE_KEYS:
        if key == "details" and etype in _SCHEMA_EXPECTATIONS:
            continue  # column names (missing / unexpected), not data
        result.pop(key, None)
    if column == SUBJECT_KEY and samples:
        result["partial_unexpected_list"] = samples
    if samples and etype in _QUERY_EXPECTATIONS:
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


def _outcome(evr: Any, limit: int) -> ExpectationOutcome:
    config = evr.expectation_config
    meta = config.meta or {}
    kwargs = {k: v for k, v in dict(config.kwargs).items() if k not in _CONFIG_KEYS_DROPPED}
    etype = config.type
    result = evr.result or {}
    column = _column_of(kwargs)
    error = _exception_text(evr.exception_info)
    observed = result.get("observed_value")
    unexpected_count = result.get("unexpected_count")
    unexpected_percent = result.get("unexpected_percent")
    if etype in _QUERY_EXPECTATIONS and isinstance(observed, int):
        unexpected_count = observed
    if result.get("element_count") == 0 and unexpected_count is None:
        unexpected_count = 0  # an empty batch (e.g. a delivery with no such rows)
    severity: Severity = meta.get("severity", "blocking")
    if severity not in _GX_SEVERITY:
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


# --------------------------------------------------------------------------------------
# Running a suite
# --------------------------------------------------------------------------------------


def delivery_filters(vendor: str, delivery_id: str) -> dict[str, str]:
    """The filters that restrict a table to one delivery's rows."""
    return {"vendor": vendor, "delivery_id": delivery_id}


_dialect = duckdb_engine.Dialect()


def batch_query(
    *, table: str | None = None, query: str | None = None, filters: Mapping[str, Scalar] | None = None
) -> str:
    """The SQL of the batch: the table or the query, restricted by equality ``filters``.

    Identifiers are quoted and values rendered as literals by the DuckDB dialect.
    """
    if (table is None) == (query is None):
        raise ValidationError("give exactly one of table= or query=")
    if table is not None:
        parts = table.split(".")
        source: Any = sa.table(parts[-1], schema=".".join(parts[:-1]) or None)
    else:
        source = sa.text(query.strip().rstrip(";")).columns().subquery("batch_query")  # type: ignore[union-attr]
    stmt = sa.select(sa.text("*")).select_from(source)
    for column, value in (filters or {}).items():
        if value is None:
            stmt = stmt.where(sa.column(column).is_(None))
        else:
            stmt = stmt.where(sa.column(column) == sa.literal(value))
    return str(stmt.compile(dialect=_dialect, compile_kwargs={"literal_binds": True}))


def _context(context_root: Path | None) -> Any:
    """An ephemeral GX context; with ``context_root``, validation results and Data Docs
    are written there (datasources and suites stay in memory, so concurrent runs do
    not race on a shared ``great_expectations.yml``)."""
    defaults = InMemoryStoreBackendDefaults()
    if context_root is not None:
        root = Path(context_root)
        defaults.stores[defaults.validation_results_store_name]["store_backend"] = {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(root / "validations"),
        }
        defaults.data_docs_sites = {
            _DOCS_SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(root / "data_docs"),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        }
    config = DataContextConfig(
        store_backend_defaults=defaults,
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _count_rows(datasource: DuckDBDatasource, sql: str, db_path: Path) -> int:
    """The batch's row count; fails early, with a clear message, when it cannot be queried."""
    try:
        with datasource.get_engine().connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM ({sql}) AS probe")).scalar_one())
    except sa.exc.DBAPIError as exc:
        text = redact(" ".join(str(exc.orig).split()))
        if "different configuration" in text:
            text += (
                " (this process already has the file open with other settings: pass "
                "connection=<that connection> or read_only=False)"
            )
        raise ValidationError(f"cannot query {db_path}: {text}") from None


def _probe(datasource: DuckDBDatasource, sql: str, db_path: Path, wait: float) -> int:
    """:func:`_count_rows`, waiting up to ``wait`` seconds for another process's write lock."""
    deadline = time.monotonic() + wait
    delay = 0.05
    while True:
        try:
            return _count_rows(datasource, sql, db_path)
        except ValidationError as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise
        datasource.close()
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def validate(
    db_path: Path | str,
    suite: str | Path,
    *,
    table: str | None = None,
    query: str | None = None,
    filters: Mapping[str, Scalar] | None = None,
    context_root: Path | str | None = None,
    purposes: Sequence[str] | None = None,
    parameters: Mapping[str, Any] | None = None,
    suites_dir: Path | None = None,
    read_only: bool = True,
    connection: duckdb.DuckDBPyConnection | None = None,
    unexpected_sample: int = DEFAULT_UNEXPECTED_SAMPLE,
    lock_wait: float = 30.0,
    raise_on_error: bool = False,
) -> SuiteResult:
    """Run ``suite`` against a table (or query) of the DuckDB file ``db_path``.

    Args:
        db_path: the DuckDB file.
        suite: a suite name from ``suites_dir`` (default ``expectations/``) or a YAML path.
        table: the table to validate; defaults to the suite's ``table``.
        query: a SQL query to validate instead of a table.
        filters: ``{column: value}`` equalities restricting the batch, e.g.
            :func:`delivery_filters` for one delivery's rows (``None`` means IS NULL).
        context_root: the GX folder (``$ORIGINE_HOME/gx``): when given, results are
            stored and Data Docs built there; ``data_docs_path`` is their index.
        purposes: the consent purpose codes; default ``origine/data/purposes.yaml``,
            else the suite's own ``parameters.purposes``.
        parameters: more values for ``$name`` / ``${name}`` in the suite.
        read_only: open the file read-only (the default: validation never writes).
        connection: an open DuckDB connection to the same file to read through
            (needed when this process already holds the file open).
        unexpected_sample: how many failing subject keys to keep per expectation.
        lock_wait: seconds to wait for another process's write lock.
        raise_on_error: raise :class:`ValidationError` when any expectation raised,
            instead of returning it as an ``error`` outcome.
    """
    _redact_gx_logs()
    db_path = Path(db_path)
    parsed = load_suite(suite, suites_dir=suites_dir)
    if table is None and query is None:
        table = parsed.table
    if table is None and query is None:
        raise ValidationError(f"suite {parsed.name} names no table: pass table= or query=")
    if connection is None and not db_path.exists():
        raise ValidationError(f"no DuckDB file at {db_path}")
    sql = batch_query(table=table, query=query, filters=filters)

    params = dict(parsed.parameters)
    codes = list(purposes) if purposes is not None else load_purpose_codes()
    if codes is not None:
        params["purposes"] = sorted(set(codes))
    params.update(parameters or {})
    expectations = build_expectations(parsed, params, sample=max(0, unexpected_sample))

    run_time = _dt.datetime.now(_dt.timezone.utc)
    logger.debug("validating %s with suite %s (%d checks)", db_path, parsed.name, len(expectations))
    run_id = RunIdentifier(run_name=f"{parsed.name}-{uuid.uuid4().hex[:12]}", run_time=run_time)
    context = _context(Path(context_root) if context_root is not None else None)
    datasource = DuckDBDatasource(
        name=f"duckdb-{uuid.uuid4().hex[:8]}", database=str(db_path), read_only=read_only
    )
    datasource.use_connection(connection)
    started = time.perf_counter()
    try:
        rows = _probe(datasource, sql, db_path, lock_wait)
        datasource = context.data_sources.add_origine_duckdb(datasource)  # type: ignore[attr-defined]
        asset = datasource.add_query_asset(name=table or "query", query=sql)
        batch = asset.add_batch_definition_whole_table("batch").get_batch()
        gx_suite = context.suites.add(ExpectationSuite(name=parsed.name, expectations=expectations))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Counts only: with partial_unexpected_count > 0 GX runs one more query per
            # map expectation (`SELECT col … WHERE unexpected LIMIT n`), a full scan
            # whenever nothing is unexpected: a third of the time on 10M rows.
            validation = batch.validate(
                gx_suite, result_format={"result_format": "BASIC", "partial_unexpected_count": 0}
            )
            if unexpected_sample > 0:
                _add_subject_key_samples(batch, validation, expectations, unexpected_sample)
    finally:
        datasource.close()
    elapsed = time.perf_counter() - started

    for evr in validation.results:
        _sanitize_gx_result(evr, unexpected_sample)
    # GX groups results by metric domain; report them in the suite file's order.
    validation.results.sort(key=lambda evr: (evr.expectation_config.meta or {}).get("check", 0))
    outcomes = [_outcome(evr, unexpected_sample) for evr in validation.results]

    docs_path: Path | None = None
    if context_root is not None:
        docs_path = _store_and_render(context, validation, batch.id, parsed.name, run_id)

    result = SuiteResult(
        suite=parsed.name,
        success=bool(validation.success) and not any(o.is_error for o in outcomes),
        results=outcomes,
        table=table,
        query=sql,
        filters=dict(filters or {}),
        rows=rows,
        run_id=run_id.run_name or "",
        run_time=run_time.isoformat(),
        data_docs_path=docs_path,
        statistics={
            "evaluated_expectations": len(outcomes),
            "successful_expectations": sum(o.success for o in outcomes),
            "seconds": round(elapsed, 3),
        },
        gx_result=validation,
    )
    if raise_on_error and result.errors:
        raise ValidationError(
            f"suite {parsed.name}: {len(result.errors)} expectation(s) could not be evaluated: "
            + "; ".join(o.describe() for o in result.errors)
        )
    return result


def _add_subject_key_samples(
    batch: Any, validation: Any, expectations: Sequence[Expectation], sample: int
) -> None:
    """Second pass, only for failed map expectations on ``subject_key``: fetch a few
    unexpected keys (GX's ``partial_unexpected_list``) into the first pass's results."""
    by_check = {(e.meta or {}).get("check"): e for e in expectations}
    failed = {
        (evr.expectation_config.meta or {}).get("check"): evr
        for evr in validation.results
        if not evr.success
        and _exception_text(evr.exception_info) is None
        and _column_of(evr.expectation_config.kwargs) == SUBJECT_KEY
        and evr.expectation_config.type not in _QUERY_EXPECTATIONS
    }
    if not failed:
        return
    copies = []
    for check in failed:
        copy = by_check[check].copy(deep=True)
        copy.id = None  # GX refuses an expectation that belongs to another suite
        copies.append(copy)
    suite = ExpectationSuite(name="subject-key-samples", expectations=copies)
    again = batch.validate(suite, result_format={"result_format": "BASIC", "partial_unexpected_count": sample})
    for evr in again.results:
        first = failed.get((evr.expectation_config.meta or {}).get("check"))
        if first is not None and evr.result:
            first.result["partial_unexpected_list"] = evr.result.get("partial_unexpected_list") or []


def validate_delivery(
    db_path: Path | str, suite: str | Path, vendor: str, delivery_id: str, **kwargs: Any
) -> SuiteResult:
    """:func:`validate` restricted to one delivery's rows."""
    filters = {**delivery_filters(vendor, delivery_id), **(kwargs.pop("filters", None) or {})}
    return validate(db_path, suite, filters=filters, **kwargs)


def _store_and_render(context: Any, validation: Any, batch_id: str, suite: str, run_id: RunIdentifier) -> Path:
    """Store the (sanitized) result and build its Data Docs page; the index path."""
    suite_id = ExpectationSuiteIdentifier(name=suite)
    result_id = ValidationResultIdentifier(
        expectation_suite_identifier=suite_id, run_id=run_id, batch_identifier=batch_id
    )
    validation.meta["run_id"] = run_id
    validation.meta["validation_time"] = run_id.run_time
    context.validation_results_store.set(result_id, validation)
    context.build_data_docs(site_names=[_DOCS_SITE], resource_identifiers=[result_id, suite_id])
    base = context.get_config().data_docs_sites[_DOCS_SITE]["store_backend"]["base_directory"]
    return Path(base) / "index.html"
