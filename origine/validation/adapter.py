"""The Great Expectations adapter for DuckDB: the only module that imports GX at load.

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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Iterator, Literal

import duckdb
import duckdb_engine
import sqlalchemy as sa

from great_expectations.compatibility import pydantic
from great_expectations.datasource.fluent.sql_datasource import SQLDatasource
from great_expectations.execution_engine import SqlAlchemyExecutionEngine
from great_expectations.expectations.core.unexpected_rows_expectation import (
    UnexpectedRowsExpectation,
)
from great_expectations.expectations.metadata_types import FailureSeverity
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    column_condition_partial,
)

from origine import memory
from origine.validation.results import DEFAULT_UNEXPECTED_SAMPLE, SUBJECT_KEY, _looks_like_key

GX_SEVERITY: dict[str, FailureSeverity] = {
    "blocking": FailureSeverity.CRITICAL,
    "warning": FailureSeverity.WARNING,
}
"""Our severities as GX's (shown in Data Docs)."""


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
